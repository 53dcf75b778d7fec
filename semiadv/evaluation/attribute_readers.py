"""Unseen age and race readers the evaluation builds itself (issue #24): what a choice hides.

The choice-conditioned SAN is trained against auxiliary age-group and race classifiers; these
readers share neither their family nor their training faces, so an edit must change what they
read too. They do learn from the same data set, though (unseen, not foreign by data);
`dlib_attributes.DlibAgeReader` (`AttributeConfig.dlib_age`) is a reader trained elsewhere:

- `hog`: HOG descriptors of the grey face (`foreign.hog_features`) plus a colour layout (the
  face shrunk to 4x4 in CIELAB: grey gradients are blind to skin tone and hair colour, which
  carry race and age in photos), standardised; a multinomial logistic regression per class
  attribute (age group, race) and a ridge regression of the age in years;
- `hog_grey`, `colour` (`AttributeConfig.parts`): each half of the `hog` features alone, so the
  report says which evidence a choice moved: the grey face's gradients or its colour layout;
- `cnn`: the foreign separable CNN (`foreign.separable_backbone`) at twice the data's size
  with strong augmentation, one softmax head per class attribute and an age head (L1 loss in
  years), all trained at once on the faces whose labels are known.

Both learn from the `validation` split, like the foreign gender classifiers (disjoint by
identity from the SAN's `train` and the evaluated `test`: foreign by family, not by data), and
are cached in the evaluation work dir as `attributes_<family>-<digest>/`. An attribute the
split does not label on at least two values (CelebA has no age or race) is left out.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.evaluation import foreign, model_cache, sampling
from semiadv.utils import files

SPLIT = "validation"
FAMILIES = ("hog", "cnn", "hog_grey", "colour")
# The linear families and the features each reads: the HOG readers' two halves alone
# (`AttributeConfig.parts`) say which evidence a choice moved, the grey face's gradients
# (shape, texture) or its colour layout (skin tone, hair colour).
LINEAR_FEATURES = {"hog": ("hog", "colour"), "hog_grey": ("hog",), "colour": ("colour",)}
# Class attributes and their value counts; "age" is the regression.
CLASSES = {"age_group": len(attributes.AGE_GROUP_NAMES), "race": len(attributes.RACE_NAMES)}
AGE = "age"
_LAYOUT = 4  # The colour layout's grid side.
_AGE_SCALE = 50.0  # The CNN's age head predicts years / 50: outputs near the unit scale.
_LOG_EVERY_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class AttributeConfig:
    """Whether to evaluate the soft-biometric attributes, and how to build their readers.

    Attributes:
      enabled: run the attribute evaluation (when the test set labels age or race).
      hog, cnn: build (or reuse) each family of readers.
      hog_size: HOG input side (a multiple of 8, at least 16).
      hog_steps: gradient-descent steps of each logistic regression (full batch).
      hog_l2: their L2 penalty.
      age_ridge: the age ridge regression's penalty (features are standardised).
      cnn_size: the CNN's input side; 0 = twice the data's, at least 96.
      cnn_steps, cnn_batch_size, cnn_width, learning_rate: its training (Adam).
      max_training_faces: validation faces the readers learn from, spread over the split
        (0 = all).
      seed: weight-initialisation and augmentation seed.
      parts: also a reader of each half of the HOG readers' features alone, the grey face's
        HOG and the colour layout (families "hog_grey" and "colour", the same training).
      dlib_age: also dlib's age predictor (`dlib_attributes`, the `[age]` extra): a foreign reader
        of the age and age group, trained on other data than UTKFace.
    """

    enabled: bool = True
    hog: bool = True
    cnn: bool = False
    hog_size: int = 64
    hog_steps: int = 300
    hog_l2: float = 1e-3
    age_ridge: float = 1.0
    cnn_size: int = 0
    cnn_steps: int = 600
    cnn_batch_size: int = 32
    cnn_width: float = 1.0
    learning_rate: float = 2e-3
    max_training_faces: int = 0
    seed: int = 8642
    parts: bool = False
    dlib_age: bool = False

    def __post_init__(self):
        foreign.check_reader_settings(self, "attribute")
        if self.max_training_faces < 0 or self.hog_l2 < 0 or self.age_ridge < 0:
            raise ValueError("attribute max_training_faces, hog_l2 and age_ridge must not be "
                             "negative")

    def cnn_input_size(self, data_size: int) -> int:
        """The CNN's input side for data of side `data_size`."""
        return self.cnn_size or max(2 * data_size, 96)

    def settings(self, family: str, data_size: int) -> dict:
        """What shapes the `family` readers (their cache key)."""
        shared = {"training_faces": self.max_training_faces}
        if family in LINEAR_FEATURES:
            linear = {**shared, "size": self.hog_size, "steps": self.hog_steps,
                      "l2": self.hog_l2, "age_ridge": self.age_ridge, "layout": _LAYOUT}
            # The whole HOG family's key is as before: its caches stay valid.
            return linear if family == "hog" else {**linear, "features": family}
        return {**shared, "size": self.cnn_input_size(data_size), "steps": self.cnn_steps,
                "batch_size": self.cnn_batch_size, "width": self.cnn_width,
                "learning_rate": self.learning_rate, "seed": self.seed}

    @property
    def families(self) -> tuple[str, ...]:
        """The enabled families."""
        return tuple(family for family in FAMILIES
                     if getattr(self, family, False) or (self.parts and family in ("hog_grey",
                                                                                   "colour")))


