"""The export of a choice-conditioned SAN: its signatures, its .keras file, --hide's names."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.errors import UserValueError
from semiadv.export import choice_names, choice_signatures, locate, writer
from semiadv.perturb import folder as perturb
from semiadv.utils import imageio

from _tiny_export import export_tiny_san

SIZE = 16
ALL = ("gender", "age_group", "race")


@pytest.fixture(scope="module")
def choice_export(tmp_path_factory):
    version_dir = export_tiny_san(tmp_path_factory.mktemp("exports"), SIZE, hide_attributes=ALL)
    return version_dir, tf.saved_model.load(str(version_dir))


def _faces(count=3, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0, 1, (count, SIZE, SIZE, 3)),
                       tf.float32)


def test_hide_names():
    assert choice_names.parse_hide("age, gender") == ("gender", "age_group")
    assert choice_names.parse_hide("all") == ALL
    assert choice_names.signature_name(["race", "age"]) == "hide_age_race"
    assert choice_names.signature_name(["gender", "age_group", "race"]) == "hide_all"
    assert set(choice_names.hide_signatures(ALL)) == {
        "hide_gender", "hide_age", "hide_race", "hide_gender_age", "hide_gender_race",
        "hide_age_race", "hide_all"}
    assert choice_names.hide_signatures(("gender", "race"))["hide_all"] == ("gender", "race")
    for bad, message in (("", "empty"), ("gender,height", "'height'")):
        with pytest.raises(UserValueError, match=message):
            choice_names.parse_hide(bad)


def test_signatures_and_what_they_compute(choice_export):
    _, loaded = choice_export
    assert set(loaded.signatures) == {"serving_default", *choice_signatures.signature_names(ALL)}
    faces = _faces()

    def perturb_with(row):
        hide = tf.constant([row] * 3, tf.float32)
        return loaded.signatures["perturb"](image=faces, hide=hide)

    for name, row in (("hide_all", [1, 1, 1]), ("hide_gender", [1, 0, 0]),
                      ("opposite", [1, 0, 0]), ("same", [0, 0, 0]), ("hide_age_race", [0, 1, 1]),
                      ("serving_default", [1, 0, 0])):
        out, expected = loaded.signatures[name](image=faces), perturb_with(row)
        np.testing.assert_allclose(out["perturbed"], expected["perturbed"], atol=1e-6,
                                   err_msg=name)
        np.testing.assert_allclose(out["male_score"], expected["male_score"], atol=1e-6)
    # The choice reaches the output, and the neutral prototype is another one.
    hidden, kept = (loaded.signatures[n](image=faces)["perturbed"] for n in ("hide_all", "same"))
    assert float(tf.reduce_max(tf.abs(hidden - kept))) > 1e-3
    neutral, opposite = (loaded.signatures[n](image=faces)["perturbed"]
                         for n in ("neutral", "opposite"))
    assert float(tf.reduce_max(tf.abs(neutral - opposite))) > 1e-4
    empty = loaded.signatures["perturb"](image=tf.zeros([0, SIZE, SIZE, 3]), hide=tf.zeros([0, 3]))
    assert empty["perturbed"].shape == (0, SIZE, SIZE, 3)
    labelled = loaded.signatures["perturb_labelled"](image=faces, hide=tf.ones([3, 3]),
                                                     male=tf.constant([1.0, 0.0, -1.0]))
    assert labelled["perturbed"].shape == (3, SIZE, SIZE, 3)


def test_bad_choices_are_refused(choice_export):
    _, loaded = choice_export
    faces = _faces(2)
    for hide, message in ((tf.constant([[2.0, 0, 0]] * 2), "in \\[0, 1\\]"),
                          (tf.ones([3, 3]), "one row per image"),
                          (tf.constant([[np.nan, 0, 0]] * 2), "NaN")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            loaded.signatures["perturb"](image=faces, hide=hide)
    # An export that cannot hide age refuses a choice hiding it.
    model = keras.models.load_model(choice_export[0] / writer.KERAS_FILENAME)
    serve = tf.function(choice_signatures.generic_endpoint(model, ("gender", "race"), False))
    serve({"image": faces, "hide": tf.constant([[1.0, 0, 1]] * 2)})
    with pytest.raises(tf.errors.InvalidArgumentError, match="not trained to hide"):
        serve({"image": faces, "hide": tf.constant([[0.0, 1, 0]] * 2)})


def test_keras_file_matches_the_saved_model(choice_export):
    version_dir, loaded = choice_export
    model = keras.models.load_model(version_dir / writer.KERAS_FILENAME, safe_mode=True)
    faces, hide = _faces(), tf.constant([[1.0, 0, 1], [0, 1, 0], [1, 1, 1]])
    out = model({"image": faces, "male": -tf.ones([3]), "hide": hide})
    expected = loaded.signatures["perturb"](image=faces, hide=hide)
    np.testing.assert_allclose(out["perturbed"], expected["perturbed"], atol=1e-5)


def test_the_export_feeds_the_autoencoder_as_training_does(choice_export):
    # Training (`choice_task`): the same-gender prototype, and the opposite one where gender
    # is hidden. `export_tiny_san`'s prototypes: male then female, from default_rng(seed 0).
    version_dir, loaded = choice_export
    rng = np.random.default_rng(0)
    male, female = (rng.random((SIZE, SIZE, 3), dtype=np.float32) for _ in range(2))
    autoencoder = keras.models.load_model(
        version_dir / writer.KERAS_FILENAME).get_layer("choice_autoencoder")
    faces = _faces(2)
    hide = tf.constant([[1.0, 0, 1], [0, 1, 0]])
    out = loaded.signatures["perturb_labelled"](image=faces, hide=hide,
                                                male=tf.constant([1.0, 0.0]))["perturbed"]
    same = np.stack([male, female])
    chosen = np.stack([female, female])  # Face 1 hides gender: the other one's prototype.
    expected = autoencoder({"image": faces, "same_prototype": tf.constant(same),
                            "prototype": tf.constant(chosen),
                            "hide": hide})["perturbed"]
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.slow
def test_keras_file_loads_with_keras_alone_in_a_fresh_process(choice_export):
    version_dir, loaded = choice_export
    faces, hide = _faces(), np.array([[1.0, 0, 1], [0, 1, 0], [1, 1, 1]], np.float32)
    expected = loaded.signatures["perturb"](image=faces, hide=tf.constant(hide))["perturbed"]
    np.save(version_dir.parent / "faces.npy", faces.numpy())
    script = f"""
