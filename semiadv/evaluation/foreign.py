"""Gender classifiers of other families than the SAN's auxiliary CNN, built by the evaluation.

The independent ResNet is a sibling of the auxiliary CNN (a CNN on the same data at the same
input size): an edit that fools one tends to fool the other, so it overstates transfer. These
two classifiers come from other families, so an edit must change what they read too:

- `hog`: histograms of oriented gradients (OpenCV's `cv2.HOGDescriptor`) of the grey face at
  its own input size, standardised, and a logistic regression (numpy, full-batch gradient
  descent with an L2 penalty): no convolution, no learnt features;
- `cnn`: a small depthwise-separable (MobileNet-like) CNN at a larger input size (twice the
  data's, at least 96 pixels) trained with strong augmentation (random resized crops, flips,
  colour jitter, blur), so it reads gender the way classifiers of photos in the wild do.

Both learn from the `validation` split of the SAN's data, like the independent networks
(disjoint by identity from the SAN's `train` and the evaluated `test`): they are *foreign by
family*, not by data. They are trained once and cached in the evaluation work dir as
`foreign_<kind>-<digest>/`, keyed by every setting that shapes them, so reruns reuse them.
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
from semiadv.data import input_pipeline
from semiadv.evaluation import model_cache
from semiadv.utils import files

SPLIT = "validation"
KINDS = ("hog", "cnn")
_LOG_EVERY_SECONDS = 15.0
# HOG geometry in pixels: 8-pixel cells, 2x2-cell blocks moved by one cell, 9 orientations
# (Dalal and Triggs' pedestrian set-up).
_CELL, _BINS = 8, 9


def check_reader_settings(config, what: str) -> None:
    """Raises ValueError, naming `what`, unless `config`'s hog_size (a multiple of the HOG
    cell, at least 16), cnn_size (0: auto, else at least 16) and hog_steps, cnn_steps and
    cnn_batch_size (positive) are usable: the settings the foreign classifiers and the
    attribute readers share."""
    if config.hog_size < 16 or config.hog_size % _CELL:
        raise ValueError(f"{what} HOG size {config.hog_size}: want a multiple of {_CELL}, at "
                         "least 16")
    if config.cnn_size and config.cnn_size < 16:
        raise ValueError(f"{what} CNN size {config.cnn_size}: want 0 (auto) or >= 16")
    for name in ("hog_steps", "cnn_steps", "cnn_batch_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{what} {name} must be positive, got {getattr(config, name)}")


@dataclasses.dataclass(frozen=True)
class ForeignConfig:
    """Which package-built foreign classifiers to run and how to train them.

    Attributes:
      hog: train (or reuse) the HOG + logistic regression classifier.
      hog_size: its input side (a multiple of 8, at least 16).
      hog_steps: gradient-descent steps of the logistic regression (full batch).
      hog_l2: its L2 penalty.
      cnn: train (or reuse) the separable CNN.
      cnn_size: its input side; 0 = twice the data's, at least 96.
      cnn_steps: its training steps (Adam).
      cnn_batch_size: its batch size.
      cnn_width: width multiplier of its filters.
      learning_rate: the CNN's Adam learning rate (the regression's step is fixed).
      seed: weight-initialisation and augmentation seed.
    """

    hog: bool = True
    hog_size: int = 64
    hog_steps: int = 300
    hog_l2: float = 1e-3
    cnn: bool = True
    cnn_size: int = 0
    cnn_steps: int = 500
    cnn_batch_size: int = 32
    cnn_width: float = 1.0
    learning_rate: float = 2e-3
    seed: int = 4321

    def __post_init__(self):
        check_reader_settings(self, "foreign")
        if self.cnn_width <= 0 or self.learning_rate <= 0 or self.hog_l2 < 0:
            raise ValueError("foreign cnn_width and learning_rate must be positive, hog_l2 "
                             "not negative")

    def cnn_input_size(self, data_size: int) -> int:
        """The CNN's input side for data of side `data_size`."""
        return self.cnn_size or max(2 * data_size, 96)

    def settings(self, kind: str, data_size: int) -> dict:
        """The settings that shape the `kind` classifier (its cache key)."""
        if kind == "hog":
            return {"size": self.hog_size, "steps": self.hog_steps, "l2": self.hog_l2}
        return {"size": self.cnn_input_size(data_size), "steps": self.cnn_steps,
                "batch_size": self.cnn_batch_size, "width": self.cnn_width,
                "learning_rate": self.learning_rate, "seed": self.seed}