def learnable(labels: dict) -> tuple[str, ...]:
    """The attributes (of `CLASSES` and `AGE`) that `labels` know on at least two values."""
    names = [name for name in CLASSES
             if len(np.unique(labels[name][labels[name] >= 0])) >= 2]
    if len(np.unique(labels[AGE][labels[AGE] >= 0])) >= 2:
        names.append(AGE)
    return tuple(names)


class AttributeReader:
    """A family's readers of several attributes behind one call.

    Attributes:
      name: what the report calls it.
      family: one of `FAMILIES`.
      attributes: what it reads (`CLASSES` keys and/or `AGE`).
      relation: "foreign" (by family; the SAN never saw it).
    """

    relation = "foreign"
    seen = False

    def __init__(self, name: str, family: str, attribute_names, predict):
        self.name, self.family, self.attributes = name, family, tuple(attribute_names)
        self._predict = predict

    def __call__(self, images: np.ndarray, batch_size: int = 128) -> dict:
        """{attribute: class probabilities [N, K] or ages in years [N]} of faces in [0, 1]."""
        parts = [self._predict(images[start:start + batch_size])
                 for start in range(0, len(images), batch_size)]
        if not parts:
            return {}
        return {name: np.concatenate([part[name] for part in parts]) for name in self.attributes}


# ---------------------------------------------------------------------------------------------
# HOG + colour layout, regressions.
# ---------------------------------------------------------------------------------------------


def colour_layout(images: np.ndarray) -> np.ndarray:
    """[N, 4*4*3] CIELAB means of a 4x4 grid over faces [N, H, W, C] in [0, 1] (grey: L)."""
    features = []
    for image in np.asarray(images, np.float32):
        small = cv2.resize(image, (_LAYOUT, _LAYOUT), interpolation=cv2.INTER_AREA)
        if small.ndim == 2 or small.shape[-1] == 1:
            small = np.repeat(small.reshape(_LAYOUT, _LAYOUT, 1), 3, axis=-1)
        features.append(cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2LAB).ravel())
    return (np.stack(features) if features
            else np.zeros((0, _LAYOUT * _LAYOUT * 3), np.float32))


def hog_colour_features(images: np.ndarray, size: int, family: str = "hog") -> np.ndarray:
    """The features of linear `family` (`LINEAR_FEATURES`): by default
    `foreign.hog_features` and `colour_layout`, side by side."""
    parts = {"hog": lambda: foreign.hog_features(images, size),
             "colour": lambda: colour_layout(images)}
    return np.concatenate([parts[part]() for part in LINEAR_FEATURES[family]], axis=1)


def fit_softmax_regression(x: np.ndarray, labels: np.ndarray, classes: int, steps: int,
                           l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights [D, K] and bias [K] of a multinomial logistic regression on standardised `x`,
    by full-batch gradient descent on the mean cross-entropy plus `l2` |W|^2 / 2."""
    onehot = np.eye(classes)[labels]
    # The softmax loss's Hessian is bounded by (largest eigenvalue of x'x / n) / 2 (+ l2): a
    # step of 1 / L descends without a line search (as `foreign.fit_logistic_regression`).
    vector = np.random.default_rng(0).normal(size=x.shape[1])
    eigenvalue = 1.0
    for _ in range(20):
        vector = x.T @ (x @ vector) / len(x)
        eigenvalue = np.linalg.norm(vector)
        vector /= max(eigenvalue, 1e-12)
    rate = 1.0 / (eigenvalue / 2 + l2 + 1e-12)
    weights, bias = np.zeros((x.shape[1], classes)), np.zeros(classes)
    for _ in range(steps):
        probabilities = _softmax(x @ weights + bias)
        error = probabilities - onehot
        weights -= rate * (x.T @ error / len(x) + l2 * weights)
        bias -= rate * error.mean(axis=0)
    return weights.astype(np.float32), bias.astype(np.float32)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_ridge(x: np.ndarray, target: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Weights [D] and bias of a ridge regression on standardised `x` (closed form)."""
    mean = float(target.mean())
    gram = x.T @ x / len(x) + penalty * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, x.T @ (target - mean) / len(x))
    return weights.astype(np.float32), mean


