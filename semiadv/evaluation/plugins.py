"""Evaluators: the gender classifiers and face matchers the SAN is judged by.

An evaluator is any object with

  name: str                    shown in the report (unique within a run)
  kind: str                    "gender" or "matcher"
  image_size: int | None       optional: images are resized to this square size first
  __call__(images) -> ndarray  images float32 [N, H, W, C] in [0, 1] (C as in the dataset);
                               returns the male probability [N] (gender) or embeddings
                               [N, D] (matcher)
  seen: bool                   optional: True if a SAN was trained against this network
                               (default False for plug-ins; the report marks it, and the
                               baselines never calibrate on a seen matcher)
  relation: str                optional: "seen", "sibling" (same data and input as the SAN's
                               auxiliary networks) or "foreign" (another family or other
                               data); default "seen" if `seen` is true, else "foreign"
                               (`semiadv.evaluation.evaluators.relation`)

Users plug their own in without touching the package, either with `--evaluator=module:factory`
(`load_factory`) or by declaring an entry point in the group `semiadv.evaluators`
(`entry_point_evaluators`); a factory takes no arguments and returns one evaluator.
`KerasGenderClassifier` and `KerasMatcher` wrap this package's own networks the same way.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Protocol, runtime_checkable

import keras
import numpy as np
import tensorflow as tf

ENTRY_POINT_GROUP = "semiadv.evaluators"
KINDS = ("gender", "matcher")


@runtime_checkable
class Evaluator(Protocol):
    """The interface of a gender classifier or face matcher (see the module docstring)."""

    name: str
    kind: str

    def __call__(self, images: np.ndarray) -> np.ndarray:
        ...


def check_evaluator(evaluator, origin: str):
    """Returns `evaluator` if it has a name, a known kind and is callable.

    Raises:
      TypeError: naming `origin` (the spec or entry point it came from) and what is missing.
    """
    problems = []
    if not isinstance(getattr(evaluator, "name", None), str) or not evaluator.name:
        problems.append("a non-empty str `name`")
    if getattr(evaluator, "kind", None) not in KINDS:
        problems.append(f"`kind` in {KINDS} (got {getattr(evaluator, 'kind', None)!r})")
    if not callable(evaluator):
        problems.append("`__call__(images) -> np.ndarray`")
    size = getattr(evaluator, "image_size", None)
    if size is not None and (not isinstance(size, int) or size < 1):
        problems.append(f"`image_size` None or a positive int (got {size!r})")
    if problems:
        raise TypeError(f"evaluator from {origin} needs " + ", ".join(problems))
    return evaluator


def load_factory(spec: str):
    """Imports `module:factory` (factory may be dotted: `module:Class.create`) and calls it.

    Raises:
      ValueError: for a spec without exactly one ':'.
      ImportError / AttributeError: naming the spec when the module or factory is missing.
      TypeError: when the factory's result is not an evaluator.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute or ":" in attribute:
        raise ValueError(f"evaluator spec {spec!r}: use module:factory, e.g. mypkg.eval:make")
    try:
        target = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(f"evaluator spec {spec!r}: cannot import {module_name!r}: {error}") \
            from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise AttributeError(f"evaluator spec {spec!r}: {module_name} has no {attribute!r}")
        target = getattr(target, part)
    return check_evaluator(target(), f"--evaluator={spec}")


def entry_point_evaluators(group: str = ENTRY_POINT_GROUP) -> list:
    """Loads and calls every factory registered under the entry-point group.

    Raises:
      TypeError: naming the entry point whose factory returns no evaluator.
    """
    evaluators = []
    for entry_point in importlib.metadata.entry_points(group=group):
        factory = entry_point.load()
        origin = f"entry point {entry_point.name} = {entry_point.value} ({group})"
        evaluators.append(check_evaluator(factory(), origin))
    return evaluators


def apply(evaluator, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Runs an evaluator over images in batches, resizing them to its `image_size` if set.

    Raises:
      ValueError: naming the evaluator when its output has the wrong shape.
    """
    size = getattr(evaluator, "image_size", None)
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        if size is not None and batch.shape[1:3] != (size, size):
            batch = tf.image.resize(batch, (size, size), antialias=True).numpy()
        outputs.append(np.asarray(evaluator(batch)))
    result = np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)
    expected_rank = 1 if evaluator.kind == "gender" else 2
    if result.ndim != expected_rank or len(result) != len(images):
        want = "[N] male probabilities" if expected_rank == 1 else "[N, D] embeddings"
        raise ValueError(f"evaluator {evaluator.name!r} returned shape {result.shape} for "
                         f"{len(images)} images; want {want}")
    return result


class _KerasEvaluator:
    """A Keras model behind the evaluator interface, called in inference mode."""

    kind = ""
    image_size = None  # The dataset's size: our networks are built for it.

    def __init__(self, model: keras.Model, name: str, origin: str, seen: bool,
                 relation: str | None = None):
        self.model, self.name, self.origin, self.seen = model, name, origin, seen
        self.relation = relation or ("seen" if seen else "foreign")
        # One compiled function per model: eager calls per batch are several times slower.
        self._forward = tf.function(self._call_model, reduce_retracing=True)

    def _call_model(self, images):
        return self.model(images, training=False)


class KerasGenderClassifier(_KerasEvaluator):
    """A gender CNN returning logits [N, 2] (class 1 = male) as an evaluator."""

    kind = "gender"

    def __call__(self, images):
        logits = self._forward(tf.constant(images, tf.float32))
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)[:, 1].numpy()


class KerasMatcher(_KerasEvaluator):
    """A matcher returning embeddings [N, D] as an evaluator."""

    kind = "matcher"

    def __call__(self, images):
        return np.asarray(self._forward(tf.constant(images, tf.float32)), np.float32)
