"""The base of the training tasks: what a stage builds, and the per-example losses of a step.

A task owns its models and its loss; `semiadv.train.trainer` owns the loop, the strategy,
checkpoints and summaries. `per_example` runs inside `strategy.run` on one replica's batch
and returns per-example values only: the trainer reduces the total once with
`tf.nn.compute_average_loss`, and averages every reported value with metrics.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from semiadv.config import TrainConfig


class Task:
    """One stage: `build` (under the strategy scope), then `per_example` in each step.

    Attributes:
      name: the stage's name, used in logs and summaries.
      augment: the input pipeline's augmentation (`input_pipeline.make_dataset`'s `augment`).
      reports: the names `per_example` reports, in order.
      data: the data config the stage reads.
    """

    name: str = ""
    augment: str | None = None
    reports: tuple[str, ...] = ()

    def __init__(self, config: TrainConfig):
        self.config = config
        self.data = config.data

    def build(self) -> keras.Model:
        """Builds (or loads) every model; returns the one whose variables are trained."""
        raise NotImplementedError

    def per_example(self, batch, step) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Returns (total loss [B], {name: per-example values [B] to average and log})."""
        raise NotImplementedError


def known_gender(male):
    """1.0 where the gender label is known (0/1), 0.0 where it is -1: a per-example weight."""
    return tf.cast(male >= 0, tf.float32)
