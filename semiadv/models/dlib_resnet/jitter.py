"""Identity under jitter: the views the SAN's match term compares through dlib's network."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _interpolation_rows(coordinates, size: int):
    """[N, P, size] linear interpolation weights of pixel coordinates [N, P] along one axis.

    Row p of example n holds 1 - f and f at floor(c) and floor(c) + 1 (f = c - floor(c)),
    indices clamped to the image (edges repeated).
    """
    start = tf.floor(coordinates)
    rows = 0.0
    for offset in (0.0, 1.0):
        corner = start + offset
        weight = 1 - tf.abs(coordinates - corner)
        index = tf.cast(tf.clip_by_value(corner, 0, size - 1), tf.int32)
        rows += weight[..., None] * tf.one_hot(index, size)
    return rows


def _blur_rows(kernel, radius: int, size: int):
    """[size, size] matrix of a 1-D blur by `kernel` (2 radius + 1 taps), edges mirrored.

    The same as padding by `radius` in tf.pad's SYMMETRIC mode (edge repeated, then
    mirrored) and convolving VALID.
    """
    taps = 2 * radius + 1
    placement = np.zeros((taps, size, size), np.float32)
    for tap in range(taps):
        for output in range(size):
            source = output + tap - radius
            source = -source - 1 if source < 0 else (
                2 * size - source - 1 if source >= size else source)
            placement[tap, output, source] += 1.0
    return tf.tensordot(kernel, tf.constant(placement), 1)


def jittered_views(images, jitter: float, seed=None):
    """The same random small shift, scale and blur of each example in several image batches.

    Taking the match term between jittered views of X and of X' (one draw per example, the
    same for X and X') keeps the SAN from holding dlib's descriptor with pixel-exact features
    that only dlib's weights read: what it keeps must survive the small misalignments and
    blurs that any other matcher's alignment brings. Bilinear sampling (edges repeated) and a
    separable Gaussian blur (edges mirrored), so gradients reach X'.

    Shift and scale have no rotation, so sampling and blur are separable: each view is
    `A_y X A_x^T` per example and channel, with A = blur matrix @ interpolation matrix per
    axis, two batched matmuls: faster than 4-corner gathers and a depthwise blur
    (BENCHMARKS.md §2b), and equal to them to float rounding
    (tests/models/dlib_resnet/test_jitter.py).

    Args:
        images: list of [N, H, W, C] float tensors of one shape.
        jitter: the largest shift, as a share of the side, and scale change (1 +- jitter);
            the blur's sigma is drawn in [0, jitter * H / 3] pixels, once per batch.
        seed: optional op seed.

    Returns:
        The list of jittered batches, in order.
    """
    first = images[0]
    height, width, channels = first.shape[1:]
    count = tf.shape(first)[0]
    scale = tf.random.uniform([count, 1], 1.0 - jitter, 1.0 + jitter, seed=seed)
    shift_x = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    shift_y = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    sigma = tf.random.uniform([], 0.0, jitter * height / 3.0, seed=seed)
    # Output pixel centre -> input: about the image centre, scaled and shifted; per axis.
    columns = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    rows = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    x = (columns / scale + 0.5 + shift_x) * width - 0.5  # [N, W] pixel indices
    y = (rows / scale + 0.5 + shift_y) * height - 0.5  # [N, H]
    radius = max(1, int(np.ceil(jitter * height)))
    if radius > min(height, width):
        raise ValueError(f"jittered_views: jitter {jitter} blurs {radius} pixels, more than "
                         f"the {height}x{width} images")
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    mix_y = tf.matmul(_blur_rows(kernel, radius, height), _interpolation_rows(y, height))
    mix_x = tf.matmul(_blur_rows(kernel, radius, width), _interpolation_rows(x, width))
    outputs = []
    for batch in images:
        dtype = batch.dtype
        batch = tf.cast(batch, tf.float32)
        # Rows: [N, H, H] @ [N, H, W*C]; then columns, with W moved in front.
        moved = tf.matmul(mix_y, tf.reshape(batch, [-1, height, width * channels]))
        moved = tf.transpose(tf.reshape(moved, [-1, height, width, channels]), [0, 2, 1, 3])
        moved = tf.matmul(mix_x, tf.reshape(moved, [-1, width, height * channels]))
        moved = tf.transpose(tf.reshape(moved, [-1, width, height, channels]), [0, 2, 1, 3])
        outputs.append(tf.cast(moved, dtype))
    return outputs