def cache_dir(eval_workdir: str | Path, kind: str, data_config: DataConfig,
              config: ForeignConfig) -> Path:
    """`eval_workdir/foreign_<kind>-<digest>`: one folder per distinct (data, settings)."""
    return model_cache.cache_dir(eval_workdir, "foreign", kind, data_config, "settings",
                                 config.settings(kind, data_config.image_size))


def _training_faces(data_config: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """The validation split's faces of known gender and their 0/1 labels.

    Raises:
      ValueError: naming the split when it holds faces of one gender only (or none).
    """
    split = input_pipeline.read_split(data_config, SPLIT)
    known = split["male"] >= 0
    images, male = split["image"][known], split["male"][known].astype(np.float32)
    if len(np.unique(male)) < 2:
        raise ValueError(f"cannot train the foreign gender classifiers on the {SPLIT} split "
                         f"of {data_config.dataset}: it has {len(male)} faces of known gender, "
                         "not both genders")
    return images, male


# ---------------------------------------------------------------------------------------------
# HOG + logistic regression.
# ---------------------------------------------------------------------------------------------


def hog_features(images: np.ndarray, size: int) -> np.ndarray:
    """HOG descriptors [N, D] of faces float32 [N, H, W, C] in [0, 1], grey at `size`."""
    descriptor = cv2.HOGDescriptor((size, size), (2 * _CELL, 2 * _CELL), (_CELL, _CELL),
                                   (_CELL, _CELL), _BINS)
    features = []
    for image in np.asarray(images, np.float32):
        pixels = np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8)
        grey = (pixels[..., 0] if pixels.shape[-1] == 1
                else cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2GRAY))
        if grey.shape != (size, size):
            shrinking = grey.shape[0] > size
            grey = cv2.resize(grey, (size, size),
                              interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        features.append(descriptor.compute(grey).ravel())
    dimension = descriptor.getDescriptorSize()
    return np.stack(features) if features else np.zeros((0, dimension), np.float32)


def fit_logistic_regression(features: np.ndarray, labels: np.ndarray, steps: int,
                            l2: float) -> dict:
    """Standardised features -> weights by full-batch gradient descent on the mean
    cross-entropy plus `l2` * |w|^2 / 2. Returns the arrays `HogGenderClassifier` reads."""
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    x = ((features - mean) / std).astype(np.float64)
    y = labels.astype(np.float64)
    weights, bias = np.zeros(x.shape[1]), 0.0
    # The loss's gradient is Lipschitz with L = (largest eigenvalue of x'x / n) / 4 + l2 (a few
    # power iterations find it): steps of 1 / L descend without a line search.
    vector = np.random.default_rng(0).normal(size=x.shape[1])
    for _ in range(20):
        vector = x.T @ (x @ vector) / len(x)
        eigenvalue = np.linalg.norm(vector)
        vector /= max(eigenvalue, 1e-12)
    rate = 1.0 / (eigenvalue / 4 + l2 + 1e-12)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
        error = p - y
        weights -= rate * (x.T @ error / len(y) + l2 * weights)
        bias -= rate * error.mean()
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "weights": weights.astype(np.float32), "bias": np.float32(bias)}


class HogGenderClassifier:
    """HOG features and a logistic regression behind the evaluator interface."""

    kind = "gender"
    image_size = None  # Resized to its own size with the features.
    origin = "built-in"
    relation = "foreign"
    seen = False

    def __init__(self, parameters: dict, size: int):
        self.parameters = {key: np.asarray(value) for key, value in parameters.items()}
        self.size = size
        self.name = f"HOG + logistic regression {size}px"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        features = hog_features(images, self.size)
        x = (features - self.parameters["mean"]) / self.parameters["std"]
        logits = x @ self.parameters["weights"] + self.parameters["bias"]
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def load_or_train_hog(data_config: DataConfig, config: ForeignConfig,
                      eval_workdir: str | Path) -> HogGenderClassifier:
    """The cached HOG classifier, trained on the validation split if missing."""
    directory = cache_dir(eval_workdir, "hog", data_config, config)
    path = directory / "model.npz"
    if path.exists():
        logging.info("foreign HOG classifier: cached (%s)", path)
        with np.load(path) as stored:
            return HogGenderClassifier(dict(stored), config.hog_size)
    images, male = _training_faces(data_config)
    logging.info("foreign HOG classifier: %d steps on %d faces of the %s split", config.hog_steps,
                 len(images), SPLIT)
    parameters = fit_logistic_regression(hog_features(images, config.hog_size), male,
                                         config.hog_steps, config.hog_l2)
    _write_config(directory, "hog", data_config, config)
    with files.atomic_path(path, suffix=".npz") as partial:
        np.savez(partial, **parameters)
    return HogGenderClassifier(parameters, config.hog_size)


