"""A sequential SAN (FlowSAN) exported as one perturber: its links applied one after the other."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from _python import run_python
from _tiny_san import ATOL, SIZE, CHANNELS, by_hand, layers, make_san, male_score
from semiadv.export import serving_model, writer
from semiadv.models import autoencoders
from semiadv.prototypes.kinds import KINDS
from semiadv.train import flow


def _link(seed, **kwargs):
    """A tiny random residual link whose combiner changes the face (not the identity)."""
    keras.utils.set_random_seed(seed)
    link = autoencoders.build_autoencoder(SIZE, CHANNELS, encoder_filters=(4, 4),
                                          decoder_filters=(8, 8), residual=True, **kwargs)
    combiner = link.get_layer("combiner")
    kernel, bias = combiner.get_weights()
    combiner.set_weights([np.random.default_rng(seed).normal(0, 0.3, kernel.shape)
                          .astype(np.float32), bias])
    return link


def _prototypes_of(san, male):
    p, y = san["prototypes"], np.asarray(male, np.float32).reshape(-1, 1, 1, 1)
    same = (y * p.male + (1 - y) * p.female).astype(np.float32)
    opposite = ((1 - y) * p.male + y * p.female).astype(np.float32)
    neutral = np.broadcast_to(p.neutral, same.shape).astype(np.float32)
    return {"same": tf.constant(same), "opposite": tf.constant(opposite),
            "neutral": tf.constant(neutral)}


def _one_after_the_other(san, links, images, male):
    """Each kind's output: link 1 (the exported SAN by hand), then each later link's
    inference view on the previous output, with the prototypes of the original label."""
    prototypes = _prototypes_of(san, male)
    expected = {}
    for kind in KINDS:
        faces = by_hand(san, images, male, kind)
        for link in links:
            faces = autoencoders.build_perturber(link)({
                "image": tf.constant(faces), "encoder_prototype": prototypes["same"],
                "combiner_prototype": prototypes[kind]}).numpy()
        expected[kind] = faces
    return expected


@pytest.fixture(scope="module")
def chain():
    san = make_san()
    links = [_link(11), _link(12)]
    model = serving_model.build_serving_perturber(san["autoencoder"], san["gender"],
                                                  san["prototypes"], later_links=links)
    return san, links, model


def test_the_chain_applies_each_link_to_the_previous_output(chain):
    san, links, model = chain
    images, male = san["images"], np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    outputs = model({"image": images, "male": male})
    expected = _one_after_the_other(san, links, images, male)
    for kind in KINDS:
        np.testing.assert_allclose(outputs[kind], expected[kind], atol=ATOL)
        # The later links change the face: the chain is not link 1 alone.
        assert np.abs(outputs[kind] - by_hand(san, images, male, kind)).max() > 0.05, kind
    # The same chain as training runs it (flow.chain_outputs, the paths of X'_SM and X'_OP).
    prototypes = _prototypes_of(san, male)
    trained = flow.chain_outputs([san["autoencoder"], *links], tf.constant(images),
                                 prototypes["same"], prototypes["opposite"])
    for kind in ("same", "opposite"):
        np.testing.assert_allclose(outputs[kind], trained[kind], atol=ATOL)
    # The label comes from the paper's CNN on the ORIGINAL face, once, for every link.
    hard = np.round(male_score(san, images))
    inferred = model({"image": images, "male": -np.ones(len(images), np.float32)})
    np.testing.assert_array_equal(inferred["male_label"], hard)
    np.testing.assert_allclose(inferred["opposite"],
                               _one_after_the_other(san, links, images, hard)["opposite"],
                               atol=ATOL)


def test_chain_with_difference_conditions_matches_training(chain):
    san = chain[0]
    first = _link(13, encoder_prototype="difference")
    second = _link(14, encoder_prototype="difference")
    model = serving_model.build_serving_perturber(first, san["gender"], san["prototypes"],
                                                  later_links=[second])
    images, male = san["images"], np.array([1, 0, 1, 0, 1, 0], np.float32)
    prototypes = _prototypes_of(san, male)
    outputs = model({"image": images, "male": male})
    trained = flow.chain_outputs([first, second], tf.constant(images), prototypes["same"],
                                 prototypes["opposite"])
    for kind in ("same", "opposite"):
        np.testing.assert_allclose(outputs[kind], trained[kind], atol=ATOL)


@pytest.mark.slow  # ~25 s; tests/train/test_flow.py exports and opens a trained chain too.
def test_chain_export_signatures_and_keras_file_give_the_chain(chain, tmp_path):
    san, links, model = chain
    version_dir = writer.export_san(san["autoencoder"], san["gender"], san["prototypes"],
                                    tmp_path, "flow", later_links=links)
    images, male = san["images"], np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    expected = _one_after_the_other(san, links, images, male)
    loaded = tf.saved_model.load(str(version_dir))
    assert {"same", "neutral", "opposite", "serving_default", "opposite_labelled",
            "opposite_encoded"} <= set(loaded.signatures)
    for kind in KINDS:
        got = loaded.signatures[f"{kind}_labelled"](image=tf.constant(images),
                                                    male=tf.constant(male))
        np.testing.assert_allclose(got["perturbed"], expected[kind], atol=ATOL)
    hard = np.round(male_score(san, images))
    got = loaded.signatures["opposite"](image=tf.constant(images))["perturbed"]
    np.testing.assert_allclose(got, _one_after_the_other(san, links, images, hard)["opposite"],
                               atol=ATOL)
    assert all(type(layer).__module__.startswith("keras.") for layer in layers(model))

    # perturber.keras, opened by Keras alone (no semiadv import, safe mode) in a fresh process.
    np.save(tmp_path / "faces.npy", images)
    np.savez(tmp_path / "want.npz", **expected)
    code = (
        "import sys, numpy as np, keras\n"
        f"model = keras.models.load_model({str(version_dir / 'perturber.keras')!r})\n"
        f"faces = np.load({str(tmp_path / 'faces.npy')!r})\n"
        "out = model({'image': faces, 'male': np.array([1, 0, 1, 0, 0.25, 1], np.float32)})\n"
        f"want = np.load({str(tmp_path / 'want.npz')!r})\n"
        "for name in want.files:\n"
        "    np.testing.assert_allclose(keras.ops.convert_to_numpy(out[name]), want[name],"
        f" atol={ATOL})\n"
        "assert 'semiadv' not in sys.modules\n"
        "print('same outputs', sorted(want.files))\n")
    assert "same outputs ['neutral', 'opposite', 'same']" in run_python(code).stdout


def test_one_link_is_todays_export(chain):
    """No later links: the very model the SAN alone exports (same layers, same outputs)."""
    san = chain[0]
    alone = serving_model.build_serving_perturber(san["autoencoder"], san["gender"],
                                                  san["prototypes"], later_links=())
    assert [layer.name for layer in alone.layers] == [layer.name for layer in san["model"].layers]
    images, male = san["images"], np.array([1, 0, 1, 0, 0.25, 1], np.float32)
    for kind in KINDS:
        np.testing.assert_array_equal(alone({"image": images, "male": male})[kind],
                                      san["model"]({"image": images, "male": male})[kind])


def test_links_of_another_size_are_refused(chain):
    san = chain[0]
    keras.utils.set_random_seed(0)
    bigger = autoencoders.build_autoencoder(32, CHANNELS, encoder_filters=(4, 4),
                                            decoder_filters=(8, 8))
    with pytest.raises(ValueError, match="link 2 takes images of shape"):
        serving_model.build_serving_perturber(san["autoencoder"], san["gender"],
                                              san["prototypes"], later_links=[bigger])
