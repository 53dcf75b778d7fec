"""Tests for semiadv.align.face: detection views, statuses and the warp of one photo."""

import math

import cv2
import numpy as np
import pytest
from _align_photos import UTKFACE, needs_utkface

from semiadv.align import detector, face, geometry, registry
from semiadv.utils import imageio


class StubDetector:
    """A FaceDetector that returns fixed answers, to test the geometry alone."""

    def __init__(self, faces, eyes=None):
        self.faces = list(faces)
        self.eyes = eyes
        self.calls = 0

    def detect_faces(self, gray):
        self.calls += 1
        return list(self.faces)

    def detect_eyes(self, gray, face_box):
        return self.eyes


def _blob_image(height, width, centres, sigma=2.0):
    """A black RGB image with a Gaussian white blob at each (x, y) centre."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.zeros((height, width))
    for cx, cy in centres:
        image += np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
    gray = np.clip(image * 255, 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, np.newaxis], 3, axis=2)


def _blob_centre(crop, near, radius):
    """Intensity-weighted centroid of the crop around `near` (x, y)."""
    gray = crop[:, :, 0].astype(np.float64)
    ys, xs = np.mgrid[0 : gray.shape[0], 0 : gray.shape[1]]
    mask = (xs - near[0]) ** 2 + (ys - near[1]) ** 2 <= radius**2
    weights = gray * mask
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


# --------------------------------------------------------------------------
# Stub detectors, no data needed.


@pytest.mark.parametrize("image_size", [32, 200])  # 32: shrink through INTER_AREA; 200: direct warp
def test_aligned_eyes_land_on_canonical_points(image_size):
    eyes = ((100.0, 130.0), (160.0, 110.0))  # tilted by -18 degrees
    image = _blob_image(240, 300, eyes, sigma=3.0)
    result = face.align_face(image, image_size, StubDetector([(70, 70, 120, 120)], eyes))
    assert result.status == "aligned"
    assert result.crop.shape == (image_size, image_size, 3) and result.crop.dtype == np.uint8
    assert result.eyes == eyes and result.face_box == (70, 70, 120, 120)
    canonical = geometry.canonical_eye_points(image_size)
    np.testing.assert_allclose(geometry.apply_affine(result.transform, eyes), canonical, atol=1e-9)
    radius = 0.15 * image_size
    for found, expected in zip((_blob_centre(result.crop, point, radius) for point in canonical), canonical):
        np.testing.assert_allclose(found, expected, atol=0.05 * image_size / 32 + 0.3)


def test_fallback_frames_the_face_box_like_an_aligned_crop():
    box = (40, 30, 100, 100)
    result = face.align_face(_blob_image(200, 200, []), 64, StubDetector([box], eyes=None))
    assert result.status == "fallback" and result.eyes is None and result.face_box == box
    assert result.crop.shape == (64, 64, 3)
    # The eyes expected in the box go where aligned eyes go; no rotation.
    predicted = detector.predicted_eyes(box)
    np.testing.assert_allclose(geometry.apply_affine(result.transform, predicted), geometry.canonical_eye_points(64), atol=1e-9)
    assert abs(result.transform[0, 1]) < 1e-12


def test_largest_face_wins():
    small, large = (5, 5, 30, 30), (60, 40, 80, 80)
    result = face.align_face(np.zeros((160, 160, 3), np.uint8), 32, StubDetector([small, large, small]))
    assert result.face_box == large


def test_align_faces_aligns_every_face_largest_first():
    eyes = {(10, 10, 40, 40): ((22.0, 25.0), (38.0, 25.0)), (80, 20, 60, 60): ((98.0, 43.0), (122.0, 43.0))}

    class TwoFaces(StubDetector):
        def detect_eyes(self, gray, face_box):
            return eyes.get(tuple(face_box))

    image = np.zeros((120, 160, 3), np.uint8)
    small, large = (10, 10, 40, 40), (80, 20, 60, 60)
    inside_large = (85, 25, 40, 40)  # The same face found twice: dropped.
    results = face.align_faces(image, 32, TwoFaces([small, inside_large, large]))
    assert [r.face_box for r in results] == [large, small]
    assert [r.status for r in results] == ["aligned", "aligned"]
    for result in results:
        np.testing.assert_allclose(geometry.apply_affine(result.transform, result.eyes),
                                   geometry.canonical_eye_points(32), atol=1e-9)
    # The largest is what align_face returns, crop and all.
    single = face.align_face(image, 32, TwoFaces([small, inside_large, large]))
    assert single.face_box == results[0].face_box and np.array_equal(single.crop, results[0].crop)
    assert [r.face_box for r in face.align_faces(image, 32, TwoFaces([small, large]), max_faces=1)] == [large]
    assert face.align_faces(image, 32, StubDetector([])) == []
    with pytest.raises(ValueError, match="max_faces"):
        face.align_faces(image, 32, StubDetector([]), max_faces=0)


def test_no_face_from_detector_and_from_noise():
    stub = StubDetector([])
    result = face.align_face(np.zeros((100, 120, 3), np.uint8), 32, stub)
    assert result.status == "no_face" and result.crop is None and result.face_box is None
    assert stub.calls == 1 + len(face.ROTATED_VIEW_ANGLES) + 1  # upright, rotated, upscaled views
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert face.align_face(noise, 32).status == "no_face"


def test_large_input_is_downscaled_for_detection_only():
    stub = StubDetector([(80, 80, 100, 100)], eyes=None)
    result = face.align_face(np.zeros((2000, 3000, 3), np.uint8), 48, stub)
    # The box came from a view 640 px wide: it maps back x 3000 / 640 = 4.6875
    # (375 + 468.75 = 843.75 is rounded outwards to 844).
    assert result.face_box == (375, 375, 469, 469)
    assert result.crop.shape == (48, 48, 3)


def test_align_face_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        face.align_face(np.zeros((10, 10), np.uint8), 32, StubDetector([]))
    with pytest.raises(ValueError, match="image_size"):
        face.align_face(np.zeros((10, 10, 3), np.uint8), 0, StubDetector([]))


# --------------------------------------------------------------------------
# Real photos.


# Median shift of the crop's centre (px at 200 px) allowed per detector. BlazeFace's eye
# keypoints are moved onto dlib's eye-corner means, on which UTKFace's framing was measured
# (BENCHMARKS.md §9h: 6.7 px on these photos, 6.8 unmoved); what is left is each face's own
# keypoint scatter.
CANONICAL_SHIFT_PX = {"dlib": 6.0, "mediapipe": 7.0}


@needs_utkface
@pytest.mark.parametrize("name", sorted(CANONICAL_SHIFT_PX))
def test_utkface_crops_are_already_canonical(name):
    """Aligning a UTKFace crop onto UTKFace's framing is close to identity."""
    try:
        aligner = registry.make_detector(name)
    except ImportError as error:
        pytest.skip(str(error))
    paths = sorted(UTKFACE.glob("*.jpg"))[::1500][:16]
    scales, shifts = [], []
    for path in paths:
        result = face.align_face(imageio.read_image(path), 200, aligner)
        if result.status == "aligned":
            scales.append(math.sqrt(np.linalg.det(result.transform[:, :2])))
            shifts.append(np.hypot(*geometry.apply_affine(result.transform, [[99.5, 99.5]])[0] - 99.5))
    assert len(scales) >= 10, f"only {len(scales)} of {len(paths)} UTKFace crops eye-aligned"
    assert 0.9 < np.median(scales) < 1.12, scales
    assert np.median(shifts) < CANONICAL_SHIFT_PX[name], shifts


