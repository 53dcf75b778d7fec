"""Tests for `semiadv.align.tf_warp`: landmark alignment as TensorFlow ops."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.align import geometry, tf_warp


def _canonical(size):
    return np.asarray(geometry.canonical_eye_points(size), np.float32)


def test_similarity_transform_on_fixed_numbers():
    # Source eyes twice as far apart as the target ones and shifted: w = 2, t = (4, 6).
    source = np.array([[14.0, 16.0], [34.0, 16.0]], np.float32)
    target = np.array([[5.0, 5.0], [15.0, 5.0]], np.float32)
    transform = tf_warp.similarity_transform(source, target).numpy()
    np.testing.assert_allclose(transform, [2, 0, 4, 0, 2, 6, 0, 0], atol=1e-5)
    # A 90 degree rotation: the target's horizontal eye line is vertical in the source.
    rotated = np.array([[10.0, 10.0], [10.0, 20.0]], np.float32)
    transform = tf_warp.similarity_transform(rotated, target).numpy()
    # z_source = w z_target + t with w = i: (5, 5) -> (10, 10), (15, 5) -> (10, 20).
    np.testing.assert_allclose(transform, [0, -1, 15, 1, 0, 5, 0, 0], atol=1e-5)


def test_apply_points_maps_source_eyes_onto_the_targets():
    source = np.array([[[31.3, 40.2], [52.9, 35.1]], [[10.0, 10.0], [10.0, 30.0]]], np.float32)
    target = np.array([[[40.0, 50.0], [88.0, 50.0]]] * 2, np.float32)
    transform = tf_warp.similarity_transform(source, target)
    assert transform.shape == (2, 8)
    np.testing.assert_allclose(tf_warp.apply_points(transform, source).numpy(), target, atol=1e-4)
    # A point between the eyes stays between them.
    middle = source.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(tf_warp.apply_points(transform, middle).numpy()[:, 0],
                               [[64.0, 50.0]] * 2, atol=1e-4)


def test_warp_reads_where_the_transform_says():
    image = np.zeros((1, 20, 30, 1), np.float32)
    image[0, 6, 10, 0] = 1.0
    shifted = tf_warp.warp(image, [[1, 0, 3, 0, 1, -2, 0, 0]], 16).numpy()
    assert shifted.shape == (1, 16, 16, 1)
    # Output pixel (x, y) reads input (x + 3, y - 2): the dot moves to (7, 8).
    assert np.argwhere(shifted[0, ..., 0] > 0.5).tolist() == [[8, 7]]


def test_center_crop_transform_keeps_the_central_square():
    image = np.zeros((1, 40, 60, 1), np.float32)
    image[0, :, 10:50, 0] = 1.0  # The central 40x40 square.
    crop = tf_warp.warp(image, tf_warp.center_crop_transform((40, 60), 20)[None], 20).numpy()
    np.testing.assert_allclose(crop, 1.0)
    transform = tf_warp.center_crop_transform((40, 60), 20).numpy()
    np.testing.assert_allclose(transform, [2, 0, 10.5, 0, 2, 0.5, 0, 0])


def _dotted_face(eyes, height=90, width=120):
    """A dark image with bright 3x3 dots at the given eye positions (integer pixels)."""
    image = np.zeros((height, width, 3), np.uint8)
    for x, y in eyes:
        image[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
    return image


def _blob_centre(weights):
    """The intensity-weighted centre (x, y) of an image."""
    rows, cols = np.mgrid[:weights.shape[0], :weights.shape[1]]
    return np.array([(weights * cols).sum(), (weights * rows).sum()]) / weights.sum()


@pytest.mark.parametrize("image_size", [32, 160])
def test_align_by_eyes_puts_the_eyes_on_the_canonical_points(image_size):
    canonical = _canonical(image_size)
    eyes = np.array([[40.0, 50.0], [70.0, 38.0]], np.float32)  # Tilted and off-centre.
    nose = np.array([[57.0, 60.0]], np.float32)
    crop, landmarks = tf_warp.align_by_eyes(_dotted_face(eyes), np.concatenate([eyes, nose]),
                                             image_size)
    assert crop.shape == (image_size, image_size, 3) and crop.dtype == tf.float32
    assert landmarks.shape == (3, 2)
    crop, landmarks = crop.numpy(), landmarks.numpy()
    assert 0.0 <= crop.min() and crop.max() <= 255.0 + 1e-3
    np.testing.assert_allclose(landmarks[:2], canonical, atol=1e-3)
    # The returned landmarks are where the dots really are in the crop.
    gray = crop[..., 0]
    middle = int(round(canonical[:, 0].mean()))
    for side, (x, _) in zip((slice(0, middle), slice(middle, None)), landmarks[:2]):
        half = np.zeros_like(gray)
        half[:, side] = gray[:, side]
        found = _blob_centre(half)
        np.testing.assert_allclose(found, landmarks[0 if x < middle else 1], atol=0.05)
    # The nose, below the eyes in the photo, is below the eye line in the crop.
    assert landmarks[2, 1] > canonical[:, 1].mean()


@pytest.mark.parametrize("eyes", [
    [[50.0, 40.0], [50.0, 40.0]],        # both eyes on one point
    [[50.0, 40.0], [50.4, 40.2]],        # less than a pixel apart
    [[np.nan, 40.0], [60.0, 40.0]],      # missing
])
def test_align_by_eyes_centre_crops_on_degenerate_eyes(eyes):
    _canonical(32)
    image = np.zeros((80, 120, 3), np.uint8)
    image[:, 20:100] = 200  # The central 80x80 square is bright, the sides dark.
    crop, landmarks = tf_warp.align_by_eyes(image, np.array(eyes, np.float32), 32)
    crop = crop.numpy()
    assert np.isfinite(crop).all()
    # Only the outermost pixels' bilinear footprint touches the dark sides.
    np.testing.assert_allclose(crop[1:-1, 1:-1], 200.0, atol=1e-3)
    assert crop[:, 0].mean() > 150 and crop[:, -1].mean() > 150
    # Finite landmarks go through the same centre crop (scale 80/32, offset 20 in x).
    finite = np.isfinite(np.array(eyes)).all(axis=1)
    expected = (np.array(eyes)[finite] - [20.0, 0.0] + 0.5) * 32 / 80 - 0.5
    np.testing.assert_allclose(landmarks.numpy()[finite], expected, atol=1e-3)


def test_align_by_eyes_in_a_dataset_map():
    canonical = _canonical(16)
    eyes = np.array([[40.0, 50.0], [70.0, 38.0]], np.float32)
    images = np.stack([_dotted_face(eyes), _dotted_face(eyes)])
    landmarks = np.stack([eyes, np.zeros((2, 2), np.float32)])  # The second is degenerate.
    dataset = tf.data.Dataset.from_tensor_slices((images, landmarks)).map(
        lambda image, points: tf_warp.align_by_eyes(image, points, 16))
    results = list(dataset.as_numpy_iterator())
    np.testing.assert_allclose(results[0][1], canonical, atol=1e-3)
    assert all(np.isfinite(crop).all() and np.isfinite(points).all() for crop, points in results)
