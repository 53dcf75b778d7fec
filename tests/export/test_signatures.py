"""Tests of semiadv.export.signatures: the export loaded as SavedModel signatures, as a Keras
layer and as perturber.keras, against the eager serving model."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from _tiny_san import ATOL, CHANNELS, SIZE, by_hand
from semiadv.export import signatures
from semiadv.export import writer
from semiadv.prototypes.kinds import KINDS

def test_signatures_listed(exported):
    names = set(exported["loaded"].signatures)
    assert names == set(signatures.signature_names()) | {"serving_default"}


def test_signatures_and_keras_file_match_eager_model(san, exported):
    images = san["images"]
    model = san["model"]
    expected = model({"image": images, "male": -np.ones(len(images), np.float32)})
    signatures = exported["loaded"].signatures
    reloaded = tf.keras.models.load_model(exported["dir"] / writer.KERAS_FILENAME,
                                          safe_mode=True)
    from_keras = reloaded({"image": images, "male": -np.ones(len(images), np.float32)})
    for kind in KINDS:
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
    for kind in KINDS:
        served = signatures[f"{kind}_labelled"](image=tf.constant(images), male=male)
        np.testing.assert_allclose(served["perturbed"], by_hand(san, images, [1, 0], kind),
                                   atol=ATOL)
    # One face with both labels: each label picks its own prototypes.
    image = np.repeat(images[:1], 2, axis=0)
    for kind in KINDS:
        served = signatures[f"{kind}_labelled"](image=tf.constant(image), male=male)["perturbed"]
        np.testing.assert_allclose(served, by_hand(san, image, [1, 0], kind), atol=ATOL)
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
    for name in signatures.signature_names() + ["serving_default"]:
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
