"""benchmarks/flops.py and train_step.py's step FLOPs: hand counts, so the formula cannot drift."""

import sys
from pathlib import Path

import keras
import pytest

# The benchmark scripts are not a package: they import each other from their own folder.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import flops  # noqa: E402
import train_step  # noqa: E402

FLAGS = Path(__file__).resolve().parents[2] / "flags"


def _dlib_hand_count() -> int:
    """dlib's ResNet forward FLOPs at its 150x150 chip, from dlib's layer shapes alone.

    dlib's `con` pads nr/2 at stride 1 and nothing when strided; its pools pad nothing. A
    `_down` block's skip (2x2/2 average pool) can be a row larger than its strided conv's
    output; `add_prev` pads the smaller to the larger, which the next block then reads.
    """
    def conv(size, k, cin, cout):
        return 2 * size * size * k * k * cin * cout

    size = (150 - 7) // 2 + 1  # stem 7x7/2: 72
    total = conv(size, 7, 3, 32)
    size = (size - 3) // 2 + 1  # max pool 3x3/2: 35
    channels = 32
    for filters, blocks, strided in ((32, 3, False), (64, 4, True), (128, 3, True),
                                     (256, 3, True), (256, 1, True)):
        for block in range(blocks):
            if strided and block == 0:
                out = (size - 3) // 2 + 1
                total += conv(out, 3, channels, filters) + conv(out, 3, filters, filters)
                size = max(out, size // 2)  # the skip's average pool may be larger
            else:
                total += 2 * conv(size, 3, filters, filters)
            channels = filters
    return total + 2 * 256 * 128  # the 128-d descriptor (fc, no bias)


def test_hand_count_of_a_tiny_network_with_a_nested_model_called_twice():
    inner_input = keras.Input((6, 6, 2))
    inner = keras.Model(inner_input,
                        keras.layers.Conv2D(3, 3, padding="valid", name="c")(inner_input),
                        name="inner")
    image = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, strides=1, padding="valid", name="first")(image)  # 6x6x2
    twice = keras.layers.Add()([inner(x), inner(x)])  # 4x4x3, twice
    y = keras.layers.Dense(5, name="head")(keras.layers.Flatten()(twice))
    counts = flops.forward_flops(keras.Model(image, y))
    assert counts == {"first": 2 * 6 * 6 * 2 * 9 * 1, "inner/c": 2 * (2 * 4 * 4 * 3 * 9 * 2),
                      "head": 2 * 48 * 5}


@pytest.mark.parametrize("size,channels", [(64, 3), (224, 3), (32, 1)])
def test_dlib_matcher_forward_flops_equal_the_hand_count(size, channels):
    from semiadv.models import dlib_resnet

    matcher = dlib_resnet.build_dlib_matcher(size, channels, weights=None)
    counts = flops.forward_flops(matcher)
    # Every conv and the descriptor, each once, whatever the crop size (the warp makes 150).
    assert len(counts) == 29 + 1
    assert all(name.startswith("dlib_resnet/") for name in counts)
    assert sum(counts.values()) == _dlib_hand_count()
    assert 0.5e9 < _dlib_hand_count() < 0.6e9  # ~0.54 GFLOP: dlib's ResNet-29 at 150x150


def test_san_step_counts_the_matcher_views_the_step_runs():
    autoencoder, gender, matcher = train_step.build_networks(16, 3, "dlib_resnet",
                                                             dlib_weights=None)
    f_ae = sum(flops.forward_flops(autoencoder).values())
    first = flops.forward_flops(autoencoder)["encoder_conv1"]
    f_g = sum(flops.forward_flops(gender).values())
    f_m = _dlib_hand_count()
    expected_rest = 3 * f_ae - first + 4 * f_g
    both = flops.san_step_flops(autoencoder, gender, matcher)
    opposite_only = flops.san_step_flops(autoencoder, gender, matcher, match_same=False)
    same_only = flops.san_step_flops(autoencoder, gender, matcher, match_opposite=False)
    # Forward on X, forward + input gradient on each output in a match term.
    assert both["step_per_image_total"] == expected_rest + 5 * f_m
    assert opposite_only["step_per_image_total"] == expected_rest + 3 * f_m
    assert same_only["step_per_image"]["matcher"] == 3 * f_m
    assert both["forward"] == {"autoencoder": f_ae, "gender": f_g, "matcher": f_m}
    # The SM term against the face's own reading runs the gender CNN on X once more.
    reads_original = flops.san_step_flops(autoencoder, gender, matcher, match_same=False,
                                          gender_same_target="original")
    assert reads_original["step_per_image"]["gender"] == 5 * f_g
    # train_step.py's rows: the recipe's settings (match_same off, SM held to the face's
    # reading) and the paper's match terms.
    assert train_step.step_flops(16, 3, "dlib_resnet") == reads_original
    both_original = flops.san_step_flops(autoencoder, gender, matcher,
                                         gender_same_target="original")
    assert train_step.step_flops(16, 3, "dlib_resnet_same") == both_original


def test_triplet_rows_keep_their_networks_and_count():
    from semiadv.models import autoencoders, gender_classifiers, matchers

    nets = train_step.RECIPES[64]
    expected = flops.san_step_flops(
        autoencoders.build_autoencoder(16, 3, nets["encoder_filters"], nets["decoder_filters"]),
        gender_classifiers.build_gender_classifier(16, 3, width=nets["classifier_width"]),
        matchers.build_matcher(16, 3, embedding_dim=nets["embedding_dim"],
                               width=nets["matcher_width"]))
    assert train_step.step_flops(16, 3, "triplet") == expected


def _flagfile(name):
    values = {}
    for line in (FLAGS / name).read_text().splitlines():
        if line.startswith("--"):
            key, _, value = line[2:].partition("=")
            values[key] = value if value else "true"
    return values


def test_dlib_step_at_64_uses_the_dlib_recipe_settings():
    flags = _flagfile("utkface64_dlib.cfg")
    nets = train_step.network_config(64, "dlib_resnet")
    assert flags["matcher"] == "dlib_resnet"
    assert nets.encoder_filters == tuple(int(v) for v in flags["encoder_filters"].split(","))
    assert nets.decoder_filters == tuple(int(v) for v in flags["decoder_filters"].split(","))
    assert nets.residual == (flags.get("residual") == "true")
    assert nets.upsampling == flags["upsampling"]
    assert nets.max_change == float(flags["max_change"])
    assert nets.classifier_width == float(flags["classifier_width"])
    assert nets.encoder_prototype == flags.get("encoder_prototype", "same")
    train = train_step.DLIB_RECIPE_64["train"]
    assert train.get("gender_same_target", "label") == flags.get("gender_same_target", "label")
    for name in ("match_weight", "gender_weight", "gender_same_weight", "ssim_weight",
                 "colour_weight", "colour_tolerance", "pixel_weight"):
        assert train[name] == float(flags[name]), name
