"""The machine's practical ceiling through TensorFlow: a large dense matmul and a large 3x3 conv.

  python benchmarks/peak.py [--repeats=5] [--matmul_size=4096] [--dtypes=float32,bfloat16]

Both run in one `tf.function` (the same oneDNN kernels the training step uses), float32 and,
where the CPU has `avx512_bf16`, bfloat16. The float32 peak (the larger of the two) is what
`train_step.py` quotes fractions of.
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (sets up sys.path and TF logging)
from _common import machine, median, table, timed, write_results


def _row(op, dtype_name, shape, flops, times):
    seconds = median(times)
    return {"op": op, "dtype": dtype_name, "shape": shape, "gflop": flops / 1e9,
            "median_s": seconds, "gflops_per_s": flops / seconds / 1e9,
            "best_gflops_per_s": flops / min(times) / 1e9}


def conv_row(dtype_name, batch, size, channels, repeats=5):
    """GFLOP/s of one 3x3 'same' conv [batch, size, size, channels] -> channels."""
    import tensorflow as tf

    dtype = tf.as_dtype(dtype_name)
    x = tf.cast(tf.random.uniform((batch, size, size, channels)), dtype)
    kernel = tf.cast(tf.random.uniform((3, 3, channels, channels), -0.05, 0.05), dtype)
    conv = tf.function(lambda: tf.reduce_sum(tf.cast(
        tf.nn.conv2d(x, kernel, 1, "SAME")[0, 0, 0, :8], tf.float32)))
    times = timed(lambda: conv().numpy(), repeats, warmup=2)
    return _row("conv3x3", dtype_name, f"{batch}x{size}x{size}x{channels}->{channels}",
                2 * batch * size * size * 9 * channels * channels, times)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul_size", type=int, default=4096)
    parser.add_argument("--conv_batch", type=int, default=8)
    parser.add_argument("--conv_size", type=int, default=56, help="conv input height/width")
    parser.add_argument("--conv_channels", type=int, default=256, help="conv in = out channels")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--vgg_conv", default="4x112x112x128",
                        help="a second conv shape BxSxSxC (a VGG block at 224); empty: skip")
    args = parser.parse_args()

    import tensorflow as tf

    info = machine()
    rows = []
    n = args.matmul_size
    b, s, c = args.conv_batch, args.conv_size, args.conv_channels
    conv_shapes = [(b, s, c)]
    if args.vgg_conv:
        vb, vs, _, vc = (int(v) for v in args.vgg_conv.split("x"))
        conv_shapes.append((vb, vs, vc))
    for dtype_name in args.dtypes.split(","):
        dtype = tf.as_dtype(dtype_name)
        a = tf.cast(tf.random.uniform((n, n), dtype=tf.float32), dtype)
        matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, a)[0, :8], tf.float32)))
        times = timed(lambda: matmul().numpy(), args.repeats, warmup=2)
        rows.append(_row("matmul", dtype_name, f"{n}x{n}x{n}", 2 * n**3, times))
        for shape in conv_shapes:
            rows.append(conv_row(dtype_name, *shape, repeats=args.repeats))
    fp32 = [r["gflops_per_s"] for r in rows if r["dtype"] == "float32"]
    peak = max(fp32) if fp32 else None
    print(table(rows, ["op", "dtype", "shape", "gflop", "median_s", "gflops_per_s",
                       "best_gflops_per_s"]))
    print(f"float32 peak (median, larger of matmul and conv): {peak:.1f} GFLOP/s")
    path = write_results("peak", {"machine": info, "args": vars(args), "rows": rows,
                                  "float32_peak_gflops_per_s": peak})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
