"""Tests of semiadv.export.serving_model: the one Keras model that serves every mode of the SAN."""

import keras
import numpy as np
import pytest

from _tiny_san import ATOL, bfloat16_san, by_hand, layers, make_san, male_score
from semiadv.export import serving_model
from semiadv.models import autoencoders
from semiadv.prototypes.average import Prototypes
from semiadv.prototypes.kinds import KINDS
from semiadv.train import dtype_policies

@pytest.fixture(scope="module")
def san():
    """A tiny random SAN: autoencoder, gender CNN, prototypes and some images."""
    return make_san()


def test_serving_model_matches_hand_computation(san):
    model = san["model"]
    images = san["images"]
    male = np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    outputs = model({"image": images, "male": male})
    for kind in KINDS:
        np.testing.assert_allclose(outputs[kind], by_hand(san, images, male, kind), atol=ATOL)
    np.testing.assert_allclose(outputs["male_score"], male_score(san, images), atol=ATOL)


def test_serving_model_infers_hard_label_when_male_negative(san):
    model = san["model"]
    images = san["images"]
    hard = np.round(male_score(san, images))
    assert 0 < hard.sum() < len(hard), "test images should get both labels"
    outputs = model({"image": images, "male": -np.ones(len(images), np.float32)})
    np.testing.assert_array_equal(outputs["male_label"], hard)
    np.testing.assert_allclose(outputs["opposite"], by_hand(san, images, hard, "opposite"),
                               atol=ATOL)


def test_serving_model_mixes_given_and_inferred_labels_in_one_batch(san):
    images = san["images"]
    hard = np.round(male_score(san, images))
    male = np.array([-1, 0.25, -0.5, 1, 0, -1], np.float32)
    expected_label = np.where(male < 0, hard, male)
    outputs = san["model"]({"image": images, "male": male})
    np.testing.assert_array_equal(outputs["male_label"], expected_label)
    for kind in KINDS:
        np.testing.assert_allclose(outputs[kind], by_hand(san, images, expected_label, kind),
                                   atol=ATOL)


def test_serving_model_rejects_mismatched_prototypes(san):
    small = Prototypes(*(np.zeros((8, 8, 3), np.float32),) * 3, 0.5, (1, 1))
    with pytest.raises(ValueError, match="prototypes have shape"):
        serving_model.build_serving_perturber(san["autoencoder"], san["gender"], small)


def test_export_computes_in_float32_whatever_the_training_policy(san):
    """A bfloat16-trained SAN is served by its float32 copy, even under a bfloat16 policy."""
    autoencoder, gender = bfloat16_san()
    images, male = san["images"], np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    with dtype_policies.dtype_policy("bfloat16"):
        model = serving_model.build_serving_perturber(autoencoder, gender, san["prototypes"])
    assert keras.config.dtype_policy().name == "float32"
    policies = {layer.name: layer.dtype_policy.name for layer in layers(model)}
    assert set(policies.values()) == {"float32"}, policies
    # The same numbers as the float32 networks' hand computation.
    float32_san = dict(san, autoencoder=dtype_policies.with_dtype_policy(autoencoder, "float32"))
    float32_san["perturber"] = autoencoders.build_perturber(float32_san["autoencoder"])
    outputs = model({"image": images, "male": male})
    for kind in KINDS:
        np.testing.assert_allclose(outputs[kind], by_hand(float32_san, images, male, kind),
                                   atol=ATOL)


def test_export_can_keep_the_training_precision(san):
    """float32=False serves a bfloat16-trained SAN in bfloat16 (faster on bf16 CPUs)."""
    autoencoder, gender = bfloat16_san()
    model = serving_model.build_serving_perturber(autoencoder, gender, san["prototypes"],
                                           float32=False)
    policies = {layer.name: layer.dtype_policy.name for layer in layers(model)}
    assert policies["encoder_conv1"] == policies["block1_conv"] == "mixed_bfloat16"
    outputs = model({"image": san["images"], "male": -np.ones(6, np.float32)})
    assert outputs["opposite"].dtype == "float32"
    assert np.isfinite(outputs["opposite"]).all()


def test_serving_model_has_only_built_inlayers(san):
    for layer in layers(san["model"]):
        assert type(layer).__module__.startswith("keras."), (layer.name, type(layer))
