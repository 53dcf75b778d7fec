"""Tests for `semiadv.prototypes.prototypes` and `semiadv.prototypes.job`."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.utils import imageio
from semiadv.prototypes import prototypes
from semiadv.prototypes import job as prototypes_job
from semiadv.config import DataConfig


def _constant_images(values, size=2, channels=1):
    return np.stack([np.full((size, size, channels), v, np.float32) for v in values])


# ----------------------------------------------------------------------------------------------
# Averages


def test_accumulator_means_per_gender_ignoring_unknown():
    accumulator = prototypes.PrototypeAccumulator()
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
    result = prototypes.compute_prototypes(
        [{"image": images[:1], "male": np.array([1])},
         {"image": images[1:], "male": np.array([0])}],
        male_weight=0.25)
    np.testing.assert_array_equal(result.male, images[0])
    np.testing.assert_array_equal(result.female, images[1])
    np.testing.assert_allclose(result.neutral, 0.25 * images[0] + 0.75 * images[1])
    assert result.male_weight == 0.25 and result.counts == (1, 1)


def test_explicit_neutral_weight():
    batches = [{"image": _constant_images([1.0, 0.0, 0.0, 0.0]), "male": np.array([1, 0, 0, 0])}]
    assert prototypes.compute_prototypes(batches).male_weight == pytest.approx(0.25)
    np.testing.assert_allclose(prototypes.compute_prototypes(batches).neutral, 0.25)
    np.testing.assert_allclose(prototypes.compute_prototypes(batches, male_weight=0.5).neutral, 0.5)
    np.testing.assert_allclose(prototypes.compute_prototypes(batches, male_weight=1.0).neutral, 1.0)
    np.testing.assert_allclose(prototypes.compute_prototypes(batches, male_weight=0.0).neutral, 0.0)
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"male_weight must be in \\[0, 1\\], got {weight}"):
            prototypes.compute_prototypes(batches, male_weight=weight)


@pytest.mark.parametrize("male, message", [
    ([1, 1, -1], "2 male and 0 female"),
    ([0, -1, -1], "0 male and 1 female"),
    ([-1, -1, -1], "0 male and 0 female"),
])
def test_a_missing_gender_is_an_error(male, message):
    accumulator = prototypes.PrototypeAccumulator()
    accumulator.add(_constant_images([0.1, 0.2, 0.3]), np.array(male))
    with pytest.raises(ValueError, match=message):
        accumulator.result()


def test_no_batches_is_an_error():
    with pytest.raises(ValueError, match="both genders"):
        prototypes.compute_prototypes([])


# ----------------------------------------------------------------------------------------------
# Per-example mixes


def _two_prototypes():
    male = tf.constant(np.full((2, 2, 1), 0.8, np.float32))
    female = tf.constant(np.full((2, 2, 1), 0.2, np.float32))
    return male, female


def test_same_and_opposite_prototypes_for_hard_labels():
    male, female = _two_prototypes()
    labels = tf.constant([1, 0, 1], tf.int64)
    same = prototypes.same_prototype(labels, male, female).numpy()
    opposite = prototypes.opposite_prototype(labels, male, female).numpy()
    assert same.shape == (3, 2, 2, 1) and same.dtype == np.float32
    np.testing.assert_allclose(same[:, 0, 0, 0], [0.8, 0.2, 0.8])
    np.testing.assert_allclose(opposite[:, 0, 0, 0], [0.2, 0.8, 0.2])


def test_same_and_opposite_prototypes_for_soft_labels():
    male, female = _two_prototypes()
    labels = tf.constant([0.25, 0.5, 1.0])
    same = prototypes.same_prototype(labels, male, female).numpy()[:, 1, 1, 0]
    opposite = prototypes.opposite_prototype(labels, male, female).numpy()[:, 1, 1, 0]
    # y * 0.8 + (1 - y) * 0.2 and (1 - y) * 0.8 + y * 0.2.
    np.testing.assert_allclose(same, [0.35, 0.5, 0.8], atol=1e-6)
    np.testing.assert_allclose(opposite, [0.65, 0.5, 0.2], atol=1e-6)
    np.testing.assert_allclose(same + opposite, 1.0, atol=1e-6)


def test_prototype_mix_keeps_each_pixel():
    male = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    female = -male
    same = prototypes.same_prototype(tf.constant([1, 0]), male, female).numpy()
    np.testing.assert_array_equal(same[0], male.numpy())
    np.testing.assert_array_equal(same[1], female.numpy())


def test_flip_where():
    images = tf.constant(np.arange(2 * 2 * 3 * 1, dtype=np.float32).reshape(2, 2, 3, 1))
    others = images * 10
    flipped_images, flipped_others = prototypes.flip_where([images, others],
                                                           tf.constant([True, False]))
    np.testing.assert_array_equal(flipped_images[0, :, :, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(flipped_images[1], images[1])
    np.testing.assert_array_equal(flipped_others[0, :, :, 0], [[20, 10, 0], [50, 40, 30]])
    np.testing.assert_array_equal(flipped_others[1], others[1])


# ----------------------------------------------------------------------------------------------
# Files


def _example_prototypes(channels=3):
    rng = np.random.default_rng(0)
    male = rng.uniform(size=(16, 16, channels)).astype(np.float32)
    female = rng.uniform(size=(16, 16, channels)).astype(np.float32)
    return prototypes.Prototypes(male, female, (0.3 * male + 0.7 * female).astype(np.float32),
                                 0.3, (30, 70))


@pytest.mark.parametrize("channels", [1, 3])
def test_save_and_load_round_trip(tmp_path, channels):
    original = _example_prototypes(channels)
    path = tmp_path / "run" / "prototypes.npz"
    prototypes.save_prototypes(original, path)
    loaded = prototypes.load_prototypes(path)
    for name in ("male", "female", "neutral"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.male_weight == 0.3 and loaded.counts == (30, 70)
    # The PNG shows male | neutral | female, each upscaled (nearest) to >= 128 px.
    figure = imageio.read_image(path.with_suffix(".png"))
    side, corners = prototypes.figure_panels(16)
    assert side == 128 and figure.shape[1] >= 3 * 128 and figure.shape[2] == 3
    for image, (top, left) in zip((original.male, original.neutral, original.female), corners):
        panel = figure[top:top + side, left:left + side]
        expected = np.rint(np.repeat(image, 3 // channels, axis=-1) * 255)
        np.testing.assert_allclose(panel[::8, ::8], expected, atol=1)
        np.testing.assert_array_equal(panel[::8, ::8], panel[7::8, 7::8])  # Nearest blocks.
        # The label band above each panel has dark text on white.
        band = figure[top - prototypes.FIGURE_LABEL_HEIGHT:top - 2, left:left + side]
        assert band.min() < 100 and np.median(band) == 255
    # Only the two files are left: no temporary names.
    assert sorted(p.name for p in path.parent.iterdir()) == ["prototypes.npz", "prototypes.png"]


def test_save_without_png_overwrites_atomically(tmp_path):
    path = tmp_path / "prototypes.npz"
    prototypes.save_prototypes(_example_prototypes(), path, png=False)
    second = _example_prototypes()
    second = prototypes.Prototypes(second.female, second.male, second.neutral, 0.5, (1, 1))
    prototypes.save_prototypes(second, path, png=False)
    assert prototypes.load_prototypes(path).counts == (1, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["prototypes.npz"]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "prototypes.npz"
    prototypes.save_prototypes(_example_prototypes(), path, png=False)

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        prototypes.save_prototypes(_example_prototypes(), path, png=False)
    assert [p.name for p in tmp_path.iterdir()] == ["prototypes.npz"]
    assert prototypes.load_prototypes(path).counts == (30, 70)


def test_load_rejects_files_that_are_not_prototypes(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    truncated = tmp_path / "truncated.npz"
    prototypes.save_prototypes(_example_prototypes(), tmp_path / "good.npz", png=False)
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:200])
    flat = tmp_path / "flat.npz"
    np.savez(flat, male=np.zeros(4), female=np.zeros(4), neutral=np.zeros(4), male_weight=0.5,
             counts=np.array([1, 1]))
    for path in (text, array, other, truncated, flat, tmp_path / "absent.npz"):
        with pytest.raises(ValueError, match="prototype file") as error:
            prototypes.load_prototypes(path)
        assert str(path) in str(error.value)


def test_check_shape():
    result = _example_prototypes(3)
    prototypes.check_shape(result, 16, 3)
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(32, 32, 3\)"):
        prototypes.check_shape(result, 32, 3)
    with pytest.raises(ValueError, match="recompute"):
        prototypes.check_shape(result, 16, 1)


# ----------------------------------------------------------------------------------------------
# Warps


TEMPLATE = np.array([[5.0, 6.0], [10.0, 6.0], [8.0, 9.0], [6.0, 12.0], [10.0, 12.0]], np.float32)


def _pattern(size=16):
    rng = np.random.default_rng(1)
    return rng.uniform(size=(1, size, size, 3)).astype(np.float32)


def test_warp_to_landmarks_is_the_identity_on_the_template():
    image = _pattern()
    warped = prototypes.warp_to_landmarks(image, TEMPLATE[None], TEMPLATE).numpy()
    assert warped.shape == (1, 16, 16, 3) and warped.dtype == np.float32
    np.testing.assert_allclose(warped, image, atol=1e-4)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (1, 2)])
def test_warp_to_landmarks_follows_a_shift(dx, dy):
    image = _pattern()
    shifted_landmarks = TEMPLATE + np.array([dx, dy], np.float32)
    warped = prototypes.warp_to_landmarks(np.repeat(image, 2, 0),
                                          np.stack([shifted_landmarks, TEMPLATE]),
                                          TEMPLATE).numpy()
    # Output pixel (x, y) shows the prototype at (x - dx, y - dy).
    rows = slice(max(dy, 0), 16 + min(dy, 0))
    cols = slice(max(dx, 0), 16 + min(dx, 0))
    source_rows = slice(max(-dy, 0), 16 - max(dy, 0))
    source_cols = slice(max(-dx, 0), 16 - max(dx, 0))
    np.testing.assert_allclose(warped[0, rows, cols], image[0, source_rows, source_cols],
                               atol=1e-4)
    np.testing.assert_allclose(warped[1], image[0], atol=1e-4)  # Batch entries are independent.


def test_warp_to_landmarks_follows_a_scale():
    image = np.zeros((1, 32, 32, 1), np.float32)
    image[0, 8, 8] = 1.0
    template = np.array([[8.0, 8.0], [16.0, 8.0], [8.0, 16.0]], np.float32)
    faces = template * 2  # The face is twice as large: the dot at (8, 8) moves to (16, 16).
    warped = prototypes.warp_to_landmarks(image, faces[None], template).numpy()[0, ..., 0]
    assert np.unravel_index(warped.argmax(), warped.shape) == (16, 16)
    assert warped[16, 16] == pytest.approx(1.0, abs=1e-4)


# ----------------------------------------------------------------------------------------------
# The job


def test_compute_and_save_on_synthetic_data(tmp_path):
    from semiadv.data import datasets as data

    config = DataConfig(dataset="synthetic", image_size=16, batch_size=8, seed=2,
                        synthetic_identities=20, synthetic_images_per_identity=3)
    output = tmp_path / "prototypes.npz"
    result = prototypes_job.compute_and_save(config, output)
    loaded = prototypes.load_prototypes(output)
    np.testing.assert_array_equal(loaded.male, result.male)
    assert output.with_suffix(".png").exists()
    train = data.read_split(config, "train")
    males, females = int((train["male"] == 1).sum()), int((train["male"] == 0).sum())
    assert result.counts == (males, females) and males > 0 and females > 0
    np.testing.assert_allclose(result.male, train["image"][train["male"] == 1].mean(0), atol=1e-5)
    np.testing.assert_allclose(result.female, train["image"][train["male"] == 0].mean(0),
                               atol=1e-5)
    assert result.male_weight == pytest.approx(males / (males + females))
    assert np.abs(result.male - result.female).max() > 0.05
    forced = prototypes_job.compute_and_save(config, tmp_path / "half.npz", male_weight=0.5)
    np.testing.assert_allclose(forced.neutral, (forced.male + forced.female) / 2, atol=1e-6)


def test_landmarks_are_averaged_over_the_averaged_faces():
    images = np.zeros((3, 2, 2, 1), np.float32)
    landmarks = np.array([[[0, 0]], [[2, 4]], [[100, 100]]], np.float32)  # [B, N=1, 2]
    result = prototypes.compute_prototypes(
        [{"image": images, "male": np.array([1, 0, -1]), "landmarks": landmarks}])
    np.testing.assert_allclose(result.landmarks, [[1.0, 2.0]])  # The unknown face is left out.
    assert prototypes.compute_prototypes(
        [{"image": images, "male": np.array([1, 0, -1])}]).landmarks is None