@needs_utkface
def test_tilted_face_is_found_and_straightened():
    for path in sorted(UTKFACE.glob("*.jpg"))[:10]:
        image = imageio.read_image(path)
        upright = face.align_face(image, 64)
        if upright.status == "aligned":
            break
    assert upright.status == "aligned", "none of the first 10 UTKFace crops eye-aligned"
    image = cv2.copyMakeBorder(image, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
    rotation = cv2.getRotationMatrix2D((159.5, 159.5), 28.0, 1.0)  # tilted past the upright cascade's reach
    tilted = face.align_face(cv2.warpAffine(image, rotation, (320, 320), borderMode=cv2.BORDER_REPLICATE), 64)
    assert tilted.status in ("aligned", "fallback")
    # The tilt's matrix has atan2(m10, m00) = -28 degrees; the crop's transform
    # undoes it, so its own angle is close to +28.
    angle = math.degrees(math.atan2(tilted.transform[1, 0], tilted.transform[0, 0]))
    assert abs(angle - 28.0) < 6.0, angle
    if tilted.status == "aligned":
        # The eyes found in the tilted photo, mapped back, are the upright ones.
        untilted = geometry.apply_affine(cv2.invertAffineTransform(rotation), tilted.eyes) - 60.0
        np.testing.assert_allclose(untilted, upright.eyes, atol=8.0)
