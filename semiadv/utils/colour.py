"""sRGB -> CIELAB in TensorFlow: one conversion for the SAN's colour term and the report's ΔE*ab.

Differentiable everywhere on [0, 1]: the two power laws (sRGB decoding, the Lab cube root) are
evaluated on inputs kept away from 0, where their derivatives blow up, and `tf.where` picks the
linear branch there anyway, so no NaN gradient leaks through the branch not taken.
"""

import numpy as np
import tensorflow as tf

# sRGB (linear) -> CIE XYZ, D65 white (IEC 61966-2-1).
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
_D65_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0


def _srgb_to_linear(rgb):
    curved = tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4)
    return tf.where(rgb <= 0.04045, rgb / 12.92, curved)


def _lab_f(t):
    cube_root = tf.pow(tf.maximum(t, _DELTA ** 3), 1.0 / 3.0)
    return tf.where(t > _DELTA ** 3, cube_root, t / (3.0 * _DELTA ** 2) + 4.0 / 29.0)


def rgb_to_lab(images):
    """Converts sRGB images in [0, 1] to CIELAB (D65).

    Args:
        images: [..., C] with C = 3 (sRGB) or 1 (gray: taken as R = G = B).

    Returns:
        float32 [..., 3]: L* in [0, 100], a* and b* (0 for grays).
    """
    images = tf.cast(images, tf.float32)
    if images.shape[-1] not in (1, 3):
        raise ValueError(f"want sRGB images [..., 3] (or gray [..., 1]), got shape {images.shape}")
    if images.shape[-1] == 1:
        images = tf.concat([images] * 3, axis=-1)
    linear = _srgb_to_linear(tf.clip_by_value(images, 0.0, 1.0))
    # One [pixels, 3] x [3, 3] matmul with the white point folded in: oneDNN runs a plain
    # matmul much faster than the equivalent einsum (BENCHMARKS.md §2b).
    to_xyz = tf.constant((np.asarray(_RGB_TO_XYZ, np.float64)
                          / np.asarray(_D65_WHITE, np.float64)[:, None]).T.astype(np.float32))
    xyz = tf.reshape(tf.matmul(tf.reshape(linear, [-1, 3]), to_xyz), tf.shape(linear))
    xyz.set_shape(linear.shape)
    fx, fy, fz = tf.unstack(_lab_f(xyz), axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def delta_e(images_a, images_b, epsilon=0.0):
    """Per-pixel CIE76 colour difference ΔE*ab between two sRGB images in [0, 1].

    Args:
        images_a, images_b: [..., C], C = 1 or 3.
        epsilon: added under the square root; > 0 keeps the gradient finite where the two
            images agree (training), 0 gives the exact value (reports).

    Returns:
        float32 [...]: ΔE*ab (about 2.3 is a just-noticeable difference).
    """
    difference = rgb_to_lab(images_a) - rgb_to_lab(images_b)
    return tf.sqrt(tf.reduce_sum(tf.square(difference), axis=-1) + epsilon)
