"""Metric functions on plain numpy arrays: gender error and ROC-AUC, matching ROC and TMR@FMR,
pair construction, and image quality (SSIM, PSNR).

Scores follow one convention everywhere: higher means "more likely male" for gender and "more
likely the same person" for matching.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


# ---------------------------------------------------------------------------------------------
# Gender.
# ---------------------------------------------------------------------------------------------


def known_gender(male: np.ndarray) -> np.ndarray:
    """Boolean mask of the examples whose gender label is 0 or 1 (not -1)."""
    male = np.asarray(male)
    return (male == 0) | (male == 1)


def error_rate(male_probability: np.ndarray, male: np.ndarray, threshold: float = 0.5) -> float:
    """Share of examples of known gender whose thresholded prediction is wrong.

    Args:
      male_probability: [N] probability of male.
      male: [N] labels, 1 male, 0 female, -1 unknown (left out).
      threshold: a probability at or above it predicts male.

    Returns:
      The error rate in [0, 1], or NaN when no example has a known gender.
    """
    known = known_gender(male)
    if not known.any():
        return float("nan")
    predicted = np.asarray(male_probability)[known] >= threshold
    return float(np.mean(predicted != (np.asarray(male)[known] == 1)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Area under the ROC curve: P(positive score > negative score), ties counting one half.

    Computed from ranks (Mann-Whitney U), so it is exact and O(n log n).

    Returns:
      The AUC in [0, 1], or NaN when either set is empty.
    """
    positive = np.asarray(positive_scores, np.float64).ravel()
    negative = np.asarray(negative_scores, np.float64).ravel()
    if not len(positive) or not len(negative):
        return float("nan")
    ranks = _average_ranks(np.concatenate([positive, negative]))
    rank_sum = ranks[:len(positive)].sum()
    u = rank_sum - len(positive) * (len(positive) + 1) / 2.0
    return float(u / (len(positive) * len(negative)))


def gender_auc(male_probability: np.ndarray, male: np.ndarray) -> float:
    """ROC-AUC of male detection over the examples of known gender."""
    known = known_gender(male)
    scores, labels = np.asarray(male_probability)[known], np.asarray(male)[known]
    return roc_auc(scores[labels == 1], scores[labels == 0])


def roc_curve(positive_scores: np.ndarray, negative_scores: np.ndarray):
    """The ROC curve, one point per distinct threshold, from (0, 0) to (1, 1).

    Returns:
      (false_positive_rate, true_positive_rate): float arrays of equal length, non-decreasing.
      For matching these are FMR and TMR.
    """
    positive = np.asarray(positive_scores, np.float64).ravel()
    negative = np.asarray(negative_scores, np.float64).ravel()
    scores = np.concatenate([positive, negative])
    is_positive = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    order = np.argsort(-scores, kind="mergesort")
    scores, is_positive = scores[order], is_positive[order]
    # One point after each group of tied scores: a threshold cannot split ties.
    last_of_group = np.r_[scores[1:] != scores[:-1], True]
    true_positives = np.cumsum(is_positive)[last_of_group]
    false_positives = np.cumsum(1 - is_positive)[last_of_group]
    tpr = np.r_[0.0, true_positives / max(len(positive), 1)]
    fpr = np.r_[0.0, false_positives / max(len(negative), 1)]
    return fpr, tpr


# ---------------------------------------------------------------------------------------------
# Matching.
# ---------------------------------------------------------------------------------------------


def tmr_at_fmr(genuine_scores: np.ndarray, impostor_scores: np.ndarray, fmr: float) -> float:
    """True-match rate at the strictest threshold whose false-match rate is at most `fmr`.

    A pair matches when its score is strictly above the threshold. With impostor scores sorted
    high to low, at most k = floor(fmr * n_impostors) impostors may match, so the threshold is
    the (k+1)-th highest impostor score. With fewer than 1/fmr impostor pairs k is 0 and the
    value is the TMR at FMR = 0 (stricter than asked): callers report the pair counts.

    Returns:
      The TMR in [0, 1], or NaN when either set is empty.
    """
    genuine = np.asarray(genuine_scores, np.float64).ravel()
    impostor = np.sort(np.asarray(impostor_scores, np.float64).ravel())[::-1]
    if not len(genuine) or not len(impostor):
        return float("nan")
    allowed = int(np.floor(fmr * len(impostor) + 1e-9))
    if allowed >= len(impostor):
        return 1.0
    return float(np.mean(genuine > impostor[allowed]))


