"""One training process of the multi-worker and fault tests: the tiny 16x16 SAN, fixed seeds.

  python tests/_worker.py --stage_dir=DIR --steps=N [--strategy=multi_worker] [--weights_out=F]

Run as a script (its own process: TF_CONFIG, SIGTERM and SIGKILL need real processes), or
imported by the tests for `tiny_config` / `san_task`, so in-process references train the very
same task. Each process has one CPU device (no 2-device test set-up here): one replica per
worker.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from semiadv.train import distribute  # noqa: E402
from semiadv.models import autoencoders, gender_classifiers, matchers
from semiadv.train.san_task import SanTask
from semiadv.train import trainer
from semiadv.prototypes import average  # noqa: E402
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig  # noqa: E402

SIZE = 16
SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parents[1]
TIMEOUT_SECONDS = 180


def tiny_config(workdir, steps, checkpoint_every=2, steps_per_loop=1, deterministic=False,
                strategy="auto"):
    """The tiny SAN config of tests/train/test_trainer.py: global batch 8, 16x16, narrow nets."""
    return TrainConfig(
        data=DataConfig(dataset="synthetic", image_size=SIZE, channels=3, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4),
        networks=NetworkConfig(encoder_filters=(4, 4), decoder_filters=(8, 8),
                               classifier_width=0.125, matcher_width=0.125, embedding_dim=8),
        workdir=str(workdir), strategy=strategy, san=StageConfig(steps=steps, learning_rate=1e-2),
        checkpoint_every=checkpoint_every, steps_per_loop=steps_per_loop, export_dir=None,
        deterministic=deterministic)


def fixed_prototypes():
    rng = np.random.default_rng(3)
    male = rng.uniform(0.2, 0.8, (SIZE, SIZE, 3)).astype(np.float32)
    female = rng.uniform(0.2, 0.8, (SIZE, SIZE, 3)).astype(np.float32)
    return average.Prototypes(male, female, (male + female) / 2, 0.5, (10, 10))


def build_models(config):
    nets = config.networks
    return (autoencoders.build_autoencoder(SIZE, 3, nets.encoder_filters, nets.decoder_filters,
                                           residual=nets.residual),
            gender_classifiers.build_gender_classifier(SIZE, 3, width=nets.classifier_width),
            matchers.build_matcher(SIZE, 3, embedding_dim=nets.embedding_dim,
                                   width=nets.matcher_width))


def san_task(config, build_member=None):
    """The SAN task over autoencoder, gender CNN and matcher whose weights a seed fixes.

    With `build_member(k)`, its `config.gender_ensemble` extra gender classifiers too.
    """
    keras.utils.set_random_seed(7)
    weights = [model.get_weights() for model in build_models(config)]

    def load_models():
        models = build_models(config)
        for model, values in zip(models, weights):
            model.set_weights(values)
        if build_member is None:
            return models
        return (*models, tuple(build_member(k) for k in range(1, config.gender_ensemble + 1)))

    return SanTask(config, fixed_prototypes(), load_models)


def one_device_reference(workdir, steps):
    """The same SAN, global batch and data order on one device, in the calling process."""
    config = tiny_config(workdir, steps)
    return trainer.train(san_task(config), config.san, config,
                         tf.distribute.OneDeviceStrategy("/cpu:0"), Path(workdir) / "san")


def _pace_checkpoints(seconds):
    """Slows each checkpoint save down (slow storage), so a test can kill a run mid-way."""
    original = tf.train.CheckpointManager.save

    def slow_save(self, *args, **kwargs):
        path = original(self, *args, **kwargs)
        time.sleep(seconds)
        return path

    tf.train.CheckpointManager.save = slow_save


# ----------------------------------------------------------------------------------------------
# Test side: starting worker processes.


def free_ports(count):
    """Ports the OS says are free (bound to port 0, then released)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class Worker:
    """One `python tests/_worker.py` process; its output goes to a log file."""

    def __init__(self, args, log_path, env):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, str(SCRIPT), *args], env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait(self, timeout=TIMEOUT_SECONDS):
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker timed out after {timeout}s:\n{self.output()}")
        finally:
            self._log.close()

    def output(self):
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()


def worker_env(tmp_dir, tf_config=None):
    """The environment of a worker: the repo importable, its own TMPDIR, maybe TF_CONFIG."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TMPDIR"] = str(tmp_dir)
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    Path(tmp_dir).mkdir(parents=True, exist_ok=True)
    return env


def launch_cluster(root, args, count=2, tag="run"):
    """Starts `count` workers of one MultiWorkerMirroredStrategy job on 127.0.0.1.

    Worker i gets TMPDIR `root/tmp-worker<i>`, logs to `root/<tag>-worker<i>.log` and saves
    its final weights to `root/<tag>-weights<i>.npz`.
    """
    root = Path(root)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(count)]}
    workers = []
    for index in range(count):
        env = worker_env(root / f"tmp-worker{index}",
                         {"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(Worker([*args, "--strategy=multi_worker",
                               f"--weights_out={root / f'{tag}-weights{index}.npz'}"],
                              root / f"{tag}-worker{index}.log", env))
    return workers


def wait_all(workers, expected_codes=(0,)):
    """Waits for every worker; fails with every worker's output unless all exit as expected."""
    codes = [worker.wait() for worker in workers]
    if any(code not in expected_codes for code in codes):
        logs = "\n".join(f"----- worker {i} (exit {code}) -----\n{w.output()[-6000:]}"
                         for i, (w, code) in enumerate(zip(workers, codes)))
        raise AssertionError(f"exit codes {codes}, expected {expected_codes}:\n{logs}")
    return codes


def load_weights(path):
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]


# ----------------------------------------------------------------------------------------------
# Worker side.


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stage_dir", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--checkpoint_every", type=int, default=2)
    parser.add_argument("--steps_per_loop", type=int, default=1)
    parser.add_argument("--strategy", default="one_device")
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--pace_seconds", type=float, default=0.0,
                        help="sleep after each checkpoint save")
    parser.add_argument("--poison_from_step", type=int, default=-1,
                        help="make the pixel loss NaN from this step on (-1: never)")
    parser.add_argument("--weights_out", help=".npz of the final autoencoder weights")
    args = parser.parse_args(argv)

    from absl import logging
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.pace_seconds:
        _pace_checkpoints(args.pace_seconds)

    config = tiny_config(os.path.dirname(args.stage_dir), args.steps, args.checkpoint_every,
                         args.steps_per_loop, args.deterministic, args.strategy)
    strategy = distribute.make_strategy(config.strategy)
    task = san_task(config)
    if args.poison_from_step >= 0:
        original = task.per_example

        def poisoned(batch, step):
            total, report = original(batch, step)
            pixel = report["pixel"] * tf.where(step >= args.poison_from_step, np.nan, 1.0)
            return total + pixel, {**report, "pixel": pixel}

        task.per_example = poisoned
    try:
        result = trainer.train(task, config.san, config, strategy, args.stage_dir)
    except trainer.NonFiniteLossError as error:
        print(f"NonFiniteLossError: {error}", file=sys.stderr, flush=True)
        return 3
    if args.weights_out:
        np.savez(args.weights_out, *result.model.get_weights())
    print(f"done {distribute.worker_id(strategy)} steps={[s for s, _ in result.history]}",
          file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
