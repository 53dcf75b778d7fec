"""Tests of semiadv.export.exporter: the serving model, its SavedModel signatures and versioning."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.export import exporter as export
from semiadv.models import networks
from semiadv.train import tasks
from semiadv.prototypes.prototypes import Prototypes

SIZE, CHANNELS = 16, 3
ATOL = 1e-5


def _prototypes(rng):
    male = rng.random((SIZE, SIZE, CHANNELS), dtype=np.float32)
    female = rng.random((SIZE, SIZE, CHANNELS), dtype=np.float32)
    neutral = (0.4 * male + 0.6 * female).astype(np.float32)
    return Prototypes(male, female, neutral, 0.4, (2, 3))


@pytest.fixture(scope="module")
def san():
    """A tiny random SAN: autoencoder, gender CNN, prototypes and some images."""
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    autoencoder = networks.build_autoencoder(
        SIZE, CHANNELS, encoder_filters=(4, 4), decoder_filters=(8, 8))
    gender = networks.build_gender_classifier(SIZE, CHANNELS, width=0.125)
    images = rng.random((6, SIZE, SIZE, CHANNELS), dtype=np.float32)
    # Spread and centre the logits so that half the images are called male: the hard label
    # then differs between images.
    logits = gender.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 50.0, bias * 50.0])
    margin = np.diff(gender(images, training=False).numpy(), axis=1)[:, 0]
    logits.set_weights([kernel * 50.0, bias * 50.0 - [0.0, np.median(margin)]])
    prototypes = _prototypes(rng)
    return {"autoencoder": autoencoder, "gender": gender, "prototypes": prototypes,
            "images": images, "perturber": networks.build_perturber(autoencoder),
            "model": export.build_serving_perturber(autoencoder, gender, prototypes)}


@pytest.fixture(scope="module")
def exported(san, tmp_path_factory):
    base = tmp_path_factory.mktemp("exports")
    version_dir = export.export_san(san["autoencoder"], san["gender"], san["prototypes"],
                                    base, "san")
    return {"base": base, "dir": version_dir, "loaded": tf.saved_model.load(str(version_dir))}


def _male_score(san, images):
    logits = san["gender"](images, training=False)
    return tf.nn.softmax(logits)[:, 1].numpy()


def _by_hand(san, images, male, kind):
    """The SAN output computed with the eager autoencoder and the prototypes."""
    p = san["prototypes"]
    y = np.asarray(male, np.float32).reshape(-1, 1, 1, 1)
    same = y * p.male + (1 - y) * p.female
    combiner = {"same": same, "opposite": (1 - y) * p.male + y * p.female,
                "neutral": np.broadcast_to(p.neutral, same.shape)}[kind]
    return san["perturber"]({"image": images, "encoder_prototype": same.astype(np.float32),
                      "combiner_prototype": combiner.astype(np.float32)}).numpy()


# ---------------------------------------------------------------------------------------------
# The serving model.


def test_serving_model_matches_hand_computation(san):
    model = san["model"]
    images = san["images"]
    male = np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    outputs = model({"image": images, "male": male})
    for kind in export.KINDS:
        np.testing.assert_allclose(outputs[kind], _by_hand(san, images, male, kind), atol=ATOL)
    np.testing.assert_allclose(outputs["male_score"], _male_score(san, images), atol=ATOL)


def test_serving_model_infers_hard_label_when_male_negative(san):
    model = san["model"]
    images = san["images"]
    hard = np.round(_male_score(san, images))
    assert 0 < hard.sum() < len(hard), "test images should get both labels"
    outputs = model({"image": images, "male": -np.ones(len(images), np.float32)})
    np.testing.assert_array_equal(outputs["male_label"], hard)
    np.testing.assert_allclose(outputs["opposite"], _by_hand(san, images, hard, "opposite"),
                               atol=ATOL)


def test_serving_model_mixes_given_and_inferred_labels_in_one_batch(san):
    images = san["images"]
    hard = np.round(_male_score(san, images))
    male = np.array([-1, 0.25, -0.5, 1, 0, -1], np.float32)
    expected_label = np.where(male < 0, hard, male)
    outputs = san["model"]({"image": images, "male": male})
    np.testing.assert_array_equal(outputs["male_label"], expected_label)
    for kind in export.KINDS:
        np.testing.assert_allclose(outputs[kind], _by_hand(san, images, expected_label, kind),
                                   atol=ATOL)


def test_serving_model_rejects_mismatched_prototypes(san):
    small = Prototypes(*(np.zeros((8, 8, 3), np.float32),) * 3, 0.5, (1, 1))
    with pytest.raises(ValueError, match="prototypes have shape"):
        export.build_serving_perturber(san["autoencoder"], san["gender"], small)


# ---------------------------------------------------------------------------------------------
# Loading the export three ways.


def test_signatures_listed(exported):
    names = set(exported["loaded"].signatures)
    assert names == set(export.signature_names()) | {"serving_default"}


def test_signatures_and_keras_file_match_eager_model(san, exported):
    images = san["images"]
    model = san["model"]
    expected = model({"image": images, "male": -np.ones(len(images), np.float32)})
    signatures = exported["loaded"].signatures
    reloaded = tf.keras.models.load_model(exported["dir"] / export.KERAS_FILENAME,
                                          safe_mode=True)
    from_keras = reloaded({"image": images, "male": -np.ones(len(images), np.float32)})
    for kind in export.KINDS:
        served = signatures[kind](image=tf.constant(images))
        np.testing.assert_allclose(served["perturbed"], expected[kind], atol=ATOL)
        np.testing.assert_allclose(served["male_score"], expected["male_score"], atol=ATOL)
        np.testing.assert_allclose(from_keras[kind], expected[kind], atol=ATOL)
    layer = keras.layers.TFSMLayer(str(exported["dir"]), call_endpoint="opposite")
    np.testing.assert_allclose(layer(images)["perturbed"], expected["opposite"], atol=ATOL)
    default = signatures["serving_default"](image=tf.constant(images))
    np.testing.assert_allclose(default["perturbed"], expected["opposite"], atol=ATOL)


def test_opposite_differs_from_same(san, exported):
    signatures = exported["loaded"].signatures
    images = tf.constant(san["images"])
    same = signatures["same"](image=images)["perturbed"].numpy()
    opposite = signatures["opposite"](image=images)["perturbed"].numpy()
    assert np.abs(same - opposite).max() > 1e-3


def test_labelled_family_swaps_prototypes(san, exported):
    signatures = exported["loaded"].signatures
    images = san["images"][:2]
    male = tf.constant([1.0, 0.0])
    for kind in export.KINDS:
        served = signatures[f"{kind}_labelled"](image=tf.constant(images), male=male)
        np.testing.assert_allclose(served["perturbed"], _by_hand(san, images, [1, 0], kind),
                                   atol=ATOL)
    # One face with both labels: each label picks its own prototypes.
    image = np.repeat(images[:1], 2, axis=0)
    for kind in export.KINDS:
        served = signatures[f"{kind}_labelled"](image=tf.constant(image), male=male)["perturbed"]
        np.testing.assert_allclose(served, _by_hand(san, image, [1, 0], kind), atol=ATOL)
    opposite = signatures["opposite_labelled"](image=tf.constant(image), male=male)["perturbed"]
    assert np.abs(opposite[0] - opposite[1]).max() > 1e-3


def _encode(image, fmt):
    pixels = tf.constant(np.round(image * 255).astype(np.uint8))
    return (tf.io.encode_png(pixels) if fmt == "png" else tf.io.encode_jpeg(pixels, quality=95))


def test_encoded_family_round_trips_png_and_jpeg(san, exported):
    signatures = exported["loaded"].signatures
    image = np.round(san["images"][0] * 255) / 255
    big = tf.image.resize(image[None], (40, 56)).numpy()[0].clip(0, 1)
    batch = tf.constant([_encode(image, "png").numpy(), _encode(big, "jpeg").numpy()])
    served = signatures["opposite_encoded"](image_bytes=batch)
    assert served["perturbed_png_bytes"].shape == (2,)
    decoded = [tf.io.decode_png(png).numpy() for png in served["perturbed_png_bytes"].numpy()]
    assert all(d.shape == (SIZE, SIZE, CHANNELS) and d.dtype == np.uint8 for d in decoded)
    # The PNG is already the export's size, so it must give exactly the float path's answer.
    direct = signatures["opposite"](image=tf.constant(image[None].astype(np.float32)))
    expected = np.round(direct["perturbed"].numpy()[0] * 255)
    np.testing.assert_allclose(decoded[0], expected, atol=1)
    np.testing.assert_allclose(served["male_score"][0], direct["male_score"][0], atol=ATOL)
    assert 0 <= float(served["male_score"][1]) <= 1


def test_encoded_family_rejects_garbage_bytes(exported):
    with pytest.raises(tf.errors.InvalidArgumentError):
        exported["loaded"].signatures["same_encoded"](image_bytes=tf.constant([b"not an image"]))


@pytest.mark.parametrize("bad", [
    tf.zeros((2, SIZE, SIZE, CHANNELS), tf.float64),       # dtype
    tf.zeros((SIZE, SIZE, CHANNELS), tf.float32),          # rank
    tf.zeros((2, SIZE + 1, SIZE, CHANNELS), tf.float32),   # size
    tf.zeros((2, SIZE, SIZE, 1), tf.float32),              # channels
])
def test_wrong_inputs_raise(exported, bad):
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        exported["loaded"].signatures["opposite"](image=bad)


def test_wrong_labelled_inputs_raise(exported):
    signature = exported["loaded"].signatures["opposite_labelled"]
    image = tf.zeros((2, SIZE, SIZE, CHANNELS))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(image=image, male=tf.zeros((2, 1)))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(image=image, male=tf.zeros((3,)))  # batch mismatch: fails at run time
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        exported["loaded"].signatures["opposite_encoded"](image_bytes=tf.zeros((2,)))


def _saved_model_cli():
    return [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


def _tensor_info(key, dtype, shape=None):
    text = f"{key} tensor_info:\n        dtype: {dtype}"
    return text if shape is None else f"{text}\n        shape: {shape}"


def test_saved_model_cli_shows_signatures(exported):
    result = subprocess.run(_saved_model_cli() + ["show", "--dir", str(exported["dir"]), "--all"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name in export.signature_names() + ["serving_default"]:
        assert f"signature_def['{name}']" in text
    block = text.split("signature_def['opposite_labelled']")[1].split("signature_def[")[0]
    assert _tensor_info("inputs['image']", "DT_FLOAT", "(-1, 16, 16, 3)") in block
    assert _tensor_info("inputs['male']", "DT_FLOAT", "(-1)") in block
    block = text.split("signature_def['neutral_encoded']")[1].split("signature_def[")[0]
    assert _tensor_info("inputs['image_bytes']", "DT_STRING", "(-1)") in block
    assert _tensor_info("outputs['perturbed_png_bytes']", "DT_STRING", "(-1)") in block
    assert _tensor_info("outputs['male_score']", "DT_FLOAT", "(-1)") in block
    block = text.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert _tensor_info("outputs['perturbed']", "DT_FLOAT", "(-1, 16, 16, 3)") in block


# ---------------------------------------------------------------------------------------------
# Versions, atomicity and models.config.


def _fake_write(model, temp_dir):
    """Stands in for the (slow) SavedModel write where only the versioning is tested."""
    (temp_dir / "saved_model.pb").write_bytes(b"fake")


def test_versions_increment_and_never_overwrite(san, exported, monkeypatch):
    base, first = exported["base"], exported["dir"]
    assert first == (base / "san" / "1").resolve()
    args = (san["autoencoder"], san["gender"], san["prototypes"], base)
    marker = (first / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_san(*args, "san", version=1)
    assert (first / "saved_model.pb").stat().st_mtime_ns == marker
    monkeypatch.setattr(export, "_write_version", _fake_write)
    assert export.export_san(*args, "san").name == "2"
    (base / "san" / "7").mkdir()  # An existing higher version (even empty) is skipped.
    assert export.export_san(*args, "san").name == "8"
    assert export.export_san(*args, "san", version=5).name == "5"
    assert export.existing_versions(base / "san") == [1, 2, 5, 7, 8]
    assert [p.name for p in (base / "san").iterdir() if not p.name.isdigit()] == []
    with pytest.raises(ValueError, match="export name"):
        export.export_san(*args, "../escape")
    with pytest.raises(ValueError, match="version"):
        export.export_san(*args, "san", version=0)


def test_crash_mid_export_leaves_no_version(san, tmp_path, monkeypatch):
    def crash(self, filepath, options=None, verbose=True):
        (tmp := __import__("pathlib").Path(filepath) / "saved_model.pb").write_bytes(b"half")
        raise RuntimeError(f"disk full writing {tmp}")

    archive_class = type(keras.export.ExportArchive())
    monkeypatch.setattr(archive_class, "write_out", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_san(san["autoencoder"], san["gender"], san["prototypes"], tmp_path, "san")
    assert list((tmp_path / "san").iterdir()) == []
    assert not (tmp_path / export.MODELS_CONFIG).exists()


def test_models_config_lists_every_model(san, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_write_version", _fake_write)
    (tmp_path / "empty_model").mkdir()  # No version yet: not served.
    (tmp_path / "other" / "3").mkdir(parents=True)
    export.export_san(san["autoencoder"], san["gender"], san["prototypes"], tmp_path, "san")
    text = (tmp_path / export.MODELS_CONFIG).read_text()
    base = tmp_path.resolve()
    assert text == (
        "model_config_list {\n"
        "  config {\n"
        '    name: "other"\n'
        f'    base_path: "{base / "other"}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "  config {\n"
        '    name: "san"\n'
        f'    base_path: "{base / "san"}"\n'
        '    model_platform: "tensorflow"\n'
        "  }\n"
        "}\n")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_residual_autoencoder_exports_its_skip_connection(san, tmp_path):
    """A `--residual` SAN's three signatures and `.keras` file add the change to the face."""
    autoencoder = networks.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                             decoder_filters=(8, 8), residual=True)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(3).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    residual = dict(san, autoencoder=autoencoder, perturber=networks.build_perturber(autoencoder))
    version_dir = export.export_san(autoencoder, san["gender"], san["prototypes"], tmp_path, "r")
    signatures = tf.saved_model.load(str(version_dir)).signatures
    reloaded = tf.keras.models.load_model(version_dir / export.KERAS_FILENAME, safe_mode=True)
    images, male = san["images"][:2], np.array([1.0, 0.0], np.float32)
    from_keras = reloaded({"image": images, "male": male})
    for kind in export.KINDS:
        expected = _by_hand(residual, images, male, kind)
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
    autoencoder = networks.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                             decoder_filters=(8, 8), residual=True,
                                             encoder_prototype=encoder_prototype)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(4).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    version_dir = export.export_san(autoencoder, san["gender"], san["prototypes"], tmp_path,
                                    encoder_prototype)
    signatures = tf.saved_model.load(str(version_dir)).signatures
    reloaded = tf.keras.models.load_model(version_dir / export.KERAS_FILENAME, safe_mode=True)
    images, male = san["images"][:2], np.array([1.0, 0.0], np.float32)
    p = san["prototypes"]
    y = male.reshape(-1, 1, 1, 1)
    prototype = {"same": y * p.male + (1 - y) * p.female,
                 "opposite": (1 - y) * p.male + y * p.female,
                 "neutral": np.broadcast_to(p.neutral, images.shape)}
    prototype = {kind: value.astype(np.float32) for kind, value in prototype.items()}
    served = {kind: signatures[f"{kind}_labelled"](image=tf.constant(images), male=male)
              for kind in export.KINDS}
    return {"autoencoder": autoencoder, "perturber": networks.build_perturber(autoencoder),
            "images": images, "male": male, "prototype": prototype,
            "served": {kind: value["perturbed"].numpy() for kind, value in served.items()},
            "from_keras": {kind: np.asarray(value) for kind, value
                           in reloaded({"image": images, "male": male}).items()}}


