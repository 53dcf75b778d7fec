"""Tests for semiadv.models.dlib_resnet.jitter: the views the SAN's match term compares."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.models.dlib_resnet import chip, jitter


def test_warp_and_jitter_compile_with_xla():
    # --jit_compile must keep working with the dlib matcher: no op XLA cannot compile.
    images = tf.constant(np.random.default_rng(8).random((2, 16, 16, 3), dtype=np.float32))
    layer = chip.FixedAffineWarp(20, chip.CHIP_IN_CROP)

    def warp_and_gradient():
        with tf.GradientTape() as tape:
            tape.watch(images)
            (view,) = jitter.jittered_views([images], 0.1, seed=1)
            total = tf.reduce_sum(tf.square(layer(view)))
        return layer(images), tape.gradient(total, images)

    compiled, gradient = tf.function(warp_and_gradient, jit_compile=True)()
    np.testing.assert_allclose(compiled, layer(images), atol=1e-5)
    assert float(tf.reduce_max(tf.abs(gradient))) > 0


def test_jittered_views_move_all_batches_alike_and_pass_gradients():
    rng = np.random.default_rng(4)
    faces = tf.constant(rng.random((3, 32, 32, 3), dtype=np.float32))
    with tf.GradientTape() as tape:
        tape.watch(faces)
        first, second = jitter.jittered_views([faces, faces], 0.1, seed=1)
        total = tf.reduce_sum(first * rng.standard_normal(first.shape).astype(np.float32))
    np.testing.assert_array_equal(first, second)  # one draw per example, for every batch
    assert first.shape == faces.shape
    assert float(tf.reduce_mean(tf.abs(first - faces))) > 0.02  # moved and blurred
    assert float(tf.reduce_max(tf.abs(tape.gradient(total, faces)))) > 0
    # Without jitter the views are the faces themselves.
    (same,) = jitter.jittered_views([faces], 0.0)
    np.testing.assert_allclose(same, faces, atol=1e-5)
    # A smooth ramp shifted and scaled stays a ramp of the same direction.
    ramp = tf.constant(np.tile(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None],
                               (32, 1, 3))[None])
    (moved,) = jitter.jittered_views([ramp], 0.1, seed=2)
    assert np.all(np.diff(moved.numpy()[0, 16, 4:-4, 0]) > 0)


def _gather_jittered_views(images, jitter, seed=None):
    """jittered_views written directly: 4-corner gathers and a depthwise blur (reference)."""
    first = images[0]
    height, width, channels = first.shape[1:]
    count = tf.shape(first)[0]
    scale = tf.random.uniform([count, 1], 1.0 - jitter, 1.0 + jitter, seed=seed)
    shift_x = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    shift_y = tf.random.uniform([count, 1], -jitter, jitter, seed=seed)
    sigma = tf.random.uniform([], 0.0, jitter * height / 3.0, seed=seed)
    row_centres, col_centres = np.mgrid[0:height, 0:width].astype(np.float32)
    x = ((col_centres.ravel() + 0.5) / width - 0.5) / scale + 0.5 + shift_x
    y = ((row_centres.ravel() + 0.5) / height - 0.5) / scale + 0.5 + shift_y
    x, y = x * width - 0.5, y * height - 0.5
    x0, y0 = tf.floor(x), tf.floor(y)
    indices, weights = [], []
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        cx, cy = x0 + dx, y0 + dy
        weights.append((1 - tf.abs(x - cx)) * (1 - tf.abs(y - cy)))
        indices.append(tf.cast(tf.clip_by_value(cy, 0, height - 1) * width
                               + tf.clip_by_value(cx, 0, width - 1), tf.int32))
    indices = tf.stack(indices, axis=-1)
    radius = max(1, int(np.ceil(jitter * height)))
    taps = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / tf.maximum(sigma, 1e-3)))
    kernel /= tf.reduce_sum(kernel)
    outputs = []
    for batch in images:
        flat = tf.reshape(batch, [-1, height * width, channels])
        corners = tf.gather(flat, indices, batch_dims=1)
        mix = tf.stack(weights, axis=-1)[..., None]
        moved = tf.reshape(tf.reduce_sum(corners * mix, axis=2), [-1, height, width, channels])
        taps_x = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
        taps_y = tf.reshape(taps_x, [-1, 1, channels, 1])
        padded = tf.pad(moved, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                        mode="SYMMETRIC")
        blurred = tf.nn.depthwise_conv2d(padded, taps_x, [1, 1, 1, 1], "VALID")
        outputs.append(tf.nn.depthwise_conv2d(blurred, taps_y, [1, 1, 1, 1], "VALID"))
    return outputs


@pytest.mark.parametrize("size,amount", [(32, 0.1), (24, 0.05), (16, 0.3)])
def test_separable_jitter_equals_gathers_and_depthwise_blur(size, amount):
    # The same random draws (same seeds, same order), the same views, and the same gradients.
    rng = np.random.default_rng(7)
    faces, outputs = (tf.constant(rng.random((4, size, size, 3), dtype=np.float32))
                      for _ in range(2))
    probe = tf.constant(rng.standard_normal((4, size, size, 3)).astype(np.float32))
    results = []
    for jitter_fn in (jitter.jittered_views, _gather_jittered_views):
        tf.random.set_seed(11)
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            views = jitter_fn([faces, outputs], amount, seed=3)
            inner = tf.reduce_sum(views[1] * probe)
        results.append((views, tape.gradient(inner, outputs)))
    (views, gradient), (expected_views, expected_gradient) = results
    for view, expected in zip(views, expected_views):
        np.testing.assert_allclose(view, expected, atol=1e-5)
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-4)
    assert float(tf.reduce_mean(tf.abs(views[1] - outputs))) > 0.01

