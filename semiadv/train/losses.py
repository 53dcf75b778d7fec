"""Per-example losses and metrics of the semi-adversarial network.

Every function returns float32 values of shape [batch], one per example, and nothing is
averaged here: the distributed training step reduces once with
`tf.nn.compute_average_loss(per_example, global_batch_size=...)`. Keras `Loss` objects are
deliberately avoided because their default reduction already divides by the replica count
under a strategy.

All functions are pure TensorFlow ops (no Python branching on tensor values) so they trace
inside `tf.function` and `strategy.run`. Inputs may be bfloat16/float16 (mixed precision);
they are cast to float32 first.
"""

import tensorflow as tf

from semiadv.utils import colour

PIXEL_LOSS_KINDS = ("l1", "mse", "bce")
TRIPLET_MINING = ("semi_hard", "hard")
# Keeps log() finite in the binary cross-entropy pixel loss.
_BCE_EPSILON = 1e-7


def _float32(x):
    return tf.cast(x, tf.float32)


def _labels(male):
    """Flattens 0/1 gender labels ([B] or [B, 1], any int or float dtype) to int32 [B]."""
    return tf.reshape(tf.cast(male, tf.int32), [-1])


# ---------------------------------------------------------------------------------------------
# Gender losses and metrics.
# ---------------------------------------------------------------------------------------------


def gender_cross_entropy(logits, male):
    """Softmax cross-entropy of 2-way gender logits against the true gender.

    Args:
        logits: [B, 2] logits, class 1 = male.
        male: [B] (or [B, 1]) 0/1 labels, 1 = male.

    Returns:
        float32 [B] cross-entropies.
    """
    return tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=_labels(male), logits=_float32(logits)
    )


def flipped_gender_cross_entropy(logits, male):
    """Cross-entropy against the opposite gender (1 - male).

    This is the SAN loss on X'_OP: the classifier should read the opposite gender.

    Args:
        logits: [B, 2] logits, class 1 = male.
        male: [B] (or [B, 1]) 0/1 labels of the original faces.

    Returns:
        float32 [B] cross-entropies.
    """
    return gender_cross_entropy(logits, 1 - _labels(male))


def gender_reading_change(logits, original_logits):
    """KL divergence of a classifier's reading of X' from its reading of the original X.

    The SM term with `gender_same_target="original"`: zero when X' reads exactly as X does,
    positive whether X' reads more or less of its gender. The original's reading is a fixed
    target (no gradient flows into it).

    Args:
        logits: [B, 2] logits on X'.
        original_logits: [B, 2] logits of the same classifier on X.

    Returns:
        float32 [B] KL(p(X) || p(X')) in nats.
    """
    log_target = tf.stop_gradient(tf.nn.log_softmax(_float32(original_logits)))
    return tf.reduce_sum(tf.exp(log_target) * (log_target - tf.nn.log_softmax(_float32(logits))),
                         axis=-1)


# Any classifier's reading change: the KL term is not gender's only (the kept attributes of a
# choice-conditioned SAN are held to their reading with it too).
reading_change = gender_reading_change


def attribute_cross_entropy(logits, labels):
    """Softmax cross-entropy against integer labels, 0 where a label is unknown (-1).

    Args:
        logits: [B, K] logits.
        labels: [B] integer labels in 0..K-1, or -1 for unknown.

    Returns:
        float32 [B] cross-entropies (0 for unknown labels, whose gradient is 0 too).
    """
    labels = _labels(labels)
    known = labels >= 0
    values = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.maximum(labels, 0), logits=_float32(logits))
    return tf.where(known, values, tf.zeros_like(values))


def divergence_from_chance(logits):
    """KL(uniform || p): how far a classifier's reading is from chance, per example.

    The cross-entropy of the reading against the uniform distribution minus its minimum,
    log K, so it is 0 exactly at chance (a hidden attribute's target in a choice-conditioned
    SAN: the classifier can tell no value from another) and positive otherwise.

    Args:
        logits: [B, K] logits.

    Returns:
        float32 [B] divergences in nats.
    """
    log_probabilities = tf.nn.log_softmax(_float32(logits))
    classes = tf.cast(tf.shape(log_probabilities)[-1], tf.float32)
    return -tf.reduce_mean(log_probabilities, axis=-1) - tf.math.log(classes)


def _predicted_male(logits):
    return tf.argmax(_float32(logits), axis=-1, output_type=tf.int32)


def gender_accuracy(logits, male):
    """1.0 where the predicted gender equals `male`, else 0.0; float32 [B]."""
    return tf.cast(tf.equal(_predicted_male(logits), _labels(male)), tf.float32)


def flip_rate(logits, male):
    """1.0 where the predicted gender differs from `male` (the attack worked); float32 [B]."""
    return tf.cast(tf.not_equal(_predicted_male(logits), _labels(male)), tf.float32)


# ---------------------------------------------------------------------------------------------
# Pixel and matching losses.
# ---------------------------------------------------------------------------------------------


