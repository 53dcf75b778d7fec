"""Adversarial training of the auxiliary classifiers: L2 projected gradient descent (PGD).

A CNN trained on clean faces is read by the SAN through its gradients, and those point at
pixel patterns only that CNN reads: the SAN learns patches that fool it and transfer little
to classifiers it never saw (RESULTS.md). A CNN trained on the worst faces within a
small L2 ball of each training face cannot be moved by such patterns, and its input
gradients line up with what people see (Tsipras et al. 2019, "Robustness may be at odds with
accuracy"; Santurkar et al. 2019, "Image synthesis with a single (robust) classifier"): to
fool it the SAN has to edit the face's gender cues. The same holds for the age group and race
classifiers of a choice-conditioned SAN (`TrainConfig.attribute_robust_radius`).
"""

from __future__ import annotations

import tensorflow as tf

from semiadv.train import losses

# PGD's step size as a multiple of radius / steps (Madry et al.'s 2.5): the walk can cross
# the ball and come back along the boundary.
STEP_SIZE_FACTOR = 2.5


def warmed_up_radius(radius: float, warmup_steps: int, step):
    """The radius at training step `step` (0-based): growing linearly from radius /
    warmup_steps at step 0 to `radius` at step warmup_steps - 1 and after (a float32
    scalar tensor; `radius` itself when warmup_steps is 0)."""
    if warmup_steps <= 0:
        return tf.constant(radius, tf.float32)
    fraction = tf.cast(step + 1, tf.float32) / float(warmup_steps)
    return radius * tf.minimum(1.0, fraction)


def l2_adversarial_images(model, images, male, weight, radius, steps: int,
                          per_example_loss=None):
    """The faces within L2 distance `radius` of `images` that `model` misreads most.

    Random start in the ball, then `steps` normalised gradient-ascent steps on the
    cross-entropy, each projected back onto the ball and onto the valid range [0, 1]. The
    model runs in inference mode (dropout off), so the attack sees the network that is
    being trained, not a random thinning of it.

    Args:
      model: the classifier: images [B, H, W, C] in [0, 1] -> logits [B, K].
      images: float32 [B, H, W, C] in [0, 1].
      male: [B] 0/1 gender labels (read only by the default loss; None with
        `per_example_loss`).
      weight: [B] per-example weights of the cross-entropy (0 for unknown gender: those
        faces are returned as they are).
      radius: the ball's L2 radius over the whole image, in [0, 1] pixel units (1.0 at
        64x64x3 is an RMS change of 2.3/255 per channel); a float or a scalar tensor.
      steps: gradient steps (>= 1).
      per_example_loss: logits -> [B] loss the search ascends (None: the gender
        cross-entropy against `male`); e.g. an age group's cross-entropy against its labels.

    Returns:
      float32 [B, H, W, C] adversarial faces, with no gradient path to `images` or the
      model (the training step differentiates the loss on them w.r.t. the weights only).
    """
    if per_example_loss is None:
        def per_example_loss(logits):
            return losses.gender_cross_entropy(logits, male)
    images = tf.stop_gradient(tf.cast(images, tf.float32))
    step_size = STEP_SIZE_FACTOR * radius / steps
    delta = _project(tf.random.normal(tf.shape(images)) * (radius / 4.0), radius)
    for _ in range(steps):  # A few steps: unrolled in the traced graph.
        with tf.GradientTape() as tape:
            tape.watch(delta)
            logits = model(images + delta, training=False)
            loss = tf.reduce_sum(tf.cast(per_example_loss(logits), tf.float32) * weight)
        gradient = tape.gradient(loss, delta)
        delta = delta + step_size * _unit(gradient)
        delta = _project(delta, radius)
        delta = tf.clip_by_value(images + delta, 0.0, 1.0) - images
    attacked = tf.reshape(tf.cast(weight > 0, tf.float32), [-1, 1, 1, 1])
    return tf.stop_gradient(images + delta * attacked)


def _norm(x):
    """Per-example L2 norm, shaped [B, 1, 1, 1] to broadcast over an image batch."""
    return tf.sqrt(tf.reduce_sum(tf.square(x), axis=[1, 2, 3], keepdims=True) + 1e-12)


def _unit(x):
    """Each example scaled to unit L2 norm (zero stays zero)."""
    return x / _norm(x)


def _project(delta, radius):
    """Each example's change scaled back onto the L2 ball of `radius` if it left it."""
    return delta * tf.minimum(1.0, radius / _norm(delta))
