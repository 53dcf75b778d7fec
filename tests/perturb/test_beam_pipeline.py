"""Tests of semiadv.perturb.beam.pipeline: semiadv-perturb as an Apache Beam pipeline."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

import _beam_photos  # noqa: E402
from semiadv.perturb import folder as perturb  # noqa: E402
from semiadv.perturb.beam import config as beam_config  # noqa: E402
from semiadv.perturb.beam import pipeline  # noqa: E402
from semiadv.perturb.beam.config import BeamPerturbConfig  # noqa: E402
from semiadv.perturb.report import REPORT_NAME  # noqa: E402
from semiadv.utils import imageio  # noqa: E402

SIZE = 16
REPO = Path(__file__).resolve().parents[2]
# The DirectRunner's batch engine, named so that Beam does not first try to download the
# Prism runner (what --runner=DirectRunner does in Beam 2.77; it falls back to this).
RUNNER = "--runner=FnApiRunner"


@pytest.fixture
def photos(tmp_path):
    """Synthetic 16x16 faces as PNG/JPEG (one in a sub-folder), a corrupt PNG, a text '.jpg'."""
    folder = tmp_path / "photos"
    return folder, _beam_photos.write_photos(folder, SIZE)


def _run_beam(export, pattern, output_dir, *beam_args, timings=None, **kwargs):
    config = beam_config.make_config(str(export), str(pattern), str(output_dir), **kwargs)
    report, measured = pipeline.run(config, PipelineOptions([RUNNER, *beam_args]))
    if timings is not None:
        timings.update(measured)
    return report


def _assert_same_images(expected_dir, actual_dir, names, shapes=None):
    """`shapes`: {name: shape} of the photo output (default: crops of SIZE)."""
    for name in names:
        expected = imageio.read_image(expected_dir / name).astype(np.int16)
        actual = imageio.read_image(actual_dir / name).astype(np.int16)
        shape = (shapes or {}).get(name, (SIZE, SIZE, 3))
        assert expected.shape == actual.shape == shape, name
        # The two batch the faces differently, and oneDNN's results for one face can differ
        # by 6e-8 between batch sizes: a pixel may round to the next level (<= 1/255). JPEG
        # spreads such a step over its 8x8 block, so JPEG outputs get one more level.
        tolerance = 2 if name.endswith(".jpg") else 1
        assert np.abs(expected - actual).max() <= tolerance, name


def _assert_same_entries(expected, actual):
    assert sorted(expected) == sorted(actual)
    for name, entry in expected.items():
        other = dict(actual[name])
        for key in ("male_score", "male_scores"):  # Batches differ: float32 round-off.
            if key in entry:
                assert other.pop(key) == pytest.approx(entry[key], abs=1e-5)
                entry = {k: value for k, value in entry.items() if k != key}
        assert other == entry, name


def test_beam_gives_semiadv_perturbs_images_and_report(tiny_export_16, photos, tmp_path):
    folder, names = photos
    expected = perturb.perturb_folder(tiny_export_16, folder, tmp_path / "threaded",
                                      align=False, batch_size=4)
    report = _run_beam(tiny_export_16, folder, tmp_path / "beam", align=False, batch_size=4)
    assert report["counts"] == expected["counts"] == {"perturbed": 6, "unreadable": 2}
    assert report["failed"] == expected["failed"] == ["corrupt.png", "notes.jpg"]
    _assert_same_entries(expected["files"], report["files"])
    _assert_same_images(tmp_path / "threaded", tmp_path / "beam", names)
    assert not (tmp_path / "beam" / "corrupt.png").exists()
    assert not (tmp_path / "beam" / "notes.jpg").exists()
    assert "truncated PNG" in report["files"]["corrupt.png"]["error"]
    assert "not an image" in report["files"]["notes.jpg"]["error"]
    saved = json.loads((tmp_path / "beam" / REPORT_NAME).read_text())
    assert saved == report
    # Same format as semiadv-perturb's report: the same keys (plus the pattern).
    assert set(saved) - set(expected) == {"input_pattern"} and not set(expected) - set(saved)
    assert saved["input_dir"] == expected["input_dir"]
    # No temporary file is left behind.
    leftovers = [p for p in (tmp_path / "beam").rglob(".*")]
    assert leftovers == []


def test_aligned_real_photos_match_semiadv_perturb(tiny_export_16, shared_faces, tmp_path):
    folder = tmp_path / "real"
    sources = (sorted((shared_faces / "utkface").glob("*.jpg"))[:2]
               + sorted((shared_faces / "celeba_identities").rglob("*.jpg"))[:2])
    if len(sources) < 4:
        pytest.skip(f"too few photos in {shared_faces}")
    folder.mkdir()
    for index, source in enumerate(sources):  # Copied into tmp only, never into the repo.
        shutil.copy(source, folder / f"{index}_{source.name}")
    imageio.write_image(folder / "flat.png", np.full((64, 64, 3), 128, np.uint8))
    # The photo output (the default when aligning): whole photos, every face edited.
    expected = perturb.perturb_folder(tiny_export_16, folder, tmp_path / "threaded")
    report = _run_beam(tiny_export_16, f"{folder}/*", tmp_path / "beam")
    assert report["output"] == expected["output"] == "photo"
    assert expected["counts"].get("perturbed", 0) >= 2
    assert report["files"]["flat.png"]["status"] == "no_face"
    assert not (tmp_path / "beam" / "flat.png").exists()
    _assert_same_entries(expected["files"], report["files"])
    perturbed = [name for name, entry in report["files"].items()
                 if entry["status"] == "perturbed"]
    assert all(report["files"][name]["faces"] >= 1 for name in perturbed)
    _assert_same_images(tmp_path / "threaded", tmp_path / "beam", perturbed,
                        {name: imageio.read_image(folder / name).shape for name in perturbed})
    # The crop output, as before.
    expected = perturb.perturb_folder(tiny_export_16, folder, tmp_path / "threaded_crops",
                                      output="crop")
    report = _run_beam(tiny_export_16, f"{folder}/*", tmp_path / "beam_crops", output="crop")
    _assert_same_entries(expected["files"], report["files"])
    _assert_same_images(tmp_path / "threaded_crops", tmp_path / "beam_crops", perturbed)


def test_rerun_skips_what_is_written(tiny_export_16, photos, tmp_path):
    folder, names = photos
    output = tmp_path / "out"
    first = _run_beam(tiny_export_16, f"{folder}/**", output, align=False)
    (output / "b.png").unlink()  # As if the first run had been killed before writing it.
    marker = output / "a.png"
    marker.write_bytes(marker.read_bytes())
    os.utime(marker, (1_000_000, 1_000_000))
    second = _run_beam(tiny_export_16, f"{folder}/**", output, align=False)
    assert marker.stat().st_mtime == 1_000_000  # Skipped, not rewritten.
    assert (output / "b.png").is_file()
    # The finished first run's entries are kept for what the rerun skipped.
    assert second["files"] == first["files"]
    # Without the first run's report (killed before writing it), skips are reported as such.
    (output / REPORT_NAME).unlink()
    (output / "c.jpg").unlink()
    third = _run_beam(tiny_export_16, f"{folder}/**", output, align=False)
    assert third["counts"] == {"already_written": 5, "perturbed": 1, "unreadable": 2}
    assert third["failed"] == ["corrupt.png", "notes.jpg"]
    assert third["files"]["c.jpg"]["status"] == "perturbed"
    assert third["files"]["c.jpg"]["male_score"] == pytest.approx(
        first["files"]["c.jpg"]["male_score"], abs=1e-5)


def test_outputs_inside_the_input_folder_are_not_inputs(tiny_export_16, photos):
    folder, names = photos
    output = folder / "private"
    output.mkdir()
    shutil.copy(folder / "a.png", output / "a.png")  # A previous run's output.
    (output / ".b.png.0123.tmp").write_bytes(b"a killed worker's temporary")
    report = _run_beam(tiny_export_16, folder, output, align=False)
    assert sorted(report["files"]) == sorted(names + ["corrupt.png", "notes.jpg"])
    assert report["files"]["a.png"] == {"status": "already_written"}


def test_only_the_direct_runner_skips_worker_teardown():
    def direct(*argv):
        return pipeline.is_direct_runner(PipelineOptions(list(argv)))

    assert direct()  # Beam's default runner.
    assert direct("--runner=DirectRunner") and direct("--runner=direct")
    assert direct("--runner=apache_beam.runners.direct.direct_runner.BundleBasedDirectRunner")
    # Dataflow restarts a worker by its exit code: it must see the real one.
    assert not direct("--runner=DataflowRunner")
    assert not direct("--runner=FlinkRunner") and not direct("--runner=SparkRunner")
    assert not direct("--runner=PortableRunner")
    assert BeamPerturbConfig("e", "same", (8, 8, 3), "p", "i", "o").fast_worker_exit \
        is False


@pytest.mark.slow  # Two worker processes each import TensorFlow: ~1 minute on 2 busy cores.
def test_two_worker_processes_write_what_one_process_writes(tiny_export_16, photos, tmp_path,
                                                            monkeypatch):
    folder, names = photos
    # The workers unpickle our DoFns: they must import this checkout of semiadv.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    single = _run_beam(tiny_export_16, folder, tmp_path / "one", align=False)
    timings = {}
    multi = _run_beam(tiny_export_16, folder, tmp_path / "two", "--direct_num_workers=2",
                      "--direct_running_mode=multi_processing", align=False, timings=timings)
    _assert_same_entries(single["files"], multi["files"])
    _assert_same_images(tmp_path / "one", tmp_path / "two", names)
    # Each worker process said once (not per photo or batch) what its imports and loading
    # the export cost; Reshuffle may rarely leave one of the two workers without photos.
    assert 1 <= timings["startup_import_us"]["count"] <= 2
    assert 1 <= timings["startup_load_model_us"]["count"] <= 2
    assert timings["startup_load_model_us"]["sum_s"] > 0


def test_output_options_that_do_not_go_together_are_refused(tiny_export_16, photos, tmp_path):
    folder, _ = photos
    for kwargs, message in [({"output": "photo", "align": False}, "needs faces"),
                            ({"output": "crop", "keep_metadata": True}, "photo output only"),
                            ({"jpeg_quality": 0}, "1..100"), ({"max_faces": 0}, "max_faces")]:
        with pytest.raises(ValueError, match=message):
            beam_config.make_config(str(tiny_export_16), str(folder), str(tmp_path / "out"),
                                    **kwargs)
    config = beam_config.make_config(str(tiny_export_16), str(folder), str(tmp_path / "out"))
    assert config.output == "photo" and config.max_faces == 16 and not config.keep_metadata
    config = beam_config.make_config(str(tiny_export_16), str(folder), str(tmp_path / "out"),
                                     align=False)
    assert config.output == "crop"


def test_photo_output_matches_semiadv_perturb_on_synthetic_photos(tiny_export_16, tmp_path,
                                                                   monkeypatch):
    """The photo output without the shared data: faces placed where a stub detector finds
    them (the FnApiRunner runs the workers in this process), metadata kept."""
    import _photo_faces
    from semiadv.align import registry

    monkeypatch.setattr(registry, "default_detector", lambda name=None: _photo_faces.FixedFaces())
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = _photo_faces.group_photo()
    (folder / "group.jpg").write_bytes(
        _photo_faces.jpeg_with_metadata(imageio.encode_image("x.jpg", photo), orientation=1))
    imageio.write_image(folder / "sub" / "group.png", photo)
    imageio.write_image(folder / "flat.png", np.full((40, 40, 3), 90, np.uint8))
    (folder / "clip.gif").write_bytes(b"GIF89a")  # Not read, but listed.
    expected = perturb.perturb_folder(tiny_export_16, folder, tmp_path / "threaded",
                                      keep_metadata=True, jpeg_quality=80)
    report = _run_beam(tiny_export_16, folder, tmp_path / "beam", keep_metadata=True,
                       jpeg_quality=80)
    assert report["counts"] == expected["counts"] == {"perturbed": 2, "no_face": 1,
                                                      "unsupported": 1}
    _assert_same_entries(expected["files"], report["files"])
    assert report["files"]["group.jpg"]["faces"] == 2
    _assert_same_images(tmp_path / "threaded", tmp_path / "beam", ["group.jpg", "sub/group.png"],
                        {"group.jpg": photo.shape, "sub/group.png": photo.shape})
    assert _photo_faces.SERIAL in (tmp_path / "beam" / "group.jpg").read_bytes()
    assert not (tmp_path / "beam" / "flat.png").exists()
