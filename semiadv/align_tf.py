"""Alignment by known landmarks, as TensorFlow ops (for tf.data pipelines and prototype warps).

`semiadv.align` finds faces and eyes in photos with OpenCV; when a dataset already carries
landmarks (CelebA), the same canonical eye positions are reached here with one projective
transform per image, inside the input pipeline.
"""

from __future__ import annotations

import tensorflow as tf

from semiadv import align


def _complex(points):
    return tf.complex(points[..., 0], points[..., 1])


def similarity_transform(source_eyes, target_eyes):
    """The 8-vector transform that maps target (output) pixels to source (input) pixels.

    A similarity (rotation, uniform scale, shift) is fixed by two point pairs. In complex
    numbers z_source = w * z_target + t, which is what `ImageProjectiveTransformV3` wants:
    for each output pixel, where to read in the input.

    Args:
      source_eyes: [..., 2, 2] (left eye, right eye) x (x, y) in the input image.
      target_eyes: [..., 2, 2] the same eyes where they should land in the output.

    Returns:
      [..., 8] float32 transforms.
    """
    source = _complex(tf.cast(source_eyes, tf.float32))
    target = _complex(tf.cast(target_eyes, tf.float32))
    w = (source[..., 1] - source[..., 0]) / (target[..., 1] - target[..., 0])
    t = source[..., 0] - w * target[..., 0]
    zero = tf.zeros_like(tf.math.real(w))
    return tf.stack([tf.math.real(w), -tf.math.imag(w), tf.math.real(t),
                     tf.math.imag(w), tf.math.real(w), tf.math.imag(t), zero, zero], axis=-1)


def apply_points(transform, points):
    """Maps points [..., N, 2] through the inverse of `transform` (input -> output)."""
    a0, a1, a2, b0, b1, b2 = (transform[..., i:i + 1] for i in range(6))
    x = points[..., 0] - a2
    y = points[..., 1] - b2
    determinant = a0 * b1 - a1 * b0
    return tf.stack([(b1 * x - a1 * y) / determinant, (-b0 * x + a0 * y) / determinant], axis=-1)


def warp(images, transforms, image_size: int):
    """Warps a batch [B, H, W, C] (any dtype) with [B, 8] transforms to [B, S, S, C] float32."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=tf.cast(transforms, tf.float32),
        output_shape=tf.constant([image_size, image_size], tf.int32),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="NEAREST")


def align_by_eyes(image, landmarks, image_size: int):
    """Aligns one image so its eyes land on the canonical eye positions.

    Args:
      image: [H, W, 3] uint8.
      landmarks: [N, 2] float32 (x, y), the first two being the left and right eye.
      image_size: side of the output crop.

    Returns:
      (crop [S, S, 3] float32 in 0..255, landmarks [N, 2] in crop coordinates).
    """
    # Warp at a generous size, then shrink with antialiasing: bilinear sampling straight to a
    # small crop would alias.
    work_size = max(image_size, 128)
    target = tf.constant(align.canonical_eye_points(work_size), tf.float32)
    transform = similarity_transform(landmarks[None, :2], target[None])
    crop = warp(image[None], transform, work_size)[0]
    crop = tf.image.resize(crop, (image_size, image_size), antialias=True)
    scale = image_size / work_size
    return crop, apply_points(transform, landmarks[None])[0] * scale
