"""Independent ("unseen") gender classifier and matcher, trained on the validation split.

The SAN is trained on `train` against its auxiliary networks; it is judged on `test`. The
stand-ins for the paper's commercial classifiers must share nothing with the SAN: they have
other architectures (`build_independent_*` of `semiadv.models.gender_classifiers` and
`semiadv.models.matchers`: residual, batch-normalised), another weight-initialisation seed,
and they learn from the `validation` split, disjoint by identity
from both. They are trained once and cached under the eval work dir, keyed by everything
that shapes them, so reruns (and evaluations of other exports on the same data) reuse them.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import tensorflow as tf
from absl import logging

from semiadv.data import input_pipeline
from semiadv.models import gender_classifiers, matchers
from semiadv.train.gender_tasks import GenderTask
from semiadv.train.matcher_task import MatcherTask
from semiadv.train.task import Task
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig
from semiadv.evaluation import model_cache
from semiadv.utils import files

SPLIT = "validation"
MODEL_FILE = "model.keras"
_LOG_EVERY_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class IndependentConfig:
    """How an independent network is built and trained.

    Attributes:
      stage: steps and Adam learning rate.
      width: width multiplier of the residual network.
      embedding_dim: matcher embedding size.
      seed: weight-initialisation seed (the training order follows the data config's seed).
    """

    stage: StageConfig = StageConfig(steps=600, learning_rate=1e-3)
    width: float = 0.25
    embedding_dim: int = 64
    seed: int = 1234


class _SeededBuild:
    """Mixin: the trainer seeds with the data seed; the independent nets use their own."""

    def __init__(self, config: TrainConfig, independent: IndependentConfig):
        super().__init__(config)
        self.independent = independent


class IndependentGenderTask(_SeededBuild, GenderTask):
    """`GenderTask`'s cross-entropy on a residual classifier with its own init seed."""

    name = "independent_gender"

    def build(self):
        keras.utils.set_random_seed(self.independent.seed)
        self.model = gender_classifiers.build_independent_gender_classifier(
            self.data.image_size, self.data.channels, width=self.independent.width)
        return self.model


class IndependentMatcherTask(_SeededBuild, MatcherTask):
    """`MatcherTask`'s triplet loss on two augmented views (and same-identity photos where the
    dataset has identities), on a residual matcher with its own init seed."""

    name = "independent_matcher"

    def build(self):
        keras.utils.set_random_seed(self.independent.seed)
        self.model = matchers.build_independent_matcher(
            self.data.image_size, self.data.channels,
            embedding_dim=self.independent.embedding_dim, width=self.independent.width)
        return self.model


_TASKS = {"gender": IndependentGenderTask, "matcher": IndependentMatcherTask}


def cache_dir(eval_workdir: str | Path, kind: str, data_config: DataConfig,
              independent: IndependentConfig) -> Path:
    """`eval_workdir/independent_<kind>-<digest>`: one folder per distinct (data, net) setup."""
    return model_cache.cache_dir(eval_workdir, "independent", kind, data_config, "independent",
                                 dataclasses.asdict(independent))


def load_or_train(kind: str, data_config: DataConfig, independent: IndependentConfig,
                  eval_workdir: str | Path) -> keras.Model:
    """The cached independent `kind` ("gender" or "matcher") network, trained if missing.

    Raises:
      ValueError: when the validation split is smaller than one batch (names the split).
    """
    directory = cache_dir(eval_workdir, kind, data_config, independent)
    path = directory / MODEL_FILE
    if path.exists():
        logging.info("independent %s: cached (%s)", kind, path)
        return keras.models.load_model(path, safe_mode=True)
    config = TrainConfig(data=data_config, networks=NetworkConfig(), workdir=str(directory),
                         strategy="one_device", export_dir=None)
    task = _TASKS[kind](config, independent)
    model = _fit(task, independent.stage, data_config)
    model_cache.write_config(directory, kind, SPLIT, data_config, "independent",
                             dataclasses.asdict(independent))
    with files.atomic_path(path, suffix=".keras") as partial:  # No half-written cache.
        model.save(partial)
    logging.info("independent %s: saved %s", kind, path)
    return model


def _fit(task: Task, stage: StageConfig, data_config: DataConfig) -> keras.Model:
    """A plain single-device loop over the VALIDATION split with the task's per-example loss.

    `semiadv.train.trainer.train` always reads the train split (the SAN's), which these nets
    must not see.
    """
    keras.utils.set_random_seed(data_config.seed)
    model = task.build()
    optimizer = keras.optimizers.Adam(stage.learning_rate)
    optimizer.build(model.trainable_variables)
    try:
        dataset = input_pipeline.make_dataset(data_config, SPLIT, training=True, augment=task.augment)
    except ValueError as error:
        raise ValueError(f"cannot train the {task.name} network on the {SPLIT} split of "
                         f"{data_config.dataset}: {error} (lower --batch_size)") from error

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            total, report = task.per_example(batch, optimizer.iterations)
            loss = tf.reduce_mean(total)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    logging.info("%s: training %d steps on the %s split of %s", task.name, stage.steps, SPLIT,
                 data_config.dataset)
    started = last_log = time.monotonic()
    for number, batch in enumerate(dataset.take(stage.steps), start=1):
        loss = float(step(batch))
        now = time.monotonic()
        if now - last_log > _LOG_EVERY_SECONDS or number == stage.steps:
            last_log = now
            rate = number / max(now - started, 1e-9)
            logging.info("%s step %d/%d loss=%.4g (%.1f steps/s, ETA %.0f s)", task.name, number,
                         stage.steps, loss, rate, (stage.steps - number) / rate)
    return model
