"""Tests for semiadv.align.dlib_detector (HOG faces, 5-point landmarks): need the [dlib] extra."""

import concurrent.futures

import cv2
import numpy as np
import pytest
from _align_photos import celeba_sample, link_celeba, needs_dlib

from semiadv.align import detector as detector_lib
from semiadv.align import dlib_detector, face, folder, geometry, haar, registry
from semiadv.utils import imageio

pytestmark = needs_dlib


def _eyes_measured_on_crop(detector, crop):
    """Landmark eye centres on an aligned crop, from the face box its canonical eyes imply."""
    (left_x, eye_y), (right_x, _) = geometry.canonical_eye_points(crop.shape[0])
    (box_left, box_eyes), (box_right, _) = detector_lib.EYES_IN_FACE_BOX
    # The Haar-convention box whose predicted eyes are the canonical ones.
    width = (right_x - left_x) / (box_right - box_left)
    box = (round(left_x + 0.5 - box_left * width), round(eye_y + 0.5 - box_eyes * width), round(width), round(width))
    return detector.landmark_eyes(crop, box)


def test_dlib_puts_celeba_eyes_on_the_canonical_points(shared_faces):
    detector = registry.make_detector("dlib")
    size = 96  # big enough for the predictor to measure eyes to a pixel on the crop
    canonical = geometry.canonical_eye_points(size)
    errors, by_landmarks = [], 0
    for path in celeba_sample(shared_faces, 12):
        result = face.align_face(imageio.read_image(path), size, detector)
        assert result.status in ("aligned", "fallback"), path
        if result.eyes_from != "landmarks":
            continue
        by_landmarks += 1
        # The detected eyes map onto the canonical points exactly (the warp)...
        np.testing.assert_allclose(geometry.apply_affine(result.transform, result.eyes), canonical, atol=1e-6)
        # ...and the crop shows the eyes there (the landmarks were right).
        measured = _eyes_measured_on_crop(detector, result.crop)
        assert measured is not None, path
        errors.append(np.abs(np.array(measured) - canonical).max())
    assert by_landmarks >= 11, by_landmarks
    assert np.median(errors) <= 1.5 and max(errors) <= 4.0, errors


def test_dlib_threads_align_what_one_thread_aligns(shared_faces):
    photos = [imageio.read_image(p) for p in celeba_sample(shared_faces, 6)]
    alone = [face.align_face(rgb, 32, registry.make_detector("dlib")) for rgb in photos]
    # Two threads at once, each with its own detector from default_detector("dlib").
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda rgb: face.align_face(rgb, 32, registry.default_detector("dlib")), photos * 2))
    for one, other in zip(alone * 2, together):
        assert (one.status, one.eyes_from) == (other.status, other.eyes_from)
        if one.crop is not None:
            np.testing.assert_array_equal(one.crop, other.crop)
    assert sum(r.eyes_from == "landmarks" for r in alone) >= 5


def test_dlib_folder_report_names_detector_and_eye_sources(shared_faces, tmp_path):
    photos = link_celeba(celeba_sample(shared_faces, 8), tmp_path / "photos")
    report = folder.align_folder(photos, tmp_path / "aligned", 32, progress=False, detector_name="dlib")
    assert report["detector"] == "dlib"
    aligned = [entry for entry in report["files"].values() if entry["status"] == "aligned"]
    assert sum(report["eyes_from"].values()) == len(aligned) == report["counts"]["aligned"]
    assert report["eyes_from"].get("landmarks", 0) >= 7
    assert all(entry["eyes_from"] in ("landmarks", "cascade") for entry in aligned)


class _CountingHaar:
    """The Haar fallback, counting its whole-photo face searches and its confirmations."""

    def __init__(self):
        self.haar = haar.HaarFaceDetector()
        self.face_searches = 0
        self.confirmations = []

    def detect_faces(self, gray):
        self.face_searches += 1
        return self.haar.detect_faces(gray)

    def confirms_face(self, gray, face_box):
        self.confirmations.append(self.haar.confirms_face(gray, face_box))
        return self.confirmations[-1]

    def detect_eyes(self, gray, face_box):
        return self.haar.detect_eyes(gray, face_box)


