"""Tests for `semiadv.data.augment`: the flip (with landmarks) and the two views."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import augment
from semiadv.data import input_pipeline

# A small synthetic set: 24 people x 4 photos at 16x16 draws in well under a second.
SYNTHETIC = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8, seed=3,
                       validation_fraction=0.25, test_fraction=0.25, synthetic_identities=24,
                       synthetic_images_per_identity=4)


def _global_batches(config, steps, **kwargs):
    dataset = input_pipeline.make_dataset(config, "train", training=True, **kwargs)
    return list(dataset.take(steps).as_numpy_iterator())


def test_flip_flag_matches_the_image():
    plain = _global_batches(SYNTHETIC, 3)
    flipped = _global_batches(SYNTHETIC, 3, augment="flip")
    flags = np.concatenate([b["flipped"] for b in flipped])
    assert flags.dtype == bool and 0 < flags.sum() < len(flags)
    for original, augmented in zip(plain, flipped):
        np.testing.assert_array_equal(original["identity"], augmented["identity"])
        for image, result, flag in zip(original["image"], augmented["image"],
                                       augmented["flipped"]):
            np.testing.assert_array_equal(result, image[:, ::-1] if flag else image)
            assert not np.array_equal(image[:, ::-1], image)  # Faces are not exactly symmetric.


def test_flip_mirrors_landmarks_with_the_face():
    image = np.zeros((16, 16, 1), np.float32)
    landmarks = np.array([[4.0, 6.0], [11.0, 5.0], [8.0, 9.0], [5.0, 12.0], [10.0, 12.0]],
                         np.float32)
    for x, y in landmarks.astype(int):
        image[y, x] = 1.0
    results = [augment.flip({"image": image, "landmarks": landmarks}, 0, tf.constant(p, tf.int64))
               for p in range(8)]
    assert {bool(r["flipped"]) for r in results} == {True, False}
    for result in results:
        points = result["landmarks"].numpy()
        if not result["flipped"]:
            np.testing.assert_array_equal(points, landmarks)
            continue
        np.testing.assert_array_equal(points, [[4, 5], [11, 6], [7, 9], [5, 12], [10, 12]])
        flipped_image = result["image"].numpy()
        for x, y in points.astype(int):  # Each landmark still sits on its dot.
            assert flipped_image[y, x, 0] == 1.0
        assert points[0, 0] < points[1, 0]  # The left eye is still on the left.


def test_views_are_two_different_augmentations_in_range():
    batch = _global_batches(SYNTHETIC, 1, augment="views")[0]
    assert {"view_a", "view_b", "image"} <= set(batch)
    for key in ("view_a", "view_b"):
        assert batch[key].shape == batch["image"].shape and batch[key].dtype == np.float32
        assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
        assert not np.allclose(batch[key], batch["image"], atol=1e-3)
    assert np.abs(batch["view_a"] - batch["view_b"]).mean() > 0.01
    # Views are still the same face: closer to their own original than to another example's.
    own = np.abs(batch["view_a"] - batch["image"]).mean()
    other = np.abs(batch["view_a"] - np.roll(batch["image"], 1, axis=0)).mean()
    assert own < other
    again = _global_batches(SYNTHETIC, 1, augment="views")[0]
    np.testing.assert_array_equal(again["view_a"], batch["view_a"])


def test_augmenter_names():
    assert augment.augmenter("flip") is augment.flip
    assert augment.augmenter("views") is augment.views
    example = {"image": tf.zeros([4, 4, 1])}
    assert augment.augmenter(None)(example, 0, tf.constant(0, tf.int64)) is example
    with pytest.raises(ValueError, match="'rotate'"):
        augment.augmenter("rotate")