@pytest.mark.parametrize("encoder_prototype", ["own", "difference"])
def test_two_pass_encoders_export_each_outputs_own_condition(san, tmp_path, encoder_prototype):
    """With encoder_prototype "own" each signature's passes see that signature's prototype;
    with "difference" its difference from the same-gender prototype (zero for SM)."""
    out = _two_pass_export(san, tmp_path, encoder_prototype)
    images, prototype = out["images"], out["prototype"]
    trained = out["autoencoder"]({"image": images, "same_prototype": prototype["same"],
                                  "opposite_prototype": prototype["opposite"]})
    for kind in export.KINDS:
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
    one_pass = _by_hand(dict(san, perturber=out["perturber"]), images, out["male"], "opposite")
    assert np.abs(one_pass - out["from_keras"]["opposite"]).max() > 1e-4
    # Three different outputs: the neutral one has a condition of its own.
    for a, b in (("same", "neutral"), ("neutral", "opposite")):
        assert np.abs(out["from_keras"][a] - out["from_keras"][b]).max() > 1e-4


# ---------------------------------------------------------------------------------------------
# perturber.keras without semiadv, and a bfloat16-trained SAN.

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


def _bfloat16_san():
    """A residual SAN whose networks were built (as trained) under mixed_bfloat16."""
    keras.utils.set_random_seed(4)
    with tasks.dtype_policy("bfloat16"):
        autoencoder = networks.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                                 decoder_filters=(8, 8), residual=True,
                                                 upsampling="bilinear")
        gender = networks.build_gender_classifier(SIZE, CHANNELS, width=0.125)
    combiner = autoencoder.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(5).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    return autoencoder, gender


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def test_keras_file_loads_without_semiadv_and_matches_saved_model(san, exported, tmp_path):
    """Both exports (float32, and a SAN trained in bfloat16) open with Keras alone and give
    the SavedModel's outputs."""
    autoencoder, gender = _bfloat16_san()
    assert autoencoder.get_layer("encoder_conv1").dtype_policy.name == "mixed_bfloat16"
    bf16_dir = export.export_san(autoencoder, gender, san["prototypes"], tmp_path / "bf16", "b")
    version_dirs = {"float32": exported["dir"], "bfloat16": bf16_dir}
    images = san["images"]
    from_keras = _load_in_fresh_python(
        tmp_path, {name: path / export.KERAS_FILENAME for name, path in version_dirs.items()},
        images)
    for name, version_dir in version_dirs.items():
        signatures = tf.saved_model.load(str(version_dir)).signatures
        for kind in export.KINDS:
            served = signatures[kind](image=tf.constant(images))
            np.testing.assert_allclose(from_keras[f"{name}/{kind}"], served["perturbed"],
                                       atol=ATOL, err_msg=f"{name} {kind}")
            np.testing.assert_allclose(from_keras[f"{name}/male_score"], served["male_score"],
                                       atol=ATOL, err_msg=name)
        # A change was made, so agreeing is not trivial.
        assert np.abs(from_keras[f"{name}/opposite"] - images).max() > 1e-2