def train_hog(images: np.ndarray, labels: dict, names, config: AttributeConfig,
              family: str = "hog") -> dict:
    """The linear `family`'s arrays: standardisation, and per attribute of `names` its
    weights."""
    features = hog_colour_features(images, config.hog_size, family).astype(np.float64)
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    x = (features - mean) / std
    parameters = {"mean": mean.astype(np.float32), "std": std.astype(np.float32)}
    for name in names:
        known = labels[name] >= 0
        if name == AGE:
            weights, bias = fit_ridge(x[known], labels[name][known].astype(np.float64),
                                      config.age_ridge)
        else:
            weights, bias = fit_softmax_regression(x[known], labels[name][known], CLASSES[name],
                                                   config.hog_steps, config.hog_l2)
        parameters[f"{name}_weights"], parameters[f"{name}_bias"] = weights, np.asarray(bias)
    return parameters


_LINEAR_NAMES = {"hog": "HOG + colour layout + regression {size}px",
                 "hog_grey": "HOG of the grey face alone + regression {size}px",
                 "colour": "colour layout alone + regression"}


def hog_reader(parameters: dict, size: int, family: str = "hog") -> AttributeReader:
    """The readers of linear `family`'s `parameters` (`train_hog`) at input side `size`."""
    names = tuple(name for name in (*CLASSES, AGE) if f"{name}_weights" in parameters)

    def predict(images):
        x = ((hog_colour_features(images, size, family) - parameters["mean"])
             / parameters["std"])
        read = {}
        for name in names:
            scores = x @ parameters[f"{name}_weights"] + parameters[f"{name}_bias"]
            read[name] = scores.astype(np.float32) if name == AGE else _softmax(scores)
        return read

    return AttributeReader(_LINEAR_NAMES[family].format(size=size), family, names, predict)


# ---------------------------------------------------------------------------------------------
# The separable CNN with one head per attribute.
# ---------------------------------------------------------------------------------------------


def build_separable_attribute_reader(image_size: int, channels: int, names,
                                     width: float = 1.0) -> keras.Model:
    """The foreign separable CNN's features with a head per attribute of `names`: logits
    [B, K] for `CLASSES`, the age in years / 50 [B] for `AGE`. Outputs: a dict by name."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    features = foreign.separable_backbone(inputs, width)
    outputs = {}
    for name in names:
        units = 1 if name == AGE else CLASSES[name]
        head = keras.layers.Dense(units, name=f"{name}_head")(features)
        outputs[name] = keras.layers.Flatten(name=name)(head) if name != AGE else \
            keras.layers.Reshape((), name=name)(head)
    return keras.Model(inputs, outputs, name="separable_attribute_reader")


def _masked_mean(values: tf.Tensor, known: tf.Tensor) -> tf.Tensor:
    known = tf.cast(known, values.dtype)
    return tf.reduce_sum(values * known) / tf.maximum(tf.reduce_sum(known), 1.0)


def train_cnn(images: np.ndarray, labels: dict, names, config: AttributeConfig) -> keras.Model:
    """Trains the multi-head CNN on faces [N, H, W, C] in [0, 1]; labels -1 are left out of
    their head's loss (a face may teach its race and not its age)."""
    size = config.cnn_input_size(images.shape[1])
    keras.utils.set_random_seed(config.seed)
    model = build_separable_attribute_reader(size, images.shape[-1], names, config.cnn_width)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    targets = {name: labels[name].astype(np.int32 if name != AGE else np.float32)
               for name in names}
    dataset = (tf.data.Dataset.from_tensor_slices((images, targets))
               .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
               .repeat().batch(config.cnn_batch_size, drop_remainder=True).prefetch(2))

    @tf.function
    def step(faces, batch_labels, number):
        faces = foreign.augment(faces, size, tf.stack([number, tf.constant(config.seed)]))
        with tf.GradientTape() as tape:
            outputs = model(faces, training=True)
            losses = []
            for name in names:
                label = batch_labels[name]
                known = label >= 0
                if name == AGE:
                    per_face = tf.abs(outputs[name] - label / _AGE_SCALE)
                else:
                    per_face = tf.nn.sparse_softmax_cross_entropy_with_logits(
                        tf.maximum(label, 0), outputs[name])
                losses.append(_masked_mean(per_face, known))
            loss = tf.add_n(losses)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    logging.info("attribute CNN: %d steps at %dx%d on %d faces of the %s split (%s)",
                 config.cnn_steps, size, size, len(images), SPLIT, ", ".join(names))
    started = last_log = time.monotonic()
    for number, (faces, batch_labels) in enumerate(dataset.take(config.cnn_steps), start=1):
        loss = float(step(faces, batch_labels, tf.constant(number, tf.int32)))
        now = time.monotonic()
        if now - last_log > _LOG_EVERY_SECONDS or number == config.cnn_steps:
            last_log = now
            rate = number / max(now - started, 1e-9)
            logging.info("attribute CNN step %d/%d loss=%.4g (%.1f steps/s, ETA %.0f s)",
                         number, config.cnn_steps, loss, rate, (config.cnn_steps - number) / rate)
    return model


