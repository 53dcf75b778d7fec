"""What the SAN does to held-out faces, as seen by its own auxiliary networks.

The main job prints this after training; `semiadv-evaluate` (the paper's tables, with unseen
classifiers and matchers) is the real verdict.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from semiadv.data import input_pipeline
from semiadv.train import losses
from semiadv.prototypes import average, mixing
from semiadv.config import DataConfig
from semiadv.train.task import known_gender


def san_summary(autoencoder: keras.Model, gender: keras.Model, matcher: keras.Model,
                prototypes: average.Prototypes, config: DataConfig,
                split: str = "test", max_examples: int | None = 1000,
                edit_strength: float = 1.0) -> dict[str, float]:
    """Auxiliary classifier accuracy on originals, X'_SM and X'_OP, matcher distances, SSIM.

    Reads the first `max_examples` faces of `split` (None: all): a quick look, precise
    enough at 1,000 faces, that spares running a slow matcher (dlib's ResNet) over a whole
    test split. With `edit_strength` s the outputs are X + s (X' - X) clipped to [0, 1], as
    the export serves them (`semiadv.export.serving_model.strengthen`).

    Returns:
      {"examples", "accuracy_original", "accuracy_same", "flip_rate_opposite",
       "match_distance_same", "match_distance_opposite", "match_distance_impostor",
       "ssim_same", "ssim_opposite"}: `match_distance_impostor` is the mean distance between
      different faces, the scale the other two are read against; `ssim_*` is the mean
      structural similarity (tf.image.ssim, 1 = identical) of X'_SM and X'_OP to the
      original faces, how much of the face the perturbation keeps.
    """
    male_prototype = tf.constant(prototypes.male)
    female_prototype = tf.constant(prototypes.female)

    @tf.function
    def evaluate(batch):
        image, male = batch["image"], tf.maximum(batch["male"], 0)
        outputs = autoencoder({
            "image": image,
            "same_prototype": mixing.same_prototype(male, male_prototype, female_prototype),
            "opposite_prototype": mixing.opposite_prototype(male, male_prototype,
                                                            female_prototype)},
            training=False)
        if edit_strength != 1:  # As the export serves them.
            outputs = {kind: tf.clip_by_value(image + edit_strength * (outputs[kind] - image),
                                              0.0, 1.0) for kind in ("same", "opposite")}
        original = matcher(image, training=False)
        return {
            "known": known_gender(batch["male"]),
            "accuracy_original": losses.gender_accuracy(gender(image, training=False), male),
            "accuracy_same": losses.gender_accuracy(gender(outputs["same"], training=False), male),
            "flip_rate_opposite": losses.flip_rate(gender(outputs["opposite"], training=False),
                                                   male),
            "match_distance_same": losses.match_distance(
                original, matcher(outputs["same"], training=False)),
            "match_distance_opposite": losses.match_distance(
                original, matcher(outputs["opposite"], training=False)),
            "match_distance_impostor": losses.match_distance(original, tf.roll(original, 1, 0)),
            "ssim_same": tf.image.ssim(image, outputs["same"], max_val=1.0),
            "ssim_opposite": tf.image.ssim(image, outputs["opposite"], max_val=1.0),
        }

    totals: dict[str, list[np.ndarray]] = {}
    seen = 0
    for batch in input_pipeline.make_dataset(config, split, training=False):
        if max_examples is not None and seen >= max_examples:
            break
        for name, values in evaluate(batch).items():
            totals.setdefault(name, []).append(values.numpy())
        seen += len(totals["known"][-1])
    values = {name: np.concatenate(parts)[:max_examples] for name, parts in totals.items()}
    known = values.pop("known") > 0
    summary = {"examples": int(len(known))}
    for name, per_example in values.items():
        chosen = per_example[known] if name.startswith(("accuracy", "flip")) else per_example
        summary[name] = float(chosen.mean()) if chosen.size else float("nan")
    return summary
