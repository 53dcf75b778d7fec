"""The main job's ending: the held-out SSIM and the summary text a person reads."""

import dataclasses
import json
import sys
from pathlib import Path

import keras
import pytest

from semiadv.train import heldout
from semiadv.models import autoencoders, gender_classifiers, matchers
from semiadv.train import run_summary
from _worker import SIZE, fixed_prototypes, tiny_config  # noqa: E402


@pytest.fixture(scope="module")
def judges():
    keras.utils.set_random_seed(11)
    nets = tiny_config("unused", 1).networks
    return (gender_classifiers.build_gender_classifier(SIZE, 3, width=nets.classifier_width),
            matchers.build_matcher(SIZE, 3, embedding_dim=nets.embedding_dim,
                                   width=nets.matcher_width))


def test_heldout_ssim_is_one_for_an_untouched_face_and_lower_for_a_resynthesised_one(judges):
    gender, matcher = judges
    config = tiny_config("unused", 1)
    # An untrained residual autoencoder returns its input (its combiner starts at zero).
    identity = autoencoders.build_autoencoder(SIZE, 3, (4, 4), (8, 8), residual=True)
    untouched = heldout.san_summary(identity, gender, matcher, fixed_prototypes(), config.data)
    assert untouched["examples"] > 0
    # A cap that is not a whole number of batches still reads exactly that many faces.
    capped = heldout.san_summary(identity, gender, matcher, fixed_prototypes(), config.data,
                                 max_examples=untouched["examples"] // 2 + 1)
    assert capped["examples"] == untouched["examples"] // 2 + 1
    assert capped["ssim_opposite"] == pytest.approx(1.0, abs=1e-5)
    assert untouched["ssim_same"] == pytest.approx(1.0, abs=1e-5)
    assert untouched["ssim_opposite"] == pytest.approx(1.0, abs=1e-5)
    assert untouched["match_distance_same"] == pytest.approx(0.0, abs=1e-6)
    # An untrained paper autoencoder re-synthesises a blur around grey: far from the face.
    blurry = autoencoders.build_autoencoder(SIZE, 3, (4, 4), (8, 8), residual=False)
    changed = heldout.san_summary(blurry, gender, matcher, fixed_prototypes(), config.data)
    assert -1.0 <= changed["ssim_same"] < 0.5
    assert -1.0 <= changed["ssim_opposite"] < 0.5


def _summary(**values):
    base = dict(examples=40, accuracy_original=0.975, accuracy_same=0.95,
                flip_rate_opposite=0.925, match_distance_same=0.0123,
                match_distance_opposite=0.0456, match_distance_impostor=0.5,
                ssim_same=0.912, ssim_opposite=0.801, export="/srv/exports/demo/3")
    base.update(values)
    return base


def test_summary_text_says_what_each_number_means_and_what_to_run_next(tmp_path):
    config = tiny_config(tmp_path / "work", 7)
    text = run_summary.text(config, _summary(), ["--flagfile=flags/demo.cfg"])
    lines = text.splitlines()

    def line(start):
        found = [entry for entry in lines if entry.strip().startswith(start)]
        assert len(found) == 1, (start, text)
        return found[0]

    assert "flip rate on OP 92% — " in line("flip rate on OP")
    assert "higher hides gender better" in line("flip rate on OP")
    assert "SSIM(original, SM) 0.912 — " in line("SSIM(original, SM)")
    assert "SSIM(original, OP) 0.801 — " in line("SSIM(original, OP)")
    assert "0.5000" in line("matcher distance between different faces")
    assert "SAN (re-synthesising (the paper's) autoencoder, nearest upsampling): 7 steps" in text
    assert "autoencoder pre-training: 400 steps" in text
    assert "face matcher: triplet loss, " in text
    dlib = run_summary.text(dataclasses.replace(config, matcher_network="dlib_resnet"),
                            _summary())
    assert "face matcher: dlib's face recognition ResNet, converted (not trained here)" in dlib
    assert line("Precision:").startswith("Precision: float32")
    assert line("Work dir:").startswith(f"Work dir: {(tmp_path / 'work').resolve()} ")
    assert line("Export:").startswith("Export: /srv/exports/demo/3 ")
    assert "On 40 held-out test faces" in text
    assert ("semiadv-perturb --export=/srv/exports/demo --input_dir=YOUR_PHOTOS "
            "--output_dir=PRIVATE_PHOTOS") in text
    assert (f"semiadv-evaluate --flagfile=flags/demo.cfg --export=/srv/exports/demo "
            f"--output_dir={tmp_path / 'work' / 'eval'}") in text
    assert ("tensorflow_model_server --rest_api_port=8501 "
            "--model_config_file=/srv/exports/models.config") in text

    bf16 = run_summary.text(dataclasses.replace(config, mixed_precision="bfloat16"),
                            _summary(export=None))
    assert "Precision: mixed bfloat16" in bf16
    assert "Export: none" in bf16 and "semiadv-export --workdir=" in bf16
    assert "semiadv-perturb" not in bf16


def test_train_main_ends_with_the_summary(tmp_path, monkeypatch, capsys):
    """A whole tiny `semiadv-train` run prints the summary with the run's real numbers."""
    from absl import flags

    from semiadv.apps import train_main

    args = ["--dataset=synthetic", f"--image_size={SIZE}", "--batch_size=8",
            "--synthetic_identities=12", "--synthetic_images_per_identity=4",
            "--encoder_filters=4,4", "--decoder_filters=8,8", "--residual",
            "--upsampling=bilinear", "--classifier_width=0.125", "--matcher_width=0.125",
            "--embedding_dim=8", "--gender_steps=2", "--matcher_steps=2",
            "--autoencoder_steps=0", "--san_steps=2", "--checkpoint_every=2",
            "--steps_per_loop=1", f"--workdir={tmp_path / 'work'}",
            f"--export_dir={tmp_path / 'exports'}", "--export_name=tiny",
            "--mixed_precision=none"]
    monkeypatch.setattr(sys, "argv", ["semiadv-train", *args])
    try:
        flags.FLAGS(sys.argv)
        train_main.main([])
    finally:
        flags.FLAGS.unparse_flags()
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "work" / "summary.json").read_text())
    assert out.startswith("semiadv-train finished.\n")
    assert "SAN (residual autoencoder, bilinear upsampling): 2 steps" in out
    assert "autoencoder pre-training: skipped (0 steps)" in out
    assert f"Export: {tmp_path / 'exports' / 'tiny' / '1'} " in out
    assert f"flip rate on OP {summary['flip_rate_opposite']:.0%} — " in out
    assert f"SSIM(original, OP) {summary['ssim_opposite']:.3f} — " in out
    assert 0.0 < summary["ssim_same"] <= 1.0
    # Only the flags semiadv-evaluate defines (the data flags and the work dir), so the
    # printed command runs: a training flag like --export_name would be an error there.
    shared = ["--dataset=synthetic", f"--image_size={SIZE}", "--batch_size=8",
              "--synthetic_identities=12", "--synthetic_images_per_identity=4",
              f"--workdir={tmp_path / 'work'}"]
    assert ("semiadv-evaluate " + " ".join(shared)
            + f" --export={tmp_path / 'exports' / 'tiny'}") in out
    perturb = next(line for line in out.splitlines() if "semiadv-perturb" in line)
    export_flag = next(word for word in perturb.split() if word.startswith("--export="))
    assert (Path(export_flag.split("=", 1)[1]) / "1" / "perturber.keras").is_file()


