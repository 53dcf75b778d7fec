"""dlib's ResNet alone: the fraction of the fp32 peak its convolutions reach at each batch.

  python benchmarks/dlib_resnet_speed.py [--batches=32,64,128] [--repeats=5]

The SAN step with `--matcher=dlib_resnet` (train_step.py) spends 76% of its FLOPs in dlib's
ResNet: a forward pass on X and a forward pass plus input gradient on X'_OP, 32 images each.
This times exactly those two computations of the Keras port behind its chip warp
(`semiadv.models.dlib_resnet.build_dlib_matcher`, dlib's converted weights, 64x64 crops, float32,
one `tf.function` each) at several batch sizes, so BENCHMARKS.md can say how far the step's
fraction of peak is set by the matcher's own kernels. FLOPs are analytic (flops.py): F_dlib
per image forward, 2 F_dlib forward + input gradient. Set TF_ENABLE_ONEDNN_OPTS=1 as for
peak.py and train_step.py.
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (sets up sys.path and TF logging)
from _common import load_average, machine, median, read_peak, table, timed, write_results

SIZE, CHANNELS = 64, 3


def dlib_flops_per_image():
    import flops

    from semiadv.models import dlib_resnet

    return sum(flops.forward_flops(dlib_resnet.build_dlib_matcher(SIZE, CHANNELS,
                                                                  weights=None)).values())


def rows(batches, repeats):
    import numpy as np
    import tensorflow as tf

    from semiadv.models import dlib_resnet

    matcher = dlib_resnet.build_dlib_matcher(SIZE, CHANNELS, weights=True)
    per_image = dlib_flops_per_image()

    @tf.function
    def forward(images):
        return tf.reduce_sum(matcher(images, training=False))

    @tf.function
    def forward_and_input_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            total = tf.reduce_sum(matcher(images, training=False))
        return tf.reduce_sum(tape.gradient(total, images))

    peak = (read_peak() or {}).get("float32_peak_gflops_per_s")
    out = []
    for batch in batches:
        images = tf.constant(np.random.default_rng(batch).random((batch, SIZE, SIZE, CHANNELS),
                                                                 dtype=np.float32))
        for name, fn, passes in (("forward", forward, 1),
                                 ("forward + input gradient", forward_and_input_gradient, 2)):
            seconds = median(timed(lambda: fn(images).numpy(), repeats, warmup=2))
            gflops = passes * per_image * batch / seconds / 1e9
            out.append({"batch": batch, "computation": name, "median_s": seconds,
                        "gflop": passes * per_image * batch / 1e9, "gflops_per_s": gflops,
                        "fraction_of_fp32_peak": gflops / peak if peak else None,
                        "load": load_average()[0]})
            print(f"batch {batch} {name}: {seconds * 1e3:.0f} ms, {gflops:.1f} GFLOP/s")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="32,64,128")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="dlib_resnet_speed", help="results/<output>.json")
    args = parser.parse_args()
    results = rows([int(b) for b in args.batches.split(",")], args.repeats)
    print(table(results, ["batch", "computation", "median_s", "gflop", "gflops_per_s",
                          "fraction_of_fp32_peak", "load"]))
    path = write_results(args.output, {"machine": machine(), "rows": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
