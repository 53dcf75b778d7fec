"""Tests of semiadv.apps.beam_perturb_main: the semiadv-beam-perturb command line."""

import json
import shutil

import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

import _beam_photos  # noqa: E402
from _python import run_python  # noqa: E402
from semiadv.apps import beam_perturb_main  # noqa: E402

SIZE = 16
# The DirectRunner's batch engine, named so that Beam does not first try to download the
# Prism runner (what --runner=DirectRunner does in Beam 2.77; it falls back to this).
RUNNER = "--runner=FnApiRunner"


@pytest.fixture
def photos(tmp_path):
    """Synthetic 16x16 faces as PNG/JPEG (one in a sub-folder), a corrupt PNG, a text '.jpg'."""
    folder = tmp_path / "photos"
    return folder, _beam_photos.write_photos(folder, SIZE)


def test_cli_user_errors_are_one_line_exit_2(tiny_export_16, photos, tmp_path, capsys):
    folder, _ = photos
    cases = {
        "saved_model.pb": [f"--export={tmp_path / 'missing'}", f"--input_pattern={folder}",
                           f"--output_dir={tmp_path / 'out'}"],
        "no file matches": [f"--export={tiny_export_16}",
                            f"--input_pattern={tmp_path / 'nothing'}/*.jpg",
                            f"--output_dir={tmp_path / 'out'}"],
        "must differ": [f"--export={tiny_export_16}", f"--input_pattern={folder}/**",
                        f"--output_dir={folder}"],
        "inside output_dir": [f"--export={tiny_export_16}", f"--input_pattern={folder}/**",
                              f"--output_dir={tmp_path}"],
    }
    for message, argv in cases.items():
        assert beam_perturb_main.main([*argv, RUNNER]) == 2, message
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_cli_fails_only_when_nothing_is_perturbed(tiny_export_16, photos, tmp_path, capsys):
    folder, _ = photos
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(folder / "corrupt.png", bad / "corrupt.png")
    assert beam_perturb_main.main([f"--export={tiny_export_16}", f"--input_pattern={bad}",
                              f"--output_dir={tmp_path / 'out_bad'}", "--noalign", RUNNER]) == 1
    assert "no photo could be perturbed" in capsys.readouterr().err
    assert beam_perturb_main.main([f"--export={tiny_export_16}", f"--input_pattern={folder}",
                              f"--output_dir={tmp_path / 'out'}", "--noalign", RUNNER]) == 0
    assert json.loads(capsys.readouterr().out) == {"perturbed": 6, "unreadable": 2}


def test_the_driver_never_imports_tensorflow(tiny_export_16, tmp_path):
    """The command's driver only plans the pipeline: its workers load TensorFlow, it must not."""
    code = (
        "import sys\n"
        "from semiadv.apps import beam_perturb_main\n"
        f"status = beam_perturb_main.main(['--export={tiny_export_16}',"
        f" '--input_pattern={tmp_path / 'nothing'}/*.jpg', '--output_dir={tmp_path / 'out'}'])\n"
        "assert status == 2, status\n"
        "assert 'tensorflow' not in sys.modules, 'the driver imported TensorFlow'\n")
    assert "no file matches" in run_python(code).stderr