def _mean_per_example(values):
    """Averages over every axis but the first (H, W, C for images)."""
    batch_size = tf.shape(values)[0]
    return tf.reduce_mean(tf.reshape(values, [batch_size, -1]), axis=1)


def pixel_loss(images, reconstructions, kind="l1"):
    """Per-example pixel loss between images and reconstructions, both in [0, 1].

    Args:
        images: [B, H, W, C] targets.
        reconstructions: [B, H, W, C] outputs (e.g. X'_SM).
        kind: "l1" (mean absolute error, the paper's choice), "mse" or "bce" (binary
            cross-entropy with the reconstructions clipped away from 0 and 1).

    Returns:
        float32 [B] losses averaged over H, W and C.

    Raises:
        ValueError: If `kind` is unknown.
    """
    if kind not in PIXEL_LOSS_KINDS:
        raise ValueError(f"pixel loss kind must be one of {PIXEL_LOSS_KINDS}, got {kind!r}.")
    images, reconstructions = _float32(images), _float32(reconstructions)
    if kind == "l1":
        values = tf.abs(images - reconstructions)
    elif kind == "mse":
        values = tf.square(images - reconstructions)
    else:
        clipped = tf.clip_by_value(reconstructions, _BCE_EPSILON, 1.0 - _BCE_EPSILON)
        values = -(images * tf.math.log(clipped) + (1.0 - images) * tf.math.log(1.0 - clipped))
    return _mean_per_example(values)


# tf.image.ssim's window and constants (max_val 1).
_SSIM_SIGMA, _SSIM_K1, _SSIM_K2 = 1.5, 0.01, 0.03


def _gaussian_window(size):
    """The 1-d factor of tf.image.ssim's size x size Gaussian window (which is its outer
    product: a softmax of -(x^2 + y^2) / 2 sigma^2 is the product of two of -x^2 / 2 sigma^2)."""
    coords = tf.range(size, dtype=tf.float32) - (size - 1) / 2.0
    return tf.nn.softmax(-0.5 * tf.square(coords) / _SSIM_SIGMA ** 2)


def structural_dissimilarity(images, outputs):
    """1 - SSIM between images and outputs in [0, 1], per example; float32 [B].

    SSIM compares local means, contrasts and structure in 11x11 Gaussian windows (smaller
    when the images are), so it punishes the blotches and texture a pixel loss averages away.
    Colour images are compared per channel and averaged. The value is `tf.image.ssim`'s (to
    float rounding), computed with the window as two 1-d passes over the four local
    statistics stacked on channels: 2 x 11 taps instead of 121, in one pair of depthwise
    convolutions instead of four (BENCHMARKS.md §2b).
    """
    images, outputs = _float32(images), _float32(outputs)
    size = min(11, images.shape[1], images.shape[2])
    window = _gaussian_window(size)
    channels = 4 * images.shape[-1]
    stacked = tf.concat([images, outputs, images * outputs,
                         tf.square(images) + tf.square(outputs)], axis=-1)
    for shape in ((size, 1, 1, 1), (1, size, 1, 1)):
        kernel = tf.tile(tf.reshape(window, shape), [1, 1, channels, 1])
        stacked = tf.nn.depthwise_conv2d(stacked, kernel, [1, 1, 1, 1], "VALID")
    mean_x, mean_y, mean_xy, mean_squares = tf.split(stacked, 4, axis=-1)
    c1, c2 = _SSIM_K1 ** 2, _SSIM_K2 ** 2
    both = 2.0 * mean_x * mean_y
    squares = tf.square(mean_x) + tf.square(mean_y)
    luminance = (both + c1) / (squares + c1)
    contrast_structure = (2.0 * mean_xy - both + c2) / (mean_squares - squares + c2)
    return 1.0 - tf.reduce_mean(luminance * contrast_structure, axis=[1, 2, 3])


def colour_difference_and_excess(images, outputs, tolerance: float):
    """(mean ΔE*ab, mean over pixels of max(ΔE*ab - tolerance, 0)), per example; float32 [B].

    ΔE*ab is the CIE76 colour difference between images and outputs, in perceptual units
    (about 2.3 is just noticeable, 25 a green or magenta cast), so a SAN that paints colour
    over a face pays for it even where its L1 change is small. Both values come from one ΔE
    map: the SAN reports the first and trains on the second.

    A hinge per pixel, not on the face's mean: a change of up to `tolerance` anywhere is free
    (the residual autoencoder can start, where a plain ΔE term, L1-like at zero, pins it to
    its input), while a local patch pays for every unit above it. A hinge on the mean lets
    the SAN concentrate its change into strong colour patches on the eyes and lips while
    the mean stays low (RESULTS.md). With tolerance 0 both values are the mean ΔE*ab.
    """
    delta = colour.delta_e(images, outputs, epsilon=1e-6)
    return _mean_per_example(delta), _mean_per_example(tf.nn.relu(delta - tolerance))


def match_distance(embeddings_a, embeddings_b):
    """Squared euclidean distance between paired embeddings [B, D]; float32 [B]."""
    difference = _float32(embeddings_a) - _float32(embeddings_b)
    return tf.reduce_sum(tf.square(difference), axis=-1)


