"""Computes the prototypes of a dataset's training split and writes them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from absl import logging

from semiadv import data, prototypes
from semiadv.config import DataConfig


def compute_and_save(config: DataConfig, output: str | Path,
                     male_weight: float | None = None) -> prototypes.Prototypes:
    """Averages the training split's faces per gender and writes `output` (.npz and .png)."""
    accumulator = prototypes.PrototypeAccumulator()
    landmark_sum, seen = None, 0
    for batch in data.make_dataset(config, "train", training=False).as_numpy_iterator():
        accumulator.add(batch["image"], batch["male"])
        if "landmarks" in batch:  # CelebA: where the mean face's eyes, nose and mouth are.
            total = batch["landmarks"].astype("float64").sum(axis=0)
            landmark_sum = total if landmark_sum is None else landmark_sum + total
        seen += len(batch["male"])
        if seen % (100 * config.batch_size) < config.batch_size:
            logging.info("prototypes: %d faces averaged", seen)
    result = accumulator.result(male_weight)
    if landmark_sum is not None:
        result = dataclasses.replace(result, landmarks=(landmark_sum / seen).astype("float32"))
    prototypes.save_prototypes(result, output)
    return result
