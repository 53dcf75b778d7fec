"""Strategy choice and the chief/worker file-writing rules of `tf.distribute`.

Under MultiWorkerMirroredStrategy every worker must take part in each save (checkpoints and
SavedModels are collective), but only the chief's copy is kept: the others write into a
temporary dir and delete it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import tensorflow as tf


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Builds the strategy named by `--strategy`.

    Args:
      name: auto (MirroredStrategy over the GPUs, or over the logical CPUs when several are
        configured, else the one CPU), mirrored, multi_worker (from TF_CONFIG, or from the
        SLURM_* variables of a Slurm job step when TF_CONFIG is unset) or one_device.

    Raises:
      ValueError: for an unknown name, or multi_worker with neither TF_CONFIG nor Slurm.
    """
    if name == "multi_worker":
        if "TF_CONFIG" in os.environ:
            return tf.distribute.MultiWorkerMirroredStrategy()
        if "SLURM_PROCID" in os.environ:
            return tf.distribute.MultiWorkerMirroredStrategy(
                cluster_resolver=slurm_cluster_resolver())
        raise ValueError("--strategy=multi_worker needs TF_CONFIG, or a Slurm job step (srun) "
                         "(see docs/multi-worker.md)")
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    if name in ("auto", "mirrored"):
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        if name == "auto" and len(devices) == 1:
            return tf.distribute.OneDeviceStrategy(devices[0])
        if not gpus:
            # Several logical CPUs share one host's memory: reduce through one device. The
            # default collectives number their instances per process, and a second strategy
            # in the same process (a pipeline's next stage, a test session) can collide with
            # the first's ("Shape mismatch in the collective instance 100").
            return tf.distribute.MirroredStrategy(
                devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"unknown strategy {name!r}: use auto, mirrored, multi_worker or one_device")


SLURM_PORT_BASE = 8888


def slurm_cluster_resolver(port_base: int = SLURM_PORT_BASE):
    """The cluster of the current Slurm job step: one worker per task, rank 0 the chief.

    Tasks listen on `port_base`, `port_base + 1`, ... of their node. Reads SLURM_PROCID,
    SLURM_STEP_NUM_TASKS, SLURM_STEP_NODELIST and SLURM_STEP_TASKS_PER_NODE.
    """
    resolver_class = tf.distribute.cluster_resolver.SlurmClusterResolver
    if shutil.which("nvidia-smi") or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return resolver_class(port_base=port_base)  # It gives each task its share of GPUs.
    # CPU nodes: the resolver hands out GPUs per task even when there are none (and fails on
    # zero), so give each task a placeholder and leave CUDA_VISIBLE_DEVICES alone.
    tasks_per_node = os.environ.get("SLURM_STEP_TASKS_PER_NODE", "1")
    most_tasks = max(int(n) for n in re.findall(r"(\d+)(?:\(x\d+\))?", tasks_per_node))
    return resolver_class(port_base=port_base, gpus_per_node=most_tasks, gpus_per_task=1,
                          auto_set_gpu=False)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker whose files are kept (always, outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def is_chief_process() -> bool:
    """Whether this process is the chief of a multi-worker job (or runs alone), by TF_CONFIG
    or Slurm's rank, without creating a strategy (for work done before there is one)."""
    text = os.environ.get("TF_CONFIG")
    if text:
        value = json.loads(text)
        task, cluster = value.get("task", {}), value.get("cluster", {})
        if task.get("type") == "chief":
            return True
        return task.get("type") == "worker" and task.get("index", 0) == 0 \
            and "chief" not in cluster
    return os.environ.get("SLURM_PROCID", "0") == "0"


def worker_id(strategy: tf.distribute.Strategy) -> str:
    """This worker's name for logs and scratch dirs: "chief0", "worker1", or "local"."""
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
    """The strategy, its replicas and its workers, in words for logs and errors."""
    workers = 1
    if os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        workers = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) on "
            f"{workers} worker(s)")
