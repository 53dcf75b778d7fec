"""Where the SAN training step's time goes, compiled and eager, from the TF profiler's trace.

  python benchmarks/profile_step.py [--shapes=224x1] [--batch_size=32] [--modes=compiled,eager]
      [--steps_64=10] [--steps_224=1] [--warmup=1] [--inter_op_threads=0] [--logdir=DIR]
      [--output=profile_step]

Builds the step exactly as train_step.py does (`build(...)`: `semiadv.train.trainer.make_train_loop`
under the `auto` strategy, a fixed in-memory batch), warms it up, then records the next steps
with `tf.profiler.experimental.start/stop` and reads the written `*.xplane.pb` (an XSpace
proto, `tensorflow.tsl.profiler.protobuf.xplane_pb2`). Only the host plane is read; the
window is a `Trace` event around the profiled steps, and every event is clipped to it.

What the numbers mean:
  op time   a kernel's self time on the thread that ran it: graph ops are the executor's
            `name:Type` events (compiled), eager ops the `KernelAndDevice*::Run` event under
            an `EagerExecute` (its `eager_op` stat is the type). Nested op events count once
            (a parent's time excludes its children), and an eager call of a tf.function is a
            container, not an op. oneDNN spreads one kernel over the intra-op pool, whose
            threads record no op events: a kernel's time is its wall time on its own thread.
  summed    op time summed over threads; with inter-op parallelism (two ops at once) it can
            exceed the wall time, up to (threads with ops) x wall.
  busy      the union over threads of the intervals in which some op runs: `1 - busy/wall`
            is the time no kernel runs at all (Python, dispatch, executor, waiting).
  per thread  op time, other traced runtime (eager dispatch, executor bookkeeping, waiting
            inside a tf.function call) and untraced time (Python, or an idle pool thread).
  GFLOP/s   the step's analytic FLOPs (benchmarks/flops.py, all Conv2D or Dense) over the
            wall time, as train_step.py quotes them; the FLOPs the step executes (the eager
            step runs more, see `category_flops`) over the time in which some Conv2D*/MatMul
            kernel runs (union over threads); and per category, its FLOPs over its summed
            op time: the kernels' own speed where one op runs at a time (the eager step,
            or `--inter_op_threads=1`). With two ops at once on the shared intra-op pool, a
            kernel's wall time includes waiting for the pool (a ReLU queued behind a conv):
            per-op times then overstate cheap ops, and the union figures are the safe ones.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (sets up sys.path and TF logging)
from _common import load_average, machine, table, write_results

# Op types are grouped by the first substring they contain (BackpropFilter before Conv2D:
# the gradients' types contain "Conv2D" too; oneDNN renames ops `_MklNativeConv2D...`).
CATEGORIES = (("Conv2DBackpropFilter", "conv filter grad"),
              ("Conv2DBackpropInput", "conv input grad"),
              ("Conv2D", "conv forward"),
              ("MatMul", "matmul"))
HEAVY = {label for _, label in CATEGORIES}
WINDOW = "profiled_steps"
# A graph op's executor event is `node/name:OpType`; runtime events are `A::B` or `A: B`.
_GRAPH_OP = re.compile(r"^[^:\s][^:]*:([A-Za-z_]\w*)$")


def category(op_type: str) -> str:
    for key, label in CATEGORIES:
        if key in op_type:
            return label
    return "other ops"


def _stat_value(stat, names):
    kind = stat.WhichOneof("value")
    if kind == "ref_value":
        return names.get(stat.ref_value)
    return getattr(stat, kind) if kind else None


def _merge(intervals) -> int:
    """Total length of the union of (start, end) intervals."""
    total, end = 0, None
    for lo, hi in sorted(intervals):
        if end is None or lo > end:
            total += hi - lo
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total


def _host_plane(space):
    planes = [p for p in space.planes if p.name.startswith("/host:")]
    if not planes:
        raise ValueError(f"no host plane in the trace (planes: {[p.name for p in space.planes]})")
    return planes[0]


def _events(plane, line):
    """(start_ps, end_ps, name, stats) of a line's events, absolute, in nesting order."""
    names = {k: v.name for k, v in plane.stat_metadata.items()}
    base = line.timestamp_ns * 1000
    out = []
    for event in line.events:
        meta = plane.event_metadata[event.metadata_id]
        stats = {names.get(s.metadata_id): _stat_value(s, names) for s in event.stats}
        start = base + event.offset_ps
        out.append((start, start + event.duration_ps, meta.name, stats))
    out.sort(key=lambda e: (e[0], -e[1]))
    return out


def _window(plane):
    for line in plane.lines:
        for start, end, name, _ in _events(plane, line):
            if name == WINDOW:
                return start, end
    raise ValueError(f"no '{WINDOW}' event in the trace: was the step run inside it?")