def cnn_reader(model: keras.Model, names) -> AttributeReader:
    """The readers of a trained multi-head CNN; faces are resized to its input."""
    size = model.input_shape[1]

    def predict(images):
        faces = tf.image.resize(tf.constant(images, tf.float32), (size, size),
                                antialias=True) if images.shape[1] != size else images
        outputs = model(faces, training=False)
        return {name: (outputs[name].numpy() * _AGE_SCALE if name == AGE
                       else tf.nn.softmax(outputs[name]).numpy()) for name in names}

    return AttributeReader(f"separable CNN {size}px, augmented", "cnn", names, predict)


# ---------------------------------------------------------------------------------------------
# Cache.
# ---------------------------------------------------------------------------------------------


def cache_dir(eval_workdir: str | Path, family: str, data_config: DataConfig,
              config: AttributeConfig) -> Path:
    """`eval_workdir/attributes_<family>-<digest>`: one folder per distinct (data, settings)."""
    return model_cache.cache_dir(eval_workdir, "attributes", family, data_config, "settings",
                                 config.settings(family, data_config.image_size))


def _training_faces(data_config: DataConfig, config: AttributeConfig):
    split = sampling.read_spread(data_config, SPLIT, config.max_training_faces or None)
    return split["image"], {name: split[name] for name in (*CLASSES, AGE)}


def load_or_train(family: str, data_config: DataConfig, config: AttributeConfig,
                  eval_workdir: str | Path) -> AttributeReader | None:
    """The cached `family` readers, trained on the validation split if missing; None when the
    split labels no attribute on two values."""
    directory = cache_dir(eval_workdir, family, data_config, config)
    linear = family in LINEAR_FEATURES
    path = directory / ("model.npz" if linear else "model.keras")
    if path.exists():
        logging.info("attribute readers (%s): cached (%s)", family, path)
        if linear:
            with np.load(path) as stored:
                return hog_reader(dict(stored), config.hog_size, family)
        model = keras.models.load_model(path, safe_mode=True)
        probe = np.zeros((1, *model.input_shape[1:]), np.float32)
        return cnn_reader(model, tuple(model(probe, training=False)))
    images, labels = _training_faces(data_config, config)
    names = learnable(labels)
    if not names:
        return None
    model_cache.write_config(directory, family, SPLIT, data_config, "settings",
                             config.settings(family, data_config.image_size))
    if linear:
        logging.info("attribute readers (%s): %d faces of the %s split (%s)", family,
                     len(images), SPLIT, ", ".join(names))
        parameters = train_hog(images, labels, names, config, family)
        with files.atomic_path(path, suffix=".npz") as partial:
            np.savez(partial, **parameters)
        return hog_reader(parameters, config.hog_size, family)
    model = train_cnn(images, labels, names, config)
    with files.atomic_path(path, suffix=".keras") as partial:  # No half-written cache.
        model.save(partial)
    return cnn_reader(model, names)


def attribute_readers(data_config: DataConfig, config: AttributeConfig,
                      eval_workdir: str | Path) -> list[AttributeReader]:
    """The enabled families' readers, trained on first use (none for unlabelled data), then
    dlib's age predictor when `config.dlib_age` (it learns nothing here)."""
    readers = [load_or_train(family, data_config, config, eval_workdir)
               for family in config.families]
    readers = [reader for reader in readers if reader is not None]
    if config.dlib_age:
        from semiadv.evaluation import dlib_attributes  # It imports this module.

        readers.append(dlib_attributes.DlibAgeReader())
    return readers
