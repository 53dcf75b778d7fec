"""benchmarks/profile_step.py: the profiler's trace of a SAN step, and how it is added up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The benchmark scripts are not a package: they import each other from their own folder.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import profile_step  # noqa: E402


def _trace(path, threads):
    """Writes an XSpace with a host plane: {thread: [(name, start_us, duration_us, stats)]}."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    ids = {}

    def metadata(table, name):
        if (table, name) not in ids:
            ids[(table, name)] = len(ids) + 1
            getattr(plane, table)[ids[(table, name)]].name = name
        return ids[(table, name)]

    for thread, events in threads.items():
        line = plane.lines.add(name=thread, timestamp_ns=1000)
        for name, start_us, duration_us, stats in events:
            event = line.events.add(metadata_id=metadata("event_metadata", name),
                                    offset_ps=start_us * 10**6, duration_ps=duration_us * 10**6)
            for key, value in stats.items():
                stat = event.stats.add(metadata_id=metadata("stat_metadata", key))
                if isinstance(value, str):
                    stat.str_value = value
                else:
                    stat.int64_value = value
    path.write_bytes(space.SerializeToString())
    return path


def test_nested_and_overlapping_ops_add_up(tmp_path):
    # Window 0-100 us. Thread a: a While op (0-60) holding a conv (10-40), then an op that
    # runs past the window (90-130). Thread b, at the same time: an eager conv (20-50) under
    # its EagerExecute, and an eager tf.function call (60-80), which is no op.
    path = _trace(tmp_path / "t.xplane.pb", {
        "a": [(profile_step.WINDOW, 0, 100, {}), ("loop/while:While", 0, 60, {}),
              ("loop/while/conv:_MklNativeConv2D", 10, 30, {}),
              ("loop/add:AddV2", 90, 40, {})],
        "b": [("EagerExecute", 15, 40, {"eager_op": "Conv2D"}), ("KernelAndDeviceOp::Run", 20, 30, {}),
              ("EagerExecute", 60, 20, {"is_func": 1}),
              ("KernelAndDeviceFunc::Run", 60, 20, {})]})
    result = profile_step.breakdown(path)
    seconds = {name: entry["seconds"] * 1e6 for name, entry in result["ops"].items()}
    assert seconds == pytest.approx({"While": 30, "_MklNativeConv2D": 30, "AddV2": 10,
                                     "Conv2D": 30})
    assert result["wall_s"] * 1e6 == pytest.approx(100)
    assert result["summed_op_s"] * 1e6 == pytest.approx(100)
    assert result["busy_s"] * 1e6 == pytest.approx(70)  # 0-60 and 90-100.
    assert result["heavy_busy_s"] * 1e6 == pytest.approx(40)  # The two convs: 10-50.
    by_thread = {t["thread"]: t for t in result["threads"]}
    assert by_thread["a"]["op_s"] * 1e6 == pytest.approx(70)
    assert by_thread["b"]["runtime_s"] * 1e6 == pytest.approx(30)  # 15-20, 50-55, 60-80.
    assert by_thread["b"]["untraced_s"] * 1e6 == pytest.approx(40)


# Profiles in a fresh process: in a full test session the profiler's trace came back
# without the `profiled_steps` window (global profiler state left by earlier tests), while
# the same test passed on its own.
_PROFILE_ONE_STEP = """
import json, sys
sys.path.insert(0, sys.argv[1])
import profile_step
from train_step import build
loop, iterator, metrics = build(16, 3, 8, sys.argv[2])
path, wall = profile_step.profile(loop, iterator, metrics, steps=1, warmup=1,
                                  logdir=sys.argv[3])
print(json.dumps({"wall": wall, "result": profile_step.breakdown(path)}))
"""


# Slow (~8 s each: a profiled training step of a benchmark script, not of the package); the
# arithmetic of the profile's categories stays in the default run.
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["compiled", "eager"])
def test_one_profiled_step_has_conv_time_within_the_threads_wall(tmp_path, mode):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run(
        [sys.executable, "-c", _PROFILE_ONE_STEP, str(BENCHMARKS), mode, str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = json.loads(completed.stdout.strip().splitlines()[-1])
    result, wall = output["result"], output["wall"]

    assert 0 < result["wall_s"] <= wall
    for label in ("conv forward", "conv input grad", "conv filter grad"):
        assert result["categories"].get(label, 0) > 0, label
    assert result["threads"]
    for thread in result["threads"]:
        assert thread["op_s"] <= result["wall_s"] * (1 + 1e-9), thread
        assert thread["untraced_s"] >= 0, thread
    assert result["summed_op_s"] <= len(result["threads"]) * result["wall_s"] * (1 + 1e-9)
    assert 0 < result["heavy_busy_s"] <= result["busy_s"] <= result["wall_s"]
    report = profile_step.report({**result, "shape": "16x16x3", "mode": mode, "steps": 1,
                                  "batch_size": 8, "perf_counter_s": wall,
                                  "load_before": (0.0,), "gflops_per_s_wall": 1.0,
                                  "step_gflop": 1.0, "executed_step_gflop": 1.0,
                                  "conv_gflops_per_s": 1.0})
    assert "no op running" in report


def test_compiled_category_flops_add_up_to_the_step_count():
    import flops
    from train_step import RECIPES

    from semiadv.models import autoencoders, gender_classifiers, matchers

    nets = RECIPES[64]
    total = flops.san_step_flops(
        autoencoders.build_autoencoder(16, 3, nets["encoder_filters"], nets["decoder_filters"]),
        gender_classifiers.build_gender_classifier(16, 3, width=nets["classifier_width"]),
        matchers.build_matcher(16, 3, embedding_dim=nets["embedding_dim"],
                               width=nets["matcher_width"]))["step_per_image_total"]
    compiled = profile_step.category_flops(16, 3, compiled=True)
    eager = profile_step.category_flops(16, 3, compiled=False)
    assert sum(compiled.values()) == total
    # Eager adds the frozen nets' filter gradients and the first conv's input gradient only.
    assert eager["conv forward"] == compiled["conv forward"]
    assert eager["matmul"] == compiled["matmul"]
    assert eager["conv filter grad"] > compiled["conv filter grad"]
    assert eager["conv input grad"] > compiled["conv input grad"]
