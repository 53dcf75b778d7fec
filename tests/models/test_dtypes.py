"""Tests for semiadv.models.dtypes: the layers kept float32 under mixed precision."""

import keras
import pytest

from semiadv.models import autoencoders, dtypes, gender_classifiers, matchers

from _model_inputs import WIDTH, autoencoder_inputs, random_images


@pytest.fixture
def bfloat16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


def test_the_named_layers_are_the_float32_ones_under_mixed_bfloat16(bfloat16_policy):
    autoencoder = autoencoders.build_autoencoder(16, 3, encoder_filters=(4, 4),
                                                 decoder_filters=(8, 8), residual=True,
                                                 max_change=0.5)
    models = [autoencoder,
              gender_classifiers.build_gender_classifier(16, 3, width=WIDTH),
              matchers.build_matcher(16, 3, embedding_dim=8, width=WIDTH)]
    kept = set()
    for model in models:
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer) or not layer.weights and \
                    not dtypes.computes_in_float32(layer.name):
                continue
            expected = "float32" if dtypes.computes_in_float32(layer.name) else "bfloat16"
            assert layer.compute_dtype == expected, layer.name
            if expected == "float32":
                kept.add(layer.name)
    assert kept == {"combiner", "same_bound", "same_residual", "same_clip", "opposite_bound",
                    "opposite_residual", "opposite_clip", "logits", "embedding", "l2_normalize"}
    outputs = autoencoder(autoencoder_inputs(16, 3))
    assert all(value.dtype == "float32" for value in outputs.values())
    assert models[2](random_images(16, 3)).dtype == "float32"
    assert not dtypes.computes_in_float32("decoder_conv1")
