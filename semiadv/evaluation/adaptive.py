"""An adaptive attacker: a gender classifier that knows the SAN and learns from its outputs.

Every other classifier in the evaluation was trained on unedited faces: it measures whether the
SAN's edit fools classifiers that were not adapted to it. An attacker who holds the SAN (it is
published, or its outputs are) can do better: run it on faces of known gender and train a
classifier on the OP outputs with their TRUE labels. If the edit leaves any gender cue behind
(or flips the cue the same way every time), that classifier recovers gender.

The attacker is one of the package's foreign families (`semiadv.evaluation.foreign`: the
separable CNN with strong augmentation, at the data's own input size; or HOG + logistic
regression), trained on the SAN's OP outputs of faces spread over the `train` split (the
faces the SAN itself learnt from: what an attacker with the SAN and labelled faces of the
same population would use). For reference the same family, settings and faces are trained on
the originals: the classifier an attacker would have without the SAN. Both are scored on the
test split.

Both are cached in the evaluation work dir (`attacker_<family>_<condition>-<digest>/`), the
adaptive one keyed by the export's content (`export_digest`), so a rerun on the same export
retrains nothing, and another export gets its own attacker.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import keras
import numpy as np
from absl import logging

from semiadv.config import DataConfig
from semiadv.evaluation import foreign, model_cache, plugins
from semiadv.utils import files

FAMILIES = ("cnn", "hog")
SPLIT = "train"
# The faces each classifier learns from: the SAN's opposite-gender outputs (the attacker) or
# the unedited faces (the reference).
CONDITIONS = ("opposite", "original")
_EXPORT_FILES = ("saved_model.pb", "variables/variables.index")


def export_digest(export_path: str | Path) -> str:
    """A digest of an export version dir's content: its graph and its variables' index.

    The index holds a checksum of every variable's value, so retraining and re-exporting into
    the same dir changes the digest, where the path alone would not. Read through `tf.io.gfile`
    so exports at URLs work too.
    """
    import tensorflow as tf

    digest = hashlib.sha256()
    for name in _EXPORT_FILES:
        path = f"{str(export_path).rstrip('/')}/{name}"
        with tf.io.gfile.GFile(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def settings(family: str, condition: str, steps: int, examples: int, seed: int,
             data_config: DataConfig, foreign_config: foreign.ForeignConfig,
             export: str | None) -> dict:
    """What shapes one attacker (its cache key): family, input, training, faces and, for the
    adaptive one, the export it learnt from."""
    shaped = {"family": family, "condition": condition, "steps": steps, "examples": examples,
              "seed": seed, "split": SPLIT}
    if family == "cnn":
        shaped.update(size=data_config.image_size, batch_size=foreign_config.cnn_batch_size,
                      width=foreign_config.cnn_width, learning_rate=foreign_config.learning_rate)
    else:
        shaped.update(size=foreign_config.hog_size, l2=foreign_config.hog_l2)
    if condition == "opposite":
        shaped["export"] = export
    return shaped


def _name(family: str, condition: str, size: int) -> str:
    what = ("separable CNN" if family == "cnn" else "HOG + logistic regression") + f" {size}px"
    return what + (", trained on OP outputs" if condition == "opposite"
                   else ", trained on originals")


def _cnn_config(shaped: dict) -> foreign.ForeignConfig:
    """The foreign CNN's training set-up at the attacker's input size and steps."""
    return foreign.ForeignConfig(hog=False, cnn_size=shaped["size"], cnn_steps=shaped["steps"],
                                 cnn_batch_size=shaped["batch_size"], cnn_width=shaped["width"],
                                 learning_rate=shaped["learning_rate"], seed=shaped["seed"])


def load_or_train(shaped: dict, data_config: DataConfig, eval_workdir: str | Path,
                  faces: Callable[[], tuple[np.ndarray, np.ndarray]]):
    """The cached attacker `shaped` (`settings`) as a gender evaluator, trained if missing.

    Args:
      shaped: its settings.
      data_config: the data it learns from (part of the cache key).
      eval_workdir: the evaluation's work dir.
      faces: returns (faces [N, H, W, C], 0/1 labels [N]) to learn from; called only when
        the attacker is not cached (perturbing them costs time).
    """
    family, condition = shaped["family"], shaped["condition"]
    directory = model_cache.cache_dir(eval_workdir, "attacker", f"{family}_{condition}",
                                      data_config, "settings", shaped)
    name = _name(family, condition, shaped["size"])
    path = directory / ("model.keras" if family == "cnn" else "model.npz")
    if path.exists():
        logging.info("attacker %s: cached (%s)", name, path)
        model = (keras.models.load_model(path, safe_mode=True) if family == "cnn"
                 else dict(np.load(path)))
    else:
        images, male = faces()
        logging.info("attacker %s: training on %d faces", name, len(images))
        if family == "cnn":
            model = foreign.train_cnn(images, male, _cnn_config(shaped))
        else:
            model = foreign.fit_logistic_regression(
                foreign.hog_features(images, shaped["size"]), male, shaped["steps"],
                shaped["l2"])
        model_cache.write_config(directory, f"{family}_{condition}", SPLIT, data_config,
                                 "settings", shaped)
        with files.atomic_path(path, suffix=path.suffix) as partial:  # No half-written cache.
            if family == "cnn":
                model.save(partial)
            else:
                np.savez(partial, **model)
    if family == "cnn":
        # Not seen: the SAN never trained against it (the section says what it knows).
        classifier = plugins.KerasGenderClassifier(model, name, "attacker", seen=False,
                                                   relation="sibling")
    else:
        classifier = foreign.HogGenderClassifier(model, shaped["size"])
        classifier.name, classifier.origin, classifier.relation = name, "attacker", "sibling"
    return classifier
