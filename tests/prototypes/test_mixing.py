"""Tests for `semiadv.prototypes.mixing`: same/opposite mixes, flips and landmark warps."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.prototypes import mixing


def _two_prototypes():
    male = tf.constant(np.full((2, 2, 1), 0.8, np.float32))
    female = tf.constant(np.full((2, 2, 1), 0.2, np.float32))
    return male, female


def test_same_and_opposite_prototypes_for_hard_labels():
    male, female = _two_prototypes()
    labels = tf.constant([1, 0, 1], tf.int64)
    same = mixing.same_prototype(labels, male, female).numpy()
    opposite = mixing.opposite_prototype(labels, male, female).numpy()
    assert same.shape == (3, 2, 2, 1) and same.dtype == np.float32
    np.testing.assert_allclose(same[:, 0, 0, 0], [0.8, 0.2, 0.8])
    np.testing.assert_allclose(opposite[:, 0, 0, 0], [0.2, 0.8, 0.2])


def test_same_and_opposite_prototypes_for_soft_labels():
    male, female = _two_prototypes()
    labels = tf.constant([0.25, 0.5, 1.0])
    same = mixing.same_prototype(labels, male, female).numpy()[:, 1, 1, 0]
    opposite = mixing.opposite_prototype(labels, male, female).numpy()[:, 1, 1, 0]
    # y * 0.8 + (1 - y) * 0.2 and (1 - y) * 0.8 + y * 0.2.
    np.testing.assert_allclose(same, [0.35, 0.5, 0.8], atol=1e-6)
    np.testing.assert_allclose(opposite, [0.65, 0.5, 0.2], atol=1e-6)
    np.testing.assert_allclose(same + opposite, 1.0, atol=1e-6)


def test_prototype_mix_keeps_each_pixel():
    male = tf.constant(np.arange(12, dtype=np.float32).reshape(2, 2, 3))
    female = -male
    same = mixing.same_prototype(tf.constant([1, 0]), male, female).numpy()
    np.testing.assert_array_equal(same[0], male.numpy())
    np.testing.assert_array_equal(same[1], female.numpy())


def test_flip_where():
    images = tf.constant(np.arange(2 * 2 * 3 * 1, dtype=np.float32).reshape(2, 2, 3, 1))
    others = images * 10
    flipped_images, flipped_others = mixing.flip_where([images, others],
                                                           tf.constant([True, False]))
    np.testing.assert_array_equal(flipped_images[0, :, :, 0], [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(flipped_images[1], images[1])
    np.testing.assert_array_equal(flipped_others[0, :, :, 0], [[20, 10, 0], [50, 40, 30]])
    np.testing.assert_array_equal(flipped_others[1], others[1])


TEMPLATE = np.array([[5.0, 6.0], [10.0, 6.0], [8.0, 9.0], [6.0, 12.0], [10.0, 12.0]], np.float32)


def _pattern(size=16):
    rng = np.random.default_rng(1)
    return rng.uniform(size=(1, size, size, 3)).astype(np.float32)


def test_warp_to_landmarks_is_the_identity_on_the_template():
    image = _pattern()
    warped = mixing.warp_to_landmarks(image, TEMPLATE[None], TEMPLATE).numpy()
    assert warped.shape == (1, 16, 16, 3) and warped.dtype == np.float32
    np.testing.assert_allclose(warped, image, atol=1e-4)


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (1, 2)])
def test_warp_to_landmarks_follows_a_shift(dx, dy):
    image = _pattern()
    shifted_landmarks = TEMPLATE + np.array([dx, dy], np.float32)
    warped = mixing.warp_to_landmarks(np.repeat(image, 2, 0),
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
    warped = mixing.warp_to_landmarks(image, faces[None], template).numpy()[0, ..., 0]
    assert np.unravel_index(warped.argmax(), warped.shape) == (16, 16)
    assert warped[16, 16] == pytest.approx(1.0, abs=1e-4)
