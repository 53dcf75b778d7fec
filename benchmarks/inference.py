"""Exported inference: the `opposite` signature against the bare Keras model, and end to end.

  python benchmarks/inference.py [--image_size=64] [--channels=3] [--batches=1,32,256]
      [--repeats=7] [--latency_calls=200] [--perturb_photos=300]

Exports a SAN with random weights (the UTKFace recipe's widths; weights do not change the
cost) with `semiadv.export.writer.export_san`, then times, in one run:

  signature        `tf.saved_model.load(...).signatures["opposite"]` (what TF Serving runs)
  bare model       the same serving Keras model called in a `tf.function` (no export)
  signature bf16   the signature of an export of the mixed_bfloat16 networks
  encoded          `opposite_encoded`: JPEG bytes in, PNG bytes out (batch 32, UTKFace JPEGs)
  semiadv-perturb  `perturb.perturb_folder` on a folder of UTKFace photos, with and without
                   alignment, images/s end to end (read, align, perturb, write PNG)

Images/s at each batch size are medians over `--repeats` calls after warm-up; batch-1
latency p50/p99 over `--latency_calls` calls.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common
from _common import load_average, machine, median, percentile, table, write_results

RECIPE = dict(encoder_filters=(8, 12), decoder_filters=(64, 32), classifier_width=0.5)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batches", default="1,32,256")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--latency_calls", type=int, default=200)
    parser.add_argument("--perturb_photos", type=int, default=1000,
                        help="photos for semiadv-perturb --noalign")
    parser.add_argument("--align_photos", type=int, default=100,
                        help="photos for semiadv-perturb with alignment (OpenCV, slow)")
    parser.add_argument("--faces", default=str(_common.REPO.parent / "shared" / "faces"))
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from semiadv.export import serving_model, writer
    from semiadv.models import autoencoders, gender_classifiers
    from semiadv.perturb import folder as perturb
    from semiadv.prototypes import average
    from semiadv.train import dtype_policies

    info = machine()
    size, channels = args.image_size, args.channels
    rng = np.random.default_rng(0)
    male_face, female_face = rng.uniform(0.3, 0.7, (2, size, size, channels)).astype(np.float32)
    protos = average.Prototypes(male_face, female_face, (male_face + female_face) / 2, 0.5,
                                (1, 1))
    keras.utils.set_random_seed(0)
    autoencoder = autoencoders.build_autoencoder(size, channels, RECIPE["encoder_filters"],
                                                 RECIPE["decoder_filters"])
    gender = gender_classifiers.build_gender_classifier(size, channels,
                                                        width=RECIPE["classifier_width"])
    scratch = tempfile.TemporaryDirectory()
    work = Path(scratch.name)
    version_fp32 = writer.export_san(autoencoder, gender, protos, work / "exports", "fp32")
    version_bf16 = writer.export_san(
        dtype_policies.with_dtype_policy(autoencoder, "mixed_bfloat16"),
        dtype_policies.with_dtype_policy(gender, "mixed_bfloat16"),
        protos, work / "exports", "bf16", float32=False)
    loaded_fp32 = tf.saved_model.load(str(version_fp32))
    loaded_bf16 = tf.saved_model.load(str(version_bf16))
    serving = serving_model.build_serving_perturber(autoencoder, gender, protos)

    @tf.function(input_signature=[tf.TensorSpec((None, size, size, channels), tf.float32)])
    def bare(image):
        male = -tf.ones(tf.shape(image)[:1], tf.float32)
        return serving({"image": image, "male": male}, training=False)["opposite"]

    def signature_fn(loaded):
        signature = loaded.signatures["opposite"]
        return lambda image: signature(image=image)["perturbed"]

    candidates = {"signature": signature_fn(loaded_fp32), "bare model": bare,
                  "signature bf16": signature_fn(loaded_bf16)}
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        images = tf.constant(rng.uniform(0, 1, (batch, size, size, channels)).astype(np.float32))
        repeats = args.repeats if batch > 1 else args.latency_calls
        measured = {}
        # Interleaved rounds: the candidates see the same machine load.
        for name in candidates:
            candidates[name](images).numpy()
        per_call = {name: [] for name in candidates}
        for _ in range(repeats):
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn(images).numpy()
                per_call[name].append(time.perf_counter() - start)
        for name, times in per_call.items():
            measured[name] = {"candidate": name, "batch": batch,
                              "images_per_s": batch / median(times),
                              "median_ms": 1e3 * median(times),
                              "p99_ms": 1e3 * percentile(times, 99) if batch == 1 else None,
                              "calls": len(times)}
        bare_s = measured["bare model"]["median_ms"]
        for row in measured.values():
            row["time_vs_bare"] = row["median_ms"] / bare_s
            row["load_average"] = load_average()
            rows.append(row)
        print(f"batch {batch}: " + ", ".join(
            f"{n} {r['images_per_s']:.0f} img/s" for n, r in measured.items()), flush=True)

    encoded_rows = []
    utkface = Path(args.faces) / "utkface"
    photos = sorted(utkface.glob("*.jpg"))[:max(args.perturb_photos, 32)] \
        if utkface.is_dir() else []
    if photos:
        signature = loaded_fp32.signatures["opposite_encoded"]
        payload = tf.constant([p.read_bytes() for p in photos[:32]])
        signature(image_bytes=payload)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            signature(image_bytes=payload)["perturbed_png_bytes"].numpy()
            times.append(time.perf_counter() - start)
        encoded_rows.append({"path": "opposite_encoded, batch 32 (200x200 JPEG in, PNG out)",
                             "images": 32, "images_per_s": 32 / median(times),
                             "load_average": load_average()})
        folder = work / "photos"
        folder.mkdir()
        for photo in photos[:args.perturb_photos]:
            (folder / photo.name).symlink_to(photo)
        start = time.perf_counter()
        tf.saved_model.load(str(version_fp32))
        load_s = time.perf_counter() - start
        encoded_rows.append({"path": "tf.saved_model.load of the export (once per run)",
                             "images": 0, "seconds": load_s, "load_average": load_average()})
        aligning = work / "photos_align"
        aligning.mkdir()
        for photo in photos[:args.align_photos]:
            (aligning / photo.name).symlink_to(photo)
        # workers=1 is the single-threaded reading of before; None is the default (per core).
        for align, source, workers in ((False, folder, 1), (False, folder, None),
                                       (True, aligning, 1), (True, aligning, None)):
            output = work / f"perturbed_align_{align}_{workers}"
            start = time.perf_counter()
            report = perturb.perturb_folder(version_fp32, source, output, prototype="opposite",
                                            align=align, batch_size=32, workers=workers)
            seconds = time.perf_counter() - start
            done = report["counts"].get("perturbed", 0)
            threads = "1 thread" if workers == 1 else "a thread per core"
            encoded_rows.append({"path": f"semiadv-perturb {'aligning' if align else '--noalign'}"
                                         f", {threads}",
                                 "images": done, "images_per_s": done / seconds,
                                 "seconds": seconds,
                                 "images_per_s_after_load": done / max(seconds - load_s, 1e-9),
                                 "load_average": load_average()})
            print(f"{encoded_rows[-1]['path']}: {done / seconds:.1f} img/s", flush=True)
    print(table(rows, ["candidate", "batch", "images_per_s", "median_ms", "p99_ms",
                       "time_vs_bare"]))
    if encoded_rows:
        print(table(encoded_rows, ["path", "images", "seconds", "images_per_s",
                                   "images_per_s_after_load"]))
    path = write_results("inference", {"machine": info, "args": vars(args), "rows": rows,
                                       "end_to_end": encoded_rows})
    print(f"wrote {path}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
