"""Tests for semiadv.align.aligner: geometry, statuses, folders, and real photos."""

import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from semiadv.align import aligner as align
from semiadv.utils import imageio

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
UTKFACE = SHARED_FACES / "utkface"
CELEBA = SHARED_FACES / "celeba_identities"
needs_utkface = pytest.mark.skipif(not UTKFACE.is_dir(), reason=f"UTKFace photos not found at {UTKFACE}")
needs_celeba = pytest.mark.skipif(not CELEBA.is_dir(), reason=f"CelebA identity photos not found at {CELEBA}")


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


class BrightnessDetector:
    """Decides by mean brightness: bright -> eyes, mid -> face only, dark -> nothing."""

    def detect_faces(self, gray):
        return [] if gray.mean() < 60 else [(10, 10, 40, 40)]

    def detect_eyes(self, gray, face_box):
        return ((22.0, 25.0), (38.0, 25.0)) if gray.mean() > 180 else None


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
# Geometry, no data needed.


def test_similarity_from_points_exact_for_two_points():
    # (0, 0) -> (10, 20) and (1, 0) -> (10, 22): rotate 90 degrees, scale 2.
    matrix = align.similarity_from_points([[0, 0], [1, 0]], [[10, 20], [10, 22]])
    np.testing.assert_allclose(matrix, [[0, -2, 10], [2, 0, 20]], atol=1e-12)


def test_similarity_from_points_recovers_a_known_transform_from_many_points():
    angle, scale, shift = math.radians(-17.0), 0.6, np.array([3.5, -8.25])
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = np.array([[0, 0], [40, 3], [12, 50], [-7, 21], [30, 30]], dtype=np.float64)
    dst = src @ linear.T + shift
    np.testing.assert_allclose(align.similarity_from_points(src, dst), np.hstack([linear, shift[:, None]]), atol=1e-12)


