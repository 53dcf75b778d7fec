"""Input diversity in the gender term: random per-example transforms that pass gradients."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from _worker import SIZE, san_task, tiny_config
from semiadv.config import TrainConfig, from_dict, to_json
from semiadv.errors import UserValueError
from semiadv.train import input_diversity, stages, trainer
from test_ensemble import parsed_train_config


def _faces(count=4, size=SIZE, channels=3, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0.1, 0.9, (count, size, size, channels))
                       .astype(np.float32))


@pytest.mark.parametrize("transform", [
    lambda x: input_diversity.colour_jitter(x, 1.0),
    lambda x: input_diversity.resize_crop_blur(x, 1.0),
    lambda x: input_diversity.jpeg_like(x, tf.fill(tf.shape(x)[:1], 30.0)),
    lambda x: input_diversity.diverse_view(x, 1.0),
], ids=["colour", "resize_crop_blur", "jpeg", "all"])
def test_every_transform_passes_finite_nonzero_gradients_to_each_face(transform):
    faces = _faces()
    weights = tf.constant(np.random.default_rng(1).normal(size=faces.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(faces)
        loss = tf.reduce_sum(transform(faces) * weights)
    gradient = tape.gradient(loss, faces).numpy()
    assert np.isfinite(gradient).all()
    # Every face gets a gradient of about the size the identity would give it.
    per_face = np.abs(gradient).sum(axis=(1, 2, 3))
    identity = np.abs(weights.numpy()).sum(axis=(1, 2, 3))
    assert (per_face > 0.2 * identity).all(), per_face / identity


def test_draws_are_per_example_and_per_call():
    one = _faces(count=1)
    faces = tf.repeat(one, 6, axis=0)  # Six copies of one face.
    first = input_diversity.diverse_view(faces, 1.0).numpy()
    second = input_diversity.diverse_view(faces, 1.0).numpy()
    differences = [np.abs(first[i] - first[j]).mean() for i in range(6) for j in range(i)]
    assert min(differences) > 1e-3, differences  # Each copy transformed its own way.
    assert np.abs(first - second).mean() > 1e-3
    assert first.shape == faces.shape and 0 <= first.min() and first.max() <= 1


def test_the_transforms_are_what_they_say():
    faces = _faces()
    # A crop of nothing and no blur is the face; so is JPEG at quality 100, to its rounding.
    np.testing.assert_allclose(input_diversity.resize_crop_blur(faces, 1e-6), faces, atol=1e-4)
    best = input_diversity.jpeg_like(faces, tf.fill([4], 100.0))
    assert np.abs(best - faces).max() < 4 / 255
    # JPEG-like at quality 30 is close to a real JPEG file at quality 30 (no chroma
    # subsampling) of a smooth face, far closer than the face itself is.
    smooth = tf.round(tf.image.resize(_faces(count=1, size=4), (SIZE, SIZE)) * 255) / 255
    real = tf.io.decode_jpeg(tf.io.encode_jpeg(tf.cast(smooth[0] * 255, tf.uint8), quality=30,
                                               chroma_downsampling=False))
    real = tf.cast(real, tf.float32) / 255
    mine = input_diversity.jpeg_like(smooth, tf.constant([30.0]))[0]
    assert np.abs(mine - real).mean() < 0.4 * np.abs(smooth[0] - real).mean()
    # Grey faces and sides that are not multiples of 8 work too.
    assert input_diversity.diverse_view(_faces(2, 20, 1), 0.5).shape == (2, 20, 20, 1)


def test_gender_diversity_is_validated_and_reaches_the_config():
    assert TrainConfig().gender_diversity == 0.0
    with pytest.raises(UserValueError, match=r"gender_diversity must be in \[0, 1\], got 1.5"):
        TrainConfig(gender_diversity=1.5)
    config = parsed_train_config("--gender_diversity=0.4")
    assert config.gender_diversity == 0.4
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    assert "gender_diversity" in stages.STAGE_SETTINGS["san"]


def test_a_tiny_san_trains_with_gender_diversity(tmp_path, monkeypatch):
    calls = []
    original = input_diversity.diverse_view

    def counted(images, strength, seed=None):
        calls.append(strength)
        return original(images, strength, seed)

    monkeypatch.setattr(input_diversity, "diverse_view", counted)
    config = dataclasses.replace(tiny_config(tmp_path, steps=2), gender_diversity=0.5)
    task = san_task(config)
    result = trainer.train(task, config.san, config, tf.distribute.get_strategy(),
                           tmp_path / "san")
    assert calls and set(calls) == {0.5}  # Traced into the step: X'_SM and X'_OP views.
    (step, values), = [result.history[-1]]
    assert step == 2 and all(np.isfinite(v) for v in values.values())

    # The gender term's gradient reaches the autoencoder through the transforms.
    batch = {"image": _faces(), "male": tf.constant([1, 0, 1, 0], tf.int64)}
    plain = dataclasses.replace(config, match_weight=0.0, pixel_weight=0.0)
    task = san_task(plain)
    task.build()
    with tf.GradientTape() as tape:
        total, _ = task.per_example(batch, tf.constant(0, tf.int64))
        loss = tf.reduce_mean(total)
    gradients = tape.gradient(loss, task.model.trainable_variables)
    norms = [float(tf.norm(g)) for g in gradients if g is not None]
    assert len(norms) == len(task.model.trainable_variables)
    assert all(np.isfinite(norms)) and max(norms) > 0
