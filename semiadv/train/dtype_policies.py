"""The Keras dtype policy of a run (`TrainConfig.mixed_precision`), for built and loaded models."""

from __future__ import annotations

import contextlib

import keras

from semiadv.config import MIXED_PRECISION
from semiadv.models import dtypes


@contextlib.contextmanager
def dtype_policy(mixed_precision: str):
    """Sets the global Keras dtype policy of `TrainConfig.mixed_precision` for a block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(MIXED_PRECISION[mixed_precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_dtype_policy(model: keras.Model, policy: str) -> keras.Model:
    """`model` with every layer but the float32 output layers computing under `policy`.

    Models loaded from `.keras` files keep the per-layer policies they were saved with, so a
    float32 pre-trained network is cloned (same weights) to train or run under another
    policy. Returns `model` itself when nothing changes.
    """
    def target(layer):
        return "float32" if dtypes.computes_in_float32(layer.name) else policy

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if all(layer.dtype_policy.name == target(layer) for layer in layers):
        return model

    def clone_layer(layer):
        layer_config = layer.get_config()
        layer_config["dtype"] = target(layer)
        return layer.__class__.from_config(layer_config)

    clone = keras.models.clone_model(model, clone_function=clone_layer)
    clone.set_weights(model.get_weights())
    clone.trainable = model.trainable
    return clone
