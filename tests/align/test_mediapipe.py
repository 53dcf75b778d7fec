"""Tests for semiadv.align.mediapipe (BlazeFace and Face Mesh): need the [mediapipe] extra."""

import concurrent.futures
import importlib.util

import cv2
import numpy as np
import pytest
from _align_photos import celeba_sample

from semiadv.align import dlib_models, face, geometry, registry
from semiadv.align import mediapipe as mp
from semiadv.config import DataConfig
from semiadv.data import synthetic
from semiadv.utils import imageio

needs_mediapipe = pytest.mark.skipif(not mp.mediapipe_available(),
                                     reason=f"MediaPipe models not installed: {mp.MEDIAPIPE_INSTALL}")


@pytest.fixture(scope="module")
def detector():
    if not mp.mediapipe_available():
        pytest.skip(f"MediaPipe models not installed: {mp.MEDIAPIPE_INSTALL}")
    return mp.MediaPipeFaceDetector()


@pytest.fixture(scope="module")
def synthetic_faces():
    """uint8 128x128 drawn faces: the first three, which BlazeFace finds."""
    images = synthetic.make_faces(2, 2, 128, 3)["image"][:3]
    return (images * 255).round().astype(np.uint8)


def test_anchors_follow_mediapipes_grids():
    short, full = mp.ssd_anchors(mp.BLAZEFACE_MODELS["short"]), mp.ssd_anchors(mp.BLAZEFACE_MODELS["full"])
    # The models' own output sizes: 16x16 cells x 2 + 8x8 cells x 6; 48x48 cells x 1.
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    np.testing.assert_allclose(short[0], short[1])
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[2], [1.5 / 16, 0.5 / 16])  # along the row first
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(short[-1], [7.5 / 8, 7.5 / 8])
    np.testing.assert_allclose(full[[0, 1, 48, -1]], [[0.5 / 48, 0.5 / 48], [1.5 / 48, 0.5 / 48],
                                                      [0.5 / 48, 1.5 / 48], [47.5 / 48, 47.5 / 48]])


def test_decode_detections_offsets_boxes_and_keypoints_from_their_anchor():
    model = mp.BLAZEFACE_MODELS["short"]
    anchors = mp.ssd_anchors(model)
    regressors = np.zeros((896, 16), np.float32)
    logits = np.full(896, -5.0, np.float32)
    # Anchor 2 (centre 12/128, 4/128 of the side): centre moved by (+8, -2) px, 32x16 px,
    # keypoint 0 at +4 px right of the anchor, keypoint 1 at 2 px down.
    regressors[2, :4] = (8, -2, 32, 16)
    regressors[2, 4:8] = (4, 0, 0, 2)
    logits[2] = 2.0
    boxes, keypoints, scores = mp.decode_detections(regressors, logits, anchors, model)
    assert boxes.shape == (1, 4) and keypoints.shape == (1, 6, 2)
    np.testing.assert_allclose(boxes[0] * 128, [20 - 16, 2 - 8, 20 + 16, 2 + 8])
    np.testing.assert_allclose(keypoints[0, :2] * 128, [[16, 4], [12, 6]])
    np.testing.assert_allclose(scores, [1 / (1 + np.exp(-2.0))])


def test_weighted_nms_merges_overlaps_by_score_and_keeps_separate_faces():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    keypoints = np.zeros((3, 6, 2))
    keypoints[1] += 3.0
    scores = np.array([0.9, 0.6, 0.7])
    faces = mp.weighted_nms(boxes, keypoints, scores)
    assert [round(score, 2) for _, _, score in faces] == [0.9, 0.7]
    np.testing.assert_allclose(faces[0][0], [0.4, 0, 10.4, 10])  # 0.6 / 1.5 of the 1-px shift
    np.testing.assert_allclose(faces[0][1], np.full((6, 2), 1.2))
    np.testing.assert_allclose(faces[1][0], boxes[2])


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(ImportError, match=r"pip install -e \"\.\[mediapipe\]\""):
        mp.MediaPipeFaceDetector()
    assert not mp.mediapipe_available()


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="'medium'"):
        mp.MediaPipeFaceDetector(models=("full", "medium"))
    with pytest.raises(ValueError, match="sequence"):
        mp.MediaPipeFaceDetector(models="full")
    with pytest.raises(ValueError, match="'iris'"):
        mp.MediaPipeFaceDetector(eyes="iris")


