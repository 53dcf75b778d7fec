"""The SAN training step: images/s, FLOPs per image and the fraction of the machine's peak.

  python benchmarks/train_step.py [--shapes=64x3,224x1] [--batch_size=32] [--repeats=5]
      [--variants=compiled,eager,remapper,bf16,bf16_eager,bf16_remapper,xla,bf16_xla] [--steps_64=10] [--steps_224=1]
      [--matchers=triplet,dlib_resnet,dlib_resnet_same]

Times `semiadv.train.trainer.make_train_loop`, the very loop `semiadv-train` runs (distributed
step under the `auto` strategy, one optimizer update per step), on a fixed in-memory batch so
that only the step is measured (see input_pipeline.py for the input side). Variants:

  compiled  the training loop in one tf.function (the default training path), float32
  eager     the same replica step run eagerly, one Python call per step
  xla       compiled, with the replica step under XLA (`--jit_compile`)
  bf16      compiled, Keras mixed_bfloat16 (`--mixed_precision=bfloat16`)
  bf16_xla  both
  bf16_eager  the eager step in mixed_bfloat16 (the default precision on bf16 CPUs)
  remapper, bf16_remapper  compiled with grappler's remapper (op fusion) on (`--remapper`);
            every other variant runs with it off, the default

Matchers (the SAN's frozen M):

  triplet           the auxiliary triplet matcher (`--matcher=triplet`), both match terms
  dlib_resnet       dlib's face recognition ResNet behind its fixed chip warp
                    (`--matcher=dlib_resnet`, always float32), match jitter 0.05 (its
                    default), the match term on X'_OP only (`--nomatch_same`: the recipe's)
  dlib_resnet_same  the same with the match term on X'_SM too (`--match_same`)

Shapes: 64x3 is the UTKFace recipe (flags/utkface64.cfg widths; with dlib,
flags/utkface64_dlib.cfg: residual bilinear autoencoder, max_change, its loss weights), 224x1
the paper's (flags/paper_celeba224.cfg widths; dlib needs RGB: 224x3). FLOPs per image are
counted analytically from the Keras Conv2D/Dense layers (benchmarks/flops.py; dlib's ResNet
counts its 29 convolutions and the descriptor layer, nested models included). Fractions are
of the float32 peak measured by peak.py (run it first; its JSON is read) and of a float32
conv measured just before and after each variant in this run (the machine is shared: the
same-run fraction is the fair one).

oneDNN: TensorFlow 2.21 runs its oneDNN kernels by default only on CPUs with AVX-512-class
neural-network features (off on the AVX2-only machine of issue 11, which then runs Eigen's)
unless TF_ENABLE_ONEDNN_OPTS=1 is set: set it for peak.py too, so the peak and the step use
the same kernels. Each row records which ran (`onednn`).
"""

from __future__ import annotations

import argparse
import time

import _common
from _common import load_average, machine, median, read_peak, table, write_results

RECIPES = {
    64: dict(encoder_filters=(8, 12), decoder_filters=(64, 32), classifier_width=0.5,
             matcher_width=0.25, embedding_dim=128),
    224: dict(encoder_filters=(8, 12), decoder_filters=(256, 128), classifier_width=1.0,
              matcher_width=1.0, embedding_dim=128),
}


# flags/utkface64_dlib.cfg: its autoencoder and the loss weights it trains with (the
# fidelity terms are computed whatever their weights; these make their gradients run too).
DLIB_RECIPE_64 = dict(networks=dict(residual=True, upsampling="bilinear", max_change=0.2,
                                    encoder_prototype="difference"),
                      train=dict(match_weight=10.0, gender_weight=2.0, gender_same_weight=1.0,
                                 gender_same_target="original", ssim_weight=2.0,
                                 colour_weight=0.5, colour_tolerance=4.0, pixel_weight=10.0))

