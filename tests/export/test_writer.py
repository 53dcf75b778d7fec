"""Tests of semiadv.export.writer: versions written atomically, never overwritten, and the
SavedModel and perturber.keras of every kind of autoencoder."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from _tiny_san import ATOL, CHANNELS, SIZE, bfloat16_san, by_hand
from semiadv.export import locate
from semiadv.export import models_config
from semiadv.export import writer
from semiadv.models import autoencoders
from semiadv.prototypes.kinds import KINDS

def _fake_write(model, temp_dir, hide_attributes=()):
    """Stands in for the (slow) SavedModel write where only the versioning is tested."""
    (temp_dir / "saved_model.pb").write_bytes(b"fake")


def test_versions_increment_and_never_overwrite(san, exported, monkeypatch):
    base, first = exported["base"], exported["dir"]
    assert first == (base / "san" / "1").resolve()
    args = (san["autoencoder"], san["gender"], san["prototypes"], base)
    marker = (first / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="never overwritten"):
        writer.export_san(*args, "san", version=1)
    assert (first / "saved_model.pb").stat().st_mtime_ns == marker
    monkeypatch.setattr(writer, "_write_version", _fake_write)
    assert writer.export_san(*args, "san").name == "2"
    (base / "san" / "7").mkdir()  # An existing higher version (even empty) is skipped.
    assert writer.export_san(*args, "san").name == "8"
    assert writer.export_san(*args, "san", version=5).name == "5"
    assert locate.existing_versions(base / "san") == [1, 2, 5, 7, 8]
    assert [p.name for p in (base / "san").iterdir() if not p.name.isdigit()] == []
    assert f'base_path: "{base.resolve() / "san"}"' in (
        base / models_config.MODELS_CONFIG).read_text()
    with pytest.raises(ValueError, match="export name"):
        writer.export_san(*args, "../escape")
    with pytest.raises(ValueError, match="version"):
        writer.export_san(*args, "san", version=0)


def test_crash_mid_export_leaves_no_version(san, tmp_path, monkeypatch):
    def crash(self, filepath, options=None, verbose=True):
        (tmp := __import__("pathlib").Path(filepath) / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError(f"disk full writing {tmp}")

    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        writer.export_san(san["autoencoder"], san["gender"], san["prototypes"], tmp_path, "san")
    assert list((tmp_path / "san").iterdir()) == []
    assert not (tmp_path / models_config.MODELS_CONFIG).exists()


def test_residual_autoencoder_exports_its_skip_connection(san, tmp_path):
    """A `--residual` SAN's three signatures and `.keras` file add the change to the face."""
    autoencoder = autoencoders.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                                 decoder_filters=(8, 8), residual=True)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(3).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    residual = dict(san, autoencoder=autoencoder,
                    perturber=autoencoders.build_perturber(autoencoder))
    version_dir = writer.export_san(autoencoder, san["gender"], san["prototypes"], tmp_path, "r")
    signatures = tf.saved_model.load(str(version_dir)).signatures
    reloaded = tf.keras.models.load_model(version_dir / writer.KERAS_FILENAME, safe_mode=True)
    images, male = san["images"][:2], np.array([1.0, 0.0], np.float32)
    from_keras = reloaded({"image": images, "male": male})
    for kind in KINDS:
        expected = by_hand(residual, images, male, kind)
        served = signatures[f"{kind}_labelled"](image=tf.constant(images), male=male)
        np.testing.assert_allclose(served["perturbed"], expected, atol=ATOL)
        np.testing.assert_allclose(from_keras[kind], expected, atol=ATOL)
        # A change added to the face, not a re-synthesised face.
        change = np.abs(expected - images)
        assert 1e-3 < change.mean() < 0.5


def _two_pass_export(san, tmp_path, encoder_prototype):
    """A residual two-pass autoencoder with a random combiner, its perturber, the export's
    outputs (SavedModel signatures and .keras file) for a male and a female face, and the
    (same, neutral, opposite) prototypes those faces get."""
    autoencoder = autoencoders.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                                 decoder_filters=(8, 8), residual=True,
                                                 encoder_prototype=encoder_prototype)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(4).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    version_dir = writer.export_san(autoencoder, san["gender"], san["prototypes"], tmp_path,
                                    encoder_prototype)
    signatures = tf.saved_model.load(str(version_dir)).signatures
    reloaded = tf.keras.models.load_model(version_dir / writer.KERAS_FILENAME, safe_mode=True)
    images, male = san["images"][:2], np.array([1.0, 0.0], np.float32)
    p = san["prototypes"]
    y = male.reshape(-1, 1, 1, 1)
    prototype = {"same": y * p.male + (1 - y) * p.female,
                 "opposite": (1 - y) * p.male + y * p.female,
                 "neutral": np.broadcast_to(p.neutral, images.shape)}
    prototype = {kind: value.astype(np.float32) for kind, value in prototype.items()}
    served = {kind: signatures[f"{kind}_labelled"](image=tf.constant(images), male=male)
              for kind in KINDS}
    return {"autoencoder": autoencoder, "perturber": autoencoders.build_perturber(autoencoder),
            "images": images, "male": male, "prototype": prototype,
            "served": {kind: value["perturbed"].numpy() for kind, value in served.items()},
            "from_keras": {kind: np.asarray(value) for kind, value
                           in reloaded({"image": images, "male": male}).items()}}