def test_no_face_in_noise_or_blank_images(detector):
    rng = np.random.default_rng(1)
    # Enough noise that the short-range model alone takes some of it for faces (Face Mesh's
    # confirmation is what drops those).
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for size in (40, 64, 128, 256) * 10]
    images += [np.full((96, 160, 3), value, np.uint8) for value in (0, 128, 255)]
    for image in images:
        assert detector.detect_faces(image) == []
        assert face.align_face(image, 32, detector).status == "no_face"


def test_faces_have_boxes_in_the_photo_and_eyes_left_to_right(detector, synthetic_faces):
    for image in synthetic_faces:
        boxes = detector.detect_faces(image)
        assert len(boxes) == 1
        x, y, width, height = boxes[0]
        assert 0 <= x and 0 <= y and x + width <= 128 and y + height <= 128 and width >= 50
        (lx, ly), (rx, ry) = detector.detect_eyes(image, boxes[0])
        assert x < lx < rx < x + width and abs(ly - ry) < 0.2 * width
        assert y + 0.2 * height < ly < y + 0.6 * height


def test_two_faces_side_by_side_are_both_found_largest_first(detector, synthetic_faces):
    # Another face on the right, zoomed in 8/7 so it is the larger one.
    closer = cv2.resize(synthetic_faces[1][8:120, 8:120], (128, 128), interpolation=cv2.INTER_AREA)
    photo = np.concatenate([synthetic_faces[0], closer], axis=1)
    boxes = detector.detect_faces(photo)
    assert len(boxes) == 2
    assert boxes[0][2] > boxes[1][2]
    assert boxes[0][0] + boxes[0][2] / 2 > 128 > boxes[1][0] + boxes[1][2] / 2
    for box in boxes:
        (lx, _), (rx, _) = detector.detect_eyes(photo, box)
        assert box[0] < lx < rx < box[0] + box[2]
    # align_face crops the largest: the right-hand face.
    result = face.align_face(photo, 32, detector)
    assert result.status == "aligned" and result.eyes_from == "keypoints"
    assert min(result.eyes[0][0], result.eyes[1][0]) > 128


def test_short_range_model_finds_what_the_full_range_one_misses(detector):
    # A drawn face that only the short-range model finds (the face fills most of the image).
    image = (synthetic.make_faces(2, 2, 128, 3)["image"][3] * 255).round().astype(np.uint8)
    assert mp.MediaPipeFaceDetector(models=("full",)).detect_faces(image) == []
    boxes = detector.detect_faces(image)
    assert len(boxes) == 1 and boxes[0][2] >= 50
    assert face.align_face(image, 32, detector).status == "aligned"


def test_face_mesh_eyes_agree_with_the_keypoints(synthetic_faces):
    if not mp.mediapipe_available():
        pytest.skip(f"MediaPipe models not installed: {mp.MEDIAPIPE_INSTALL}")
    keypoints, mesh = mp.MediaPipeFaceDetector(), mp.MediaPipeFaceDetector(eyes="mesh")
    assert mesh.eyes_from == "mesh"
    for image in synthetic_faces:
        box = keypoints.detect_faces(image)[0]
        assert mesh.detect_faces(image) == [box]
        from_keypoints = np.array(keypoints.detect_eyes(image, box))
        from_mesh = np.array(mesh.detect_eyes(image, box))
        # The same eyes, measured two ways: a few pixels apart on a 70-px face.
        assert np.abs(from_mesh - from_keypoints).max() < 0.08 * box[2]


