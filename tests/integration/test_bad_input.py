"""The bad-input catalogue: every kind of bad file or tensor, through every part of the tool.

Cases (one photo each): truncated JPEG, 0-byte file, text named .jpg, unreadable (a broken
symbolic link: chmod 000 does not stop root), PNG with alpha, 16-bit PNG, grayscale, a
12000x12000 JPEG and a photo with no face. The first four must be refused with a message
naming the file; the others must be read. They go through the loaders (`utkface:` and
`folder:` specs), the aligner (library and `semiadv-align`), perturb (library and
`semiadv-perturb`) and, as tensors, through every serving signature.

The rule for batch jobs: go on past bad files, list them at the end (report and stderr),
exit non-zero only when nothing could be processed.

Related checks live elsewhere: `.keras` artefacts load with safe_mode=True
(tests/export/test_signatures.py::test_signatures_and_keras_file_match_eager_model); no image
summaries by default (tests/train/test_trainer.py::test_faces_reach_tensorboard_only_when_asked).
"""

import csv
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from semiadv.align.face import STATUSES, align_face
from semiadv.align.folder import REPORT_NAME, align_folder
from semiadv.data import input_pipeline
from semiadv.data import records as records_lib
from semiadv.utils import imageio
from semiadv.perturb import folder as perturb
from semiadv.perturb import report as perturb_report
from semiadv.prototypes.kinds import KINDS
from semiadv.data import synthetic
from semiadv.config import DataConfig

SIZE, CHANNELS = 16, 3
REPO_ROOT = Path(__file__).resolve().parents[2]

# name -> what read_image must say about it (None: readable).
BAD = {
    "truncated.jpg": "truncated JPEG",
    "empty.jpg": "empty file (0 bytes)",
    "notes.jpg": "not an image",
    "unreadable.jpg": "broken symbolic link",
}
GOOD = ("alpha.png", "deep16.png", "gray.jpg", "huge.jpg", "noface.png")
CASES = {**BAD, **{name: None for name in GOOD}}
# Each good case is given a UTKFace name too (age_gender_race_date.jpg.chip.jpg).
UTK_PREFIX = "30_{}_0_2017011022423889{}.jpg.chip."


@pytest.fixture(scope="module")
def huge_bytes():
    """A 12000x12000 flat grey JPEG (144 Mpx), encoded once: cheap at low quality."""
    ok, encoded = cv2.imencode(".jpg", np.full((12000, 12000), 90, np.uint8),
                               [cv2.IMWRITE_JPEG_QUALITY, 10])
    assert ok
    return encoded.tobytes()


def _face_bytes():
    face = synthetic.make_faces(1, 1, 40, 3)["image"][0]
    return np.round(face * 255).astype(np.uint8)


def _write_case(path, name, huge_bytes):
    """Writes catalogue case `name` at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    photo = _face_bytes()[..., ::-1]  # BGR for cv2
    if name == "truncated.jpg":
        data_ = cv2.imencode(".jpg", photo)[1].tobytes()
        path.write_bytes(data_[: len(data_) * 2 // 3])
    elif name == "empty.jpg":
        path.write_bytes(b"")
    elif name == "notes.jpg":
        path.write_text("name,age\nalice,30\n")
    elif name == "unreadable.jpg":
        os.symlink(path.parent / "gone" / "missing.jpg", path)
    elif name == "alpha.png":
        bgra = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
        path.write_bytes(cv2.imencode(".png", bgra)[1].tobytes())
    elif name == "deep16.png":
        path.write_bytes(cv2.imencode(".png", photo.astype(np.uint16) * 257)[1].tobytes())
    elif name == "gray.jpg":
        path.write_bytes(cv2.imencode(".jpg", cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))[1].tobytes())
    elif name == "huge.jpg":
        path.write_bytes(huge_bytes)
    elif name == "noface.png":
        noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        path.write_bytes(cv2.imencode(".png", noise)[1].tobytes())
    else:
        raise AssertionError(name)
    return path


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory, huge_bytes):
    """Every case in one folder (plain names), shared read-only by the tests."""
    folder = tmp_path_factory.mktemp("catalogue")
    for name in CASES:
        _write_case(folder / name, name, huge_bytes)
    (folder / "album.jpg").mkdir()  # A folder with an image name: not a photo, not an error.
    return folder


@pytest.fixture(scope="module")
def exported(tiny_export_16):
    """The session's tiny export and its loaded signatures."""
    return {"dir": tiny_export_16,
            "signatures": tf.saved_model.load(str(tiny_export_16)).signatures}


