"""Aligning one photo: detect the largest face (or every face) and its eyes, warp, crop.

`align_face` tries several detection views of the photo (upright, rotated for tilted heads,
upscaled for small faces) and warps the photo with a similarity transform that puts the eyes on
`geometry.canonical_eye_points` ("aligned", with `eyes_from` saying whether landmarks or eye
cascades found the eyes); without a plausible eye pair it crops around the face box with the
same framing ("fallback"); with no face it returns "no_face". `align_faces` does the same for every face of the first
view that has one, largest first (the photo output of `semiadv-perturb` edits them all).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import cv2
import numpy as np

from semiadv.align import detector as detector_lib
from semiadv.align import geometry, registry
from semiadv.align.detector import Box, EyePair, FaceDetector

STATUSES = ("aligned", "fallback", "no_face")

# Detection runs on a copy whose longer side is at most this: Haar cascades
# need ~24 px faces, and full-resolution photos would make every cascade pass slow.
DETECTION_MAX_SIDE = 640
# Tilted heads defeat upright cascades; these extra views (degrees) are only
# tried when the upright view finds no face.
ROTATED_VIEW_ANGLES = (-25.0, 25.0)
# Faces in full-body shots are ~20 px in a 256-px photo, below the cascades'
# window; an upscaled view (only when the photo is small) finds them.
UPSCALED_VIEW_FACTOR = 2.0
# Boxes overlapping a larger face's box by more than this (intersection over the smaller box)
# are the same face found twice: editing it twice would double its change.
DUPLICATE_OVERLAP = 0.5
# The default of `align_faces`: enough for a group photo, few enough to bound the work.
DEFAULT_MAX_FACES = 16


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


def _checked_input(rgb: np.ndarray, image_size: int) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"align_face needs a uint8 [H, W, 3] image, got {rgb.dtype} {rgb.shape}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    return rgb


def align_face(rgb: np.ndarray, image_size: int, detector: Optional[FaceDetector] = None) -> AlignResult:
    """Detects the largest face and aligns it to the canonical eye points.

    Args:
      rgb: uint8 [H, W, 3] RGB image (as `imageio.read_image` returns).
      image_size: side of the square output crop.
      detector: a FaceDetector; defaults to the calling thread's
        `registry.default_detector()`.

    Returns:
      An AlignResult (see its statuses).

    Raises:
      ValueError: if `rgb` is not a uint8 [H, W, 3] array or image_size < 1.
    """
    rgb = _checked_input(rgb, image_size)
    detector = detector or registry.default_detector()
    detections = _detect(_detector_view(rgb, detector), detector, max_faces=1)
    if not detections:
        return AlignResult(crop=None, status="no_face")
    return _aligned(rgb, detections[0], image_size)


def align_faces(rgb: np.ndarray, image_size: int, detector: Optional[FaceDetector] = None,
                max_faces: int = DEFAULT_MAX_FACES) -> list[AlignResult]:
    """Detects up to `max_faces` faces and aligns each like `align_face`, largest first.

    The faces are those of the first detection view that finds any (see the module
    docstring), so the largest of them is the face `align_face` returns. A box that mostly
    lies inside a larger one (`DUPLICATE_OVERLAP`) is taken as the same face.

    Args:
      rgb: uint8 [H, W, 3] RGB image.
      image_size: side of each square crop.
      detector: a FaceDetector; defaults to the calling thread's
        `registry.default_detector()`.
      max_faces: the most faces returned (>= 1).

    Returns:
      One AlignResult per face ("aligned" or "fallback"), largest face box first; an empty
      list when there is no face.

    Raises:
      ValueError: if `rgb` is not a uint8 [H, W, 3] array, image_size < 1 or max_faces < 1.
    """
    rgb = _checked_input(rgb, image_size)
    if max_faces < 1:
        raise ValueError(f"max_faces must be positive, got {max_faces}")
    detector = detector or registry.default_detector()
    detections = _detect(_detector_view(rgb, detector), detector, max_faces)
    return [_aligned(rgb, detection, image_size) for detection in detections]


def _detector_view(rgb: np.ndarray, detector: FaceDetector) -> np.ndarray:
    # Detectors with `wants_rgb` (MediaPipe's models read colour) get colour views.
    return rgb if getattr(detector, "wants_rgb", False) else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _aligned(rgb: np.ndarray, detection: _Detection, image_size: int) -> AlignResult:
    """The crop of one detection: eye-aligned when it has eyes, else framed from its box."""
    corners = detection.face_corners
    # Rounded outwards, with a tolerance so 374.9999999 (float noise from
    # inverting the view transform) is still 375.
    low, high = np.floor(corners.min(axis=0) + 1e-6), np.ceil(corners.max(axis=0) - 1e-6)
    face_box = (int(low[0]), int(low[1]), int(high[0] - low[0]), int(high[1] - low[1]))
    if detection.eyes is not None:
        crop, matrix = geometry.warp_to_canonical(rgb, detection.eyes, image_size)
        eyes = tuple((float(px), float(py)) for px, py in detection.eyes)
        return AlignResult(crop=crop, status="aligned", face_box=face_box, eyes=eyes, transform=matrix,
                           eyes_from=detection.eyes_from)
    crop, matrix = geometry.warp_to_canonical(rgb, detection.predicted_eyes, image_size)
    return AlignResult(crop=crop, status="fallback", face_box=face_box, transform=matrix)


def _distinct_largest(boxes: list[Box], max_faces: int) -> list[Box]:
    """Up to `max_faces` boxes, largest first, without boxes mostly inside a kept one."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b[2] * b[3], reverse=True):
        if len(kept) == max_faces:
            break
        if not any(_overlap_of_smaller(box, other) > DUPLICATE_OVERLAP for other in kept):
            kept.append(box)
    return kept


