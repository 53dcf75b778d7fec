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


def test_beam_hide_maps_to_the_signature():
    from semiadv.apps import beam_perturb_main

    parser = beam_perturb_main.build_parser()
    required = ["--export=e", "--input_pattern=p", "--output_dir=o"]

    def signature(*extra):
        return beam_perturb_main.signature_of(parser.parse_known_args([*required, *extra])[0])

    assert signature() == "opposite"
    assert signature("--prototype=same") == "same"
    assert signature("--hide=race,gender") == "hide_gender_race"
    assert signature("--hide=all") == "hide_all"
    with pytest.raises(ValueError, match="--hide and --prototype"):
        signature("--hide=age", "--prototype=neutral")
    with pytest.raises(ValueError, match="unknown 'eyes'"):
        signature("--hide=eyes")


def test_beam_main_refuses_a_hide_the_export_lacks(tmp_path, capsys):
    from semiadv.apps import beam_perturb_main

    # Refused before the export is looked at, and before Beam starts: one line, exit 2.
    code = beam_perturb_main.main(["--export=nowhere", "--input_pattern=p",
                                   f"--output_dir={tmp_path}", "--hide=height"])
    assert code == 2
    assert "--hide=height: unknown 'height'" in capsys.readouterr().err