def test_similarity_from_points_rejects_bad_points():
    with pytest.raises(ValueError, match="coincide"):
        align.similarity_from_points([[1, 1], [1, 1]], [[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="shapes"):
        align.similarity_from_points([[1, 1]], [[0, 0]])


def test_canonical_eye_points_scale_with_the_crop():
    np.testing.assert_allclose(align.canonical_eye_points(200), [[59.0, 59.0], [134.0, 59.0]])
    # Same framing at every size, in continuous coordinates (index + 0.5).
    np.testing.assert_allclose((align.canonical_eye_points(64) + 0.5) / 64, (align.canonical_eye_points(200) + 0.5) / 200)


@pytest.mark.parametrize("image_size", [32, 200])  # 32: shrink through INTER_AREA; 200: direct warp
def test_aligned_eyes_land_on_canonical_points(image_size):
    eyes = ((100.0, 130.0), (160.0, 110.0))  # tilted by -18 degrees
    image = _blob_image(240, 300, eyes, sigma=3.0)
    result = align.align_face(image, image_size, StubDetector([(70, 70, 120, 120)], eyes))
    assert result.status == "aligned"
    assert result.crop.shape == (image_size, image_size, 3) and result.crop.dtype == np.uint8
    assert result.eyes == eyes and result.face_box == (70, 70, 120, 120)
    canonical = align.canonical_eye_points(image_size)
    np.testing.assert_allclose(align._apply(result.transform, eyes), canonical, atol=1e-9)
    radius = 0.15 * image_size
    for found, expected in zip((_blob_centre(result.crop, point, radius) for point in canonical), canonical):
        np.testing.assert_allclose(found, expected, atol=0.05 * image_size / 32 + 0.3)


def test_fallback_frames_the_face_box_like_an_aligned_crop():
    box = (40, 30, 100, 100)
    result = align.align_face(_blob_image(200, 200, []), 64, StubDetector([box], eyes=None))
    assert result.status == "fallback" and result.eyes is None and result.face_box == box
    assert result.crop.shape == (64, 64, 3)
    # The eyes expected in the box go where aligned eyes go; no rotation.
    predicted = align._predicted_eyes(box)
    np.testing.assert_allclose(align._apply(result.transform, predicted), align.canonical_eye_points(64), atol=1e-9)
    assert abs(result.transform[0, 1]) < 1e-12


def test_largest_face_wins():
    small, large = (5, 5, 30, 30), (60, 40, 80, 80)
    result = align.align_face(np.zeros((160, 160, 3), np.uint8), 32, StubDetector([small, large, small]))
    assert result.face_box == large


def test_no_face_from_detector_and_from_noise():
    stub = StubDetector([])
    result = align.align_face(np.zeros((100, 120, 3), np.uint8), 32, stub)
    assert result.status == "no_face" and result.crop is None and result.face_box is None
    assert stub.calls == 1 + len(align.ROTATED_VIEW_ANGLES) + 1  # upright, rotated, upscaled views
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert align.align_face(noise, 32).status == "no_face"


def test_large_input_is_downscaled_for_detection_only():
    stub = StubDetector([(80, 80, 100, 100)], eyes=None)
    result = align.align_face(np.zeros((2000, 3000, 3), np.uint8), 48, stub)
    # The box came from a view 640 px wide: it maps back x 3000 / 640 = 4.6875
    # (375 + 468.75 = 843.75 is rounded outwards to 844).
    assert result.face_box == (375, 375, 469, 469)
    assert result.crop.shape == (48, 48, 3)


def test_align_face_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        align.align_face(np.zeros((10, 10), np.uint8), 32, StubDetector([]))
    with pytest.raises(ValueError, match="image_size"):
        align.align_face(np.zeros((10, 10, 3), np.uint8), 0, StubDetector([]))


# --------------------------------------------------------------------------
# Folders, no data needed.


@pytest.fixture
def photo_folder(tmp_path):
    """Bright (aligned), mid (fallback), dark (no face) and broken files."""
    root = tmp_path / "photos"
    for relative, value in (("a/bright.jpg", 230), ("a/b/mid.png", 120), ("dark.jpg", 10), ("bright2.png", 220)):
        imageio.write_image(root / relative, np.full((64, 80, 3), value, np.uint8))
    (root / "a" / "notes.jpg").write_text("not a photo")
    (root / "empty.png").touch()
    good = (root / "dark.jpg").read_bytes()
    (root / "a" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    return root


def test_align_folder_report_layout_and_names(photo_folder, tmp_path):
    output = tmp_path / "aligned"
    report = align.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
    assert report["image_size"] == 24
    assert report["counts"] == {"aligned": 2, "fallback": 1, "no_face": 1, "unreadable": 3}
    files = report["files"]
    assert sorted(files) == ["a/b/mid.png", "a/bright.jpg", "a/notes.jpg", "a/truncated.jpg", "bright2.png", "dark.jpg", "empty.png"]
    # A detector without `eyes_from` is named generically.
    assert files["a/bright.jpg"] == {"status": "aligned", "eyes_from": "detector"}
    assert report["eyes_from"] == {"detector": 2}
    assert report["detector"] == "BrightnessDetector"
    assert files["a/b/mid.png"] == {"status": "fallback"}
    assert files["dark.jpg"] == {"status": "no_face"}
    assert "not an image" in files["a/notes.jpg"]["error"]
    assert "truncated" in files["a/truncated.jpg"]["error"]
    assert "empty" in files["empty.png"]["error"]
    assert all(entry["status"] == "unreadable" for name, entry in files.items() if "error" in entry)
    written = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    assert written == ["a/b/mid.png", "a/bright.jpg", "align_report.json", "bright2.png"]
    assert imageio.read_image(output / "a" / "b" / "mid.png").shape == (24, 24, 3)
    np.testing.assert_array_equal(imageio.read_image(output / "bright2.png"), 220)  # PNG stays lossless
    assert json.loads((output / "align_report.json").read_text()) == report


def test_align_folder_refuses_its_input_folder(photo_folder):
    before = sorted(photo_folder.rglob("*"))
    with pytest.raises(ValueError, match="input folder"):
        align.align_folder(photo_folder, photo_folder / "." / "a" / "..", 24, detector=BrightnessDetector())
    assert sorted(photo_folder.rglob("*")) == before


def test_align_folder_inside_input_skips_its_own_output(photo_folder):
    output = photo_folder / "aligned"
    align.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
    report = align.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
    assert sum(report["counts"].values()) == 7
    assert not any(name.startswith("aligned/") for name in report["files"])


def test_align_folder_empty_or_missing_input(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match=r"no images in .*empty"):
        align.align_folder(tmp_path / "empty", tmp_path / "out", 24, detector=BrightnessDetector())
    with pytest.raises(FileNotFoundError, match="missing"):
        align.align_folder(tmp_path / "missing", tmp_path / "out", 24, detector=BrightnessDetector())
    assert not (tmp_path / "out").exists()


def test_align_folder_logs_progress(photo_folder, tmp_path, caplog):
    # The absl logger: exporting (Keras) may have left it at WARNING in this session.
    with caplog.at_level(logging.INFO, logger="absl"):
        align.align_folder(photo_folder, tmp_path / "out", 24, detector=BrightnessDetector(), progress_every=3)
    lines = [r.getMessage() for r in caplog.records if "files/s" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == ["aligned 3/7 files", "aligned 6/7 files", "aligned 7/7 files"]
    assert "ETA" in lines[0]


# --------------------------------------------------------------------------
# Real photos.


@needs_utkface
def test_utkface_crops_are_already_canonical():
    """Aligning a UTKFace crop onto UTKFace's framing is close to identity."""
    paths = sorted(UTKFACE.glob("*.jpg"))[::1500][:16]
    scales, shifts = [], []
    for path in paths:
        result = align.align_face(imageio.read_image(path), 200)
        if result.status == "aligned":
            scales.append(math.sqrt(np.linalg.det(result.transform[:, :2])))
            shifts.append(np.hypot(*align._apply(result.transform, [[99.5, 99.5]])[0] - 99.5))
    assert len(scales) >= 10, f"only {len(scales)} of {len(paths)} UTKFace crops eye-aligned"
    assert 0.9 < np.median(scales) < 1.12, scales
    assert np.median(shifts) < 6.0


@needs_utkface
def test_tilted_face_is_found_and_straightened():
    for path in sorted(UTKFACE.glob("*.jpg"))[:10]:
        image = imageio.read_image(path)
        upright = align.align_face(image, 64)
        if upright.status == "aligned":
            break
    assert upright.status == "aligned", "none of the first 10 UTKFace crops eye-aligned"
    image = cv2.copyMakeBorder(image, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
    rotation = cv2.getRotationMatrix2D((159.5, 159.5), 28.0, 1.0)  # tilted past the upright cascade's reach
    tilted = align.align_face(cv2.warpAffine(image, rotation, (320, 320), borderMode=cv2.BORDER_REPLICATE), 64)
    assert tilted.status in ("aligned", "fallback")
    # The tilt's matrix has atan2(m10, m00) = -28 degrees; the crop's transform
    # undoes it, so its own angle is close to +28.
    angle = math.degrees(math.atan2(tilted.transform[1, 0], tilted.transform[0, 0]))
    assert abs(angle - 28.0) < 6.0, angle
    if tilted.status == "aligned":
        # The eyes found in the tilted photo, mapped back, are the upright ones.
        untilted = align._apply(cv2.invertAffineTransform(rotation), tilted.eyes) - 60.0
        np.testing.assert_allclose(untilted, upright.eyes, atol=8.0)


def _link_celeba(paths, folder):
    """Mirrors CelebA photos into `folder` as symlinks (identity/name layout)."""
    for path in paths:
        link = folder / path.relative_to(CELEBA)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path)
    return folder


@needs_celeba
def test_celeba_subset_yields_crops(tmp_path):
    paths = sorted(CELEBA.glob("*/*.jpg"))[:100]
    photos = _link_celeba(paths, tmp_path / "photos")
    report = align.align_folder(photos, tmp_path / "aligned", 64, progress=False)
    counts = report["counts"]
    assert sum(counts.values()) == 100 and counts["unreadable"] == 0
    assert counts["aligned"] + counts["fallback"] >= 90, counts
    assert counts["aligned"] >= 60, counts
    crops = sorted((tmp_path / "aligned").rglob("*.jpg"))
    assert len(crops) == counts["aligned"] + counts["fallback"]
    assert imageio.read_image(crops[0]).shape == (64, 64, 3)


@pytest.mark.slow
@needs_celeba
def test_all_celeba_photos_yield_crops(tmp_path):
    started = time.monotonic()
    report = align.align_folder(CELEBA, tmp_path / "aligned", 64, progress=False)
    counts = report["counts"]
    total = sum(counts.values())
    assert total == 1672 and counts["unreadable"] == 0
    crop_rate = (counts["aligned"] + counts["fallback"]) / total
    print(f"{counts}, crop rate {crop_rate:.3f}, {time.monotonic() - started:.0f} s")
    assert crop_rate >= 0.95, counts


@needs_celeba
def test_threads_align_what_one_thread_aligns(tmp_path):
    photos = _link_celeba(sorted(CELEBA.glob("*/*.jpg"))[:24], tmp_path / "photos")
    reports = {workers: align.align_folder(photos, tmp_path / f"aligned{workers}", 64,
                                           progress=False, workers=workers)
               for workers in (1, 3)}
    assert reports[1] == reports[3]
    for crop in (tmp_path / "aligned1").rglob("*.jpg"):
        twin = tmp_path / "aligned3" / crop.relative_to(tmp_path / "aligned1")
        np.testing.assert_array_equal(imageio.read_image(crop), imageio.read_image(twin))


def test_each_thread_has_its_own_detector():
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        detectors = list(pool.map(lambda _: align.default_detector(), range(8)))
    assert align.default_detector() is align.default_detector()
    assert len({id(d) for d in detectors} | {id(align.default_detector())}) >= 2


# --------------------------------------------------------------------------
# The dlib detector (HOG faces, 5-point landmarks): needs the [dlib] extra.

needs_dlib = pytest.mark.skipif(not align.dlib_available(), reason='dlib not installed: pip install -e ".[dlib]"')


def _celeba_sample(shared_faces, count):
    """`count` CelebA photos spread over the identities (a fixed, sorted stride)."""
    photos = sorted((shared_faces / "celeba_identities").glob("*/*.jpg"))
    return photos[:: len(photos) // count][:count]


def _eyes_measured_on_crop(detector, crop):
    """Landmark eye centres on an aligned crop, from the face box its canonical eyes imply."""
    (left_x, eye_y), (right_x, _) = align.canonical_eye_points(crop.shape[0])
    (box_left, box_eyes), (box_right, _) = align.EYES_IN_FACE_BOX
    # The Haar-convention box whose predicted eyes are the canonical ones.
    width = (right_x - left_x) / (box_right - box_left)
    box = (round(left_x + 0.5 - box_left * width), round(eye_y + 0.5 - box_eyes * width), round(width), round(width))
    return detector.landmark_eyes(crop, box)


@needs_dlib
def test_dlib_puts_celeba_eyes_on_the_canonical_points(shared_faces):
    detector = align.make_detector("dlib")
    size = 96  # big enough for the predictor to measure eyes to a pixel on the crop
    canonical = align.canonical_eye_points(size)
    errors, by_landmarks = [], 0
    for path in _celeba_sample(shared_faces, 12):
        result = align.align_face(imageio.read_image(path), size, detector)
        assert result.status in ("aligned", "fallback"), path
        if result.eyes_from != "landmarks":
            continue
        by_landmarks += 1
        # The detected eyes map onto the canonical points exactly (the warp)...
        np.testing.assert_allclose(align._apply(result.transform, result.eyes), canonical, atol=1e-6)
        # ...and the crop shows the eyes there (the landmarks were right).
        measured = _eyes_measured_on_crop(detector, result.crop)
        assert measured is not None, path
        errors.append(np.abs(np.array(measured) - canonical).max())
    assert by_landmarks >= 11, by_landmarks
    assert np.median(errors) <= 1.5 and max(errors) <= 4.0, errors


@needs_dlib
def test_dlib_threads_align_what_one_thread_aligns(shared_faces):
    import concurrent.futures

    photos = [imageio.read_image(p) for p in _celeba_sample(shared_faces, 6)]
    alone = [align.align_face(rgb, 32, align.make_detector("dlib")) for rgb in photos]
    # Two threads at once, each with its own detector from default_detector("dlib").
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda rgb: align.align_face(rgb, 32, align.default_detector("dlib")), photos * 2))
    for one, other in zip(alone * 2, together):
        assert (one.status, one.eyes_from) == (other.status, other.eyes_from)
        if one.crop is not None:
            np.testing.assert_array_equal(one.crop, other.crop)
    assert sum(r.eyes_from == "landmarks" for r in alone) >= 5


@needs_dlib
def test_dlib_folder_report_names_detector_and_eye_sources(shared_faces, tmp_path):
    photos = _link_celeba(_celeba_sample(shared_faces, 8), tmp_path / "photos")
    report = align.align_folder(photos, tmp_path / "aligned", 32, progress=False, detector_name="dlib")
    assert report["detector"] == "dlib"
    aligned = [entry for entry in report["files"].values() if entry["status"] == "aligned"]
    assert sum(report["eyes_from"].values()) == len(aligned) == report["counts"]["aligned"]
    assert report["eyes_from"].get("landmarks", 0) >= 7
    assert all(entry["eyes_from"] in ("landmarks", "cascade") for entry in aligned)


def test_missing_dlib_is_named_and_haar_is_the_fallback_default(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    monkeypatch.setitem(align._DEFAULT, "name", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[dlib\]"'):
        align.make_detector("dlib")
    with pytest.raises(ImportError, match="dlib"):
        align.set_default_detector("dlib")
    with pytest.raises(ValueError, match="'cnn'"):
        align.set_default_detector("cnn")
    with caplog.at_level(logging.WARNING):
        assert align.default_detector_name() == "haar"
        assert align.default_detector_name() == "haar"
    assert sum("dlib is not installed" in r.getMessage() for r in caplog.records) == 1  # warned once
    assert isinstance(align.default_detector(), align.HaarFaceDetector)


@pytest.mark.parametrize("module, extra", [("align_main", ["--image_size=32"]),
                                           ("perturb_main", ["--export=/nonexistent"])])
def test_binaries_without_dlib_fail_in_one_line(module, extra, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "dlib.py").write_text('raise ImportError("No module named \'dlib\' (blocked by the test)")\n')
    (tmp_path / "photos").mkdir()
    # A photo, so only the detector is wrong.
    cv2.imwrite(str(tmp_path / "photos" / "face.png"), np.zeros((32, 32, 3), np.uint8))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join([str(blocker), str(Path(__file__).resolve().parents[2])])}
    result = subprocess.run([sys.executable, "-m", f"semiadv.apps.{module}", "--detector=dlib",
                             f"--input_dir={tmp_path / 'photos'}", f"--output_dir={tmp_path / 'out'}", *extra],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    # One line of ours (TensorFlow's start-up chatter aside), no traceback.
    ours = [line for line in result.stderr.splitlines() if "dlib" in line]
    assert len(ours) == 1 and 'pip install -e ".[dlib]"' in ours[0], result.stderr
    assert ours[0].startswith(f"semiadv-{module.split('_')[0]}: error: --detector=dlib"), ours
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_alignment_cache_key_depends_on_the_detector(tmp_path):
    import hashlib

    from semiadv.data import datasets as data
    from semiadv.config import DataConfig

    root = tmp_path / "people"
    imageio.write_image(root / "a" / "1.png", np.full((40, 40, 3), 128, np.uint8))
    targets = {}
    for name in align.DETECTORS if align.dlib_available() else ("haar",):
        config = DataConfig(dataset=f"folder:{root}", image_size=16, align_cache_dir=str(tmp_path / "cache"), align_detector=name)
        targets[name] = data._aligned_copy(root, config)
        assert json.loads((targets[name] / align.REPORT_NAME).read_text())["detector"] == name
    # The Haar key is the one used before detectors could be chosen: old caches stay valid.
    legacy = hashlib.sha1(f"{root.resolve()}|16".encode())
    stat = (root / "a" / "1.png").stat()
    legacy.update(f"|a/1.png:{stat.st_size}:{stat.st_mtime_ns}".encode())
    assert targets["haar"].name == f"people-16-{legacy.hexdigest()[:12]}"
    if "dlib" in targets:
        assert targets["dlib"] != targets["haar"]


def test_alignment_cache_key_changes_with_the_detectors_revision(tmp_path, monkeypatch):
    from semiadv.data import datasets as data
    from semiadv.config import DataConfig

    root = tmp_path / "people"
    imageio.write_image(root / "a" / "1.png", np.full((40, 40, 3), 128, np.uint8))
    config = DataConfig(dataset=f"folder:{root}", image_size=16,
                        align_cache_dir=str(tmp_path / "cache"), align_detector="haar")
    # Not aligning: only where the cache would be, before and after a revision bump.
    monkeypatch.setattr(align, "align_folder", lambda *args, **kwargs: None)
    names = set()
    for name, revision in (("haar", 1), ("haar", 2), ("haar", 3)):
        monkeypatch.setitem(align.DETECTOR_REVISIONS, name, revision)
        names.add(data._aligned_copy(root, config).name)
    assert len(names) == 3  # crops made by an older revision are never reused
    with pytest.raises(ValueError, match="align_detector"):
        DataConfig(align_detector="cnn")


def test_haar_passes_sharing_a_scan_find_what_separate_scans_find(shared_faces):
    # alt2 at min_neighbors 3 then 1 share one scan: the boxes must be detectMultiScale's own.
    cascade = align._load_cascade("haarcascade_frontalface_alt2.xml")
    compared = found = 0
    for path in _celeba_sample(shared_faces, 10):
        gray = cv2.equalizeHist(cv2.cvtColor(imageio.read_image(path), cv2.COLOR_RGB2GRAY))
        raw = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=0, minSize=(20, 20))
        for min_neighbors in (1, 3):
            expected = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(20, 20))
            ours = align._group_boxes(raw, min_neighbors)
            # OpenCV may round a group's mean a pixel differently from cv2.groupRectangles.
            assert len(ours) == len(expected), path
            if len(expected):
                np.testing.assert_allclose(np.sort(np.asarray(ours), axis=0), np.sort(np.asarray(expected), axis=0), atol=1)
            compared += 1
            found += len(expected) > 0
    assert compared == 20 and found >= 12, found


class _CountingHaar:
    """The Haar fallback, counting its whole-photo face searches and its confirmations."""

    def __init__(self):
        self.haar = align.HaarFaceDetector()
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
        runs = [hog.run(gray, upsample, align.DLIB_CANDIDATE_THRESHOLD) for upsample in (0, 1)]
        scores = [score for _, run_scores, _ in runs for score in run_scores]
        if scores and max(scores) < 0:
            weak.append(gray)
            if len(weak) == count:
                break
    return weak


@needs_dlib
def test_dlib_takes_a_weak_hog_face_the_cascade_confirms_before_searching_with_haar(shared_faces):
    photos = _weak_face_photos(shared_faces, 8)
    assert len(photos) == 8
    taken = 0
    for gray in photos:
        haar = _CountingHaar()
        detector = align.DlibFaceDetector(haar=haar)  # weak faces are on by default
        boxes = detector.detect_faces(gray)
        if haar.face_searches == 0:  # a candidate was taken: one face, landmarks and cascade agree
            taken += 1
            assert len(boxes) == 1 and detector.landmark_eyes(gray, boxes[0]) is not None
            assert haar.confirmations[-1] is True
        else:  # every plausible candidate was refused by the cascade first
            assert True not in haar.confirmations
        # Without candidates, the same photo goes straight to the cascades.
        strict_haar = _CountingHaar()
        align.DlibFaceDetector(haar=strict_haar, candidate_threshold=None).detect_faces(gray)
        assert strict_haar.face_searches == 1 and strict_haar.confirmations == []
    # Of these 8 weak faces the cascade confirms 4 (landmarks alone took 6, noise among
    # such); the rest go on to the whole-photo cascades.
    assert taken >= 3, taken


@needs_dlib
def test_dlib_weak_face_with_implausible_landmarks_falls_back_to_haar(shared_faces, monkeypatch):
    (gray,) = _weak_face_photos(shared_faces, 1)
    haar = _CountingHaar()
    detector = align.DlibFaceDetector(haar=haar)
    # As for a false face: the landmarks never look like eyes.
    monkeypatch.setattr(detector, "landmark_eyes", lambda gray, box: None)
    assert detector.detect_faces(gray) == haar.haar.detect_faces(gray)
    assert haar.face_searches == 1 and haar.confirmations == []


@needs_dlib
def test_dlib_takes_no_weak_face_in_noise_even_with_face_like_landmarks(monkeypatch):
    # Before the cascade's confirmation, HOG's weak detections on noise with landmarks
    # that passed as a face were taken (1 in 60 noise images at -0.5). Here the landmark
    # check is made to pass every time and candidates go down to -1 (the default stops at
    # -0.8): only the cascade stands between noise and a face.
    rng = np.random.default_rng(0)
    detector = align.DlibFaceDetector(candidate_threshold=-1.0)
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


@needs_celeba
def test_haar_confirms_a_face_box_only_where_the_face_is():
    haar = align.HaarFaceDetector()
    confirmed, elsewhere, faces = 0, 0, 0
    for path in sorted(CELEBA.glob("*/*.jpg"))[::40][:20]:
        gray = cv2.cvtColor(imageio.read_image(path), cv2.COLOR_RGB2GRAY)
        boxes = haar.detect_faces(gray)
        if not boxes:
            continue
        faces += 1
        x, y, width, height = max(boxes, key=lambda box: box[2])
        confirmed += haar.confirms_face(gray, (x, y, width, height))
        # The same box once the face is gone (painted over with its mean grey).
        erased = gray.copy()
        erased[y:y + height, x:x + width] = int(erased[y:y + height, x:x + width].mean())
        elsewhere += haar.confirms_face(erased, (x, y, width, height))
    assert faces >= 15 and confirmed >= faces - 1 and elsewhere == 0, (faces, confirmed, elsewhere)


@needs_dlib
def test_dlib_candidate_threshold_must_not_exceed_dlibs():
    with pytest.raises(ValueError, match="candidate_threshold"):
        align.DlibFaceDetector(candidate_threshold=0.5)