def test_offset_eyes_moves_each_eye_in_the_faces_own_frame():
    # Level eyes 10 px apart: along = +x, across = +y (down), in units of 10 px.
    moved = mp.offset_eyes([[10, 5], [0, 5]], ((0.1, 0.2), (-0.3, 0.4)))
    np.testing.assert_allclose(moved, [[1, 7], [7, 9]])  # sorted: the image's left eye first
    # The same face turned by 60 degrees and twice as large: the offsets turn and grow with it,
    # so moving the eyes commutes with a similarity transform of the photo.
    turn = cv2.getRotationMatrix2D((3.0, 1.0), -60.0, 2.0)
    eyes = np.array([[0.0, 5.0], [10.0, 5.0]])
    offsets = ((0.1, 0.2), (-0.3, 0.4))
    np.testing.assert_allclose(geometry.apply_affine(turn, mp.offset_eyes(eyes, offsets)),
                               mp.offset_eyes(geometry.apply_affine(turn, eyes), offsets))
    np.testing.assert_allclose(mp.offset_eyes(eyes, ((0, 0), (0, 0))), eyes)


def test_keypoints_of_close_ups_get_their_own_offsets():
    far, close = mp.KEYPOINT_EYE_OFFSETS, mp.CLOSE_UP_KEYPOINT_EYE_OFFSETS
    assert far != close
    # A 200x200 UTKFace-like crop, eyes 75 px apart: a close-up; 40 px apart: not.
    assert mp.keypoint_offsets([[60, 60], [135, 60]], (200, 200, 3)) == close
    assert mp.keypoint_offsets([[60, 60], [100, 60]], (200, 200, 3)) == far
    # The longer side counts (the letterboxed input sees it).
    assert mp.keypoint_offsets([[60, 60], [135, 60]], (200, 400, 3)) == far


def test_detector_moves_its_keypoints_and_not_its_mesh_eyes(synthetic_faces):
    if not mp.mediapipe_available():
        pytest.skip(f"MediaPipe models not installed: {mp.MEDIAPIPE_INSTALL}")
    raw, moved = mp.MediaPipeFaceDetector(move_keypoints=False), mp.MediaPipeFaceDetector()
    for image in synthetic_faces:
        box = raw.detect_faces(image)[0]
        assert moved.detect_faces(image) == [box]
        keypoints = np.array(raw.detect_eyes(image, box))
        expected = mp.offset_eyes(keypoints, mp.keypoint_offsets(keypoints, image.shape))
        np.testing.assert_allclose(moved.detect_eyes(image, box), expected)
        assert np.abs(expected - keypoints).max() > 0.2  # pixels: it did move them
    mesh = mp.MediaPipeFaceDetector(eyes="mesh")
    raw_mesh = mp.MediaPipeFaceDetector(eyes="mesh", move_keypoints=False)
    for image in synthetic_faces:
        box = mesh.detect_faces(image)[0]
        assert raw_mesh.detect_faces(image) == [box]
        np.testing.assert_allclose(mesh.detect_eyes(image, box), raw_mesh.detect_eyes(image, box))


