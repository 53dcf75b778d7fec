"""Metrics of the evaluation on hand-made numbers."""

import numpy as np
import pytest

from semiadv.evaluation import metrics


def test_error_rate_leaves_out_unknown_gender():
    probability = np.array([0.9, 0.2, 0.6, 0.4, 0.99])
    male = np.array([1, 0, 0, 1, -1])  # Two wrong of four known; the unknown one is ignored.
    assert metrics.error_rate(probability, male) == 0.5
    assert np.isnan(metrics.error_rate(probability, -np.ones(5, int)))


def test_roc_auc_equals_a_hand_count_of_ordered_pairs():
    positive = np.array([0.9, 0.8, 0.4, 0.4])
    negative = np.array([0.7, 0.4, 0.1])
    # Pairs (p > n) count 1, ties 1/2: 0.9 and 0.8 beat all 3 (6); each 0.4 beats 0.1 and ties
    # 0.4 (1.5 each). 9 of 12.
    hand = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positive for n in negative)
    assert hand == 9
    assert metrics.roc_auc(positive, negative) == pytest.approx(9 / 12)
    assert metrics.gender_auc(np.r_[positive, negative, 0.5], np.r_[[1] * 4, [0] * 3, -1]) \
        == pytest.approx(0.75)
    fpr, tpr = metrics.roc_curve(positive, negative)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)  # Ties give a diagonal step.


def test_tmr_at_fmr_on_a_constructed_score_set():
    impostor = np.arange(1000.0)  # FMR 1% lets 10 impostors through: threshold above 989.
    genuine = np.array([998.5, 995.5, 990.5, 500.0])
    assert metrics.tmr_at_fmr(genuine, impostor, 0.01) == 0.75
    assert metrics.tmr_at_fmr(genuine, impostor, 0.001) == 0.25  # Only 998.5 > 998.
    assert metrics.tmr_at_fmr(genuine, impostor, 1.0) == 1.0
    # Fewer impostors than 1/FMR: the strictest threshold (above every impostor).
    assert metrics.tmr_at_fmr(genuine, impostor[:50], 0.001) == 1.0
    result = metrics.matching_metrics(genuine, impostor)
    assert set(result["tmr_at_fmr"]) == {"0.01", "0.001"}


def test_similarity_is_scale_free_negative_squared_distance():
    probe = np.array([[3.0, 0.0], [0.0, 2.0]])
    gallery = np.array([[1.0, 0.0], [0.0, 5.0]])
    pairs = np.array([[0, 0], [0, 1], [1, 1]])
    np.testing.assert_allclose(metrics.similarity(probe, gallery, pairs), [0.0, -2.0, 0.0])


def test_pairs_use_other_photos_of_the_person_or_the_same_photo():
    identity = np.array([7, 7, 8, 8, 9, -1])
    genuine, impostor = metrics.make_pairs(identity, 6, impostors_per_probe=10)
    assert sorted(map(tuple, genuine)) == [(0, 1), (1, 0), (2, 3), (3, 2)]
    assert all(identity[p] != identity[g] and identity[g] >= 0 for p, g in impostor)
    assert len(impostor) == 4 * 3  # Probes 0..3, each against the 3 photos of others.
    genuine, impostor = metrics.make_pairs(None, 4, impostors_per_probe=2)
    assert sorted(map(tuple, genuine)) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert len(impostor) == 8 and all(p != g for p, g in impostor)


def test_image_quality_of_identical_and_changed_images():
    images = np.random.default_rng(0).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    ssim, psnr = metrics.image_quality(images, images)
    np.testing.assert_allclose(ssim, 1.0, atol=1e-6)
    assert np.isinf(psnr).all()
    shifted = np.clip(images + 0.1, 0, 1)
    quality = metrics.mean_quality(images, shifted)
    assert quality["ssim"] < 1 and 18 < quality["psnr"] < 25  # MSE <= 0.01: PSNR >= 20 dB.