# "own" (~14 s) is the older variant: slow; "difference" is the recipes'.
@pytest.mark.parametrize("encoder_prototype", [pytest.param("own", marks=pytest.mark.slow),
                                               "difference"])
def test_two_pass_encoders_export_each_outputs_own_condition(san, tmp_path, encoder_prototype):
    """With encoder_prototype "own" each signature's passes see that signature's prototype;
    with "difference" its difference from the same-gender prototype (zero for SM)."""
    out = _two_pass_export(san, tmp_path, encoder_prototype)
    images, prototype = out["images"], out["prototype"]
    trained = out["autoencoder"]({"image": images, "same_prototype": prototype["same"],
                                  "opposite_prototype": prototype["opposite"]})
    for kind in KINDS:
        condition = prototype[kind]
        if encoder_prototype == "difference":
            condition = condition - prototype["same"]
        expected = out["perturber"]({"image": images, "encoder_prototype": condition,
                                     "combiner_prototype": condition}).numpy()
        np.testing.assert_allclose(out["served"][kind], expected, atol=ATOL)
        np.testing.assert_allclose(out["from_keras"][kind], expected, atol=ATOL)
        if kind in trained:  # The training model's outputs are what the signatures serve.
            np.testing.assert_allclose(expected, trained[kind], atol=ATOL)
    # A one-pass export would have given the opposite output the same-prototype features.
    one_pass = by_hand(dict(san, perturber=out["perturber"]), images, out["male"], "opposite")
    assert np.abs(one_pass - out["from_keras"]["opposite"]).max() > 1e-4
    # Three different outputs: the neutral one has a condition of its own.
    for a, b in (("same", "neutral"), ("neutral", "opposite")):
        assert np.abs(out["from_keras"][a] - out["from_keras"][b]).max() > 1e-4


# Run in a fresh interpreter: semiadv is made unimportable before Keras loads the file, so
# any reference to a semiadv layer would fail, and the script checks nothing imported it.
_LOAD_WITHOUT_SEMIADV = """
import sys
sys.modules["semiadv"] = None  # `import semiadv` now raises ImportError.
import numpy as np
import tensorflow as tf
inputs = np.load(sys.argv[1])
outputs = {}
for name in inputs.files:
    if name.startswith("path_"):
        continue
    model = tf.keras.models.load_model(str(inputs["path_" + name]))
    result = model({"image": inputs[name], "male": -np.ones(len(inputs[name]), np.float32)})
    for key, value in result.items():
        outputs[name + "/" + key] = np.asarray(value)
assert not [m for m in sys.modules if m.split(".")[0] == "semiadv" and sys.modules[m]]
np.savez(sys.argv[2], **outputs)
"""


def _load_in_fresh_python(tmp_path, keras_files, images):
    """Each `.keras` file's outputs on `images`, computed by a Python that has no semiadv."""
    arrays = {name: images for name in keras_files}
    arrays.update({f"path_{name}": np.array(str(path)) for name, path in keras_files.items()})
    np.savez(tmp_path / "inputs.npz", **arrays)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""),
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_SEMIADV, str(tmp_path / "inputs.npz"),
         str(tmp_path / "outputs.npz")], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    with np.load(tmp_path / "outputs.npz") as outputs:
        return {key: outputs[key] for key in outputs.files}


def test_keras_file_loads_without_semiadv_and_matches_saved_model(san, exported, tmp_path):
    """Both exports (float32, and a SAN trained in bfloat16) open with Keras alone and give
    the SavedModel's outputs."""
    autoencoder, gender = bfloat16_san()
    assert autoencoder.get_layer("encoder_conv1").dtype_policy.name == "mixed_bfloat16"
    bf16_dir = writer.export_san(autoencoder, gender, san["prototypes"], tmp_path / "bf16", "b")
    version_dirs = {"float32": exported["dir"], "bfloat16": bf16_dir}
    images = san["images"]
    from_keras = _load_in_fresh_python(
        tmp_path, {name: path / writer.KERAS_FILENAME for name, path in version_dirs.items()},
        images)
    for name, version_dir in version_dirs.items():
        signatures = tf.saved_model.load(str(version_dir)).signatures
        for kind in KINDS:
            served = signatures[kind](image=tf.constant(images))
            np.testing.assert_allclose(from_keras[f"{name}/{kind}"], served["perturbed"],
                                       atol=ATOL, err_msg=f"{name} {kind}")
            np.testing.assert_allclose(from_keras[f"{name}/male_score"], served["male_score"],
                                       atol=ATOL, err_msg=name)
        # A change was made, so agreeing is not trivial.
        assert np.abs(from_keras[f"{name}/opposite"] - images).max() > 1e-2
