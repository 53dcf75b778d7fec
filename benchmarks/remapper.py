"""Grappler's remapper (op fusion) on and off, for the compiled step of every training stage.

  python benchmarks/remapper.py [--stages=gender,matcher,autoencoder,san] [--size=64]
      [--precisions=none,bfloat16] [--rounds=2] [--steps=20] [--repeats=3]

`semiadv-train` turns grappler's remapper off by default (`--remapper`, TrainConfig.remapper):
on the SAN step it fails ("remapper failed: ... LeakyReluGrad ... missing node ...BiasAdd")
and the step ran faster without it. This checks the choice on every stage's compiled loop
(`trainer.make_train_loop`, the UTKFace recipe's widths, global batch 32, a fixed in-memory
batch). The setting is process-wide, so each measurement is a fresh subprocess; on and off
alternate in `--rounds` rounds so both see the same machine load. Images/s is the median of
`--repeats` timed calls of `--steps` steps after a warm-up call; the table gives the median
over rounds and off / on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import _common
from _common import load_average, machine, median, table, write_results

CHILD = r"""
import json, sys, time
import tensorflow as tf
stage, size, precision, remapper, steps, repeats = sys.argv[1:7]
size, steps, repeats = int(size), int(steps), int(repeats)
tf.config.optimizer.set_experimental_options({"remapping": remapper == "on"})
import keras
import numpy as np
from semiadv.train import distribute
from semiadv.prototypes import average
from semiadv.train import dtype_policies
from semiadv.train.autoencoder_task import AutoencoderTask
from semiadv.train.gender_tasks import GenderTask
from semiadv.train.matcher_task import MatcherTask
from semiadv.train import trainer
from semiadv.config import DataConfig, NetworkConfig, TrainConfig
from train_step import RECIPES, build

if stage == "san":
    variant = "bf16" if precision == "bfloat16" else "compiled"
    loop, iterator, metrics = build(size, 3, 32, variant)
    if remapper == "on":  # build() applies the variant's own setting: put ours back.
        tf.config.optimizer.set_experimental_options({"remapping": True})
else:
    config = TrainConfig(data=DataConfig(image_size=size, channels=3, batch_size=32),
                         networks=NetworkConfig(**RECIPES[64]), mixed_precision=precision)
    rng = np.random.default_rng(0)
    male, female = rng.uniform(0.3, 0.7, (2, size, size, 3)).astype(np.float32)
    protos = average.Prototypes(male, female, (male + female) / 2, 0.5, (1, 1))
    task = {"gender": lambda: GenderTask(config),
            "matcher": lambda: MatcherTask(config),
            "autoencoder": lambda: AutoencoderTask(config, protos)}[stage]()
    strategy = distribute.make_strategy("auto")
    with strategy.scope():
        with dtype_policies.dtype_policy(precision):
            model = task.build()
        optimizer = keras.optimizers.Adam(1e-4)
        optimizer.build(model.trainable_variables)
        metrics = {name: keras.metrics.Mean(name=name) for name in task.reports}
    loop = trainer.make_train_loop(task, config, strategy, optimizer, model.trainable_variables,
                                   metrics)
    images = lambda: rng.uniform(0, 1, (32, size, size, 3)).astype(np.float32)
    batch = {"image": images(), "male": rng.integers(0, 2, 32).astype(np.int64),
             "identity": np.repeat(np.arange(16), 2).astype(np.int64),
             "flipped": np.zeros(32, bool), "view_a": images(), "view_b": images()}
    iterator = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors(batch).repeat()))
metric = next(iter(metrics.values()))
count = tf.constant(steps)
loop(iterator, count)
float(metric.result())
times = []
for _ in range(repeats):
    start = time.perf_counter()
    loop(iterator, count)
    float(metric.result())
    times.append(time.perf_counter() - start)
times.sort()
print("RATE_JSON " + json.dumps({"images_per_s": 32 * steps / times[len(times) // 2]}))
"""


def measure(stage, size, precision, remapper, steps, repeats):
    result = subprocess.run(
        [sys.executable, "-c", CHILD, stage, str(size), precision, remapper, str(steps),
         str(repeats)], capture_output=True, text=True, cwd=_common.REPO / "benchmarks")
    line = [l for l in result.stdout.splitlines() if l.startswith("RATE_JSON ")]
    if result.returncode or not line:
        print(result.stderr[-3000:], file=sys.stderr)
        sys.exit(f"{stage} {precision} remapper {remapper} failed ({result.returncode})")
    return json.loads(line[0][len("RATE_JSON "):])["images_per_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default="gender,matcher,autoencoder,san")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--precisions", default="none,bfloat16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    info = machine()
    rows = []
    for stage in args.stages.split(","):
        for precision in args.precisions.split(","):
            rates = {"on": [], "off": []}
            for _ in range(args.rounds):
                for setting in ("on", "off"):
                    rates[setting].append(measure(stage, args.size, precision, setting,
                                                  args.steps, args.repeats))
            row = {"stage": stage, "precision": precision,
                   "on_images_per_s": median(rates["on"]),
                   "off_images_per_s": median(rates["off"]),
                   "rounds_on": rates["on"], "rounds_off": rates["off"],
                   "load_average": load_average()}
            row["off_vs_on"] = row["off_images_per_s"] / row["on_images_per_s"]
            rows.append(row)
            print(f"{stage} {precision}: on {row['on_images_per_s']:.1f}, off "
                  f"{row['off_images_per_s']:.1f} img/s", flush=True)
    print(table(rows, ["stage", "precision", "on_images_per_s", "off_images_per_s",
                       "off_vs_on"]))
    path = write_results("remapper", {"machine": info, "args": vars(args), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
