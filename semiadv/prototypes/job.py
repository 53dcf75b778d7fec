"""Computes the prototypes of a dataset's training split and writes them."""

from __future__ import annotations

from pathlib import Path

from absl import logging

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.prototypes import average
from semiadv.prototypes import storage


def compute_and_save(config: DataConfig, output: str | Path, male_weight: float | None = None,
                     attributes: tuple[str, ...] = ()) -> average.Prototypes:
    """Averages the training split's faces per gender and writes `output` (.npz and .png).

    Args:
      config: the dataset to average.
      output: the `.npz` to write; its figure is written beside it (`.png`).
      male_weight: the neutral prototype's male weight (None: the share of males).
      attributes: example keys ("age_group", "race") to average per value too. A value no
        face has is logged and left out (its count, 0, is kept).
    """
    def batches():
        seen = 0
        for batch in input_pipeline.make_dataset(config, "train",
                                                 training=False).as_numpy_iterator():
            yield batch
            seen += len(batch["male"])
            if seen % (100 * config.batch_size) < config.batch_size:
                logging.info("prototypes: %d faces averaged", seen)

    result = average.compute_prototypes(batches(), male_weight, attributes)
    for values in result.by_attribute.values():
        logging.info("prototypes: faces per %s", values.describe())
        if values.missing:
            logging.warning("prototypes: no faces of %s %s in %s: left out", values.attribute,
                            ", ".join(values.value_names[v] for v in values.missing),
                            config.dataset)
    storage.save_prototypes(result, output)
    return result
