"""Computes the prototypes of a dataset's training split and writes them."""

from __future__ import annotations

from pathlib import Path

from absl import logging

from semiadv.data import datasets as data
from semiadv.prototypes import prototypes
from semiadv.config import DataConfig


def compute_and_save(config: DataConfig, output: str | Path,
                     male_weight: float | None = None) -> prototypes.Prototypes:
    """Averages the training split's faces per gender and writes `output` (.npz and .png)."""
    def batches():
        seen = 0
        for batch in data.make_dataset(config, "train", training=False).as_numpy_iterator():
            yield batch
            seen += len(batch["male"])
            if seen % (100 * config.batch_size) < config.batch_size:
                logging.info("prototypes: %d faces averaged", seen)

    result = prototypes.compute_prototypes(batches(), male_weight)
    prototypes.save_prototypes(result, output)
    return result
