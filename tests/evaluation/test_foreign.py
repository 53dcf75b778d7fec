"""The package-built foreign gender classifiers: each learns a gender signal it can see from
held-out faces, and is cached and reused by later evaluations."""

import dataclasses
import logging

import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.evaluation import evaluators, foreign, plugins


def _signal_faces(count, side=32, seed=0):
    """Random-texture faces; the male ones have a dark band across the lower third (a stand-in
    for a beard, which survives crops, flips, colour jitter and blur)."""
    rng = np.random.default_rng(seed)
    male = rng.integers(0, 2, count).astype(np.float32)
    images = rng.uniform(0.3, 0.9, (count, side, side, 3)).astype(np.float32)
    band = slice(side * 19 // 32, side * 26 // 32)
    images[male == 1, band, side // 5:side - side // 5] *= 0.25
    return images, male


def _accuracy(classifier, images, male):
    probability = plugins.apply(classifier, images)
    return float(((probability > 0.5) == (male == 1)).mean())


def test_hog_regression_learns_a_visible_signal():
    images, male = _signal_faces(300)
    parameters = foreign.fit_logistic_regression(foreign.hog_features(images[:200], 32),
                                                 male[:200], steps=100, l2=1e-3)
    classifier = foreign.HogGenderClassifier(parameters, 32)
    assert (evaluators.relation(classifier), evaluators.origin(classifier)) == (
        "foreign", "built-in")
    assert _accuracy(classifier, images[200:], male[200:]) >= 0.9
    # 9 orientations x 4 cells a block x 3x3 block positions at 32 pixels.
    assert foreign.hog_features(images[:2], 32).shape == (2, 9 * 4 * 3 * 3)
    # Untrained (zero steps), it guesses.
    blank = foreign.fit_logistic_regression(foreign.hog_features(images[:200], 32), male[:200],
                                            steps=0, l2=0.0)
    np.testing.assert_allclose(foreign.HogGenderClassifier(blank, 32)(images[200:]), 0.5)


def test_separable_cnn_learns_through_strong_augmentation():
    images, male = _signal_faces(400, seed=1)
    config = foreign.ForeignConfig(cnn_size=32, cnn_steps=150, cnn_batch_size=16,
                                   cnn_width=0.5)
    model = foreign.train_cnn(images[:300], male[:300], config)
    assert model.input_shape == (None, 32, 32, 3)
    assert not any("lambda" in layer.__class__.__name__.lower() for layer in model.layers)
    probability = tf.nn.softmax(model(images[300:], training=False))[:, 1].numpy()
    assert ((probability > 0.5) == (male[300:] == 1)).mean() >= 0.7


def test_augmentation_changes_faces_and_keeps_their_range():
    images, _ = _signal_faces(8, side=16)
    out = foreign.augment(tf.constant(images), 24, tf.constant([3, 4])).numpy()
    assert out.shape == (8, 24, 24, 3) and 0 <= out.min() and out.max() <= 1
    again = foreign.augment(tf.constant(images), 24, tf.constant([3, 4])).numpy()
    np.testing.assert_array_equal(out, again)  # Stateless: the seed decides.
    plain = tf.image.resize(images, (24, 24)).numpy()
    assert np.abs(out - plain).mean() > 0.02


def test_sizes_and_bad_settings():
    config = foreign.ForeignConfig()
    assert [config.cnn_input_size(side) for side in (16, 64, 112)] == [96, 128, 224]
    assert foreign.ForeignConfig(cnn_size=40).cnn_input_size(64) == 40
    with pytest.raises(ValueError, match="HOG size 20"):
        foreign.ForeignConfig(hog_size=20)
    with pytest.raises(ValueError, match="cnn_steps must be positive"):
        foreign.ForeignConfig(cnn_steps=0)


def test_trained_once_cached_and_reused(tmp_path, caplog):
    data = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                      synthetic_identities=40, synthetic_images_per_identity=3)
    config = foreign.ForeignConfig(hog_size=16, hog_steps=20, cnn_size=16, cnn_steps=3,
                                   cnn_batch_size=8, cnn_width=0.25)
    first = foreign.foreign_evaluators(data, config, tmp_path)
    assert [e.name for e in first] == ["HOG + logistic regression 16px",
                                       "separable CNN 16px, augmented"]
    assert all(evaluators.relation(e) == "foreign" for e in first)
    cached = sorted(tmp_path.glob("foreign_*/model.*"))
    assert [p.name for p in cached] == ["model.keras", "model.npz"]
    stamps = [p.stat().st_mtime_ns for p in cached]
    faces = np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 3)).astype(np.float32)
    caplog.set_level(logging.INFO, logger="absl")
    second = foreign.foreign_evaluators(data, config, tmp_path)
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert "cached" in caplog.text and "steps on" not in caplog.text
    for before, after in zip(first, second):
        np.testing.assert_allclose(plugins.apply(after, faces), plugins.apply(before, faces),
                                   atol=1e-5)
    # Another setting that shapes a classifier gets its own cache entry.
    more = dataclasses.replace(config, hog_steps=21, cnn=False)
    foreign.foreign_evaluators(data, more, tmp_path)
    assert len(list(tmp_path.glob("foreign_hog-*"))) == 2
    assert foreign.foreign_evaluators(data, dataclasses.replace(config, hog=False, cnn=False),
                                      tmp_path) == []


@pytest.mark.parametrize("field, value, message", [
    ("hog_size", 12, "HOG size 12: want a multiple of 8"),
    ("cnn_size", 8, "CNN size 8: want 0"),
    ("cnn_steps", 0, "cnn_steps must be positive"),
])
def test_reader_settings_are_checked_for_both_configs(field, value, message):
    from semiadv.evaluation import attribute_readers

    for config_class, what in ((foreign.ForeignConfig, "foreign"),
                               (attribute_readers.AttributeConfig, "attribute")):
        with pytest.raises(ValueError, match=f"{what} {message}"):
            config_class(**{field: value})