def test_printed_commands_keep_only_the_other_binarys_flags():
    from semiadv.apps import cli, common_flags, train_flags  # noqa: F401  (defines the flags)

    argv = ["--flagfile=flags/demo.cfg", "--dataset=synthetic", "--export_name=x",
            "--export_dir", "exports", "--noflip_augment", "--image_summaries",
            "--workdir", "models/w", "positional"]
    # Values given as `--name value` go with their flag; booleans take none.
    assert cli.arguments_setting(argv, ["dataset", "flip_augment", "image_summaries",
                                        "workdir"]) == [
        "--flagfile=flags/demo.cfg", "--dataset=synthetic", "--noflip_augment",
        "--image_summaries", "--workdir", "models/w"]
    assert cli.arguments_setting(argv, []) == ["--flagfile=flags/demo.cfg"]


def test_the_run_summary_lists_a_choice_sans_classifiers_and_its_hide_command():
    from semiadv.config import TrainConfig
    from semiadv.train import run_summary as summary_lib

    config = TrainConfig(hide_attributes=("gender", "race"), gender_ensemble=1)
    lines = summary_lib.trained_lines(config)
    assert lines[1].startswith("  race classifier (auxiliary, race)")
    assert lines[2].startswith("  extra gender classifier gender_1")
    assert "choosing per face which of gender, race to hide" in lines[-1]
    commands = summary_lib.next_command_lines(config, "/x/exports/n/1", [])
    assert commands[0].endswith("--hide=gender,race")
