"""The binaries: flags validated at start-up, thin mains that call the library."""

import os
import subprocess
import sys

import numpy as np
import pytest

from semiadv.prototypes import storage


def _run(module, *args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", f"semiadv.apps.{module}", *args],
                          capture_output=True, text=True, timeout=180, cwd=cwd, env=env)


@pytest.mark.parametrize("flag, message", [
    ("--image_size=8", "--image_size"),
    ("--dataset=imagenet", "unknown dataset spec 'imagenet'"),
    ("--channels=2", "--channels"),
    ("--batch_size=0", "--batch_size"),
])
def test_bad_flags_fail_at_start_naming_the_flag(tmp_path, flag, message):
    result = _run("prototypes_main", f"--output={tmp_path / 'p.npz'}", flag)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "p.npz").exists()


def test_prototypes_binary_writes_npz_and_png(tmp_path):
    output = tmp_path / "protos" / "p.npz"
    result = _run("prototypes_main", "--dataset=synthetic", "--image_size=16", "--channels=1",
                  "--synthetic_identities=20", "--synthetic_images_per_identity=2",
                  f"--output={output}", "--male_weight=0.25")
    assert result.returncode == 0, result.stderr
    loaded = storage.load_prototypes(output)
    assert loaded.male.shape == (16, 16, 1)
    np.testing.assert_allclose(loaded.neutral, 0.25 * loaded.male + 0.75 * loaded.female,
                               atol=1e-6)
    assert output.with_suffix(".png").exists()


def test_train_help_lists_the_stage_flags():
    result = _run("train_main", "--helpfull")  # absl exits 1 after printing help.
    for name in ("strategy", "san_steps", "match_weight", "pixel_loss", "workdir"):
        assert f"--{name}:" in result.stdout, name
    for name in ("image_summaries", "match_opposite"):  # Booleans: --[no]name.
        assert f"--[no]{name}:" in result.stdout, name


def test_help_lists_each_binarys_own_flags_only():
    train = _run("train_main", "--help")
    for name in ("san_steps", "match_weight", "image_size", "retrain_from", "verbose"):
        assert f"--{name}:" in train.stdout or f"--[no]{name}:" in train.stdout, name
    evaluate = _run("evaluate_main", "--helpfull")
    assert "--export:" in evaluate.stdout and "--image_size:" in evaluate.stdout
    for name in ("san_steps", "match_weight", "encoder_filters", "retrain_from"):
        assert f"--{name}:" not in evaluate.stdout, name
