"""Tests for semiadv.align.folder: aligning a folder tree, its report and its progress lines."""

import json
import logging
import time

import numpy as np
import pytest
from _align_photos import CELEBA, link_celeba, needs_celeba

from semiadv.align import folder
from semiadv.utils import imageio


class BrightnessDetector:
    """Decides by mean brightness: bright -> eyes, mid -> face only, dark -> nothing."""

    def detect_faces(self, gray):
        return [] if gray.mean() < 60 else [(10, 10, 40, 40)]

    def detect_eyes(self, gray, face_box):
        return ((22.0, 25.0), (38.0, 25.0)) if gray.mean() > 180 else None


# --------------------------------------------------------------------------
# A stub detector, no data needed.


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
    report = folder.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
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
    assert json.loads((output / folder.REPORT_NAME).read_text()) == report


def test_align_folder_refuses_its_input_folder(photo_folder):
    before = sorted(photo_folder.rglob("*"))
    with pytest.raises(ValueError, match="input folder"):
        folder.align_folder(photo_folder, photo_folder / "." / "a" / "..", 24, detector=BrightnessDetector())
    assert sorted(photo_folder.rglob("*")) == before


def test_align_folder_inside_input_skips_its_own_output(photo_folder):
    output = photo_folder / "aligned"
    folder.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
    report = folder.align_folder(photo_folder, output, 24, detector=BrightnessDetector(), progress=False)
    assert sum(report["counts"].values()) == 7
    assert not any(name.startswith("aligned/") for name in report["files"])


def test_align_folder_empty_or_missing_input(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no photos here")
    with pytest.raises(ValueError, match=r"no images in .*empty"):
        folder.align_folder(tmp_path / "empty", tmp_path / "out", 24, detector=BrightnessDetector())
    with pytest.raises(FileNotFoundError, match="missing"):
        folder.align_folder(tmp_path / "missing", tmp_path / "out", 24, detector=BrightnessDetector())
    assert not (tmp_path / "out").exists()


def test_align_folder_logs_progress(photo_folder, tmp_path, caplog):
    # The absl logger: exporting (Keras) may have left it at WARNING in this session.
    with caplog.at_level(logging.INFO, logger="absl"):
        folder.align_folder(photo_folder, tmp_path / "out", 24, detector=BrightnessDetector(), progress_every=3)
    lines = [r.getMessage() for r in caplog.records if "files/s" in r.getMessage()]
    assert [line.split(" (")[0] for line in lines] == ["aligned 3/7 files", "aligned 6/7 files", "aligned 7/7 files"]
    assert "ETA" in lines[0]


# --------------------------------------------------------------------------
# Real photos, with the default detector.


@needs_celeba
def test_celeba_subset_yields_crops(tmp_path):
    paths = sorted(CELEBA.glob("*/*.jpg"))[:100]
    photos = link_celeba(paths, tmp_path / "photos")
    report = folder.align_folder(photos, tmp_path / "aligned", 64, progress=False)
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
    report = folder.align_folder(CELEBA, tmp_path / "aligned", 64, progress=False)
    counts = report["counts"]
    total = sum(counts.values())
    assert total == 1672 and counts["unreadable"] == 0
    crop_rate = (counts["aligned"] + counts["fallback"]) / total
    print(f"{counts}, crop rate {crop_rate:.3f}, {time.monotonic() - started:.0f} s")
    assert crop_rate >= 0.95, counts


@needs_celeba
def test_threads_align_what_one_thread_aligns(tmp_path):
    photos = link_celeba(sorted(CELEBA.glob("*/*.jpg"))[:24], tmp_path / "photos")
    reports = {workers: folder.align_folder(photos, tmp_path / f"aligned{workers}", 64,
                                            progress=False, workers=workers)
               for workers in (1, 3)}
    assert reports[1] == reports[3]
    for crop in (tmp_path / "aligned1").rglob("*.jpg"):
        twin = tmp_path / "aligned3" / crop.relative_to(tmp_path / "aligned1")
        np.testing.assert_array_equal(imageio.read_image(crop), imageio.read_image(twin))