def _write_config(directory: Path, kind: str, data_config: DataConfig,
                  config: ForeignConfig) -> None:
    model_cache.write_config(directory, kind, SPLIT, data_config, "settings",
                             config.settings(kind, data_config.image_size))


# ---------------------------------------------------------------------------------------------
# The separable CNN.
# ---------------------------------------------------------------------------------------------


def separable_backbone(inputs, width: float = 1.0):
    """The separable CNN's features [B, F] of faces [B, S, S, C] in [0, 1]: a strided 3x3
    stem, depthwise-separable blocks (strided depthwise 3x3 to downsample, 1x1 to mix),
    global average pooling and dropout. Shared with `attribute_readers`."""

    def filters(count):
        return max(8, int(round(count * width)))

    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(inputs)
    x = keras.layers.Conv2D(filters(16), 3, strides=2, padding="same", use_bias=False,
                            name="stem")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    for index, (count, stride) in enumerate(((32, 1), (48, 2), (64, 2), (64, 1), (96, 2),
                                             (128, 1))):
        name = f"block{index}"
        x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                                         name=f"{name}_depthwise")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_depthwise_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_depthwise_relu")(x)
        x = keras.layers.Conv2D(filters(count), 1, use_bias=False, name=f"{name}_pointwise")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_pointwise_bn")(x)
        x = keras.layers.ReLU(6.0, name=f"{name}_pointwise_relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.layers.Dropout(0.2, name="dropout")(x)


def build_separable_gender_classifier(image_size: int, channels: int = 3,
                                      width: float = 1.0) -> keras.Model:
    """A MobileNet-like gender classifier: `separable_backbone` and two logits
    (class 1 = male)."""
    inputs = keras.Input((image_size, image_size, channels), name="image")
    logits = keras.layers.Dense(2, name="logits")(separable_backbone(inputs, width))
    return keras.Model(inputs, logits, name="separable_gender_classifier")


def _gaussian_kernel(sigma: tf.Tensor, channels: int) -> tf.Tensor:
    offsets = tf.range(-2.0, 3.0)
    weights = tf.exp(-0.5 * tf.square(offsets / sigma))
    weights /= tf.reduce_sum(weights)
    kernel = weights[:, None] * weights[None, :]
    return tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])


def augment(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """Strong augmentation of faces [B, H, W, C] in [0, 1] to [B, size, size, C]: random
    resized crops (60-100% of the area, aspect 3:4 to 4:3), horizontal flips, colour jitter
    (brightness, contrast, saturation, hue) and, on half the faces, a Gaussian blur."""
    batch = tf.shape(images)[0]
    channels = images.shape[-1]
    seeds = tf.random.experimental.stateless_split(seed, 10)
    area = tf.random.stateless_uniform([batch], seeds[0], 0.6, 1.0)
    aspect = tf.exp(tf.random.stateless_uniform([batch], seeds[1], np.log(3 / 4), np.log(4 / 3)))
    height = tf.minimum(tf.sqrt(area / aspect), 1.0)
    width = tf.minimum(tf.sqrt(area * aspect), 1.0)
    top = tf.random.stateless_uniform([batch], seeds[2]) * (1.0 - height)
    left = tf.random.stateless_uniform([batch], seeds[3]) * (1.0 - width)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    flip = tf.random.stateless_uniform([batch], seeds[4]) < 0.5
    boxes = tf.where(flip[:, None], tf.stack([top, left + width, top + height, left], axis=1),
                     boxes)  # A box with x2 < x1 crops mirrored.
    x = tf.image.crop_and_resize(images, boxes, tf.range(batch), (size, size))
    x = x + tf.random.stateless_uniform([batch, 1, 1, 1], seeds[5], -0.15, 0.15)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = mean + (x - mean) * tf.random.stateless_uniform([batch, 1, 1, 1], seeds[6], 0.7, 1.3)
    if channels == 3:
        grey = tf.reduce_mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * tf.random.stateless_uniform([batch, 1, 1, 1], seeds[7], 0.6,
                                                            1.4)
        x = tf.image.adjust_hue(tf.clip_by_value(x, 0.0, 1.0),
                                tf.random.stateless_uniform([], seeds[8], -0.05, 0.05))
    sigma = tf.random.stateless_uniform([], seeds[9], 0.5, 1.5)
    blurred = tf.nn.depthwise_conv2d(x, _gaussian_kernel(sigma, channels), [1, 1, 1, 1], "SAME")
    blur = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[9] + 1) < 0.5
    return tf.clip_by_value(tf.where(blur, blurred, x), 0.0, 1.0)


