"""The controller of a stage: the compiled distributed loop, checkpoints, resume, summaries,
progress. What a step computes is the task's (`semiadv.train.task`).

A stage's work dir holds `ckpt/` (a `tf.train.CheckpointManager`), `logs/` (TensorBoard) and,
once the stage has finished, `model.keras`: its presence is what marks the stage done.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from semiadv.data import input_pipeline
from semiadv.config import StageConfig, TrainConfig
from semiadv.train import distribute, dtype_policies
from semiadv.train.task import Task
from semiadv.utils import files

FINAL_MODEL = "model.keras"


@dataclasses.dataclass
class StageResult:
    """A finished stage: its trained model and the averaged reports of each loop it ran."""

    model: keras.Model
    history: list[tuple[int, dict[str, float]]]


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is left as it was."""


def stage_done(stage_dir: str | Path) -> bool:
    """Whether the stage in `stage_dir` has finished: its final model is written."""
    return (Path(stage_dir) / FINAL_MODEL).exists()


class Progress:
    """A progress line with rate and ETA for long stages."""

    def __init__(self, label: str, total: int, start: int, unit_per_step: int):
        self.label, self.total, self.start = label, total, start
        self.unit_per_step = unit_per_step
        self.started = time.monotonic()

    def line(self, step: int, values: dict[str, float]) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = step - self.start
        rate = done / elapsed
        eta = (self.total - step) / rate if rate > 0 else math.inf
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        return (f"{self.label} step {step}/{self.total} "
                f"({rate * self.unit_per_step:.0f} img/s, ETA {_duration(eta)}) {shown}")


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def atomic_keras_save(model: keras.Model, path: Path) -> None:
    """Saves a `.keras` file under a temporary name and renames it: no half-written file."""
    with files.atomic_path(path, suffix=".keras") as partial:
        model.save(partial)


def train(task: Task, stage: StageConfig, config: TrainConfig, strategy: tf.distribute.Strategy,
          stage_dir: str | Path) -> StageResult:
    """Runs (or resumes) one stage to `stage.steps` and writes its final model.

    Args:
      task: the stage's task; `task.build()` is called under `strategy.scope()`.
      stage: steps and learning rate.
      config: the whole run's config (batch size, checkpointing, logging).
      strategy: the `tf.distribute` strategy.
      stage_dir: the stage's work dir.

    Returns:
      The trained model and the history of this call's loops (empty when already done).

    Raises:
      NonFiniteLossError: naming the steps and the loss term that went non-finite.
    """
    stage_dir = Path(stage_dir)
    global_batch = config.data.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size={global_batch} does not split evenly over "
                         f"{strategy.num_replicas_in_sync} replicas")
    if config.deterministic:
        # Idempotent; also done by `main_job.setup`, repeated here for callers of `train` alone.
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.data.seed)
    chief = distribute.is_chief(strategy)
    shared_dir = stage_dir / "ckpt"
    with strategy.scope():
        with dtype_policies.dtype_policy(config.mixed_precision):
            # Networks built (not loaded) here take the policy; the global policy is restored
            # after, so later stages and the export see the default again.
            model = task.build()
        optimizer = keras.optimizers.Adam(stage.learning_rate)
        # Trap: an optimizer whose variables appear inside the first distributed step fails.
        optimizer.build(model.trainable_variables)
        metrics: dict[str, keras.metrics.Mean] = {}
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
        # Every worker resumes from the chief's checkpoints (a file system all workers see);
        # each saves into its own write dir: the shared one on the chief, scratch elsewhere.
        reader = tf.train.CheckpointManager(checkpoint, shared_dir, max_to_keep=3)
        if reader.latest_checkpoint:
            checkpoint.restore(reader.latest_checkpoint).assert_existing_objects_matched()
            logging.info("%s: resumed from %s", task.name, reader.latest_checkpoint)
    scratch = None if chief else distribute.write_dir(strategy, shared_dir)
    try:
        manager = reader if chief else tf.train.CheckpointManager(checkpoint, scratch,
                                                                  max_to_keep=1)
        start = int(optimizer.iterations.numpy())
        history = []
        if start >= stage.steps:
            logging.info("%s: checkpoint already at step %d of %d", task.name, start,
                         stage.steps)
        else:
            preemption = _preemption_handler(task, strategy, reader, manager)
            history = _run_steps(task, stage, config, strategy, model, optimizer, metrics,
                                 manager, start, stage_dir, preemption)
        with distribute.saving_dir(strategy, stage_dir) as target:
            target.mkdir(parents=True, exist_ok=True)
            atomic_keras_save(model, target / FINAL_MODEL)
    finally:
        if scratch is not None:
            # A non-chief's private copy, removed however the stage ends (done, non-finite
            # loss, preemption exit).
            shutil.rmtree(scratch, ignore_errors=True)
    return StageResult(model, history)


class Preempted(SystemExit):
    """Raised on every worker after a coordinated preemption checkpoint: exit and restart.

    A `SystemExit` so that, uncaught, the process ends with `PREEMPTED_EXIT_CODE`, which a
    scheduler can treat as "restart me" (run the same command again to resume).
    """


PREEMPTED_EXIT_CODE = 42