def _overlap_of_smaller(box: Box, other: Box) -> float:
    """Intersection area over the smaller box's area."""
    width = min(box[0] + box[2], other[0] + other[2]) - max(box[0], other[0])
    height = min(box[1] + box[3], other[1] + other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return 0.0
    return width * height / max(min(box[2] * box[3], other[2] * other[3]), 1)


def _detect(image: np.ndarray, detector: FaceDetector, max_faces: int) -> list[_Detection]:
    """The largest faces (up to `max_faces`, largest first) of the first view where there is
    one (gray or RGB image); none when no view has a face."""
    for view_matrix, view_size in _detection_views(image.shape):
        view = _render_view(image, view_matrix, view_size)
        boxes = detector.detect_faces(view)
        if not boxes:
            continue
        to_input = cv2.invertAffineTransform(view_matrix)
        return [_detection(view, box, to_input, detector)
                for box in _distinct_largest(list(boxes), max_faces)]
    return []


def _detection(view: np.ndarray, box: Box, to_input: np.ndarray, detector: FaceDetector) -> _Detection:
    """One face box of a view, its eyes located, mapped back to input coordinates."""
    x, y, width, height = box
    corners = np.array([[x, y], [x + width, y], [x + width, y + height], [x, y + height]], dtype=np.float64)
    if hasattr(detector, "locate_eyes"):
        eyes, eyes_from = detector.locate_eyes(view, box)
    else:
        eyes = detector.detect_eyes(view, box)
        eyes_from = None if eyes is None else getattr(detector, "eyes_from", "detector")
    return _Detection(
        face_corners=geometry.apply_affine(to_input, corners),
        eyes=None if eyes is None else geometry.apply_affine(to_input, eyes),
        predicted_eyes=geometry.apply_affine(to_input, detector_lib.predicted_eyes(box)),
        eyes_from=eyes_from,
    )


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
    """Resamples the input (grayscale, or RGB for a `wants_rgb` detector) into a detection view."""
    if np.allclose(matrix, [[1, 0, 0], [0, 1, 0]]) and size == (gray.shape[1], gray.shape[0]):
        return gray
    if matrix[0, 1] == 0 and matrix[1, 0] == 0:  # pure scaling
        interpolation = cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR
        return cv2.resize(gray, size, interpolation=interpolation)
    return cv2.warpAffine(gray, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
