"""The input pipeline: decoded, batched images/s of each dataset spec, against the step's rate.

  python benchmarks/input_pipeline.py [--image_size=64] [--channels=3] [--batch_size=32]
      [--batches=150] [--repeats=3] [--faces=../shared/faces] [--feed_steps=40]

Times `semiadv.data.input_pipeline.make_dataset(..., "train", training=True, augment="flip")`
(what the SAN and autoencoder stages read; `views` for the matcher stage too): the batches a step consumes,
decoded, resized, augmented and batched. Specs:

  synthetic                      embedded faces, held in memory
  utkface (disk cache)           ../shared/faces/utkface decoded once into a file of raw rows
                                 (the default, --cache=disk), read from it each step
  utkface (memory)               decoded once into memory (--cache=memory)
  utkface (streamed)             --cache=none: decoded from JPEG each step
  folder (aligned)               ../shared/faces/celeba_identities?aligned=1: decode + resize
  folder alignment (first run)   OpenCV detection + alignment of --align_photos photos, done
                                 once per folder and cached

Then it feeds the compiled 64x64 SAN step (train_step.py's recipe) from each UTKFace pipeline and from a fixed in-memory batch: equal step times mean the step
never waits on its input.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common
from _common import load_average, machine, median, table, write_results


def pipeline_rate(config, augment, batches, repeats):
    from semiadv.data import input_pipeline

    dataset = input_pipeline.make_dataset(config, "train", training=True, augment=augment)
    iterator = iter(dataset)
    for _ in range(10):
        next(iterator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(batches):
            batch = next(iterator)
        batch["image"].numpy()
        times.append(time.perf_counter() - start)
    return config.batch_size * batches / median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=150, help="batches per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--faces", default=str(_common.REPO.parent / "shared" / "faces"))
    parser.add_argument("--align_photos", type=int, default=100)
    parser.add_argument("--feed_steps", type=int, default=40,
                        help="steps per timed call of the fed-step comparison (0: skip it)")
    args = parser.parse_args()

    from semiadv.data import records as records_lib
    from semiadv.config import DataConfig

    info = machine()
    faces = Path(args.faces)
    base = dict(image_size=args.image_size, channels=args.channels, batch_size=args.batch_size)
    specs = [("synthetic", DataConfig(dataset="synthetic", **base), "flip")]
    if (faces / "utkface").is_dir():
        utk = f"utkface:{faces / 'utkface'}"
        specs += [("utkface (disk cache)", DataConfig(dataset=utk, **base), "flip"),
                  ("utkface (disk cache), views", DataConfig(dataset=utk, **base), "views"),
                  ("utkface (memory)", DataConfig(dataset=utk, cache="memory", **base),
                   "flip"),
                  ("utkface (streamed)", DataConfig(dataset=utk, cache="none", **base),
                   "flip")]
    if (faces / "celeba_identities").is_dir():
        specs.append(("folder (aligned=1)", DataConfig(
            dataset=f"folder:{faces / 'celeba_identities'}?aligned=1", **base), "flip"))
    rows = []
    for name, config, augment in specs:
        start = time.perf_counter()
        records = records_lib.load_records(config, "train")
        load_s = time.perf_counter() - start
        rate, times = pipeline_rate(config, augment, args.batches, args.repeats)
        rows.append({"spec": name, "augment": augment, "examples": len(records),
                     "reads_from": ("memory" if records.images is not None else
                                    "decoded file" if records.cache_file else "JPEG"),
                     "load_s": load_s,
                     "images_per_s": rate, "load_average": load_average()})
        print(f"{name}: {rate:.0f} img/s", flush=True)

    if (faces / "celeba_identities").is_dir() and args.align_photos:
        from semiadv.align import folder
        from semiadv.utils import imageio

        photos = imageio.list_images(faces / "celeba_identities", recursive=True)
        photos = photos[:args.align_photos]
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "photos"
            for photo in photos:
                link = source / photo.relative_to(faces / "celeba_identities")
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(photo)
            start = time.perf_counter()
            folder.align_folder(source, Path(scratch) / "aligned", args.image_size)
            seconds = time.perf_counter() - start
        rows.append({"spec": "folder alignment (first run, OpenCV)", "augment": "",
                     "examples": len(photos), "reads_from": "photos", "load_s": seconds,
                     "images_per_s": len(photos) / seconds, "load_average": load_average()})

    fed = []
    if args.feed_steps and (faces / "utkface").is_dir():
        fed = fed_step(args, faces, base)
    step_rate = None
    for row in fed:
        if row["input"] == "fixed in-memory batch":
            step_rate = row["images_per_s"]
    for row in rows:
        row["times_the_step"] = row["images_per_s"] / step_rate if step_rate else None
    print(table(rows, ["spec", "augment", "examples", "reads_from", "load_s", "images_per_s",
                       "times_the_step"]))
    if fed:
        print(table(fed, ["input", "images_per_s", "median_step_s", "vs_fixed_batch"]))
    path = write_results("input_pipeline", {"machine": info, "args": vars(args), "rows": rows,
                                            "fed_step": fed,
                                            "step_images_per_s": step_rate})
    print(f"wrote {path}")


def fed_step(args, faces, base):
    """The compiled 64x64 SAN step fed by real pipelines vs by one fixed batch."""
    import keras
    import tensorflow as tf

    from semiadv.config import DataConfig
    from train_step import build

    utk = f"utkface:{faces / 'utkface'}"
    results = []
    for name, config in (("fixed in-memory batch", None),
                         ("utkface (disk cache)", DataConfig(dataset=utk, **base)),
                         ("utkface (memory)", DataConfig(dataset=utk, cache="memory", **base)),
                         ("utkface (streamed)", DataConfig(dataset=utk, cache="none",
                                                           **base))):
        loop, iterator, metrics = build(args.image_size, args.channels, args.batch_size,
                                        "compiled", data_config=config)
        steps = tf.constant(args.feed_steps)
        loop(iterator, steps)
        float(metrics["loss"].result())
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loop(iterator, steps)
            float(metrics["loss"].result())
            times.append(time.perf_counter() - start)
        step_s = median(times) / args.feed_steps
        results.append({"input": name, "median_step_s": step_s,
                        "images_per_s": args.batch_size / step_s,
                        "load_average": load_average()})
        print(f"step fed by {name}: {args.batch_size / step_s:.0f} img/s", flush=True)
        keras.backend.clear_session()
    for row in results:
        row["vs_fixed_batch"] = results[0]["median_step_s"] / row["median_step_s"]
    return results


if __name__ == "__main__":
    main()