# --matchers: TrainConfig settings of the SAN's frozen matcher.
MATCHERS = {
    "triplet": dict(matcher_network="triplet", match_same=True),
    "dlib_resnet": dict(matcher_network="dlib_resnet", match_same=False),
    "dlib_resnet_same": dict(matcher_network="dlib_resnet", match_same=True),
}


def recipe_networks(size):
    return RECIPES[224] if size >= 224 else RECIPES[64]


def _dlib_extra(size, matcher, part):
    """flags/utkface64_dlib.cfg's extra settings (`networks` or `train`) for a dlib step at 64."""
    if MATCHERS[matcher]["matcher_network"] != "dlib_resnet" or size >= 224:
        return {}
    return DLIB_RECIPE_64[part]


def network_config(size, matcher="triplet"):
    """The `NetworkConfig` of the benchmarked step at `size` with `matcher`."""
    from semiadv.config import NetworkConfig

    return NetworkConfig(**recipe_networks(size), **_dlib_extra(size, matcher, "networks"))


def build_networks(size, channels, matcher="triplet", dlib_weights=True):
    """Fresh (autoencoder, gender CNN, matcher) of the benchmarked step.

    dlib_weights: dlib's converted weights (True) or its random-initialised layers (None:
    same graph, for counting FLOPs).
    """
    from semiadv.models import dlib_resnet
    from semiadv.models import autoencoders, gender_classifiers, matchers

    nets = network_config(size, matcher)
    autoencoder = autoencoders.build_autoencoder(size, channels, nets.encoder_filters,
                                                 nets.decoder_filters, residual=nets.residual,
                                                 upsampling=nets.upsampling,
                                                 max_change=nets.max_change,
                                                 encoder_prototype=nets.encoder_prototype)
    gender = gender_classifiers.build_gender_classifier(size, channels,
                                                        width=nets.classifier_width)
    if MATCHERS[matcher]["matcher_network"] == "dlib_resnet":
        face_matcher = dlib_resnet.build_dlib_matcher(size, channels, weights=dlib_weights)
    else:
        face_matcher = matchers.build_matcher(size, channels, embedding_dim=nets.embedding_dim,
                                              width=nets.matcher_width)
    return autoencoder, gender, face_matcher


def step_flops(size, channels, matcher="triplet"):
    """`flops.san_step_flops` of the benchmarked step (counted on fresh, weightless models)."""
    import flops

    settings = MATCHERS[matcher]
    target = _dlib_extra(size, matcher, "train").get("gender_same_target", "label")
    return flops.san_step_flops(*build_networks(size, channels, matcher, dlib_weights=None),
                                match_same=settings["match_same"], gender_same_target=target)


VARIANTS = {
    "compiled": dict(compiled=True, jit_compile=False, mixed_precision="none"),
    "eager": dict(compiled=False, jit_compile=False, mixed_precision="none"),
    "xla": dict(compiled=True, jit_compile=True, mixed_precision="none"),
    "bf16": dict(compiled=True, jit_compile=False, mixed_precision="bfloat16"),
    "bf16_xla": dict(compiled=True, jit_compile=True, mixed_precision="bfloat16"),
    "bf16_eager": dict(compiled=False, jit_compile=False, mixed_precision="bfloat16"),
    "remapper": dict(compiled=True, jit_compile=False, mixed_precision="none", remapper=True),
    "bf16_remapper": dict(compiled=True, jit_compile=False, mixed_precision="bfloat16",
                          remapper=True),
}


