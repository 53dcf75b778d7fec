"""Tests for semiadv.models.blocks: the residual blocks keep oneDNN's crashing kernel out."""

import subprocess
import sys

import keras
import pytest

from semiadv.models import gender_classifiers, matchers

_BUILDERS_AT_64 = {
    "independent_gender_classifier": lambda: (
        gender_classifiers.build_independent_gender_classifier(64, 3, width=0.25)),
    "independent_matcher": lambda: matchers.build_independent_matcher(64, 3, width=0.25),
    "gender_classifier": lambda: gender_classifiers.build_gender_classifier(64, 3, width=0.25),
    "matcher": lambda: matchers.build_matcher(64, 3, width=0.125),
}


@pytest.mark.parametrize("name", sorted(_BUILDERS_AT_64))
def test_no_strided_pointwise_convolutions(name):
    # A 1x1 conv at stride 2 corrupted the heap in oneDNN's backward pass (TF 2.21, 64x64).
    model = _BUILDERS_AT_64[name]()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (1, 1):
            assert tuple(layer.strides) == (1, 1), layer.name


def test_independent_networks_train_at_64_without_crashing():
    # In a subprocess: the oneDNN heap corruption killed the whole interpreter.
    script = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras, tensorflow as tf
from semiadv.models import gender_classifiers, matchers
for model in (gender_classifiers.build_independent_gender_classifier(64, 3, width=0.25),
              matchers.build_independent_matcher(64, 3, width=0.25)):
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    images = tf.random.uniform((32, 64, 64, 3), seed=1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model(images, training=True) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(10):
        loss = step()
    assert bool(tf.math.is_finite(loss))
print("trained")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "trained" in result.stdout, result.stderr[-2000:]
