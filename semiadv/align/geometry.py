"""Where the eyes go in a crop, and the similarity transforms and warps that put them there.

Crops are framed like UTKFace's aligned crops, so user photos, CelebA photos and UTKFace share
one framing and the gender prototypes built from UTKFace apply to all of them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Where the eyes sit in UTKFace's 200x200 aligned crops, as fractions of the crop side in
# continuous coordinates (pixel i covers [i, i + 1)): the median eyes HaarFaceDetector finds in
# UTKFace's crops, (59, 59) and (134, 59) in pixel-index coordinates. UTKFace's crops are
# slightly off-centre (eye midpoint at x = 0.485): kept, so our crops match theirs.
CANONICAL_LEFT_EYE = (0.2975, 0.2975)
CANONICAL_RIGHT_EYE = (0.6725, 0.2975)


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


def apply_affine(matrix: np.ndarray, points) -> np.ndarray:
    """Applies a [2, 3] affine matrix to points, returned as float64 [N, 2]."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_to_canonical(rgb: np.ndarray, eyes: np.ndarray, image_size: int) -> tuple[np.ndarray, np.ndarray]:
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


def plausible_eye_pair(eyes, face_box, min_distance: float, max_distance: float,
                       max_tilt_degrees: float):
    """The two eye centres sorted left to right, or None if they do not fit a face in the box.

    A detector's landmarks are returned even for a false face: a pair is kept only when the
    eyes are `min_distance` to `max_distance` of the box width apart, the line between them is
    within `max_tilt_degrees` of level, and their midpoint lies inside the box.

    Args:
      eyes: two (x, y) points in any order.
      face_box: (x, y, width, height) of the face.
    """
    (lx, ly), (rx, ry) = sorted(tuple(map(float, point)) for point in eyes)
    x, y, width, height = face_box
    distance = math.hypot(rx - lx, ry - ly)
    if not min_distance * width <= distance <= max_distance * width:
        return None
    if abs(math.degrees(math.atan2(ry - ly, rx - lx))) > max_tilt_degrees:
        return None
    if not (x <= (lx + rx) / 2 <= x + width and y <= (ly + ry) / 2 <= y + height):
        return None
    return (lx, ly), (rx, ry)
