"""Work dirs and exports written before the package was split into subpackages still load.

The artefacts in tests/fixtures/legacy_v0 were written by the flat-layout package (its README says
how); these tests read them with today's code, the way a user with an old work dir would.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from _python import run_python

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_v0"
ATOL = 1e-5

# The flags the work dir was trained with (flags/demo.cfg at 16x16, 4 steps a stage).
TRAIN_FLAGS = [
    "--dataset=synthetic", "--image_size=16", "--channels=3", "--batch_size=32",
    "--encoder_filters=4,4", "--decoder_filters=8,8", "--residual", "--upsampling=bilinear",
    "--classifier_width=0.125", "--matcher_width=0.125", "--embedding_dim=16",
    "--gender_steps=4", "--matcher_steps=4", "--autoencoder_steps=0", "--san_steps=4",
    "--san_learning_rate=1e-3", "--match_weight=2", "--mixed_precision=auto",
    "--export_name=tiny",
]


def _binary(name):
    return str(Path(sys.executable).with_name(name))


def test_old_savedmodel_signatures_give_the_same_outputs():
    faces = np.load(LEGACY / "faces.npy")
    loaded = tf.saved_model.load(str(LEGACY / "exports" / "tiny" / "1"))
    assert {"same", "neutral", "opposite", "serving_default"} <= set(loaded.signatures)
    for kind in ("same", "neutral", "opposite"):
        got = loaded.signatures[kind](image=tf.constant(faces))["perturbed"].numpy()
        np.testing.assert_allclose(got, np.load(LEGACY / f"signature_{kind}.npy"), atol=ATOL)


def test_old_perturber_keras_loads_with_keras_alone():
    """In a fresh process that never imports semiadv, as a Keras-only user opens it."""
    code = (
        "import sys, numpy as np, keras\n"
        f"legacy = {str(LEGACY)!r}\n"
        "model = keras.models.load_model(legacy + '/exports/tiny/1/perturber.keras')\n"
        "faces = np.load(legacy + '/faces.npy')\n"
        "out = model({'image': faces, 'male': np.array([-1, 0, 1], np.float32)})\n"
        "want = np.load(legacy + '/keras_outputs.npz')\n"
        "for name in want.files:\n"
        "    np.testing.assert_allclose(keras.ops.convert_to_numpy(out[name]), want[name],"
        " atol=1e-5)\n"
        "assert 'semiadv' not in sys.modules\n"
        "print('same outputs', sorted(want.files))\n")
    assert "same outputs" in run_python(code).stdout


def test_old_keras_files_with_registered_export_layers_load():
    import semiadv.models  # noqa: F401  registers the layers old perturber.keras files hold

    model = keras.models.load_model(LEGACY / "old_custom_export_layers.keras", safe_mode=True)
    prototypes = np.load(LEGACY / "old_custom_export_layers_prototypes.npz")
    outputs = model({"male": np.array([-1.0, 0.0], np.float32),
                     "logits": np.array([[0.0, 3.0], [0.0, 3.0]], np.float32)})
    np.testing.assert_array_equal(outputs["label"], [1.0, 0.0])
    np.testing.assert_allclose(outputs["opposite"][0], prototypes["female"], atol=ATOL)
    np.testing.assert_allclose(outputs["opposite"][1], prototypes["male"], atol=ATOL)


def test_old_keras_files_with_dlib_layers_load():
    import semiadv.models  # noqa: F401

    model = keras.models.load_model(LEGACY / "old_dlib_layers.keras", safe_mode=True)
    got = keras.ops.convert_to_numpy(model(np.load(LEGACY / "old_dlib_layers_input.npy")))
    np.testing.assert_allclose(got, np.load(LEGACY / "old_dlib_layers_output.npy"), atol=ATOL)


def test_old_work_dir_reruns_without_training_and_exports(tmp_path):
    workdir = tmp_path / "workdir"
    shutil.copytree(LEGACY / "workdir", workdir)
    models_before = {path: path.read_bytes() for path in workdir.glob("*/model.keras")}
    exports = tmp_path / "exports"
    result = subprocess.run(
        [_binary("semiadv-train"), *TRAIN_FLAGS, f"--workdir={workdir}",
         f"--export_dir={exports}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "training steps" not in log, log[-3000:]
    assert {path: path.read_bytes() for path in workdir.glob("*/model.keras")} == models_before
    export = exports / "tiny" / "1"
    loaded = tf.saved_model.load(str(export))
    faces = np.load(LEGACY / "faces.npy")
    got = loaded.signatures["opposite"](image=tf.constant(faces))["perturbed"].numpy()
    np.testing.assert_allclose(got, np.load(LEGACY / "signature_opposite.npy"), atol=ATOL)
    assert json.loads((workdir / "config.json").read_text())["data"]["image_size"] == 16


def test_old_export_perturbs_a_folder(tmp_path):
    import cv2

    photos = tmp_path / "photos"
    photos.mkdir()
    faces = np.load(LEGACY / "faces.npy")
    for index, face in enumerate(faces):
        cv2.imwrite(str(photos / f"face{index}.png"), (face[..., ::-1] * 255).astype(np.uint8))
    result = subprocess.run(
        [_binary("semiadv-perturb"), f"--export={LEGACY / 'exports' / 'tiny'}",
         f"--input_dir={photos}", f"--output_dir={tmp_path / 'out'}", "--noalign"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(path.name for path in (tmp_path / "out").glob("*.png"))
    assert written == ["face0.png", "face1.png", "face2.png"]