def test_export_computes_in_float32_whatever_the_training_policy(san):
    """A bfloat16-trained SAN is served by its float32 copy, even under a bfloat16 policy."""
    autoencoder, gender = _bfloat16_san()
    images, male = san["images"], np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    with tasks.dtype_policy("bfloat16"):
        model = export.build_serving_perturber(autoencoder, gender, san["prototypes"])
    assert keras.config.dtype_policy().name == "float32"
    policies = {layer.name: layer.dtype_policy.name for layer in _layers(model)}
    assert set(policies.values()) == {"float32"}, policies
    # The same numbers as the float32 networks' hand computation.
    float32_san = dict(san, autoencoder=tasks.with_dtype_policy(autoencoder, "float32"))
    float32_san["perturber"] = networks.build_perturber(float32_san["autoencoder"])
    outputs = model({"image": images, "male": male})
    for kind in export.KINDS:
        np.testing.assert_allclose(outputs[kind], _by_hand(float32_san, images, male, kind),
                                   atol=ATOL)


def test_export_can_keep_the_training_precision(san):
    """float32=False serves a bfloat16-trained SAN in bfloat16 (faster on bf16 CPUs)."""
    autoencoder, gender = _bfloat16_san()
    model = export.build_serving_perturber(autoencoder, gender, san["prototypes"],
                                           float32=False)
    policies = {layer.name: layer.dtype_policy.name for layer in _layers(model)}
    assert policies["encoder_conv1"] == policies["block1_conv"] == "mixed_bfloat16"
    outputs = model({"image": san["images"], "male": -np.ones(6, np.float32)})
    assert outputs["opposite"].dtype == "float32"
    assert np.isfinite(outputs["opposite"]).all()


def test_serving_model_has_only_built_in_layers(san):
    for layer in _layers(san["model"]):
        assert type(layer).__module__.startswith("keras."), (layer.name, type(layer))
