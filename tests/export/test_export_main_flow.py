"""semiadv-export on a sequential SAN's work dir: every link, or a one-line error naming each
missing one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from _tiny_san import CHANNELS, SIZE, make_san
from semiadv.prototypes import storage

REPO_ROOT = Path(__file__).resolve().parents[2]


def _export(workdir, exports):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "semiadv.apps.export_main", f"--workdir={workdir}",
         f"--export_dir={exports}", "--export_name=flow"],
        capture_output=True, text=True, timeout=300, env=env)


def _work_dir(path, san, links):
    """A finished work dir of a chain: config.json, prototypes and each stage's model."""
    (path / "gender").mkdir(parents=True)
    san["gender"].save(path / "gender" / "model.keras")
    storage.save_prototypes(san["prototypes"], path / "prototypes.npz", png=False)
    for index, link in enumerate(links, start=1):
        stage = path / ("san" if index == 1 else f"san_{index}")
        stage.mkdir()
        link.save(stage / "model.keras")
    (path / "config.json").write_text(json.dumps({"flow_links": 2}))


def test_a_chain_missing_a_link_is_refused_in_one_line(tmp_path):
    san = make_san()
    _work_dir(tmp_path / "work", san, [san["autoencoder"]])
    result = _export(tmp_path / "work", tmp_path / "exports")
    assert result.returncode == 2, result.stderr[-2000:]
    error = [line for line in result.stderr.splitlines() if "semiadv-export" in line]
    assert len(error) == 1 and "san_2/model.keras (link 2)" in error[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "exports").exists()


@pytest.mark.slow  # An export in a subprocess: ~20 s.
def test_export_binary_writes_the_chain(tmp_path):
    from test_flow_export import _link, _one_after_the_other

    san = make_san()
    second = _link(21)
    _work_dir(tmp_path / "work", san, [san["autoencoder"], second])
    result = _export(tmp_path / "work", tmp_path / "exports")
    assert result.returncode == 0, result.stderr[-2000:]
    version_dir = Path(result.stdout.split()[-1])
    loaded = tf.saved_model.load(str(version_dir))
    images, male = san["images"], np.array([1, 0, 1, 0, 1, 0], np.float32)
    expected = _one_after_the_other(san, [second], images, male)
    got = loaded.signatures["opposite_labelled"](image=tf.constant(images),
                                                 male=tf.constant(male))["perturbed"]
    np.testing.assert_allclose(got, expected["opposite"], atol=1e-5)
    assert got.shape == (6, SIZE, SIZE, CHANNELS)