import numpy as np, keras
model = keras.models.load_model({str(version_dir / writer.KERAS_FILENAME)!r})
faces = np.load({str(version_dir.parent / "faces.npy")!r})
out = model({{"image": faces, "male": -np.ones(3, np.float32), "hide": np.array({hide.tolist()},
            np.float32)}})
np.save({str(version_dir.parent / "out.npy")!r}, np.asarray(out["perturbed"]))
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=180,
                   env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    np.testing.assert_allclose(np.load(version_dir.parent / "out.npy"), expected, atol=1e-5)


def test_perturb_folder_with_a_hide_signature(choice_export, tmp_path):
    version_dir, loaded = choice_export
    photos = tmp_path / "photos"
    photos.mkdir()
    face = np.round(_faces(1).numpy()[0] * 255).astype(np.uint8)
    imageio.write_image(photos / "a.png", face)
    report = perturb.perturb_folder(version_dir, photos, tmp_path / "out",
                                    prototype="hide_age_race", align=False)
    assert report["counts"] == {"perturbed": 1}
    expected = loaded.signatures["hide_age_race"](
        image=tf.constant(face[None] / 255.0, tf.float32))["perturbed"].numpy()[0]
    written = imageio.read_image(tmp_path / "out" / "a.png").astype(np.float32) / 255.0
    np.testing.assert_allclose(written, expected, atol=1 / 255 + 1e-6)


def test_a_gender_export_has_no_hide_signatures(tmp_path, monkeypatch):
    shapes = {"opposite": {"image": [None, SIZE, SIZE, 3]}, "same": {"image": [None, 16, 16, 3]}}
    with pytest.raises(UserValueError, match="not trained to hide.*--hide_attributes"):
        locate.image_shape(shapes, "exports/san", "hide_age")
    # And empty hide_attributes exports the gender SAN's model, as before.
    written = []
    monkeypatch.setattr(writer, "_write_version",
                        lambda model, directory, hide=(): written.append((model.name, hide)))
    import _tiny_san

    san = _tiny_san.make_san()
    writer.export_san(san["autoencoder"], san["gender"], san["prototypes"], tmp_path, "san")
    assert written == [("serving_perturber", ())]
