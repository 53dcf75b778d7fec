"""Naive privacy baselines (Gaussian blur, pixelation) and the search for their strength.

A baseline is only a fair comparison at equal cost to recognition: its strength is chosen so
that a matcher's TMR@FMR=1% on blurred (or pixelated) probes is as close as possible to the
SAN's on X'_OP. The report then shows what each loses in gender privacy at that point.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.evaluation import evaluators, metrics, plugins
from semiadv.evaluation.matching import FMRS, MatchingSet, pair_scores


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Blurs [N, H, W, C] images with a Gaussian of `sigma` pixels (0: unchanged).

    Separable, reflect-padded, so the borders do not darken.
    """
    if sigma <= 0:
        return np.asarray(images, np.float32)
    height, width = images.shape[1:3]
    radius = min(int(math.ceil(3 * sigma)), height - 1, width - 1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).astype(np.float32)
    channels = images.shape[-1]
    x = tf.constant(images, tf.float32)
    x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    rows = tf.constant(np.tile(kernel[:, None, None, None], (1, 1, channels, 1)))
    columns = tf.constant(np.tile(kernel[None, :, None, None], (1, 1, channels, 1)))
    x = tf.nn.depthwise_conv2d(x, rows, strides=[1, 1, 1, 1], padding="VALID")
    x = tf.nn.depthwise_conv2d(x, columns, strides=[1, 1, 1, 1], padding="VALID")
    return x.numpy()


def pixelate(images: np.ndarray, block: int) -> np.ndarray:
    """Replaces each `block` x `block` cell by its mean colour (1: unchanged).

    Sizes that do not divide by `block` are averaged with area resampling to
    ceil(size / block) cells, then blown back up with nearest-neighbour.
    """
    block = int(block)
    if block <= 1:
        return np.asarray(images, np.float32)
    height, width = images.shape[1:3]
    cells = (max(1, math.ceil(height / block)), max(1, math.ceil(width / block)))
    small = tf.image.resize(tf.constant(images, tf.float32), cells, method="area")
    return tf.image.resize(small, (height, width), method="nearest").numpy()


BASELINES = {"blur": gaussian_blur, "pixelate": pixelate}


def strength_candidates(kind: str, image_size: int) -> np.ndarray:
    """The strengths searched: sigma in pixels for blur, block size for pixelation."""
    if kind == "blur":
        # Up to half the face: by then nothing is recognisable at any size.
        return np.round(np.linspace(0.0, image_size / 2.0, 65), 4)
    if kind == "pixelate":
        return np.arange(1, image_size // 2 + 1)
    raise ValueError(f"unknown baseline {kind!r}: use {sorted(BASELINES)}")


def search_strength(measure: Callable[[float], float], target: float,
                    candidates: Sequence[float]):
    """The candidate strength whose measure is closest to `target`, by bisection.

    Assumes `measure` does not increase with the strength (more blur, fewer matches), so
    about log2(len(candidates)) + 2 evaluations suffice; every value measured is kept and the
    closest of them is returned, which also copes with small non-monotone wiggles.

    Args:
      measure: strength -> value (e.g. the matcher's TMR@FMR=1% after the baseline).
      target: the value to reach (e.g. the SAN's TMR on X'_OP).
      candidates: strengths in increasing order.

    Returns:
      (strength, value, evaluated): the best candidate, its value and a list of
      (strength, value) of every evaluation, in the order made.
    """
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidate strengths to search")
    evaluated: dict[int, float] = {}

    def value_at(index):
        if index not in evaluated:
            evaluated[index] = float(measure(candidates[index]))
        return evaluated[index]

    low, high = 0, len(candidates) - 1
    if value_at(low) <= target:
        high = low  # Even the weakest is at or below the target.
    elif value_at(high) >= target:
        low = high  # Even the strongest stays above it.
    while high - low > 1:
        middle = (low + high) // 2
        if value_at(middle) > target:
            low = middle
        else:
            high = middle
    best = min(evaluated, key=lambda i: (abs(evaluated[i] - target), i))
    history = [(candidates[i], value) for i, value in evaluated.items()]
    return candidates[best], evaluated[best], history


def reference_matcher(matchers, matching: dict):
    """The (name, matcher) the SAN never saw that recognises the original photos best, or None.

    The baselines are set to cost recognition as much as the SAN's OP does. Against a matcher
    near chance on the originals that says nothing (any strength "matches" it), so the
    strongest unseen matcher, independent or plugged in, sets the bar; the first in order
    among equals. Never a seen one (auxiliary, or a plug-in with `seen = True`, like
    dlib's): the SAN was trained to keep exactly what that matcher reads, so calibrating
    there would flatter the SAN against the baselines.

    Args:
      matchers: (name, matcher) pairs.
      matching: the matching section (`matching.matching_section`) of those matchers.
    """
    def original_tmr(entry):
        return matching[entry[0]]["conditions"]["original"]["tmr_at_fmr"][str(FMRS[0])]

    unseen = [entry for entry in matchers if not evaluators.is_seen(entry[1])]
    return max(unseen, key=original_tmr) if unseen else None


def choose_baselines(reference, pairs: MatchingSet, target: float, image_size: int,
                     batch_size: int) -> dict:
    """The blur and pixelation strengths whose TMR@FMR=1% is closest to `target`.

    Args:
      reference: the (name, matcher) pair to calibrate on (`reference_matcher`).
      pairs: the matching set.
      target: the TMR@FMR=1% to reach (the SAN's on OP).
      image_size: the faces' side, which bounds the strengths searched.
      batch_size: faces per matcher call.

    Returns:
      {kind: {"parameter", "strength", "tmr", "search"}}.
    """
    _, matcher = reference

    def embed(faces):
        return plugins.apply(matcher, faces, batch_size)

    gallery = embed(pairs.images["original"])
    chosen = {}
    for kind, transform in BASELINES.items():
        def measure(strength, transform=transform):
            genuine, impostor = pair_scores(embed, transform(pairs.images["original"], strength),
                                            gallery, pairs)
            return metrics.tmr_at_fmr(genuine, impostor, FMRS[0])

        strength, value, history = search_strength(
            measure, target, strength_candidates(kind, image_size))
        logging.info("baseline %s: strength %g gives TMR@1%%FMR %.3f (target %.3f)", kind,
                     strength, value, target)
        chosen[kind] = {"parameter": "sigma" if kind == "blur" else "block",
                        "strength": float(strength), "tmr": value,
                        "search": [[float(s), v] for s, v in history]}
    return chosen
