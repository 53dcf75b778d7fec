"""--edit_strength: the export serves X + s (X' - X), clipped to [0, 1], in every signature and
in perturber.keras, and s = 1 is the network as trained."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from _tiny_export import export_tiny_san, tiny_san_parts
from _tiny_san import ATOL
from semiadv.config import TrainConfig
from semiadv.errors import UserValueError
from semiadv.export import serving_model, writer
from semiadv.prototypes.kinds import KINDS

SIZE = 16


def _faces(count=4, seed=3):
    return np.random.default_rng(seed).uniform(0, 1, (count, SIZE, SIZE, 3)).astype(np.float32)


def _scaled(faces, output, strength):
    return np.clip(faces + strength * (np.asarray(output) - faces), 0.0, 1.0)


def test_scaled_change_in_every_signature_and_the_keras_file(san, tmp_path):
    faces = san["images"]
    male = np.array([1, 0, 1, 0, 0.25, -1], np.float32)
    plain = serving_model.build_serving_perturber(san["autoencoder"], san["gender"],
                                                  san["prototypes"])
    assert not any("scaled_change" in layer.name for layer in plain.layers), \
        "strength 1 must add no layer: that export is the network as trained"
    expected = plain({"image": faces, "male": male})
    changes = [np.abs(np.asarray(expected[kind]) - faces).max() for kind in KINDS]
    assert min(changes) > 1e-3, "the random SAN must change the faces for the test to bite"

    version_dir = writer.export_san(san["autoencoder"], san["gender"], san["prototypes"],
                                    tmp_path, "strong", edit_strength=1.7)
    loaded = tf.saved_model.load(str(version_dir))
    reloaded = keras.models.load_model(version_dir / writer.KERAS_FILENAME, safe_mode=True)
    from_keras = reloaded({"image": faces, "male": male})
    for kind in KINDS:
        want = _scaled(faces, expected[kind], 1.7)
        served = loaded.signatures[f"{kind}_labelled"](image=tf.constant(faces),
                                                       male=tf.constant(male))["perturbed"]
        np.testing.assert_allclose(served, want, atol=ATOL, err_msg=kind)
        np.testing.assert_allclose(from_keras[kind], want, atol=ATOL, err_msg=kind)
    # The change grows where nothing is clipped, and the labels are the plain model's.
    grown = np.abs(np.asarray(from_keras["opposite"]) - faces).mean()
    assert grown > 1.3 * np.abs(np.asarray(expected["opposite"]) - faces).mean()
    np.testing.assert_allclose(from_keras["male_score"], expected["male_score"], atol=ATOL)
    assert np.asarray(from_keras["opposite"]).min() >= 0
    assert np.asarray(from_keras["opposite"]).max() <= 1


def test_choice_export_scales_both_outputs(tmp_path):
    from semiadv.export import choice_serving

    hide = ("gender", "age_group", "race")
    plain = choice_serving.build_choice_serving_perturber(*tiny_san_parts(SIZE,
                                                                         hide_attributes=hide))
    strong = tf.saved_model.load(str(export_tiny_san(tmp_path, SIZE, hide_attributes=hide,
                                                     edit_strength=0.5)))
    faces = _faces()
    unknown = -np.ones(len(faces), np.float32)
    for name, row in (("hide_all", [1, 1, 1]), ("hide_race", [0, 0, 1]), ("same", [0, 0, 0])):
        hide_rows = np.tile(np.float32(row), (len(faces), 1))
        expected = plain({"image": faces, "male": unknown, "hide": hide_rows})["perturbed"]
        np.testing.assert_allclose(strong.signatures[name](image=tf.constant(faces))["perturbed"],
                                   _scaled(faces, expected, 0.5), atol=ATOL, err_msg=name)
    expected = plain({"image": faces, "male": unknown,
                      "hide": np.zeros((len(faces), 3), np.float32)})["neutral"]
    np.testing.assert_allclose(strong.signatures["neutral"](image=tf.constant(faces))["perturbed"],
                               _scaled(faces, expected, 0.5), atol=ATOL)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2"])
def test_bad_strengths_are_refused_before_anything_is_written(san, tmp_path, bad):
    with pytest.raises(ValueError, match="edit_strength must be a number > 0"):
        writer.export_san(san["autoencoder"], san["gender"], san["prototypes"], tmp_path, "x",
                          edit_strength=bad)
    assert not list((tmp_path / "x").glob("[0-9]*"))
    if not isinstance(bad, (bool, str)):
        with pytest.raises(UserValueError, match="edit_strength must be > 0"):
            TrainConfig(edit_strength=bad)


def test_export_binary_takes_the_strength_from_the_flag_or_the_work_dir(tmp_path):
    """`semiadv-export` reads the work dir's edit_strength (config.json) unless --edit_strength
    says otherwise (a bad flag value: tests/integration/test_user_errors.py)."""
    import json

    from _tiny_san import make_san
    from semiadv.prototypes import storage

    san = make_san()
    work = tmp_path / "work"
    for stage, model in (("san", san["autoencoder"]), ("gender", san["gender"])):
        (work / stage).mkdir(parents=True)
        model.save(work / stage / "model.keras")
    storage.save_prototypes(san["prototypes"], work / "prototypes.npz")
    (work / "config.json").write_text(json.dumps({"edit_strength": 1.4}))

    def export(*flags):
        return subprocess.run([sys.executable, "-m", "semiadv.apps.export_main",
                               f"--workdir={work}", f"--export_dir={tmp_path / 'exports'}",
                               *flags], capture_output=True, text=True, timeout=300)

    faces, male = san["images"], np.full(len(san["images"]), 0.0, np.float32)
    plain = serving_model.build_serving_perturber(san["autoencoder"], san["gender"],
                                                  san["prototypes"])
    opposite = plain({"image": faces, "male": male})["opposite"]
    for flags, strength in (((), 1.4), (("--edit_strength=1",), 1.0)):
        run = export(*flags)
        assert run.returncode == 0, run.stderr
        loaded = tf.saved_model.load(run.stdout.strip().splitlines()[-1])
        served = loaded.signatures["opposite_labelled"](image=tf.constant(faces),
                                                        male=tf.constant(male))["perturbed"]
        np.testing.assert_allclose(served, _scaled(faces, opposite, strength), atol=ATOL)
