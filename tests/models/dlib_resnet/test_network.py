"""Tests for semiadv.models.dlib_resnet.network: dlib's matcher on our crops."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.models.dlib_resnet import network


def test_matcher_takes_gray_crops_and_passes_gradients():
    matcher = network.build_dlib_matcher(32, channels=1, weights=None)
    assert matcher.output_shape == (None, 128)
    faces = tf.constant(np.random.default_rng(3).random((2, 32, 32, 1), dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(faces)
        descriptors = matcher(faces, training=False)
        distance = tf.reduce_sum(tf.square(descriptors[0] - descriptors[1]))
    gradient = tape.gradient(distance, faces)
    assert gradient.shape == faces.shape
    assert float(tf.reduce_max(tf.abs(gradient))) > 0
    # Gray is repeated to RGB: the same as giving the RGB crop.
    rgb = network.build_dlib_matcher(32, channels=3, weights=None)
    rgb.set_weights(matcher.get_weights())
    np.testing.assert_allclose(rgb(tf.repeat(faces, 3, axis=-1)), descriptors, atol=1e-5)
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        network.build_dlib_matcher(32, channels=2)

