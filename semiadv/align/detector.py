"""The face detector interface, and the face-box convention every detector returns.

A detector finds face boxes and eye pairs in a grayscale image. Every detector returns boxes
in `HaarFaceDetector`'s convention (`semiadv.align.haar`), so that one table of where the eyes
sit in a box (`EYES_IN_FACE_BOX`) serves them all: it frames a crop when no eyes are found and
guides the choice among eye candidates.
"""

from __future__ import annotations

from typing import Optional, Protocol

import numpy as np

Point = tuple[float, float]
EyePair = tuple[Point, Point]
# (x, y, width, height) in pixels, as OpenCV's detectors return them.
Box = tuple[int, int, int, int]

# Where HaarFaceDetector's eyes sit inside its face box, as fractions of the box: medians over
# CelebA identity photos with a face and a plausible eye pair, with the two heights averaged so
# that a crop framed from the box alone is not tilted.
EYES_IN_FACE_BOX = ((0.297, 0.382), (0.687, 0.382))


class FaceDetector(Protocol):
    """Finds faces and eyes in a grayscale uint8 image.

    Points and boxes are in the pixel coordinates of the image passed in; boxes in
    HaarFaceDetector's convention (see the module docstring).

    A detector with a true `wants_rgb` attribute is given uint8 [H, W, 3] RGB images instead
    (MediaPipe's models read colour). A detector may also have an `eyes_from` attribute (what `AlignResult.eyes_from` says for
    eyes it found; "detector" if it has none) or a `locate_eyes(gray, face_box)` method
    returning (eyes, what found them), when it finds eyes in more than one way.
    """

    def detect_faces(self, gray: np.ndarray) -> list[Box]:
        """Returns every face box found (possibly none), any order."""

    def detect_eyes(self, gray: np.ndarray, face_box: Box) -> Optional[EyePair]:
        """Returns (left_eye, right_eye) centres, or None.

        "Left" is the eye on the image's left (smaller x), i.e. the person's
        right eye. None unless the pair is plausible for that face.
        """


def predicted_eyes(face_box: Box) -> EyePair:
    """Where the eyes usually are in a face box (pixel-index coordinates)."""
    x, y, width, height = face_box
    (lx, ly), (rx, ry) = EYES_IN_FACE_BOX
    return (x + lx * width - 0.5, y + ly * height - 0.5), (x + rx * width - 0.5, y + ry * height - 0.5)