def similarity(probe_embeddings: np.ndarray, gallery_embeddings: np.ndarray,
               pairs: np.ndarray) -> np.ndarray:
    """Negative squared distance between L2-normalised embeddings of each (probe, gallery) pair.

    Normalising first makes matchers with any embedding scale comparable; on unit vectors
    -||a - b||^2 = 2 cos(a, b) - 2, so the ranking is the cosine similarity's.

    Args:
      probe_embeddings: [N, D].
      gallery_embeddings: [M, D].
      pairs: int [P, 2] of (probe index, gallery index).

    Returns:
      float [P] scores, higher = more alike.
    """
    probe = _unit(probe_embeddings)[pairs[:, 0]]
    gallery = _unit(gallery_embeddings)[pairs[:, 1]]
    return -np.sum((probe - gallery) ** 2, axis=1)


def _unit(embeddings: np.ndarray) -> np.ndarray:
    embeddings = np.asarray(embeddings, np.float64)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def make_pairs(identity: np.ndarray | None, num_examples: int, impostors_per_probe: int,
               seed: int = 0):
    """Genuine and impostor (probe, gallery) index pairs over one set of photos.

    With identities (`identity[i] >= 0`), the probe i is matched against the originals of the
    OTHER photos of the same person (genuine) and of other people (impostors); probes with no
    other photo of themselves are left out. Without identities (None), the gallery mate of
    probe i is the original of photo i itself (a weaker test: the photo is the same).

    Impostors are subsampled to at most `impostors_per_probe` per probe, with a fixed seed, so
    the cost stays linear in the number of photos and every condition and matcher is scored
    on the very same pairs.

    Returns:
      (genuine, impostor): int64 arrays [P, 2] of (probe index, gallery index).
    """
    rng = np.random.default_rng(seed)
    indices = np.arange(num_examples)
    genuine, impostor = [], []
    for probe in indices:
        if identity is None:
            mates = np.array([probe])
            others = indices[indices != probe]
        else:
            if identity[probe] < 0:
                continue
            same = identity == identity[probe]
            mates = indices[same & (indices != probe)]
            others = indices[~same & (identity >= 0)]
            if not len(mates):
                continue
        genuine += [(probe, mate) for mate in mates]
        if len(others) > impostors_per_probe:
            others = rng.choice(others, impostors_per_probe, replace=False)
        impostor += [(probe, other) for other in others]
    as_pairs = lambda rows: np.asarray(rows, np.int64).reshape(-1, 2)  # noqa: E731
    return as_pairs(genuine), as_pairs(impostor)


def matching_metrics(genuine_scores: np.ndarray, impostor_scores: np.ndarray,
                     fmrs=(0.01, 0.001)) -> dict:
    """{"auc", "tmr_at_fmr": {str(fmr): tmr}} of one matcher in one condition."""
    return {"auc": roc_auc(genuine_scores, impostor_scores),
            "tmr_at_fmr": {str(f): tmr_at_fmr(genuine_scores, impostor_scores, f) for f in fmrs}}


# ---------------------------------------------------------------------------------------------
# Image quality.
# ---------------------------------------------------------------------------------------------


def image_quality(originals: np.ndarray, outputs: np.ndarray, batch_size: int = 256):
    """Per-image SSIM and PSNR (max_val=1) of outputs against their originals.

    SSIM uses TensorFlow's 11x11 Gaussian window, so images must be at least 11 pixels wide.
    Identical images give SSIM 1 and PSNR inf.

    Returns:
      (ssim, psnr): float arrays [N].
    """
    ssim, psnr = [], []
    for start in range(0, len(originals), batch_size):
        a = tf.constant(originals[start:start + batch_size], tf.float32)
        b = tf.constant(outputs[start:start + batch_size], tf.float32)
        ssim.append(tf.image.ssim(a, b, max_val=1.0).numpy())
        psnr.append(tf.image.psnr(a, b, max_val=1.0).numpy())
    return np.concatenate(ssim), np.concatenate(psnr)


def mean_quality(originals: np.ndarray, outputs: np.ndarray) -> dict:
    """{"ssim", "psnr"}: means over images (PSNR inf only if every image is unchanged)."""
    ssim, psnr = image_quality(originals, outputs)
    finite = psnr[np.isfinite(psnr)]
    # An unchanged image has infinite PSNR; averaging it in would hide every other image.
    mean_psnr = float(finite.mean()) if len(finite) else float("inf")
    return {"ssim": float(ssim.mean()), "psnr": mean_psnr}
