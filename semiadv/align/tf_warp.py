"""Alignment by known landmarks, as TensorFlow ops (for tf.data pipelines and prototype warps).

`semiadv.align.face` finds faces and eyes in photos with OpenCV; when a dataset already carries
landmarks (CelebA), the same canonical eye positions (`geometry.canonical_eye_points`) are
reached here with one projective transform per image, inside the input pipeline.
"""

from __future__ import annotations

import tensorflow as tf

from semiadv.align import geometry

# Eyes closer than this (in input pixels) fix no rotation or scale: such landmarks are junk
# (e.g. both eyes annotated at one point) and the image is centre-cropped instead.
MIN_EYE_DISTANCE = 1.0


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


def center_crop_transform(image_shape, image_size):
    """The 8-vector transform that reads the central square of an image of `image_shape` [H, W]
    into an output of side `image_size` (pixel centres map to pixel centres)."""
    height = tf.cast(image_shape[0], tf.float32)
    width = tf.cast(image_shape[1], tf.float32)
    side = tf.minimum(height, width)
    scale = side / image_size
    # Output pixel centre x + 0.5 reads input (x + 0.5) * scale + offset, in pixel-centre terms.
    shift_x = (width - side) / 2 + 0.5 * scale - 0.5
    shift_y = (height - side) / 2 + 0.5 * scale - 0.5
    zero = tf.zeros([])
    return tf.stack([scale, zero, shift_x, zero, scale, shift_y, zero, zero])


def align_by_eyes(image, landmarks, image_size: int):
    """Aligns one image so its eyes land on the canonical eye positions.

    When the eyes are missing or degenerate (not finite, or less than `MIN_EYE_DISTANCE` apart)
    no similarity is defined: the image is centre-cropped instead, so junk landmarks never
    turn into NaN pixels.

    Args:
      image: [H, W, 3] uint8.
      landmarks: [N, 2] float32 (x, y), the first two being the left and right eye.
      image_size: side of the output crop.

    Returns:
      (crop [S, S, 3] float32 in 0..255, landmarks [N, 2] in crop coordinates).
    """
    landmarks = tf.cast(landmarks, tf.float32)
    # Warp at a generous size, then shrink with antialiasing: bilinear sampling straight to a
    # small crop would alias.
    work_size = max(image_size, 128)
    scale = image_size / work_size
    # Eyes go where the shrink puts them on the canonical points of the output size (resizing
    # keeps pixel centres aligned: x_small + 0.5 = (x_work + 0.5) * scale).
    canonical = tf.constant(geometry.canonical_eye_points(image_size), tf.float32)
    target = (canonical + 0.5) / scale - 0.5
    eyes = landmarks[:2]
    usable = tf.logical_and(tf.reduce_all(tf.math.is_finite(eyes)),
                            tf.norm(eyes[1] - eyes[0]) >= MIN_EYE_DISTANCE)
    safe_eyes = tf.where(usable, eyes, target)  # Keeps the unused branch finite.
    transform = tf.where(usable, similarity_transform(safe_eyes[None], target[None])[0],
                         center_crop_transform(tf.shape(image)[:2], work_size))[None]
    crop = warp(image[None], transform, work_size)[0]
    crop = tf.image.resize(crop, (image_size, image_size), antialias=True)
    return crop, (apply_points(transform, landmarks[None])[0] + 0.5) * scale - 0.5