def _weak_face_photos(shared_faces, count):
    """Photos (grayscale) in which HOG finds faces only below dlib's threshold of 0."""
    import dlib

    hog = dlib.get_frontal_face_detector()
    weak = []
    for path in sorted((shared_faces / "celeba_identities").glob("*/*.jpg"))[::7]:
        gray = cv2.cvtColor(imageio.read_image(path), cv2.COLOR_RGB2GRAY)
        runs = [hog.run(gray, upsample, dlib_detector.DLIB_CANDIDATE_THRESHOLD) for upsample in (0, 1)]
        scores = [score for _, run_scores, _ in runs for score in run_scores]
        if scores and max(scores) < 0:
            weak.append(gray)
            if len(weak) == count:
                break
    return weak


# Slow (~12 s of dlib searches on real photos); dlib is no longer the default detector.
@pytest.mark.slow
def test_dlib_takes_a_weak_hog_face_the_cascade_confirms_before_searching_with_haar(shared_faces):
    photos = _weak_face_photos(shared_faces, 8)
    assert len(photos) == 8
    taken = 0
    for gray in photos:
        counting = _CountingHaar()
        detector = dlib_detector.DlibFaceDetector(haar=counting)  # weak faces are on by default
        boxes = detector.detect_faces(gray)
        if counting.face_searches == 0:  # a candidate was taken: one face, landmarks and cascade agree
            taken += 1
            assert len(boxes) == 1 and detector.landmark_eyes(gray, boxes[0]) is not None
            assert counting.confirmations[-1] is True
        else:  # every plausible candidate was refused by the cascade first
            assert True not in counting.confirmations
        # Without candidates, the same photo goes straight to the cascades.
        strict = _CountingHaar()
        dlib_detector.DlibFaceDetector(haar=strict, candidate_threshold=None).detect_faces(gray)
        assert strict.face_searches == 1 and strict.confirmations == []
    # The cascade confirms some of these weak faces; the rest go on to the whole-photo cascades.
    assert taken >= 3, taken


def test_dlib_weak_face_with_implausible_landmarks_falls_back_to_haar(shared_faces, monkeypatch):
    (gray,) = _weak_face_photos(shared_faces, 1)
    counting = _CountingHaar()
    detector = dlib_detector.DlibFaceDetector(haar=counting)
    # As for a false face: the landmarks never look like eyes.
    monkeypatch.setattr(detector, "landmark_eyes", lambda gray, box: None)
    assert detector.detect_faces(gray) == counting.haar.detect_faces(gray)
    assert counting.face_searches == 1 and counting.confirmations == []


def test_dlib_takes_no_weak_face_in_noise_even_with_face_like_landmarks(monkeypatch):
    # HOG finds weak "faces" in noise, and a landmark check alone can pass them. Here the
    # landmark check is made to pass every time and candidates go down to -1 (the default
    # stops at -0.8): only the cascade stands between noise and a face.
    rng = np.random.default_rng(0)
    detector = dlib_detector.DlibFaceDetector(candidate_threshold=-1.0)
    candidates = []
    real_run = detector._hog.run

    class _Hog:
        def run(self, gray, upsample, threshold):
            rectangles, scores, kinds = real_run(gray, upsample, threshold)
            candidates.extend(score for score in scores if score < 0)
            return rectangles, scores, kinds

    detector._hog = _Hog()
    monkeypatch.setattr(detector, "landmark_eyes", lambda gray, box: ((0.0, 0.0), (1.0, 0.0)))
    faces = 0
    for blur in (0.0, 1.5):
        for side in [64] * 30 + [128] * 30:
            noise = rng.integers(0, 256, (side, side), dtype=np.uint8)
            if blur:
                noise = cv2.GaussianBlur(noise, (0, 0), blur)
            faces += len(detector.detect_faces(noise)) > 0
    assert len(candidates) >= 40, len(candidates)  # weak HOG "faces" in noise are common
    assert faces == 0


def test_dlib_candidate_threshold_must_not_exceed_dlibs():
    with pytest.raises(ValueError, match="candidate_threshold"):
        dlib_detector.DlibFaceDetector(candidate_threshold=0.5)
