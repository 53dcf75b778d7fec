"""Every builder's model round-trips through its config and a `.keras` file loaded safely."""

import keras
import numpy as np
import pytest

from semiadv.models import autoencoders, gender_classifiers, matchers

from _model_inputs import WIDTH, autoencoder_inputs, perturber_inputs, random_images


def all_models():
    """(name, model, example inputs) for every builder at 16x16 or 32x32."""
    autoencoder = autoencoders.build_autoencoder(16, 3)
    ae_inputs = autoencoder_inputs(16, 3)
    image = random_images(32, 1)
    return [
        ("autoencoder", autoencoder, ae_inputs),
        ("perturber", autoencoders.build_perturber(autoencoder), perturber_inputs(ae_inputs)),
        ("gender", gender_classifiers.build_gender_classifier(32, 1, width=WIDTH), image),
        ("matcher", matchers.build_matcher(32, 1, embedding_dim=8, width=WIDTH), image),
        ("vgg_gender", gender_classifiers.build_vgg_gender_classifier(32, 1, width=WIDTH), image),
        ("ind_gender",
         gender_classifiers.build_independent_gender_classifier(32, 1, width=WIDTH), image),
        ("ind_matcher", matchers.build_independent_matcher(32, 1, 8, width=WIDTH), image),
    ]


def assert_same_outputs(actual, expected):
    if isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            np.testing.assert_array_equal(actual[key], expected[key])
    else:
        np.testing.assert_array_equal(actual, expected)


@pytest.fixture(scope="module")
def models():
    return all_models()


def test_config_round_trip(models):
    for name, model, inputs in models:
        clone = model.__class__.from_config(model.get_config())
        assert [x.name for x in clone.layers] == [x.name for x in model.layers], name
        clone.set_weights(model.get_weights())
        assert_same_outputs(clone(inputs), model(inputs))


def test_keras_file_save_and_safe_load(models, tmp_path):
    for name, model, inputs in models:
        path = tmp_path / f"{name}.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
        assert loaded.name == model.name
        assert_same_outputs(loaded(inputs), model(inputs))


def test_no_lambda_layers(models):
    for name, model, _ in models:
        assert not any(isinstance(x, keras.layers.Lambda) for x in model.layers), name

