"""Fidelity metrics on known values: CIELAB, ΔE*ab, PSNR of a uniform shift, the detector."""

import numpy as np
import pytest

from semiadv.utils import colour
from semiadv.evaluation import fidelity


def test_lab_of_known_colours():
    # Reference values of the sRGB primaries and white under D65 (Lindbloom's calculator).
    colours = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], np.float64)
    expected = [[100.0, 0.0, 0.0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
                [32.30, 79.19, -107.86], [0.0, 0.0, 0.0]]
    np.testing.assert_allclose(colour.rgb_to_lab(colours).numpy(), expected, atol=0.02)
    # Grey images are R = G = B: no chroma.
    grey = colour.rgb_to_lab(np.array([[0.5]])).numpy()
    np.testing.assert_allclose(grey[0, 1:], 0.0, atol=1e-3)
    assert grey[0, 0] == pytest.approx(53.39, abs=0.02)
    with pytest.raises(ValueError, match="sRGB"):
        colour.rgb_to_lab(np.zeros((2, 2, 4)))


def test_delta_e_of_identical_and_known_pairs():
    images = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(fidelity.mean_delta_e(images, images), 0.0, atol=1e-6)
    red, green = np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 16, 3))
    red[..., 0], green[..., 1] = 1, 1
    assert fidelity.mean_delta_e(red, green)[0] == pytest.approx(170.58, abs=0.05)
    # Half the pixels changed: half the mean.
    half = red.copy()
    half[:, :8] = green[:, :8]
    assert fidelity.mean_delta_e(red, half)[0] == pytest.approx(170.58 / 2, abs=0.05)


def test_fidelity_of_identical_and_uniformly_shifted_images():
    rng = np.random.default_rng(1)
    images = rng.uniform(0.2, 0.7, (3, 32, 32, 3)).astype(np.float32)
    found = np.zeros(3, bool)
    same = fidelity.fidelity(images, images, found)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-6) and np.isinf(same["psnr"])
    assert same["delta_e"] == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(same["detector_hit_rate"]) and same["detector_originals"] == 0
    # A uniform shift of 0.1 (no clipping: values stay in [0.3, 0.8]): MSE 0.01, PSNR 20 dB.
    shifted = fidelity.fidelity(images, images + np.float32(0.1), found)
    assert shifted["psnr"] == pytest.approx(20.0, abs=1e-3)
    assert 0 < shifted["delta_e"] < 20 and shifted["ssim"] < 1


class _CountingDetector:
    """Finds a face wherever the image is bright on average; records the sizes it was given."""

    def __init__(self):
        self.shapes = []

    def detect_faces(self, gray):
        self.shapes.append(gray.shape)
        return [(0, 0, 10, 10)] if gray.mean() > 127 else []


def test_detector_hit_rate_counts_only_faces_found_in_the_originals():
    originals = np.full((4, 32, 32, 3), 0.9, np.float32)
    outputs = originals.copy()
    outputs[1] = 0.1  # This output loses its face.
    detector = _CountingDetector()
    found = fidelity.faces_found(originals[:3], detector)
    assert found.tolist() == [True, True, True]
    # Crops are padded and resized before detection (the cascades need context and pixels).
    assert detector.shapes[0] == (fidelity.DETECTION_SIDE, fidelity.DETECTION_SIDE)
    found = np.array([True, True, True, False])  # The detector missed original 3.
    result = fidelity.fidelity(originals, outputs, found, detector)
    assert result["detector_originals"] == 3
    assert result["detector_hit_rate"] == pytest.approx(2 / 3)


def test_package_detector_finds_real_faces(shared_faces):
    """The default detector (the package's Haar cascades) on 64x64 UTKFace crops."""
    import cv2

    paths = sorted((shared_faces / "utkface").glob("*.jpg"))[::500][:20]
    images = np.stack([cv2.resize(cv2.imread(str(p))[..., ::-1], (64, 64),
                                  interpolation=cv2.INTER_AREA) for p in paths]) / 255.0
    found = fidelity.faces_found(images.astype(np.float32))
    assert found.mean() >= 0.9, found.mean()
    flat = np.full_like(images, images.mean())
    assert not fidelity.faces_found(flat.astype(np.float32)).any()