def build(size, channels, batch_size, variant, data_config=None, matcher="triplet"):
    """(loop, iterator, metrics) of one variant at one shape, with random weights.

    The iterator repeats one random in-memory batch, or reads `data_config`'s training
    pipeline (as `semiadv-train` does) when it is given. `matcher` is a key of MATCHERS;
    dlib's ResNet gets dlib's weights (converted on first use), the other networks random
    ones.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from semiadv.train import distribute
    from semiadv.prototypes import average
    from semiadv.train import dtype_policies
    from semiadv.train.san_task import SanTask
    from semiadv.train import trainer
    from semiadv.config import DataConfig, StageConfig, TrainConfig

    settings = VARIANTS[variant]
    nets = network_config(size, matcher)
    train_settings = {"match_weight": 2.0, **_dlib_extra(size, matcher, "train")}
    config = TrainConfig(
        data=DataConfig(image_size=size, channels=channels, batch_size=batch_size),
        networks=nets, san=StageConfig(steps=10**6, learning_rate=2e-4), **train_settings,
        **MATCHERS[matcher],
        jit_compile=settings["jit_compile"], mixed_precision=settings["mixed_precision"],
        remapper=settings.get("remapper", False), export_dir=None)
    # What `main_job.setup` does for `semiadv-train`: process-wide, read when a function is
    # first optimised, so each variant's functions get their own setting.
    tf.config.optimizer.set_experimental_options({"remapping": config.remapper})
    rng = np.random.default_rng(0)
    male_face, female_face = rng.uniform(0.3, 0.7, (2, size, size, channels)).astype(np.float32)
    protos = average.Prototypes(male_face, female_face, (male_face + female_face) / 2, 0.5,
                                (1, 1))
    keras.utils.set_random_seed(0)

    def load_models():
        return build_networks(size, channels, matcher)

    strategy = distribute.make_strategy("auto")
    task = SanTask(config, protos, load_models)
    with strategy.scope():
        with dtype_policies.dtype_policy(config.mixed_precision):
            model = task.build()
        optimizer = keras.optimizers.Adam(config.san.learning_rate)
        optimizer.build(model.trainable_variables)
        metrics = {name: keras.metrics.Mean(name=name) for name in task.reports}
    loop = trainer.make_train_loop(task, config, strategy, optimizer, model.trainable_variables,
                                   metrics, compiled=settings["compiled"])
    batch = {"image": rng.uniform(0, 1, (batch_size, size, size, channels)).astype(np.float32),
             "male": rng.integers(0, 2, batch_size).astype(np.int64),
             "identity": np.full(batch_size, -1, np.int64),
             "flipped": rng.integers(0, 2, batch_size).astype(bool)}
    if data_config is not None:
        from semiadv.data import input_pipeline
        dataset = input_pipeline.distribute(strategy, data_config, "train", training=True,
                                            augment=task.augment)
    else:
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(batch).repeat())
    return loop, iter(dataset), metrics


def onednn_enabled():
    """Whether this TensorFlow process runs oneDNN kernels (None if TF cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="64x3,224x1", help="SIZExCHANNELS, comma separated")
    parser.add_argument("--batch_size", type=int, default=32, help="global batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants",
                        default="compiled,eager,remapper,bf16,bf16_eager,bf16_remapper,xla")
    parser.add_argument("--variants_224", default="compiled,eager,remapper,bf16",
                        help="variants at 224 (each step is ~6 TFLOP at batch 32)")
    parser.add_argument("--steps_64", type=int, default=10, help="steps per timed call at 64")
    parser.add_argument("--steps_224", type=int, default=1, help="steps per timed call at 224")
    parser.add_argument("--matchers", default="triplet",
                        help=f"SAN matchers, comma separated: {', '.join(MATCHERS)}")
    parser.add_argument("--output", default="train_step", help="results/<output>.json")
    args = parser.parse_args()
    matchers = args.matchers.split(",")
    unknown = sorted(set(matchers) - set(MATCHERS))
    if unknown:
        parser.error(f"--matchers: unknown {unknown}; use {', '.join(MATCHERS)}")

    import keras
    import tensorflow as tf

    from peak import conv_row

    info = machine()
    info["onednn"] = onednn_enabled()
    peak = read_peak()
    peak_gflops = peak["float32_peak_gflops_per_s"] if peak else None
    rows = []
    runs = [(shape, matcher, variant) for shape in args.shapes.split(",")
            for matcher in matchers
            for variant in (args.variants_224 if int(shape.split("x")[0]) >= 224
                            else args.variants).split(",")]
    for shape, matcher, variant in runs:
        size, channels = (int(v) for v in shape.split("x"))
        steps = args.steps_224 if size >= 224 else args.steps_64
        loop, iterator, metrics = build(size, channels, args.batch_size, variant,
                                        matcher=matcher)
        num_steps = tf.constant(steps)
        load_before = load_average()
        # The machine's ceiling right now (other jobs share it): a large fp32 3x3 conv
        # just before and just after the variant.
        local_peak = [conv_row("float32", 8, 56, 256, repeats=3)["gflops_per_s"]]
        start = time.perf_counter()
        loop(iterator, num_steps)  # Warm-up: traces and compiles.
        float(metrics["loss"].result())
        warmup_s = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            loop(iterator, num_steps)
            float(metrics["loss"].result())  # Waits for the loop to finish.
            times.append(time.perf_counter() - start)
        seconds_per_step = median(times) / steps
        local_peak.append(conv_row("float32", 8, 56, 256, repeats=3)["gflops_per_s"])
        local_peak_gflops = sum(local_peak) / 2
        counts = step_flops(size, channels, matcher)
        keras.backend.clear_session()
        per_image = counts["step_per_image_total"]
        images_per_s = args.batch_size / seconds_per_step
        gflops = per_image * images_per_s / 1e9
        row = {"shape": f"{size}x{size}x{channels}", "matcher": matcher, "variant": variant,
               "onednn": info["onednn"],
               "steps_per_call": steps, "repeats": args.repeats,
               "warmup_s": round(warmup_s, 2), "median_step_s": seconds_per_step,
               "min_step_s": min(times) / steps, "images_per_s": images_per_s,
               "gflop_per_image": per_image / 1e9, "achieved_gflops_per_s": gflops,
               "fraction_of_fp32_peak": gflops / peak_gflops if peak_gflops else None,
               "fp32_conv_peak_same_run": local_peak_gflops,
               "fraction_of_same_run_peak": gflops / local_peak_gflops,
               "flops_forward_gflop": {k: v / 1e9 for k, v in counts["forward"].items()},
               "flops_step_gflop": {k: v / 1e9 for k, v in counts["step_per_image"].items()},
               "load_before": load_before, "load_after": load_average()}
        rows.append(row)
        print(f"{row['shape']} {matcher} {variant}: {images_per_s:.1f} img/s, "
              f"{gflops:.1f} GFLOP/s, load {row['load_before'][0]}", flush=True)
        del loop, iterator, metrics
    # Ratios within one shape and matcher.
    for group in {(r["shape"], r["matcher"]) for r in rows}:
        same = [r for r in rows if (r["shape"], r["matcher"]) == group]
        base = next((r for r in same if r["variant"] == "compiled"), None)
        for row in same:
            if base:
                row["speedup_vs_compiled_fp32"] = base["median_step_s"] / row["median_step_s"]
        # The target's ratio, per precision: compiled over the same step run eagerly.
        for compiled, eager in (("compiled", "eager"), ("bf16", "bf16_eager")):
            pair = [next((r for r in same if r["variant"] == v), None) for v in (compiled, eager)]
            if all(pair):
                pair[0]["compiled_vs_eager"] = pair[1]["median_step_s"] / pair[0]["median_step_s"]
    print(table(rows, ["shape", "matcher", "variant", "images_per_s", "median_step_s",
                       "gflop_per_image", "achieved_gflops_per_s", "fraction_of_fp32_peak",
                       "fp32_conv_peak_same_run", "fraction_of_same_run_peak",
                       "speedup_vs_compiled_fp32", "compiled_vs_eager"]))
    print("FLOPs: analytic, Keras Conv2D/Dense layers (benchmarks/flops.py); "
          f"fp32 peak {peak_gflops} GFLOP/s from results/peak.json; "
          f"oneDNN {'on' if info['onednn'] else 'off'}")
    path = write_results(args.output, {"machine": info, "args": vars(args),
                                       "fp32_peak_gflops_per_s": peak_gflops, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
