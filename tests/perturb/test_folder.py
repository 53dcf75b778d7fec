"""Tests of semiadv.perturb.folder: applying an export to a folder of photos."""

import functools
import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from semiadv.perturb import folder as perturb
from semiadv.perturb import photoprep
from semiadv.perturb.report import REPORT_NAME
from semiadv.utils import imageio
from semiadv.utils import parallel
from semiadv.data import synthetic

SIZE, CHANNELS = 32, 3


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny random SAN exported once for the module."""
    from _tiny_export import export_tiny_san

    return export_tiny_san(tmp_path_factory.mktemp("exports"), SIZE, CHANNELS, seed=2)


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def photos(tmp_path):
    """Synthetic aligned faces as PNG (one in a sub-folder), a corrupt PNG, a text '.jpg'."""
    folder = tmp_path / "photos"
    faces = synthetic.make_faces(2, 2, SIZE, CHANNELS)["image"]
    names = ["a.png", "b.png", "c.jpg", "sub/d.png"]
    for name, face in zip(names, faces):
        imageio.write_image(folder / name, face)
    good = (folder / "a.png").read_bytes()
    (folder / "corrupt.png").write_bytes(good[: len(good) // 2])
    (folder / "notes.jpg").write_text("not a photo")
    return folder, names, faces


def test_noalign_perturbs_folder_and_reports_bad_files(exported, photos, tmp_path):
    folder, names, faces = photos
    before = _digest(folder)
    output = tmp_path / "out"
    report = perturb.perturb_folder(exported, folder, output, prototype="opposite",
                                    align=False, save_aligned=True, batch_size=3)
    assert _digest(folder) == before  # Inputs untouched.
    assert report["counts"] == {"perturbed": 4, "unreadable": 2}
    assert report["failed"] == ["corrupt.png", "notes.jpg"]
    for name in names:
        written = imageio.read_image(output / name)
        assert written.shape == (SIZE, SIZE, 3)
        assert (output / perturb.ALIGNED_DIR / name).is_file()
        assert 0.0 <= report["files"][name]["male_score"] <= 1.0
    assert not (output / "corrupt.png").exists() and not (output / "notes.jpg").exists()
    saved = json.loads((output / REPORT_NAME).read_text())
    assert saved["counts"] == report["counts"]
    assert "corrupt" in saved["files"]["corrupt.png"]["error"].lower() or \
        "truncated" in saved["files"]["corrupt.png"]["error"].lower()


def test_outputs_match_the_signature(exported, photos, tmp_path):
    folder, names, _ = photos
    output = tmp_path / "out"
    perturb.perturb_folder(exported.parent, folder, output, prototype="neutral", align=False)
    loaded = tf.saved_model.load(str(exported))
    face = imageio.read_image(folder / "a.png").astype(np.float32)[None] / 255.0
    expected = loaded.signatures["neutral"](image=tf.constant(face))["perturbed"].numpy()[0]
    written = imageio.read_image(output / "a.png").astype(np.float32) / 255.0
    np.testing.assert_allclose(written, expected, atol=1 / 255 + 1e-6)


def test_refuses_unsafe_folders(exported, photos, tmp_path):
    folder, _, _ = photos
    with pytest.raises(ValueError, match="must differ"):
        perturb.perturb_folder(exported, folder, folder, align=False)
    with pytest.raises(ValueError, match="inside output_dir"):
        perturb.perturb_folder(exported, folder, folder.parent, align=False)
    with pytest.raises(ValueError, match="prototype"):
        perturb.perturb_folder(exported, folder, tmp_path / "out", prototype="male", align=False)
    with pytest.raises(ValueError, match="image_size"):
        perturb.perturb_folder(exported, folder, tmp_path / "out", image_size=64, align=False)
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        perturb.perturb_folder(folder, folder, tmp_path / "out", align=False)


def test_output_inside_input_skips_previous_outputs(exported, photos):
    folder, names, _ = photos
    output = folder / "private"
    perturb.perturb_folder(exported, folder, output, align=False)
    report = perturb.perturb_folder(exported, folder, output, align=False)
    assert sorted(report["files"]) == sorted(names + ["corrupt.png", "notes.jpg"])


def test_real_faces_are_aligned_and_perturbed(exported, shared_faces, tmp_path):
    pytest.importorskip("semiadv.align.face", reason="semiadv.align.face (face detection) not available")
    sources = sorted((shared_faces / "utkface").glob("*.jpg"))[:3]
    if not sources:
        pytest.skip(f"no UTKFace photos in {shared_faces / 'utkface'}")
    folder = tmp_path / "real"
    folder.mkdir()
    for source in sources:  # Copied into tmp only, never into the repo.
        shutil.copy(source, folder / source.name)
    (folder / "blank.png").write_bytes(b"")
    imageio.write_image(folder / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    report = perturb.perturb_folder(exported, folder, tmp_path / "out", save_aligned=True,
                                    output="crop")
    assert report["counts"].get("perturbed", 0) >= 1
    assert report["files"]["blank.png"]["status"] == "unreadable"
    assert report["files"]["flat.png"]["status"] == "no_face"
    for name, entry in report["files"].items():
        if entry["status"] == "perturbed":
            assert imageio.read_image(tmp_path / "out" / name).shape == (SIZE, SIZE, 3)


def test_threaded_reading_writes_what_one_thread_writes(exported, photos, tmp_path):
    folder, names, _ = photos
    for copy in range(9):  # More photos than the threads' window, so it slides.
        shutil.copy(folder / "a.png", folder / f"copy{copy}.png")
    reports = {workers: perturb.perturb_folder(exported, folder, tmp_path / f"out{workers}",
                                               align=False, batch_size=4, workers=workers)
               for workers in (1, 3)}
    assert reports[1]["files"] == reports[3]["files"]
    assert reports[3]["counts"] == {"perturbed": 13, "unreadable": 2}
    assert _digest(tmp_path / "out1") == _digest(tmp_path / "out3")


def test_existing_outputs_are_skipped_unless_overwrite(exported, photos, tmp_path):
    folder, names, _ = photos
    output = tmp_path / "out"
    first = perturb.perturb_folder(exported, folder, output, align=False, overwrite=False)
    assert first["counts"]["perturbed"] == 4 and first["skipped_existing"] == 0
    (output / "a.png").write_bytes(b"an earlier output, kept")
    (output / "b.png").unlink()  # Only this one is missing: only it is perturbed again.
    second = perturb.perturb_folder(exported, folder, output, align=False, overwrite=False)
    assert second["skipped_existing"] == 3
    assert second["counts"] == {"perturbed": 1, "unreadable": 2}
    assert (output / "a.png").read_bytes() == b"an earlier output, kept"
    third = perturb.perturb_folder(exported, folder, output, align=False, overwrite=True)
    assert third["skipped_existing"] == 0 and third["counts"]["perturbed"] == 4
    assert imageio.read_image(output / "a.png").shape == (SIZE, SIZE, 3)


def test_empty_folder_is_refused_naming_it(exported, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no photos in .*empty"):
        perturb.perturb_folder(exported, tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _runs_by_pool(exported, folder, tmp_path, **kwargs):
    return {pool: perturb.perturb_folder(exported, folder, tmp_path / pool, pool=pool, **kwargs)
            for pool in ("thread", "process")}


def test_process_pool_writes_what_threads_write(exported, photos, tmp_path):
    folder, names, _ = photos
    for copy in range(9):  # More photos than the workers' window, so it slides.
        shutil.copy(folder / "b.png", folder / f"copy{copy}.png")
    reports = _runs_by_pool(exported, folder, tmp_path, align=False, batch_size=4, workers=2,
                            save_aligned=True)
    assert list(reports["process"]["files"].items()) == list(reports["thread"]["files"].items())
    assert reports["process"]["counts"] == {"perturbed": 13, "unreadable": 2}
    assert _digest(tmp_path / "process") == _digest(tmp_path / "thread")


def test_process_pool_of_one_aligns_real_photos_as_threads_do(exported, shared_faces, tmp_path):
    pytest.importorskip("semiadv.align.face", reason="semiadv.align.face (face detection) not available")
    folder = tmp_path / "real"
    for source in sorted((shared_faces / "celeba_identities").glob("*/*.jpg"))[:40:10]:
        folder.mkdir(exist_ok=True)  # Copied into tmp only, never into the repo.
        shutil.copy(source, folder / f"{source.parent.name}_{source.name}")
    if not folder.is_dir():
        pytest.skip(f"no CelebA photos in {shared_faces / 'celeba_identities'}")
    imageio.write_image(folder / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    (folder / "blank.jpg").write_bytes(b"")
    reports = _runs_by_pool(exported, folder, tmp_path, workers=1, save_aligned=True,
                            output="crop")
    assert list(reports["process"]["files"].items()) == list(reports["thread"]["files"].items())
    assert reports["process"]["counts"]["perturbed"] >= 3
    assert reports["process"]["files"]["flat.png"]["status"] == "no_face"
    assert reports["process"]["files"]["blank.jpg"]["status"] == "unreadable"
    assert _digest(tmp_path / "process") == _digest(tmp_path / "thread")


def test_a_killed_worker_fails_only_its_photo(exported, photos, tmp_path, monkeypatch):
    import _photo_faults

    folder, names, _ = photos
    shutil.copy(folder / "b.png", folder / "kill.png")
    monkeypatch.setattr(photoprep, "prepare_crop", _photo_faults.prepare_or_die)
    report = perturb.perturb_folder(exported, folder, tmp_path / "out", align=False, workers=2,
                                    pool="process")
    assert report["counts"] == {"perturbed": 4, "unreadable": 2, "error": 1}
    assert report["files"]["kill.png"]["status"] == "error"
    assert "killed by SIGKILL" in report["files"]["kill.png"]["error"]
    assert str(folder / "kill.png") in report["files"]["kill.png"]["error"]
    assert sorted(report["failed"]) == ["corrupt.png", "kill.png", "notes.jpg"]


def test_workers_dying_in_a_row_stop_the_run_keeping_what_was_written(exported, photos,
                                                                      tmp_path, monkeypatch):
    import _photo_faults

    folder, names, _ = photos
    for copy in range(3):
        shutil.copy(folder / "b.png", folder / f"kill{copy}.png")
    monkeypatch.setattr(photoprep, "prepare_crop", _photo_faults.prepare_or_die)
    monkeypatch.setattr(parallel, "_MAX_CRASHES_IN_A_ROW", 2)
    output = tmp_path / "out"
    with pytest.raises(parallel.WorkerCrashError, match=r"kill1\.png"):
        perturb.perturb_folder(exported, folder, output, align=False, workers=1,
                               batch_size=1, pool="process")
    saved = json.loads((output / REPORT_NAME).read_text())
    assert "kill1.png" in saved["interrupted"]
    # a, b and c (before kill*) were written, and stay; the report says so.
    perturbed = sorted(n for n, e in saved["files"].items() if e["status"] == "perturbed")
    assert perturbed == ["a.png", "b.png", "c.jpg"]
    assert all((output / name).is_file() for name in perturbed)
    assert saved["files"]["kill0.png"]["status"] == "error"


def test_unknown_pool_is_refused(exported, photos, tmp_path):
    with pytest.raises(ValueError, match="pool must be one of"):
        perturb.perturb_folder(exported, photos[0], tmp_path / "out", pool="fork")


def test_workers_align_without_importing_tensorflow(photos):
    import _photo_faults

    registry = pytest.importorskip("semiadv.align.registry",
                                   reason="semiadv.align.registry (face detection) not available")
    folder, names, _ = photos
    name = registry.default_detector_name()
    step = functools.partial(_photo_faults.heavy_modules_after, size=SIZE, align=True,
                             detector_name=name)
    modules = parallel.process_map(
        step, [folder / names[0], folder / "notes.jpg"], workers=1,
        initializer=photoprep.start_worker, initargs=(name,))
    assert list(modules) == [[], []]  # After detecting with the default detector.
