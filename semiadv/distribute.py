"""Strategy choice and the chief/worker file-writing rules of `tf.distribute`.

Under MultiWorkerMirroredStrategy every worker must take part in each save (checkpoints and
SavedModels are collective), but only the chief's copy is kept: the others write into a
temporary dir and delete it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf
from absl import logging


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Builds the strategy named by `--strategy`.

    Args:
      name: auto (MirroredStrategy over the GPUs, or over the logical CPUs when several are
        configured, else the one CPU), mirrored, multi_worker (from TF_CONFIG) or one_device.

    Raises:
      ValueError: for an unknown name, or multi_worker without a TF_CONFIG.
    """
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs TF_CONFIG (see the README's "
                             "multi-worker section)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name in ("auto", "mirrored"):
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        if name == "auto" and len(devices) == 1:
            return tf.distribute.OneDeviceStrategy(devices[0])
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"unknown strategy {name!r}: use auto, mirrored, multi_worker or one_device")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker whose files are kept (always, outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(strategy: tf.distribute.Strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return "local"
    return f"{resolver.task_type}{resolver.task_id}"


def write_dir(strategy: tf.distribute.Strategy, directory: str | Path) -> Path:
    """Where this worker writes: `directory` on the chief, a private temporary dir elsewhere."""
    if is_chief(strategy):
        return Path(directory)
    return Path(tempfile.mkdtemp(prefix=f"semiadv-{worker_id(strategy)}-"))


@contextmanager
def saving_dir(strategy: tf.distribute.Strategy, directory: str | Path):
    """Yields the dir this worker should save into and removes it afterwards on non-chiefs."""
    target = write_dir(strategy, directory)
    try:
        yield target
    finally:
        if not is_chief(strategy):
            shutil.rmtree(target, ignore_errors=True)


def describe(strategy: tf.distribute.Strategy) -> str:
    workers = 1
    if os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) on "
            f"{workers} worker(s)")
