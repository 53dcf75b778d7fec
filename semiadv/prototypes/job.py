"""Computes the prototypes of a dataset's training split and writes them."""

from __future__ import annotations

from pathlib import Path

from absl import logging

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.prototypes import average
from semiadv.prototypes import storage


def compute_and_save(config: DataConfig, output: str | Path,
                     male_weight: float | None = None) -> average.Prototypes:
    """Averages the training split's faces per gender and writes `output` (.npz and .png)."""
    def batches():
        seen = 0
        for batch in input_pipeline.make_dataset(config, "train",
                                                 training=False).as_numpy_iterator():
            yield batch
            seen += len(batch["male"])
            if seen % (100 * config.batch_size) < config.batch_size:
                logging.info("prototypes: %d faces averaged", seen)

    result = average.compute_prototypes(batches(), male_weight)
    storage.save_prototypes(result, output)
    return result