def _run(module, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", f"semiadv.apps.{module}", *args],
                          capture_output=True, text=True, timeout=240, cwd=REPO_ROOT, env=env)


class AnyFaceDetector:
    """Finds a face (with eyes) in any image brighter than 100 on average: no cascades."""

    def detect_faces(self, gray):
        height, width = gray.shape
        return [(width // 4, height // 4, width // 2, height // 2)] if gray.mean() > 100 else []

    def detect_eyes(self, gray, face_box):
        x, y, w, h = face_box
        return ((x + 0.3 * w, y + 0.4 * h), (x + 0.7 * w, y + 0.4 * h))


# ---------------------------------------------------------------------------------------------
# Reading one file.


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_image(catalogue, name):
    path = catalogue / name
    if CASES[name] is None:
        image = imageio.read_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        expected = (6000, 6000) if name == "huge.jpg" else (40, 40)  # huge: decoded at 1/2
        assert image.shape[:2] == expected
        return
    with pytest.raises(imageio.ImageReadError) as info:
        imageio.read_image(path)
    assert str(path) in str(info.value) and CASES[name] in str(info.value)


def test_folder_with_an_image_name_is_refused_by_name(catalogue):
    with pytest.raises(imageio.ImageReadError, match=r"album\.jpg.*is a folder"):
        imageio.read_image(catalogue / "album.jpg")


# ---------------------------------------------------------------------------------------------
# Loaders: bad files are skipped and named, good ones read.


def _utkface_folder(root, huge_bytes):
    for number, name in enumerate(CASES):
        _write_case(root / (UTK_PREFIX.format(number % 2, number) + name), name, huge_bytes)
    (root / "malformed_name.jpg").write_bytes(cv2.imencode(".jpg", _face_bytes())[1].tobytes())
    return root


@pytest.mark.parametrize("cache", ["disk", "memory", "none"])
def test_utkface_loader_skips_and_names_bad_files(tmp_path, huge_bytes, caplog, cache):
    root = _utkface_folder(tmp_path / "utk", huge_bytes)
    config = DataConfig(dataset=f"utkface:{root}", image_size=SIZE, batch_size=2,
                        validation_fraction=0.0, test_fraction=0.0, cache=cache,
                        cache_dir=str(tmp_path / "decoded"))
    with caplog.at_level(logging.WARNING):
        records = records_lib.load_records(config, "train")
    skipped = dict(records.skipped)
    for name, reason in BAD.items():
        where = [path for path in skipped if path.endswith(name)]
        if name == "unreadable.jpg":
            # A broken link is not listed as a photo by the loaders at all (see the report).
            assert not where
            continue
        assert len(where) == 1, (name, skipped)
        assert reason in skipped[where[0]]
    assert "malformed UTKFace name" in skipped[str(root / "malformed_name.jpg")]
    assert "skipped" in caplog.text and "truncated.jpg" in caplog.text
    split = input_pipeline.read_split(config, "train")
    assert split["image"].shape == (len(GOOD), SIZE, SIZE, CHANNELS)
    assert np.isfinite(split["image"]).all() and 0 <= split["image"].min() <= split["image"].max() <= 1
    # The huge flat grey photo reads as grey (90/255), not as garbage.
    huge_row = int(np.argmin(np.abs(split["image"].reshape(len(GOOD), -1).std(axis=1))))
    np.testing.assert_allclose(split["image"][huge_row], 90 / 255, atol=3 / 255)


def _labels(folder, header, rows):
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_folder_loader_labels_csv_with_bad_rows_and_files(tmp_path, huge_bytes):
    root = tmp_path / "photos"
    for name in CASES:
        _write_case(root / name, name, huge_bytes)
    rows = [[name, index % 2, index] for index, name in enumerate(CASES)]
    rows += [["ghost.jpg", 1, 50], ["alpha.png", "", 51], ["gray.jpg", "yes", 52], ["", 1, 53]]
    _labels(root, ("file", "male", "identity"), rows)
    config = DataConfig(dataset=f"folder:{root}?aligned=1", image_size=SIZE, batch_size=2,
                        validation_fraction=0.0, test_fraction=0.0)
    records = records_lib.load_records(config, "train")
    assert len(records) == len(GOOD)
    reasons = "\n".join(f"{where}: {why}" for where, why in records.skipped)
    for name, reason in BAD.items():
        if name == "unreadable.jpg":  # named by labels.csv, so reported as missing
            assert f"{root / name} named in labels.csv does not exist" in reasons
        else:
            assert name in reasons and reason in reasons
    labels_file = root / "labels.csv"
    assert f"{labels_file}:{len(CASES) + 2}: file {root / 'ghost.jpg'}" in reasons  # row numbers
    for row in (len(CASES) + 3, len(CASES) + 4):  # missing and non-numeric male
        assert f"{labels_file}:{row}: bad label" in reasons
    assert f"{labels_file}:{len(CASES) + 5}:" in reasons  # missing file name
    examples = input_pipeline.read_split(config, "train")
    assert examples["image"].shape == (len(GOOD), SIZE, SIZE, CHANNELS)


@pytest.mark.parametrize("header, missing", [(("file", "identity"), "['male']"),
                                             (("name", "male"), "['file']"),
                                             ((), "['file', 'male']")])
def test_folder_loader_labels_csv_missing_columns(tmp_path, header, missing):
    root = tmp_path / "photos"
    _write_case(root / "gray.jpg", "gray.jpg", b"")
    if header:
        _labels(root, header, [["gray.jpg", 1]])
    else:
        (root / "labels.csv").write_text("")
    config = DataConfig(dataset=f"folder:{root}?aligned=1", image_size=SIZE)
    with pytest.raises(ValueError) as info:
        records_lib.load_records(config, "train")
    assert str(root / "labels.csv") in str(info.value) and missing in str(info.value)


# ---------------------------------------------------------------------------------------------
# The aligner.


# The catalogue's photos of a (synthetic) face; the real cascades find it in each.
FACES = ("alpha.png", "deep16.png", "gray.jpg")


@pytest.mark.parametrize("name", GOOD)
def test_align_face_on_every_readable_case(catalogue, name):
    rgb = imageio.read_image(catalogue / name)
    result = align_face(rgb, SIZE)
    if name in FACES:
        assert result.status in ("aligned", "fallback")
        assert result.crop.shape == (SIZE, SIZE, 3) and result.crop.dtype == np.uint8
    else:
        assert result.status == "no_face" and result.crop is None


def test_align_folder_goes_on_and_reports_every_file(catalogue, tmp_path):
    output = tmp_path / "aligned"
    report = align_folder(catalogue, output, SIZE, detector=AnyFaceDetector(), progress=False)
    files = report["files"]
    assert sorted(files) == sorted(CASES)  # album.jpg/ is a folder, not a photo
    for name, reason in BAD.items():
        assert files[name]["status"] == "unreadable" and reason in files[name]["error"], name
    for name in GOOD:
        assert files[name]["status"] in STATUSES
        written = output / name
        assert written.is_file() == (files[name]["status"] != "no_face")
    assert sum(report["counts"].values()) == len(CASES)


def test_align_binary_lists_bad_files_and_fails_only_when_nothing_cropped(catalogue, tmp_path):
    result = _run("align_main", f"--input_dir={catalogue}", f"--output_dir={tmp_path / 'out'}",
                  f"--image_size={SIZE}")
    assert result.returncode == 0, result.stderr
    for name, reason in BAD.items():
        assert f"{name}: unreadable" in result.stderr and reason in result.stderr
    for name in ("huge.jpg", "noface.png"):
        assert f"{name}: no_face" in result.stderr
    for name in FACES:
        assert f"{name}:" not in result.stderr
        assert imageio.read_image(tmp_path / "out" / name).shape == (SIZE, SIZE, 3)
    # Nothing could be cropped: exit 1, every file still listed and the report written.
    nothing = tmp_path / "nothing"
    for name in (*BAD, "noface.png"):
        _write_case(nothing / name, name, b"")
    result = _run("align_main", f"--input_dir={nothing}", f"--output_dir={tmp_path / 'none'}",
                  f"--image_size={SIZE}")
    assert result.returncode == 1
    assert all(f"{name}: unreadable" in result.stderr for name in BAD)
    assert "noface.png: no_face" in result.stderr and "no face could be cropped" in result.stderr
    assert (tmp_path / "none" / REPORT_NAME).is_file()


# ---------------------------------------------------------------------------------------------
# Perturb.


def test_perturb_folder_goes_on_and_lists_bad_files(exported, catalogue, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        report = perturb.perturb_folder(exported["dir"], catalogue, tmp_path / "noalign",
                                        align=False, batch_size=2)
    assert report["failed"] == sorted(BAD)
    assert report["counts"] == {"perturbed": len(GOOD), "unreadable": len(BAD)}
    for name, reason in BAD.items():
        assert str(catalogue / name) in report["files"][name]["error"]
        assert reason in report["files"][name]["error"]
        assert name in caplog.text  # and logged when skipped
    for name in GOOD:
        image = imageio.read_image(tmp_path / "noalign" / name)
        assert image.shape == (SIZE, SIZE, 3)
    # Aligning: the photos without a face say so.
    report = perturb.perturb_folder(exported["dir"], catalogue, tmp_path / "aligned")
    assert report["counts"] == {"perturbed": len(FACES), "no_face": len(GOOD) - len(FACES),
                                "unreadable": len(BAD)}
    assert report["failed"] == sorted({*BAD, *GOOD} - set(FACES))
    assert report["files"]["noface.png"]["align_status"] == "no_face"


def test_perturb_binary_exit_code_rule(exported, catalogue, tmp_path):
    ok = _run("perturb_main", f"--export={exported['dir']}", f"--input_dir={catalogue}",
              f"--output_dir={tmp_path / 'ok'}", "--noalign")
    assert ok.returncode == 0, ok.stderr
    for name, reason in BAD.items():
        assert f"{name}: unreadable" in ok.stderr and reason in ok.stderr
    bad_only = tmp_path / "bad_only"
    for name in BAD:
        _write_case(bad_only / name, name, b"")
    failed = _run("perturb_main", f"--export={exported['dir']}", f"--input_dir={bad_only}",
                  f"--output_dir={tmp_path / 'none'}")
    assert failed.returncode == 1
    assert all(f"{name}: unreadable" in failed.stderr for name in BAD)
    assert "no photo could be perturbed" in failed.stderr
    assert (tmp_path / "none" / perturb_report.REPORT_NAME).is_file()  # the report is still written


def test_perturb_logs_no_pixels(exported, catalogue, tmp_path, caplog):
    """Faces never reach the logs: INFO output is a few short lines, with no number arrays."""
    # The absl logger is set explicitly: exporting a model leaves it at WARNING.
    with caplog.at_level(logging.INFO), caplog.at_level(logging.INFO, logger="absl"):
        perturb.perturb_folder(exported["dir"], catalogue, tmp_path / "out", align=False)
        align_folder(catalogue, tmp_path / "aligned", SIZE, detector=AnyFaceDetector())
    messages = [record.getMessage() for record in caplog.records]
    assert any("processed" in m for m in messages) and any("files/s" in m for m in messages)
    assert len(messages) <= 3 * len(CASES)
    for message in messages:
        assert len(message) < 400, message
        assert "[[" not in message and "array(" not in message, message
        assert sum(character.isdigit() for character in message) < 100, message


# ---------------------------------------------------------------------------------------------
# Serving signatures: wrong dtype, rank, size and values, each refused naming the problem.


def _images(n=2, value=0.5, dtype=tf.float32):
    return tf.cast(tf.fill((n, SIZE, SIZE, CHANNELS), value), dtype)


BAD_IMAGES = [
    ("float64", lambda: _images(dtype=tf.float64), "expected to be a float tensor"),
    ("uint8", lambda: _images(value=128, dtype=tf.uint8), "expected to be a float tensor"),
    ("rank 3", lambda: tf.zeros((SIZE, SIZE, CHANNELS)), "Shape of tensor image"),
    ("rank 5", lambda: tf.zeros((1, 2, SIZE, SIZE, CHANNELS)), "Shape of tensor image"),
    ("size", lambda: tf.zeros((2, SIZE + 1, SIZE, CHANNELS)), "Shape of tensor image"),
    ("channels", lambda: tf.zeros((2, SIZE, SIZE, 1)), "Shape of tensor image"),
    ("NaN", lambda: _images(value=np.nan), "'image' has NaN"),
    ("0..255", lambda: _images(value=200.0), "image values must be in [0, 1]"),
    ("negative", lambda: _images(value=-0.5), "image values must be in [0, 1]"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case, make, message", BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_tensor_to_each_signature(exported, kind, case, make, message):
    signatures = exported["signatures"]
    image = make()
    male = tf.zeros(image.shape[:1] if image.shape.rank else (1,), tf.float32)
    for name, call in ((kind, lambda: signatures[kind](image=image)),
                       (f"{kind}_labelled",
                        lambda: signatures[f"{kind}_labelled"](image=image, male=male))):
        with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as info:
            call()
        assert message in str(info.value), (name, str(info.value)[-500:])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("male, message", [
    (tf.zeros((2, 1)), "Shape of tensor male"),
    (tf.zeros((3,)), "must have one label per image"),
    (tf.constant([np.nan, 0.0]), "'male' has NaN"),
    (tf.zeros((2,), tf.int32), "expected to be a float tensor"),
], ids=["rank 2", "count", "NaN", "int32"])
def test_bad_male_tensor_to_each_labelled_signature(exported, kind, male, message):
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as info:
        exported["signatures"][f"{kind}_labelled"](image=_images(), male=male)
    assert message in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("image_bytes, message", [
    (tf.constant([b"\xff\xd8\xff garbage that is not a JPEG"]), "DecodeImage"),
    (tf.constant([b""]), "Input is empty"),
    (tf.constant([b"not an image at all"]), "Unknown image file format"),
    (tf.constant([[b"x"]]), "Shape of tensor image_bytes"),
    (tf.zeros((2,)), "expected to be a string tensor"),
], ids=["garbage", "empty", "text", "rank 2", "float"])
def test_bad_bytes_to_each_encoded_signature(exported, kind, image_bytes, message):
    with pytest.raises((tf.errors.InvalidArgumentError, TypeError, ValueError)) as info:
        exported["signatures"][f"{kind}_encoded"](image_bytes=image_bytes)
    assert message in str(info.value)


@pytest.mark.parametrize("case", ["alpha.png", "deep16.png", "gray.jpg", "huge.jpg"])
def test_odd_but_valid_files_through_the_encoded_signature(exported, catalogue, case):
    served = exported["signatures"]["opposite_encoded"](
        image_bytes=tf.constant([(catalogue / case).read_bytes()]))
    decoded = tf.io.decode_png(served["perturbed_png_bytes"][0]).numpy()
    assert decoded.shape == (SIZE, SIZE, CHANNELS)
    assert 0.0 <= float(served["male_score"][0]) <= 1.0


def test_empty_batches_give_empty_outputs(exported):
    signatures = exported["signatures"]
    for kind in KINDS:
        served = signatures[kind](image=tf.zeros((0, SIZE, SIZE, CHANNELS)))
        assert served["perturbed"].shape == (0, SIZE, SIZE, CHANNELS)
        assert served["male_score"].shape == (0,)
        served = signatures[f"{kind}_labelled"](image=tf.zeros((0, SIZE, SIZE, CHANNELS)),
                                                male=tf.zeros((0,)))
        assert served["perturbed"].shape == (0, SIZE, SIZE, CHANNELS)
        served = signatures[f"{kind}_encoded"](image_bytes=tf.constant([], tf.string))
        assert served["perturbed_png_bytes"].shape == (0,)
