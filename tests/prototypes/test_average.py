"""Tests for `semiadv.prototypes.average`: per-gender means, the neutral mix, landmarks."""

import numpy as np
import pytest

from semiadv.prototypes import average


def _constant_images(values, size=2, channels=1):
    return np.stack([np.full((size, size, channels), v, np.float32) for v in values])


# ----------------------------------------------------------------------------------------------
# Averages


def test_accumulator_means_per_gender_ignoring_unknown():
    accumulator = average.PrototypeAccumulator()
    accumulator.add(_constant_images([0.2, 0.4, 0.9]), np.array([1, 0, -1]))
    accumulator.add(_constant_images([0.6, 0.8, 0.1]), np.array([1, 0, 0]))
    result = accumulator.result()
    # Males: 0.2, 0.6 -> 0.4. Females: 0.4, 0.8, 0.1 -> 13/30. The unknown 0.9 is ignored.
    np.testing.assert_allclose(result.male, 0.4, atol=1e-7)
    np.testing.assert_allclose(result.female, 1.3 / 3, atol=1e-7)
    assert result.counts == (2, 3)
    assert result.male_weight == pytest.approx(0.4)
    np.testing.assert_allclose(result.neutral, 0.4 * 0.4 + 0.6 * 1.3 / 3, atol=1e-7)
    assert result.male.dtype == np.float32 and result.image_shape == (2, 2, 1)


def test_accumulator_keeps_pixels_apart():
    images = np.zeros((2, 2, 3, 3), np.float32)
    images[0, 0, 0] = [1.0, 0.5, 0.0]
    images[1, 1, 2] = [0.0, 0.0, 1.0]
    result = average.compute_prototypes(
        [{"image": images[:1], "male": np.array([1])},
         {"image": images[1:], "male": np.array([0])}],
        male_weight=0.25)
    np.testing.assert_array_equal(result.male, images[0])
    np.testing.assert_array_equal(result.female, images[1])
    np.testing.assert_allclose(result.neutral, 0.25 * images[0] + 0.75 * images[1])
    assert result.male_weight == 0.25 and result.counts == (1, 1)


def test_explicit_neutral_weight():
    batches = [{"image": _constant_images([1.0, 0.0, 0.0, 0.0]), "male": np.array([1, 0, 0, 0])}]
    assert average.compute_prototypes(batches).male_weight == pytest.approx(0.25)
    np.testing.assert_allclose(average.compute_prototypes(batches).neutral, 0.25)
    np.testing.assert_allclose(average.compute_prototypes(batches, male_weight=0.5).neutral, 0.5)
    np.testing.assert_allclose(average.compute_prototypes(batches, male_weight=1.0).neutral, 1.0)
    np.testing.assert_allclose(average.compute_prototypes(batches, male_weight=0.0).neutral, 0.0)
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"male_weight must be in \\[0, 1\\], got {weight}"):
            average.compute_prototypes(batches, male_weight=weight)


@pytest.mark.parametrize("male, message", [
    ([1, 1, -1], "2 male and 0 female"),
    ([0, -1, -1], "0 male and 1 female"),
    ([-1, -1, -1], "0 male and 0 female"),
])
def test_a_missing_gender_is_an_error(male, message):
    accumulator = average.PrototypeAccumulator()
    accumulator.add(_constant_images([0.1, 0.2, 0.3]), np.array(male))
    with pytest.raises(ValueError, match=message):
        accumulator.result()


def test_no_batches_is_an_error():
    with pytest.raises(ValueError, match="both genders"):
        average.compute_prototypes([])


def test_landmarks_are_averaged_over_the_averaged_faces():
    images = np.zeros((3, 2, 2, 1), np.float32)
    landmarks = np.array([[[0, 0]], [[2, 4]], [[100, 100]]], np.float32)  # [B, N=1, 2]
    result = average.compute_prototypes(
        [{"image": images, "male": np.array([1, 0, -1]), "landmarks": landmarks}])
    np.testing.assert_allclose(result.landmarks, [[1.0, 2.0]])  # The unknown face is left out.
    assert average.compute_prototypes(
        [{"image": images, "male": np.array([1, 0, -1])}]).landmarks is None


def test_check_shape():
    rng = np.random.default_rng(0)
    male, female = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)
    result = average.Prototypes(male, female, (male + female) / 2, 0.5, (1, 1))
    average.check_shape(result, 16, 3)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(32, 32, 3\)"):
        average.check_shape(result, 32, 3)
    with pytest.raises(ValueError, match="recompute"):
        average.check_shape(result, 16, 1)