def _preemption_handler(task, strategy, reader, manager):
    """A `PreemptionCheckpointHandler` for multi-worker runs, else None.

    On SIGTERM to any worker, the handler agrees with every worker (through the coordination
    service) on the loop after which all of them save; each then saves through `manager`
    (the chief into the shared dir, the others into scratch) and raises `Preempted`. It
    restores its own loop counter from the shared dir through `reader`, so every worker's
    counter agrees after a restart.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if (not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None
            or not resolver.cluster_spec().as_dict()):
        return None

    def save(checkpoint_number):
        # The periodic save may have written this very step already, on every worker alike.
        latest = manager.latest_checkpoint
        if latest is None or os.path.basename(latest) != f"ckpt-{checkpoint_number}":
            manager.save(checkpoint_number=checkpoint_number)
        logging.warning("%s: preemption checkpoint at step %d on %s", task.name,
                        checkpoint_number, distribute.worker_id(strategy))

    def leave():
        raise Preempted(PREEMPTED_EXIT_CODE)

    return tf.distribute.experimental.PreemptionCheckpointHandler(
        resolver, reader,
        termination_config=tf.distribute.experimental.TerminationConfig(
            exit_fn=leave, save_fn=save, grace_period=0))


def make_train_loop(task, config: TrainConfig, strategy: tf.distribute.Strategy, optimizer,
                    variables, metrics, *, compiled: bool = True):
    """The training loop: `loop(iterator, num_steps)` runs `num_steps` distributed steps.

    Each step is `strategy.run(replica_step)`: the task's per-example losses, one reduction
    with `tf.nn.compute_average_loss`, gradients of the trained variables only, one optimizer
    update and the metric updates. With `config.jit_compile` the replica step is compiled by
    XLA (the iterator stays outside XLA, in the surrounding `tf.function`).

    Args:
      task: a built task.
      config: the run's config (global batch size, `jit_compile`).
      strategy: the strategy the models, optimizer and metrics were created under.
      optimizer: a built optimizer.
      variables: the variables to train.
      metrics: {report name: `keras.metrics.Mean`} created under the strategy's scope.
      compiled: False runs the same step eagerly, one Python call per step (for benchmarks
        and debugging).
    """
    global_batch = config.data.batch_size

    def replica_step(batch):
        step = optimizer.iterations
        with tf.GradientTape() as tape:
            total, report = task.per_example(batch, step)
            loss = tf.nn.compute_average_loss(total, global_batch_size=global_batch)
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        for name, values in report.items():
            metrics[name].update_state(values)

    step_fn = tf.function(replica_step, jit_compile=True) if config.jit_compile else replica_step

    def train_loop(iterator, num_steps):
        for _ in tf.range(num_steps):
            strategy.run(step_fn, args=(next(iterator),))

    if compiled:
        return tf.function(train_loop)

    def eager_loop(iterator, num_steps):
        for _ in range(int(num_steps)):
            strategy.run(step_fn, args=(next(iterator),))

    return eager_loop


def training_augment(task, config: TrainConfig) -> str | None:
    """The task's augmentation, less the left-right flip when `--noflip_augment` asks."""
    if task.augment == "flip" and not config.flip_augment:
        return None
    return task.augment


def _run_steps(task, stage, config, strategy, model, optimizer, metrics, manager, start,
               stage_dir, preemption):
    global_batch = config.data.batch_size
    dataset = input_pipeline.distribute(strategy, task.data, "train", training=True,
                                        start_step=start, augment=training_augment(task, config))
    iterator = iter(dataset)

    with strategy.scope():  # Trap: metrics live in the scope and update inside strategy.run.
        for name in task.reports:
            metrics[name] = keras.metrics.Mean(name=name)
    train_loop = make_train_loop(task, config, strategy, optimizer, model.trainable_variables,
                                 metrics)

    writer = (tf.summary.create_file_writer(str(stage_dir / "logs"))
              if distribute.is_chief(strategy) else tf.summary.create_noop_writer())
    progress = Progress(task.name, stage.steps, start, global_batch)
    step = start
    history = []
    logging.info("%s: training steps %d..%d on %s", task.name, start, stage.steps,
                 distribute.describe(strategy))
    while step < stage.steps:
        next_checkpoint = (step // config.checkpoint_every + 1) * config.checkpoint_every
        num_steps = min(config.steps_per_loop, next_checkpoint - step, stage.steps - step)
        train_loop(iterator, tf.constant(num_steps))
        values = {name: float(metric.result()) for name, metric in metrics.items()}
        bad = [name for name, value in values.items() if not np.isfinite(value)]
        if bad:
            raise NonFiniteLossError(
                f"{task.name}: non-finite {', '.join(bad)} in steps {step + 1}..{step + num_steps}; "
                f"stopped without saving, the last good checkpoint "
                f"({manager.latest_checkpoint or 'none'}) is untouched")
        step += num_steps
        history.append((step, values))
        with writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f"{task.name}/{name}", value)
        for metric in metrics.values():
            metric.reset_state()
        logging.info("%s", progress.line(step, values))
        if step % config.checkpoint_every == 0 or step == stage.steps:
            manager.save(checkpoint_number=step)
            if config.image_summaries and hasattr(task, "summary_images"):
                _write_images(task, config, writer, step)
        if preemption is not None:
            # Once per loop on every worker: saves everywhere and raises `Preempted` when some
            # worker got SIGTERM.
            writer.flush()
            preemption.save_checkpoint_if_preempted(checkpoint_number=step)
    writer.flush()
    return history


def _write_images(task, config, writer, step):
    """Faces go to TensorBoard only when asked for: this is a privacy tool."""
    batch = next(iter(input_pipeline.make_dataset(task.data, "validation", training=False)))
    with writer.as_default(step=step):
        for name, images in task.summary_images(batch).items():
            tf.summary.image(f"{task.name}/{name}", images, max_outputs=4)
