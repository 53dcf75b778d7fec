"""Per-example prototypes for a batch of faces, as TensorFlow ops.

The SAN's autoencoder sees each face with its same-gender prototype P_SM and re-renders it
with the opposite one P_OP (or the neutral mix P_NT at inference). For a label y (1 = male):

    P_SM(y) = y * P_male + (1 - y) * P_female
    P_OP(y) = (1 - y) * P_male + y * P_female
"""

from __future__ import annotations

import tensorflow as tf


def _weights(male, dtype):
    return tf.reshape(tf.cast(male, dtype), [-1, 1, 1, 1])


def same_prototype(male, prototype_male, prototype_female):
    """P_SM(y) = y * P_male + (1 - y) * P_female for a batch of labels y (1 = male)."""
    y = _weights(male, prototype_male.dtype)
    return y * prototype_male[None] + (1 - y) * prototype_female[None]


def opposite_prototype(male, prototype_male, prototype_female):
    """P_OP(y) = (1 - y) * P_male + y * P_female for a batch of labels y (1 = male)."""
    y = _weights(male, prototype_male.dtype)
    return (1 - y) * prototype_male[None] + y * prototype_female[None]


def flip_where(tensors, flipped):
    """Flips left-right the examples of each [B, H, W, C] tensor where `flipped` [B] is true.

    The input pipeline flips faces (`semiadv.data.augment.flip`) and reports which; the step
    flips their prototypes with the same coins, so face and prototype agree on which side is
    which. (The paper's code flipped only the face.)

    Args:
      tensors: a list of [B, H, W, C] tensors of one batch.
      flipped: [B] bool.

    Returns:
      The list, flipped where asked.
    """
    mask = tf.reshape(tf.cast(flipped, tf.bool), [-1, 1, 1, 1])
    return [tf.where(mask, tf.reverse(value, axis=[2]), value) for value in tensors]


def warp_to_landmarks(prototype_images, landmarks, template):
    """Warps prototypes so their landmarks (the `template`) land on each face's landmarks.

    The paper aligned the prototype to each face; with five landmarks an affine map fitted by
    least squares follows the face's eyes, nose and mouth.

    Args:
      prototype_images: [B, H, W, C] prototypes (aligned like the mean face).
      landmarks: [B, N, 2] (x, y) of each face, in pixels of the [H, W] crop.
      template: [N, 2] the same landmarks on the prototypes.

    Returns:
      [B, H, W, C] float32 warped prototypes.
    """
    landmarks = tf.cast(landmarks, tf.float32)
    template = tf.cast(template, tf.float32)
    batch = tf.shape(landmarks)[0]
    count = tf.shape(landmarks)[1]
    # Output pixel at a face landmark reads the prototype at the template landmark: solve
    # [x y 1] @ A = template for A [3, 2] per example.
    design = tf.concat([landmarks, tf.ones([batch, count, 1])], axis=-1)
    targets = tf.broadcast_to(template[None], tf.shape(landmarks))
    affine = tf.linalg.lstsq(design, targets, fast=False)  # [B, 3, 2]
    # ImageProjectiveTransformV3 reads input x from a0*x + a1*y + a2 and y from b0..b2.
    transforms = tf.concat([affine[:, :, 0], affine[:, :, 1], tf.zeros([batch, 2])], axis=-1)
    size = tf.shape(prototype_images)[1:3]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(prototype_images, tf.float32), transforms=transforms, output_shape=size,
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="NEAREST")
