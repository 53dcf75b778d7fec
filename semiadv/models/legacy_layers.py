"""Layers that only exports written by older versions of semiadv hold.

Those exports' `perturber.keras` files name `MaleLabel` and `PrototypeMixer`; today's serving
model is built from built-in Keras layers only. Kept registered (`import semiadv.models`) so
the old files still load. New code never uses them.
"""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="semiadv")
class MaleLabel(keras.layers.Layer):
    """Deprecated (old exports only): gender logits and a caller's label -> (label, score).

    Inputs: `[male, logits]`, `male` [B] float (negative = unknown), `logits` [B, 2] (class 1 =
    male). Returns `(label, score)`, both [B] float32: `score` is the softmax probability of
    male; `label` is the caller's `male` clipped to [0, 1] where it is given, else the hard
    label round(score).
    """

    def build(self, input_shape):
        self.built = True

    def call(self, inputs):
        male, logits = inputs
        male = keras.ops.cast(male, "float32")
        score = keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)[:, 1]
        label = keras.ops.where(male < 0, keras.ops.round(score), keras.ops.clip(male, 0.0, 1.0))
        return label, score

    def compute_output_spec(self, inputs):
        male, _ = inputs
        return (keras.KerasTensor(male.shape, dtype="float32"),
                keras.KerasTensor(male.shape, dtype="float32"))


@keras.saving.register_keras_serializable(package="semiadv")
class PrototypeMixer(keras.layers.Layer):
    """Deprecated (old exports only): holds the three prototypes and mixes them per example.

    Input: `male` [B] in [0, 1]. Returns `(same, neutral, opposite)` prototypes, each
    [B, H, W, C]: P_SM = m * P_male + (1 - m) * P_female, P_OP = (1 - m) * P_male + m * P_female,
    P_NT the stored neutral prototype.
    """

    def __init__(self, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(int(size) for size in image_shape)

    def build(self, input_shape):
        self.male_prototype = self._prototype_weight("male_prototype")
        self.female_prototype = self._prototype_weight("female_prototype")
        self.neutral_prototype = self._prototype_weight("neutral_prototype")
        self.built = True

    def _prototype_weight(self, name):
        return self.add_weight(name=name, shape=self.image_shape, initializer="zeros",
                               trainable=False, dtype="float32")

    def set_prototypes(self, prototypes):
        """Copies a `semiadv.prototypes.average.Prototypes` into the weights."""
        for weight, value in ((self.male_prototype, prototypes.male),
                              (self.female_prototype, prototypes.female),
                              (self.neutral_prototype, prototypes.neutral)):
            weight.assign(np.asarray(value, np.float32))

    def call(self, male):
        y = keras.ops.reshape(keras.ops.cast(male, "float32"), (-1, 1, 1, 1))
        male_prototype = self.male_prototype[None]
        female_prototype = self.female_prototype[None]
        same = y * male_prototype + (1.0 - y) * female_prototype
        opposite = (1.0 - y) * male_prototype + y * female_prototype
        neutral = keras.ops.broadcast_to(self.neutral_prototype[None], keras.ops.shape(same))
        return same, neutral, opposite

    def compute_output_spec(self, male):
        shape = (male.shape[0],) + self.image_shape
        return tuple(keras.KerasTensor(shape, dtype="float32") for _ in range(3))

    def get_config(self):
        config = super().get_config()
        config["image_shape"] = list(self.image_shape)
        return config