# ---------------------------------------------------------------------------------------------
# Triplet loss with in-batch mining.
# ---------------------------------------------------------------------------------------------


def _pairwise_squared_distances(embeddings):
    """[B, B] squared euclidean distances, clipped at 0 against round-off."""
    squared_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    gram = tf.matmul(embeddings, embeddings, transpose_b=True)
    distances = squared_norms[:, None] - 2.0 * gram + squared_norms[None, :]
    return tf.maximum(distances, 0.0)


def _masked_min(values, mask, axis):
    """Minimum of `values` over `mask`ed entries along `axis`; 0 where the mask is empty.

    The +inf fill never reaches an output or a gradient: empty rows are replaced by 0.
    """
    filled = tf.where(mask, values, tf.fill(tf.shape(values), float("inf")))
    minimum = tf.reduce_min(filled, axis=axis)
    return tf.where(tf.reduce_any(mask, axis=axis), minimum, tf.zeros_like(minimum))


def _masked_max(values, mask, axis):
    """Maximum of `values` over `mask`ed entries along `axis`; 0 where the mask is empty."""
    filled = tf.where(mask, values, tf.fill(tf.shape(values), float("-inf")))
    maximum = tf.reduce_max(filled, axis=axis)
    return tf.where(tf.reduce_any(mask, axis=axis), maximum, tf.zeros_like(maximum))


def _hard_triplet_loss(distances, positive_mask, negative_mask, margin):
    hardest_positive = _masked_max(distances, positive_mask, axis=1)
    hardest_negative = _masked_min(distances, negative_mask, axis=1)
    return tf.nn.relu(hardest_positive - hardest_negative + margin)


def _semi_hard_triplet_loss(distances, positive_mask, negative_mask, margin):
    """FaceNet semi-hard mining, averaged over each anchor's positives.

    For every anchor-positive pair (a, p) the negative is the closest n with
    d(a, p) < d(a, n) < d(a, p) + margin (a semi-hard negative); when there is none, the
    hardest negative of the anchor (smallest d(a, n)) is used instead.
    """
    positive_distances = distances[:, :, None]  # [anchor, positive, 1]
    negative_distances = distances[:, None, :]  # [anchor, 1, negative]
    semi_hard = (
        negative_mask[:, None, :]
        & (negative_distances > positive_distances)
        & (negative_distances < positive_distances + margin)
    )  # [anchor, positive, negative]
    semi_hard_negative = _masked_min(
        tf.broadcast_to(negative_distances, tf.shape(semi_hard)), semi_hard, axis=2
    )
    hardest_negative = _masked_min(distances, negative_mask, axis=1)[:, None]
    chosen_negative = tf.where(
        tf.reduce_any(semi_hard, axis=2), semi_hard_negative, hardest_negative
    )  # [anchor, positive]
    pair_losses = tf.nn.relu(distances - chosen_negative + margin)
    positive_weights = tf.cast(positive_mask, tf.float32)
    num_positives = tf.reduce_sum(positive_weights, axis=1)
    return tf.reduce_sum(pair_losses * positive_weights, axis=1) / tf.maximum(num_positives, 1.0)


def triplet_loss(embeddings, labels, margin=0.2, mining="semi_hard"):
    """Per-anchor triplet loss with in-batch mining on squared euclidean distances.

    Every example is an anchor; positives are the other examples with its label, negatives
    those with another label. The loss of a triplet is max(d(a, p) - d(a, n) + margin, 0).

    - "hard": the hardest positive (farthest) and hardest negative (closest) of each anchor.
    - "semi_hard" (FaceNet, Schroff et al. 2015): for each anchor-positive pair the closest
      negative farther than the positive but within the margin, or the anchor's hardest
      negative when no such negative exists; the anchor's loss is the mean over its
      positives.

    Anchors with no positive or no negative in the batch get loss 0.

    Args:
        embeddings: [B, D] embeddings (usually L2-normalised).
        labels: [B] integer identity labels.
        margin: Non-negative margin.
        mining: "semi_hard" or "hard".

    Returns:
        float32 [B] losses.

    Raises:
        ValueError: If `mining` is unknown.
    """
    if mining not in TRIPLET_MINING:
        raise ValueError(f"triplet mining must be one of {TRIPLET_MINING}, got {mining!r}.")
    embeddings = _float32(embeddings)
    labels = tf.reshape(labels, [-1])
    margin = tf.cast(margin, tf.float32)

    distances = _pairwise_squared_distances(embeddings)
    same_label = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    positive_mask = same_label & not_self
    negative_mask = tf.logical_not(same_label)
    valid = tf.reduce_any(positive_mask, axis=1) & tf.reduce_any(negative_mask, axis=1)

    if mining == "hard":
        losses = _hard_triplet_loss(distances, positive_mask, negative_mask, margin)
    else:
        losses = _semi_hard_triplet_loss(distances, positive_mask, negative_mask, margin)
    return tf.where(valid, losses, tf.zeros_like(losses))