@needs_mediapipe
def test_moved_keypoints_frame_real_faces_like_dlibs_eye_corners(shared_faces):
    """On UTKFace crops outside the offsets' fit (BENCHMARKS.md §9h), the keypoints' mean
    offset from dlib's eye-corner means, in the face's frame, shrinks once they are moved."""
    if not dlib_models.dlib_available():
        pytest.skip(f"dlib not installed: {dlib_models.DLIB_INSTALL}")
    from semiadv.align.dlib_detector import DlibFaceDetector

    photos = sorted((shared_faces / "utkface").glob("*.jpg"))[50::2000]
    dlib, raw = DlibFaceDetector(), mp.MediaPipeFaceDetector(move_keypoints=False)
    moved = mp.MediaPipeFaceDetector()
    raw_offsets, moved_offsets, raw_errors, moved_errors = [], [], [], []
    for path in photos:
        image = imageio.read_image(path)
        reference = face.align_face(image, 200, dlib)
        keypoints, corrected = face.align_face(image, 200, raw), face.align_face(image, 200, moved)
        sources = (reference.eyes_from, keypoints.eyes_from, corrected.eyes_from)
        if sources != ("landmarks", "keypoints", "keypoints"):
            continue
        reference_eyes = np.array(reference.eyes)
        distance = np.linalg.norm(reference_eyes[1] - reference_eyes[0])
        for eyes, offsets, errors in ((keypoints.eyes, raw_offsets, raw_errors),
                                      (corrected.eyes, moved_offsets, moved_errors)):
            eyes = np.array(eyes)
            offsets.append((reference_eyes - eyes) / distance)
            errors.append(np.linalg.norm(reference_eyes - eyes, axis=1).mean() / distance)
    assert len(raw_offsets) >= 10, len(raw_offsets)
    raw_bias = np.linalg.norm(np.median(raw_offsets, axis=0), axis=1)
    moved_bias = np.linalg.norm(np.median(moved_offsets, axis=0), axis=1)
    # In eye distances, on these 12 faces: median offsets per eye 4.8% and 10.3% before, 2.6%
    # and 7.9% after; median eye error 8.9% before, 6.6% after (237 faces: 8.3% and 6.8%).
    assert (raw_bias > 0.03).all() and (moved_bias < raw_bias - 0.015).all(), (raw_bias, moved_bias)
    assert np.median(moved_errors) < 0.85 * np.median(raw_errors), (raw_errors, moved_errors)


@needs_mediapipe
def test_registry_makes_one_per_thread_with_its_own_revision():
    assert "mediapipe" in registry.DETECTORS
    assert isinstance(registry.make_detector("mediapipe"), mp.MediaPipeFaceDetector)
    # 2 since its keypoint eyes are moved (§9h): crops cached by revision 1 are not reused.
    assert registry.DETECTOR_REVISIONS["mediapipe"] >= 2
    assert DataConfig(align_detector="mediapipe").align_detector == "mediapipe"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        ids = set(pool.map(lambda _: (id(registry.default_detector("mediapipe")),
                                      id(registry.default_detector("mediapipe"))), range(8)))
    assert all(first == second for first, second in ids)


@needs_mediapipe
def test_threads_align_what_one_thread_aligns(synthetic_faces):
    alone = [face.align_face(image, 32, registry.make_detector("mediapipe")) for image in synthetic_faces]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda image: face.align_face(image, 32, registry.default_detector("mediapipe")),
                                 list(synthetic_faces) * 3))
    for one, other in zip(alone * 3, together):
        assert one.status == other.status == "aligned"
        np.testing.assert_array_equal(one.crop, other.crop)


@needs_mediapipe
def test_mediapipe_crops_and_eye_aligns_celeba_photos(shared_faces):
    detector = mp.MediaPipeFaceDetector()
    statuses = []
    for path in celeba_sample(shared_faces, 36):
        result = face.align_face(imageio.read_image(path), 64, detector)
        statuses.append(result.status)
        if result.status == "aligned":
            np.testing.assert_allclose(geometry.apply_affine(result.transform, result.eyes),
                                       geometry.canonical_eye_points(64), atol=1e-6)
    assert statuses.count("no_face") <= 1, statuses
    assert statuses.count("aligned") >= 34, statuses


@needs_mediapipe
@pytest.mark.parametrize("level, shown", [("0", True), ("1", False), ("3", False)])
def test_litert_info_line_follows_tf_cpp_min_log_level(level, shown):
    """LiteRT writes "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ when a
    model is allocated; it is hidden when TF_CPP_MIN_LOG_LEVEL hides TensorFlow's C++ INFO
    lines (the binaries set 3 unless SEMIADV_VERBOSE=1), and stderr works again after."""
    import os
    import subprocess
    import sys

    code = ("import sys, numpy as np\n"
            "from semiadv.align import mediapipe as mp\n"
            "mp.MediaPipeFaceDetector().detect_faces(np.zeros((64, 64), np.uint8))\n"
            "print('after', file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level})
    assert run.returncode == 0, run.stderr
    assert ("XNNPACK delegate" in run.stderr) == shown, run.stderr
    assert run.stderr.rstrip().endswith("after")
