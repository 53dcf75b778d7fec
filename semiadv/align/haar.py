"""The face detector built on OpenCV's Haar cascades (always installed).

Faces: face cascade passes run in order on the histogram-equalised image until one finds
something. Eyes: both eye cascades run on the upper part of the face box (upscaled if small),
and the plausible pair closest to where eyes usually are wins.

A `HaarFaceDetector` must not be shared between threads: OpenCV's cascade classifiers keep
scratch state between the stages of a detection (`semiadv.align.registry.default_detector`
keeps one per thread).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from semiadv.align import detector
from semiadv.align.detector import Box, EyePair, Point


@dataclasses.dataclass(frozen=True)
class CascadePass:
    """One run of a face cascade.

    Attributes:
      cascade: file name in `cv2.data.haarcascades`.
      scale_factor: image pyramid step; smaller finds more, slower.
      min_neighbors: overlapping hits needed; smaller finds more, and more
        false faces.
    """

    cascade: str
    scale_factor: float = 1.1
    min_neighbors: int = 3


# Tried in order until one finds a face: alt2 is the most precise frontal
# cascade; default finds some faces alt2 misses; the looser alt2 pass last.
DEFAULT_FACE_PASSES = (
    CascadePass("haarcascade_frontalface_alt2.xml", 1.1, 3),
    CascadePass("haarcascade_frontalface_default.xml", 1.1, 5),
    CascadePass("haarcascade_frontalface_alt2.xml", 1.1, 1),
)
DEFAULT_EYE_CASCADES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
# (scale_factor, min_neighbors) of the eye search, the looser run only when the first finds no
# plausible pair. Tuned on CelebA faces: the looser settings find a pair for more faces, and
# the cheaper 1.1/2 first keeps the common case fast.
DEFAULT_EYE_PASSES = ((1.1, 2), (1.05, 1))


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    """Loads a cascade shipped with OpenCV (a fresh one: threads must not share one)."""
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(f"cannot load Haar cascade {str(path)!r}")
    return cascade


class HaarFaceDetector:
    """FaceDetector with OpenCV's Haar cascades (see the module docstring).

    Not thread-safe: one per thread, as `registry.default_detector` does.
    """

    # What `AlignResult.eyes_from` says for eyes this detector found.
    eyes_from = "cascade"

    def __init__(
        self,
        face_passes: Sequence[CascadePass] = DEFAULT_FACE_PASSES,
        eye_cascades: Sequence[str] = DEFAULT_EYE_CASCADES,
        eye_passes: Sequence[tuple[float, int]] = DEFAULT_EYE_PASSES,
        min_face_fraction: float = 0.05,
        eye_region_width: int = 150,
    ):
        """Loads the cascades.

        Args:
          face_passes: face cascade runs, tried in order.
          eye_cascades: eye cascade files, whose hits are pooled.
          eye_passes: (scale_factor, min_neighbors) eye searches, tried in
            order until one yields a plausible pair.
          min_face_fraction: smallest face side, as a fraction of the
            image's shorter side (smaller hits are mostly false faces).
          eye_region_width: face regions narrower than this many pixels are
            upscaled to it before eye detection (eye cascades need ~20 px
            eyes).
        """
        self._face_passes = tuple((_load_cascade(p.cascade), p) for p in face_passes)
        self._eye_cascades = tuple(_load_cascade(name) for name in eye_cascades)
        self._eye_passes = tuple(eye_passes)
        self._min_face_fraction = min_face_fraction
        self._eye_region_width = eye_region_width

    def detect_faces(self, gray: np.ndarray) -> list[Box]:
        """See FaceDetector."""
        equalized = cv2.equalizeHist(gray)
        min_side = max(20, int(self._min_face_fraction * min(gray.shape[:2])))
        # detectMultiScale is a scan (the cost) then a grouping of its raw hits that drops
        # groups of at most min_neighbors hits (cheap). Passes that differ only in
        # min_neighbors (alt2 at 3, then at 1) share one scan.
        scans = {}
        for cascade, settings in self._face_passes:
            key = (settings.cascade, settings.scale_factor)
            if key not in scans:
                scans[key] = cascade.detectMultiScale(
                    equalized, scaleFactor=settings.scale_factor, minNeighbors=0,
                    minSize=(min_side, min_side))
            boxes = group_hits(scans[key], settings.min_neighbors)
            if len(boxes):
                return [tuple(int(v) for v in box) for box in boxes]
        return []

    def confirms_face(self, gray: np.ndarray, face_box: Box) -> bool:
        """Whether the first face cascade finds a face where another detector put one.

        One scan of the box's surroundings (half its side around it), at 0.6-1.6x its side,
        with no grouping (any raw hit counts): the hit's centre must lie in the box. Far
        cheaper than a cascade pass over the whole photo.
        """
        x, y, width, height = face_box
        pad = width // 2
        left, top = max(0, x - pad), max(0, y - pad)
        right, bottom = min(gray.shape[1], x + width + pad), min(gray.shape[0], y + height + pad)
        smallest, largest = max(20, int(0.6 * width)), int(1.6 * width)
        if min(right - left, bottom - top) < smallest or largest < smallest:
            return False
        region = cv2.equalizeHist(np.ascontiguousarray(gray[top:bottom, left:right]))
        cascade, settings = self._face_passes[0]
        hits = cascade.detectMultiScale(region, scaleFactor=settings.scale_factor, minNeighbors=0,
                                        minSize=(smallest, smallest), maxSize=(largest, largest))
        return any(x <= left + hx + hw / 2 <= x + width and y <= top + hy + hh / 2 <= y + height
                   for hx, hy, hw, hh in hits)

    def detect_eyes(self, gray: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """See FaceDetector."""
        x, y, width, height = face_box
        # Eyes sit between 25% and 50% of a Haar face box's height; searching
        # only the band around that is faster and rules out nostrils and
        # mouth corners.
        top, bottom = max(0, y + int(0.1 * height)), min(gray.shape[0], y + int(0.6 * height))
        left, right = max(0, x), min(gray.shape[1], x + width)
        if bottom - top < 8 or right - left < 8:
            return None
        region = cv2.equalizeHist(gray[top:bottom, left:right])
        scale = max(1.0, self._eye_region_width / width)
        if scale > 1.0:
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        for scale_factor, min_neighbors in self._eye_passes:
            hits = self._eye_hits(region, scale_factor, min_neighbors, min_eye=0.1 * width * scale, max_eye=0.45 * width * scale)
            # Hit centres, back in pixel-index coordinates of the full image.
            centres = [(left + cx / scale - 0.5, top + cy / scale - 0.5) for cx, cy in hits]
            pair = _best_eye_pair(centres, face_box)
            if pair is not None:
                return pair
        return None

    def _eye_hits(
        self, region: np.ndarray, scale_factor: float, min_neighbors: int, min_eye: float, max_eye: float
    ) -> list[Point]:
        """Centres (continuous coordinates) of all eye-cascade hits in a region."""
        min_side = max(8, int(min_eye))
        max_side = max(min_side + 1, int(max_eye))
        centres = []
        for cascade in self._eye_cascades:
            hits = cascade.detectMultiScale(
                region,
                scaleFactor=scale_factor,
                minNeighbors=min_neighbors,
                minSize=(min_side, min_side),
                maxSize=(max_side, max_side),
            )
            for ex, ey, ew, eh in hits:
                centres.append((ex + ew / 2, ey + eh / 2))
        return centres


def group_hits(raw_hits, min_neighbors: int):
    """What detectMultiScale(minNeighbors=min_neighbors) returns, from its raw hits.

    The raw hits are those of detectMultiScale(minNeighbors=0). This is OpenCV's own final
    step (cascadedetect.cpp: groupRectangles with eps 0.2): clusters of at most
    `min_neighbors` hits are dropped, the rest averaged. It lets passes that differ only in
    min_neighbors share one scan.
    """
    if len(raw_hits) == 0 or min_neighbors <= 0:
        return raw_hits
    boxes, _ = cv2.groupRectangles([list(map(int, box)) for box in raw_hits], min_neighbors, 0.2)
    return boxes


def _best_eye_pair(candidates: Sequence[Point], face_box: Box) -> Optional[EyePair]:
    """Picks the plausible (left, right) pair closest to the expected eyes.

    Plausible: one eye on each side of the face's vertical midline, both in
    the upper 55% of the box, 25-65% of the box width apart, and the line
    through them within 25 degrees of horizontal.
    """
    x, y, width, height = face_box
    midline = x + width / 2
    expected_left, expected_right = detector.predicted_eyes(face_box)
    best_pair, best_cost = None, math.inf
    for left in (c for c in candidates if c[0] < midline):
        for right in (c for c in candidates if c[0] >= midline):
            dx, dy = right[0] - left[0], right[1] - left[1]
            if not 0.25 * width <= math.hypot(dx, dy) <= 0.65 * width:
                continue
            if abs(math.degrees(math.atan2(dy, dx))) > 25.0:
                continue
            if max(left[1], right[1]) > y + 0.55 * height:
                continue
            cost = math.dist(left, expected_left) ** 2 + math.dist(right, expected_right) ** 2
            if cost < best_cost:
                best_pair, best_cost = (left, right), cost
    return best_pair
