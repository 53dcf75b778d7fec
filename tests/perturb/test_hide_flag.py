"""semiadv-perturb --hide: one-line user errors before any photo is read."""

import os
import subprocess
import sys

import numpy as np
import pytest

from semiadv.utils import imageio

from _tiny_export import export_tiny_san


@pytest.fixture(scope="module")
def gender_export(tmp_path_factory):
    return export_tiny_san(tmp_path_factory.mktemp("exports"), 16)


# Slow (a subprocess and an export each, ~12 s): the messages are unit-tested in
# tests/export/test_choice_export.py; these check they reach the user in one line, exit 2.
@pytest.mark.slow
@pytest.mark.parametrize("extra, message", [
    (["--hide=age"], "has no signature 'hide_age': it was not trained to hide"),
    (["--hide=gender,height"], "--hide=gender,height: unknown 'height'"),
    (["--hide=gender", "--prototype=same"], "--hide and --prototype"),
])
def test_hide_user_errors(gender_export, tmp_path, extra, message):
    photos = tmp_path / "photos"
    photos.mkdir()
    imageio.write_image(photos / "a.png", np.zeros((16, 16, 3), np.uint8))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "semiadv.apps.perturb_main", f"--export={gender_export}",
         f"--input_dir={photos}", f"--output_dir={tmp_path / 'out'}", "--noalign", *extra],
        capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "out").exists()
