"""Photos to uint8 [S, S, C] with TensorFlow ops: the resize of training and of serving."""

from __future__ import annotations

import tensorflow as tf


def decode_photo(path, image_size: int, channels: int):
    """Reads, decodes and resizes one photo (a path tensor) to uint8 [S, S, C]."""
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return resize_uint8(image, image_size, channels)


def resize_uint8(image, image_size: int, channels: int):
    """Resizes an RGB uint8 image (any size) to [S, S, C] uint8, converting to gray if asked."""
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