def breakdown(xplane_path) -> dict:
    """Op time by type and per thread, inside the `profiled_steps` window of one trace.

    Returns a dict: `wall_s`; `ops` {op type: {"category", "seconds", "count"}};
    `categories` {label: seconds}; `summed_op_s`, `busy_s` (union over threads), `heavy_busy_s`
    (union of Conv2D*/MatMul kernels); `threads` [{"thread", "op_s", "runtime_s",
    "untraced_s"}] for the threads that ran ops. Times in seconds (see the module docstring).
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xplane_path).read_bytes())
    plane = _host_plane(space)
    lo, hi = _window(plane)

    def clip(start, end):
        return max(lo, start), min(hi, end)

    ops, threads, busy, heavy = {}, [], [], []
    for line in plane.lines:
        stack, line_ops, traced = [], [], []
        for start, end, name, stats in _events(plane, line):
            while stack and stack[-1]["end"] <= start:
                stack.pop()
            op_type = None
            match = _GRAPH_OP.match(name)
            if match:
                op_type = match.group(1)
            elif name.startswith("KernelAndDevice") and name.endswith("::Run"):
                call = next((e for e in reversed(stack) if e["name"] == "EagerExecute"), None)
                if call and not call["stats"].get("is_func"):
                    op_type = call["stats"].get("eager_op")
            node = {"end": end, "name": name, "stats": stats, "type": op_type, "child_ps": 0}
            stack.append(node)
            a, b = clip(start, end)
            if b <= a or name == WINDOW:
                continue
            traced.append((a, b))
            if op_type is None:
                continue
            parent = next((e for e in reversed(stack[:-1]) if e["type"]), None)
            if parent is not None:  # Counted once: as this op, not inside its parent too.
                parent["child_ps"] += b - a
            node["clipped"] = (a, b)
            line_ops.append(node)
        if not line_ops:
            continue
        for node in line_ops:
            a, b = node["clipped"]
            entry = ops.setdefault(node["type"], {"category": category(node["type"]),
                                                  "seconds": 0.0, "count": 0})
            entry["seconds"] += (b - a - node["child_ps"]) / 1e12
            entry["count"] += 1
            busy.append((a, b))
            if entry["category"] in HEAVY:
                heavy.append((a, b))
        op_ps = _merge(n["clipped"] for n in line_ops)
        traced_ps = _merge(traced)
        threads.append({"thread": line.display_name or line.name, "op_s": op_ps / 1e12,
                        "runtime_s": (traced_ps - op_ps) / 1e12,
                        "untraced_s": (hi - lo - traced_ps) / 1e12})
    categories = {}
    for entry in ops.values():
        categories[entry["category"]] = categories.get(entry["category"], 0.0) + entry["seconds"]
    return {"wall_s": (hi - lo) / 1e12, "ops": ops, "categories": categories,
            "summed_op_s": sum(e["seconds"] for e in ops.values()),
            "busy_s": _merge(busy) / 1e12, "heavy_busy_s": _merge(heavy) / 1e12,
            "threads": threads}


def profile(loop, iterator, metrics, steps: int, warmup: int, logdir) -> tuple[Path, float]:
    """Runs `warmup` untraced calls of `steps` steps, then one traced call.

    Returns the written `.xplane.pb` and the call's wall time by `time.perf_counter`.
    """
    import tensorflow as tf

    num_steps = tf.constant(steps)
    metric = metrics["loss"]
    for _ in range(warmup):  # Traces and compiles, and lets oneDNN cache its primitives.
        loop(iterator, num_steps)
        float(metric.result())
    logdir = Path(logdir)
    before = set(logdir.rglob("*.xplane.pb"))
    tf.profiler.experimental.start(
        str(logdir), options=tf.profiler.experimental.ProfilerOptions(
            host_tracer_level=2, python_tracer_level=0, device_tracer_level=0))
    try:
        start = time.perf_counter()
        with tf.profiler.experimental.Trace(WINDOW):
            loop(iterator, num_steps)
            float(metric.result())  # Waits for the loop to finish.
        wall = time.perf_counter() - start
    finally:
        tf.profiler.experimental.stop()
    written = sorted(set(logdir.rglob("*.xplane.pb")) - before)
    if not written:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    return written[-1], wall


def category_flops(size: int, channels: int, compiled: bool) -> dict[str, int]:
    """Analytic FLOPs per image of one SAN step by kernel category (benchmarks/flops.py).

    The passes are those of `flops.san_step_flops` (autoencoder forward and backward; gender
    CNN forward + input gradient on X'_SM and X'_OP; matcher forward on X, X'_SM, X'_OP and
    input gradient on the last two), split into forward, input-gradient and weight-gradient
    kernels; the compiled step's categories add up to its total. The eager step runs more:
    TF's Conv2D gradient (`_Conv2DGrad`) always returns the filter gradient too, so every
    frozen conv on the tape also computes one (graph pruning drops them when compiled), and
    the first autoencoder conv its input gradient. MatMul's gradient skips unwatched inputs:
    Dense layers add nothing.
    """
    import keras

    import flops
    from train_step import recipe_networks

    from semiadv.models import autoencoders, gender_classifiers, matchers
    nets = recipe_networks(size)
    models = (autoencoders.build_autoencoder(size, channels, nets["encoder_filters"],
                                             nets["decoder_filters"]),
              gender_classifiers.build_gender_classifier(size, channels,
                                                         width=nets["classifier_width"]),
              matchers.build_matcher(size, channels, embedding_dim=nets["embedding_dim"],
                                     width=nets["matcher_width"]))

    def split(model):
        counts = flops.forward_flops(model)
        convs = {l.name for l in model.layers if isinstance(l, keras.layers.Conv2D)}
        conv = sum(v for k, v in counts.items() if k in convs)
        return conv, sum(counts.values()) - conv

    (conv_a, dense_a), (conv_g, dense_g), (conv_m, dense_m) = (split(m) for m in models)
    first = flops.forward_flops(models[0]).get("encoder_conv1", 0)
    frozen_filter = 0 if compiled else 2 * (conv_g + conv_m)
    return {"conv forward": conv_a + 2 * conv_g + 3 * conv_m,
            "conv input grad": conv_a - (first if compiled else 0) + 2 * conv_g + 2 * conv_m,
            "conv filter grad": conv_a + frozen_filter,
            "matmul": (dense_a + 2 * dense_g + 3 * dense_m) + (dense_a + 2 * dense_g
                                                               + 2 * dense_m) + dense_a}


def run(size: int, channels: int, batch_size: int, mode: str, steps: int, warmup: int,
        logdir) -> dict:
    """The breakdown of one mode (a train_step.py variant) at one shape, with its FLOPs."""
    import keras
    import tensorflow as tf
    from train_step import VARIANTS, build

    loop, iterator, metrics = build(size, channels, batch_size, mode)
    load_before = load_average()
    path, wall = profile(loop, iterator, metrics, steps, warmup, logdir)
    del loop, iterator, metrics
    keras.backend.clear_session()
    result = breakdown(path)
    images = batch_size * steps
    compiled_flops = category_flops(size, channels, compiled=True)
    # Each call builds the three networks: the compiled count serves compiled modes twice.
    mode_flops = (compiled_flops if VARIANTS[mode]["compiled"]
                  else category_flops(size, channels, compiled=False))
    useful = sum(compiled_flops.values()) * images
    executed = {label: value * images for label, value in mode_flops.items()}
    keras.backend.clear_session()
    heavy = result["heavy_busy_s"]
    seconds = result["categories"]
    return {"shape": f"{size}x{size}x{channels}", "mode": mode, "steps": steps,
            "batch_size": batch_size,
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "perf_counter_s": wall, "trace": str(path),
            "load_before": load_before, "load_after": load_average(),
            "step_gflop": useful / steps / 1e9,
            "executed_step_gflop": sum(executed.values()) / steps / 1e9,
            "gflops_per_s_wall": useful / result["wall_s"] / 1e9,
            "conv_gflops_per_s": sum(executed.values()) / heavy / 1e9 if heavy else None,
            "category_gflop": {k: v / 1e9 for k, v in executed.items()},
            "category_gflops_per_s": {k: v / seconds[k] / 1e9 for k, v in executed.items()
                                      if seconds.get(k)}, **result}


def report(result: dict, top: int = 8) -> str:
    """The printed tables of one mode: op types, totals and threads, as fractions of wall."""
    wall = result["wall_s"]
    ops = sorted(result["ops"].items(), key=lambda kv: -kv[1]["seconds"])
    summed = result["summed_op_s"]
    rows = [{"op type": name, "category": e["category"], "count": e["count"],
             "seconds": e["seconds"], "x wall": e["seconds"] / wall,
             "share of op time": e["seconds"] / summed} for name, e in ops[:top]]
    rest = ops[top:]
    if rest:
        rows.append({"op type": f"({len(rest)} more types)", "category": "",
                     "count": sum(e["count"] for _, e in rest),
                     "seconds": sum(e["seconds"] for _, e in rest),
                     "x wall": sum(e["seconds"] for _, e in rest) / wall,
                     "share of op time": sum(e["seconds"] for _, e in rest) / summed})
    speed = result.get("category_gflops_per_s", {})
    totals = [{"what": f"{label} (summed over threads)", "seconds": seconds,
               "x wall": seconds / wall, "share of op time": seconds / result["summed_op_s"],
               "GFLOP/s": speed.get(label, "")}
              for label, seconds in sorted(result["categories"].items(), key=lambda kv: -kv[1])]
    totals += [
        {"what": "all ops, summed over threads", "seconds": result["summed_op_s"],
         "x wall": result["summed_op_s"] / wall},
        {"what": "some op running (union over threads)", "seconds": result["busy_s"],
         "x wall": result["busy_s"] / wall},
        {"what": "some conv/matmul running (union)", "seconds": result["heavy_busy_s"],
         "x wall": result["heavy_busy_s"] / wall},
        {"what": "no op running (Python, dispatch, executor, idle)",
         "seconds": wall - result["busy_s"], "x wall": 1 - result["busy_s"] / wall}]
    threads = [{"thread": t["thread"], "op x wall": t["op_s"] / wall,
                "runtime x wall": t["runtime_s"] / wall,
                "untraced x wall": t["untraced_s"] / wall} for t in result["threads"]]
    conv = result["conv_gflops_per_s"]
    head = (f"{result['shape']} {result['mode']}: {result['steps']} step(s) of batch "
            f"{result['batch_size']}, inter-op threads {result.get('inter_op_threads', 0) or 'default'}, "
            f"wall {wall:.3f} s (perf_counter "
            f"{result['perf_counter_s']:.3f} s), load {result['load_before'][0]}; "
            f"{result['gflops_per_s_wall']:.1f} GFLOP/s of the step's {result['step_gflop']:.4g} "
            f"GFLOP over the wall; executed {result['executed_step_gflop']:.4g} GFLOP, "
            + (f"{conv:.1f} GFLOP/s while a conv/matmul runs" if conv else "no conv/matmul seen"))
    return "\n\n".join([head, table(rows, ["op type", "category", "count", "seconds", "x wall",
                                     "share of op time"]),
                        table(totals, ["what", "seconds", "x wall", "share of op time",
                                       "GFLOP/s"]),
                        table(threads, ["thread", "op x wall", "runtime x wall",
                                        "untraced x wall"])])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="224x1", help="SIZExCHANNELS, comma separated")
    parser.add_argument("--batch_size", type=int, default=32, help="global batch")
    parser.add_argument("--modes", default="compiled,eager",
                        help="train_step.py variants (compiled, eager, bf16, xla, ...)")
    parser.add_argument("--steps_64", type=int, default=10, help="profiled steps below 224")
    parser.add_argument("--steps_224", type=int, default=1, help="profiled steps at 224")
    parser.add_argument("--warmup", type=int, default=1, help="untraced calls before")
    parser.add_argument("--logdir", default=None,
                        help="keep the traces here (TensorBoard's profile plugin reads them); "
                             "default: a temporary folder, deleted")
    parser.add_argument("--inter_op_threads", type=int, default=0,
                        help="TF inter-op threads (0: TF's default); 1 runs one op at a time, "
                             "so per-op times are not inflated by ops sharing the pool")
    parser.add_argument("--output", default="profile_step", help="results/<output>.json")
    args = parser.parse_args()

    import tensorflow as tf

    # Before anything creates the TF runtime (machine() does).
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    info = machine()
    rows = []
    with tempfile.TemporaryDirectory(prefix="profile_step-") as scratch:
        for shape in args.shapes.split(","):
            size, channels = (int(v) for v in shape.split("x"))
            steps = args.steps_224 if size >= 224 else args.steps_64
            for mode in args.modes.split(","):
                logdir = Path(args.logdir or scratch) / f"{size}x{channels}_{mode}"
                row = run(size, channels, args.batch_size, mode, steps, args.warmup, logdir)
                if not args.logdir:
                    row["trace"] = None
                rows.append(row)
                print(report(row), "\n", flush=True)
    for shape in {r["shape"] for r in rows}:
        pair = {r["mode"]: r for r in rows if r["shape"] == shape}
        if "compiled" in pair and "eager" in pair:
            ratio = ((pair["eager"]["wall_s"] / pair["eager"]["steps"])
                     / (pair["compiled"]["wall_s"] / pair["compiled"]["steps"]))
            pair["compiled"]["compiled_vs_eager"] = ratio
            print(f"{shape}: compiled / eager step time ratio {ratio:.2f} (profiled steps)")
    print("Op times are kernel self times on the thread that ran them, summed over threads "
          "(inter-op parallelism can make the sum exceed the wall time); 'union' counts "
          "wall time in which at least one op runs.")
    path = write_results(args.output, {"machine": info, "args": vars(args), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
