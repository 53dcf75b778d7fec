"""Tests for semiadv.train.losses: every value is checked against independent numpy code."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.train import losses

LOGITS = np.array([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0], [0.0, 4.0]], np.float32)
MALE = np.array([0, 1, 0, 1], np.int32)


def numpy_cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    log_normaliser = np.log(np.exp(logits).sum(axis=1))
    return log_normaliser - logits[np.arange(len(labels)), labels]


def assert_per_example(values, batch_size):
    assert values.dtype == tf.float32
    assert values.shape == (batch_size,)


class TestGender:
    def test_cross_entropy_matches_numpy(self):
        values = losses.gender_cross_entropy(LOGITS, MALE)
        assert_per_example(values, 4)
        # Row 0: log(e^2 + e^-1) - 2; row 1: log 2.
        np.testing.assert_allclose(values, numpy_cross_entropy(LOGITS, MALE), rtol=1e-5)
        np.testing.assert_allclose(values[1], np.log(2.0), rtol=1e-6)

    def test_flipped_cross_entropy_uses_opposite_label(self):
        values = losses.flipped_gender_cross_entropy(LOGITS, MALE)
        assert_per_example(values, 4)
        np.testing.assert_allclose(values, numpy_cross_entropy(LOGITS, 1 - MALE), rtol=1e-5)

    def test_accepts_column_labels_and_bfloat16_logits(self):
        values = losses.gender_cross_entropy(
            tf.cast(LOGITS, tf.bfloat16), MALE.reshape(-1, 1).astype(np.int64)
        )
        assert_per_example(values, 4)
        np.testing.assert_allclose(values, numpy_cross_entropy(LOGITS, MALE), rtol=1e-2)

    def test_accuracy_and_flip_rate(self):
        # Predictions (argmax): 0, 0 (tie -> first), 1, 1 against labels 0, 1, 0, 1.
        accuracy = losses.gender_accuracy(LOGITS, MALE)
        flips = losses.flip_rate(LOGITS, MALE)
        assert_per_example(accuracy, 4)
        assert_per_example(flips, 4)
        np.testing.assert_array_equal(accuracy, [1.0, 0.0, 0.0, 1.0])
        np.testing.assert_array_equal(flips, [0.0, 1.0, 1.0, 0.0])


class TestPixelAndMatch:
    images = np.array(
        [np.full((2, 2, 1), 0.0), np.array([0.0, 1.0, 0.5, 0.25]).reshape(2, 2, 1)], np.float32
    )
    reconstructions = np.array(
        [np.full((2, 2, 1), 0.5), np.array([0.5, 0.5, 0.5, 0.5]).reshape(2, 2, 1)], np.float32
    )

    def test_l1(self):
        values = losses.pixel_loss(self.images, self.reconstructions, kind="l1")
        assert_per_example(values, 2)
        # (0.5 + 0.5 + 0 + 0.25) / 4 for the second image.
        np.testing.assert_allclose(values, [0.5, 1.25 / 4], rtol=1e-6)

    def test_mse(self):
        values = losses.pixel_loss(self.images, self.reconstructions, kind="mse")
        assert_per_example(values, 2)
        np.testing.assert_allclose(values, [0.25, (0.25 + 0.25 + 0 + 0.0625) / 4], rtol=1e-6)

    def test_bce(self):
        values = losses.pixel_loss(self.images, self.reconstructions, kind="bce")
        assert_per_example(values, 2)
        # Every reconstruction is 0.5, so each pixel costs log 2 whatever the target.
        np.testing.assert_allclose(values, [np.log(2.0), np.log(2.0)], rtol=1e-6)

    def test_bce_is_finite_at_saturated_outputs(self):
        images = np.array([[[[1.0], [0.0]]]], np.float32)
        reconstructions = np.array([[[[0.0], [1.0]]]], np.float32)
        values = losses.pixel_loss(images, reconstructions, kind="bce")
        assert np.all(np.isfinite(values))
        # Both pixels are clipped 1e-7 from the wrong end: about -log(1e-7) ~ 16.1 each
        # (1 - 1e-7 rounds in float32, hence the loose tolerance).
        np.testing.assert_allclose(values, [-np.log(1e-7)], rtol=2e-2)

    def test_bad_kind_names_it(self):
        with pytest.raises(ValueError, match="'l3'"):
            losses.pixel_loss(self.images, self.reconstructions, kind="l3")

    def test_match_distance(self):
        a = np.array([[0.0, 0.0], [1.0, 2.0], [0.6, 0.8]], np.float32)
        b = np.array([[3.0, 4.0], [1.0, 2.0], [0.8, 0.6]], np.float32)
        values = losses.match_distance(a, b)
        assert_per_example(values, 3)
        np.testing.assert_allclose(values, [25.0, 0.0, 0.08], rtol=1e-5)


# A 2D example where the mined negatives are known (margin 0.5):
#   0 anchor (0, 0) id 0 | 1 positive (1, 0) id 0, d(0, 1) = 1
#   2 (0, 0.9) id 1: d(0, 2) = 0.81, closer than the positive (hard)
#   3 (1.1, 0) id 2: d(0, 3) = 1.21, in (1, 1.5): semi-hard
#   4 (0, 1.2) id 3: d(0, 4) = 1.44, also semi-hard but farther than 3
#   5 (3, 0)   id 4: d(0, 5) = 9, easy
# Anchor 0: semi-hard picks 3 -> 1 - 1.21 + 0.5 = 0.29; hard picks 2 -> 1 - 0.81 + 0.5 = 0.69.
# Anchor 1 (positive 0 at d = 1): negatives at 1.81, 0.01, 2.44, 4; none in (1, 1.5), so both
# minings use the hardest negative 3 -> 1 - 0.01 + 0.5 = 1.49.
# Anchors 2..5 have no positive: loss 0, invalid.
EMBEDDINGS_2D = np.array(
    [[0.0, 0.0], [1.0, 0.0], [0.0, 0.9], [1.1, 0.0], [0.0, 1.2], [3.0, 0.0]], np.float32
)
LABELS_2D = np.array([0, 0, 1, 2, 3, 4], np.int32)
VALID_2D = [True, True, False, False, False, False]


def numpy_triplet(embeddings, labels, margin, mining):
    """Brute-force reference over explicit (anchor, positive, negative) triplets."""
    embeddings = embeddings.astype(np.float64)
    size = len(labels)
    dist = lambda i, j: float(np.sum((embeddings[i] - embeddings[j]) ** 2))  # noqa: E731
    result = np.zeros(size)
    for a in range(size):
        positives = [p for p in range(size) if p != a and labels[p] == labels[a]]
        negatives = [n for n in range(size) if labels[n] != labels[a]]
        if not positives or not negatives:
            continue
        hardest_negative = min(dist(a, n) for n in negatives)
        if mining == "hard":
            hardest_positive = max(dist(a, p) for p in positives)
            result[a] = max(hardest_positive - hardest_negative + margin, 0.0)
            continue
        pair_losses = []
        for p in positives:
            d_ap = dist(a, p)
            semi_hard = [dist(a, n) for n in negatives if d_ap < dist(a, n) < d_ap + margin]
            d_an = min(semi_hard) if semi_hard else hardest_negative
            pair_losses.append(max(d_ap - d_an + margin, 0.0))
        result[a] = np.mean(pair_losses)
    return result


def colour_difference(images, outputs):
    """Mean ΔE*ab per example: the first value of `colour_difference_and_excess`."""
    return losses.colour_difference_and_excess(images, outputs, 0.0)[0]


class TestTriplet:
    @pytest.mark.parametrize(
        "mining, expected",
        [("semi_hard", [0.29, 1.49, 0, 0, 0, 0]), ("hard", [0.69, 1.49, 0, 0, 0, 0])],
    )
    def test_hand_constructed_mining(self, mining, expected):
        values = losses.triplet_loss(EMBEDDINGS_2D, LABELS_2D, margin=0.5, mining=mining)
        assert_per_example(values, 6)
        np.testing.assert_allclose(values, expected, atol=1e-5)
        # Anchors without a positive or a negative in the batch contribute nothing.
        np.testing.assert_array_equal(np.asarray(values)[np.logical_not(VALID_2D)], 0.0)

    def test_default_returns_only_losses(self):
        values = losses.triplet_loss(EMBEDDINGS_2D, LABELS_2D, margin=0.5)
        assert isinstance(values, tf.Tensor)
        assert_per_example(values, 6)

    def test_easy_negatives_give_zero_loss(self):
        # Anchor and positive 0.01 apart, the only negative 100 away: no semi-hard negative,
        # the fallback (hardest) negative is beyond the margin.
        embeddings = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0]], np.float32)
        values = losses.triplet_loss(embeddings, [7, 7, 8], margin=0.2)
        np.testing.assert_allclose(values, [0.0, 0.0, 0.0], atol=1e-6)

    def test_semi_hard_averages_over_positives(self):
        # Anchor 0 has positives at d = 0.25 and 1; negative at d = 1.1 (margin 0.5).
        # Pair (0, 1): 1.1 not in (0.25, 0.75) -> hardest negative: 0.25 - 1.1 + 0.5 < 0 -> 0.
        # Pair (0, 2): 1.1 in (1, 1.5) -> 1 - 1.1 + 0.5 = 0.4. Mean over positives: 0.2.
        embeddings = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.0, -np.sqrt(1.1)]])
        values = losses.triplet_loss(embeddings.astype(np.float32), [0, 0, 0, 1], margin=0.5)
        np.testing.assert_allclose(values[0], 0.2, atol=1e-5)

    @pytest.mark.parametrize("mining", ["semi_hard", "hard"])
    def test_matches_brute_force_on_random_batch(self, mining):
        rng = np.random.default_rng(3)
        embeddings = rng.normal(size=(10, 4)).astype(np.float32)
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
        labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3], np.int32)  # id 3 has no positive
        values = losses.triplet_loss(embeddings, labels, margin=0.5, mining=mining)
        expected = numpy_triplet(embeddings, labels, 0.5, mining)
        np.testing.assert_allclose(values, expected, atol=1e-5)
        assert expected[:9].min() >= 0 and expected.max() > 0
        assert float(values[9]) == 0.0

    def test_single_identity_batch_is_all_invalid(self):
        values = losses.triplet_loss(EMBEDDINGS_2D, np.zeros(6, np.int32))
        np.testing.assert_array_equal(values, np.zeros(6))

    @pytest.mark.parametrize("mining", ["semi_hard", "hard"])
    def test_gradients_are_finite(self, mining):
        embeddings = tf.Variable(EMBEDDINGS_2D)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(losses.triplet_loss(embeddings, LABELS_2D, 0.5, mining))
        gradient = tape.gradient(total, embeddings)
        assert np.all(np.isfinite(gradient))
        assert np.any(gradient != 0)

    def test_bad_mining_names_it(self):
        with pytest.raises(ValueError, match="'easy'"):
            losses.triplet_loss(EMBEDDINGS_2D, LABELS_2D, mining="easy")


def test_all_losses_trace_in_tf_function_with_bfloat16():
    @tf.function
    def compute(logits, images, reconstructions, embeddings, labels):
        results = [
            losses.gender_cross_entropy(logits, labels),
            losses.flipped_gender_cross_entropy(logits, labels),
            losses.gender_accuracy(logits, labels),
            losses.flip_rate(logits, labels),
            losses.match_distance(embeddings, embeddings[::-1]),
            losses.triplet_loss(embeddings, labels),
        ]
        results += [losses.pixel_loss(images, reconstructions, k) for k in losses.PIXEL_LOSS_KINDS]
        return results

    rng = np.random.default_rng(0)
    images = tf.cast(rng.random((4, 8, 8, 3)), tf.bfloat16)
    reconstructions = tf.cast(rng.random((4, 8, 8, 3)), tf.bfloat16)
    embeddings = tf.cast(rng.normal(size=(4, 5)), tf.bfloat16)
    results = compute(tf.cast(LOGITS, tf.bfloat16), images, reconstructions, embeddings, MALE)
    for values in results:
        assert_per_example(values, 4)
        assert np.all(np.isfinite(values))


def test_per_example_losses_reduce_with_compute_average_loss():
    per_example = losses.gender_cross_entropy(LOGITS, MALE)
    average = tf.nn.compute_average_loss(per_example, global_batch_size=8)
    np.testing.assert_allclose(average, numpy_cross_entropy(LOGITS, MALE).sum() / 8, rtol=1e-6)



class TestFidelity:
    """`structural_dissimilarity` and `colour_difference_and_excess`: the SAN's fidelity
    terms."""

    rng = np.random.default_rng(7)
    faces = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)

    def test_identical_images_cost_nothing(self):
        np.testing.assert_allclose(losses.structural_dissimilarity(self.faces, self.faces), 0,
                                   atol=1e-5)
        np.testing.assert_allclose(colour_difference(self.faces, self.faces), 0,
                                   atol=1e-2)

    def test_colour_difference_of_primaries(self):
        # CIE76 ΔE*ab between pure sRGB red and green: 170.57 (textbook Lab values
        # (53.24, 80.09, 67.20) and (87.73, -86.18, 83.18)).
        red = np.zeros((1, 4, 4, 3), np.float32)
        red[..., 0] = 1
        green = np.roll(red, 1, axis=-1)
        values = colour_difference(red, green)
        assert_per_example(values, 1)
        np.testing.assert_allclose(values, [170.57], atol=0.05)

    def test_colour_excess_is_a_hinge_per_pixel(self):
        # Half the pixels change by ΔE 100 (black -> white), half not at all: the mean ΔE is
        # 50, the per-pixel excess over 30 is (100 - 30) / 2 = 35 (a hinge of the mean: 20).
        dark = np.zeros((1, 4, 4, 1), np.float32)
        half = dark.copy()
        half[:, :2] = 1.0
        mean, excess = losses.colour_difference_and_excess(dark, half, 30.0)
        np.testing.assert_allclose(mean, [50.0], atol=1e-2)
        np.testing.assert_allclose(excess, [35.0], atol=1e-2)
        mean, excess = losses.colour_difference_and_excess(dark, half, 0.0)
        np.testing.assert_allclose(excess, colour_difference(dark, half), atol=1e-4)
        np.testing.assert_allclose(mean, excess, atol=1e-6)
        np.testing.assert_allclose(losses.colour_difference_and_excess(dark, half, 150.0)[1],
                                   [0.0])

    def test_gray_images_differ_in_lightness_only(self):
        dark, light = np.full((1, 4, 4, 1), 0.0, np.float32), np.full((1, 4, 4, 1), 1.0, np.float32)
        np.testing.assert_allclose(colour_difference(dark, light), [100.0], atol=1e-3)

    def test_dissimilarity_grows_with_noise_and_is_per_example(self):
        noise = self.rng.normal(0, 1, self.faces.shape).astype(np.float32)
        scales = np.array([0.0, 0.05, 0.3], np.float32)[:, None, None, None]
        noisy = np.clip(self.faces + scales * noise, 0, 1)
        values = losses.structural_dissimilarity(self.faces, noisy).numpy()
        assert_per_example(tf.constant(values), 3)
        assert values[0] < 1e-5 < values[1] < values[2]

    @pytest.mark.parametrize("size", [16, 8, 32])
    def test_structural_dissimilarity_is_tf_image_ssim(self, size):
        """The separable window gives tf.image.ssim's value and gradient (smaller windows on
        images under 11 pixels; grey and colour)."""
        rng = np.random.default_rng(size)
        for channels in (1, 3):
            faces = rng.uniform(0, 1, (3, size, size, channels)).astype(np.float32)
            outputs = tf.Variable(np.clip(faces + rng.normal(0, 0.1, faces.shape), 0, 1)
                                  .astype(np.float32))
            window = min(11, size)
            with tf.GradientTape(persistent=True) as tape:
                ours = losses.structural_dissimilarity(faces, outputs)
                reference = 1.0 - tf.image.ssim(faces, outputs, max_val=1.0,
                                                filter_size=window)
            assert float(tf.reduce_min(reference)) > 0.01  # Not a trivially equal pair.
            np.testing.assert_allclose(ours, reference, atol=2e-6)
            np.testing.assert_allclose(tape.gradient(ours, outputs),
                                       tape.gradient(reference, outputs), rtol=1e-4, atol=1e-6)

    def test_gradients_are_finite_where_images_agree(self):
        outputs = tf.Variable(self.faces)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(colour_difference(self.faces, outputs)
                                  + losses.structural_dissimilarity(self.faces, outputs))
        gradient = tape.gradient(total, outputs).numpy()
        assert np.isfinite(gradient).all()
        # Black and white pixels sit on the kinks of the sRGB and Lab curves.
        edges = tf.Variable(np.round(self.faces))
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(colour_difference(self.faces, edges))
        assert np.isfinite(tape.gradient(total, edges).numpy()).all()