def train_cnn(images: np.ndarray, male: np.ndarray, config: ForeignConfig) -> keras.Model:
    """Trains the separable CNN on faces [N, H, W, C] in [0, 1] with labels [N] (0/1)."""
    size = config.cnn_input_size(images.shape[1])
    keras.utils.set_random_seed(config.seed)
    model = build_separable_gender_classifier(size, images.shape[-1], config.cnn_width)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    optimizer.build(model.trainable_variables)
    dataset = (tf.data.Dataset.from_tensor_slices((images, male.astype(np.int32)))
               .shuffle(len(images), seed=config.seed, reshuffle_each_iteration=True)
               .repeat().batch(config.cnn_batch_size, drop_remainder=True).prefetch(2))

    @tf.function
    def step(faces, labels, number):
        seed = tf.stack([number, tf.constant(config.seed, tf.int32)])
        faces = augment(faces, size, seed)
        with tf.GradientTape() as tape:
            logits = model(faces, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    logging.info("foreign CNN: %d steps at %dx%d on %d faces of the %s split", config.cnn_steps,
                 size, size, len(images), SPLIT)
    started = last_log = time.monotonic()
    for number, (faces, labels) in enumerate(dataset.take(config.cnn_steps), start=1):
        loss = float(step(faces, labels, tf.constant(number, tf.int32)))
        now = time.monotonic()
        if now - last_log > _LOG_EVERY_SECONDS or number == config.cnn_steps:
            last_log = now
            rate = number / max(now - started, 1e-9)
            logging.info("foreign CNN step %d/%d loss=%.4g (%.1f steps/s, ETA %.0f s)", number,
                         config.cnn_steps, loss, rate, (config.cnn_steps - number) / rate)
    return model


def load_or_train_cnn(data_config: DataConfig, config: ForeignConfig,
                      eval_workdir: str | Path) -> keras.Model:
    """The cached separable CNN, trained on the validation split if missing."""
    directory = cache_dir(eval_workdir, "cnn", data_config, config)
    path = directory / "model.keras"
    if path.exists():
        logging.info("foreign CNN: cached (%s)", path)
        return keras.models.load_model(path, safe_mode=True)
    images, male = _training_faces(data_config)
    model = train_cnn(images, male, config)
    _write_config(directory, "cnn", data_config, config)
    with files.atomic_path(path, suffix=".keras") as partial:  # No half-written cache.
        model.save(partial)
    return model


def foreign_evaluators(data_config: DataConfig, config: ForeignConfig,
                       eval_workdir: str | Path) -> list:
    """The enabled package-built foreign classifiers, trained on first use."""
    from semiadv.evaluation import plugins

    evaluators = []
    if config.hog:
        evaluators.append(load_or_train_hog(data_config, config, eval_workdir))
    if config.cnn:
        size = config.cnn_input_size(data_config.image_size)
        classifier = plugins.KerasGenderClassifier(
            load_or_train_cnn(data_config, config, eval_workdir),
            f"separable CNN {size}px, augmented", "built-in", seen=False, relation="foreign")
        classifier.image_size = size  # Faces are enlarged to its input by `plugins.apply`.
        evaluators.append(classifier)
    return evaluators
