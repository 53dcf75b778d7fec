"""The export's input from a crop: what semiadv-perturb feeds the SAN."""

import numpy as np
import pytest

from semiadv.perturb import faces


@pytest.mark.parametrize("size", [16, 32, 64])
def test_a_crop_at_the_export_size_skips_the_resize_with_the_same_values(size):
    crop = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    resized = faces._resizer(size, 3)(crop).numpy()  # What every crop went through before.
    np.testing.assert_array_equal(resized, crop)
    face = faces._to_model_input(crop, (size, size, 3))
    assert face.dtype == np.float32
    np.testing.assert_array_equal(face, resized.astype(np.float32) / 255.0)


def test_other_sizes_and_gray_exports_are_still_resized():
    crop = np.random.default_rng(0).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    face = faces._to_model_input(crop, (16, 16, 3))
    assert face.shape == (16, 16, 3)
    np.testing.assert_allclose(face, faces._resizer(16, 3)(crop).numpy() / 255.0)
    square = crop[:16, :16]
    gray = faces._to_model_input(square, (16, 16, 1))
    assert gray.shape == (16, 16, 1)
    # Gray is the luma of the crop, not one of its channels.
    expected = square.astype(np.float32) @ np.array([0.2989, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(gray[..., 0] * 255.0, np.round(expected), atol=1.0)
