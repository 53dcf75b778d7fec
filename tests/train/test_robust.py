"""Adversarial training of the gender CNNs (`--gender_robust_radius`, semiadv/train/robust.py)."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.train import distribute
from semiadv.models import gender_classifiers
from semiadv.train import robust
from semiadv.train import stages
from semiadv.train.gender_tasks import GenderTask
from semiadv.train import trainer
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig, from_dict, to_json

from test_ensemble import parsed_train_config  # noqa: E402

SIZE = 16


def _classifier(seed=3):
    keras.utils.set_random_seed(seed)
    model = gender_classifiers.build_gender_classifier(SIZE, 3, width=0.25)
    # A random net barely tells faces apart; scaled up, its logits move with the pixels.
    logits = model.get_layer("logits")
    logits.kernel.assign(logits.kernel * 50.0)
    return model


def _faces(count=6, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.05, 0.95, (count, SIZE, SIZE, 3)).astype(np.float32)
    male = np.arange(count) % 2
    return tf.constant(images), tf.constant(male, tf.int64)


def _cross_entropy(model, images, male):
    from semiadv.train import losses
    return losses.gender_cross_entropy(model(images, training=False), male).numpy()


def test_adversarial_faces_stay_in_the_ball_and_in_range_and_raise_the_loss():
    model = _classifier()
    images, male = _faces()
    weight = tf.ones([6])
    adversarial = robust.l2_adversarial_images(model, images, male, weight, 0.5, 3).numpy()
    distance = np.sqrt(((adversarial - images.numpy()) ** 2).sum(axis=(1, 2, 3)))
    assert np.all(distance <= 0.5 + 1e-4), distance
    assert np.all(distance > 0.1), distance  # It walked, it did not stay at the start.
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    clean = _cross_entropy(model, images, male)
    attacked = _cross_entropy(model, adversarial, male)
    assert np.all(attacked > clean), (clean, attacked)
    # Random noise of the same size raises it by far less: the steps follow the gradient.
    noise = np.random.default_rng(1).normal(size=adversarial.shape).astype(np.float32)
    noise *= 0.5 / np.sqrt((noise ** 2).sum(axis=(1, 2, 3), keepdims=True))
    noisy = _cross_entropy(model, np.clip(images.numpy() + noise, 0, 1), male)
    assert (attacked - clean).mean() > 3 * np.abs(noisy - clean).mean()


def test_faces_of_unknown_gender_are_not_attacked():
    model = _classifier()
    images, male = _faces()
    weight = tf.constant([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    adversarial = robust.l2_adversarial_images(model, images, male, weight, 0.5, 2).numpy()
    np.testing.assert_array_equal(adversarial[[1, 3]], images.numpy()[[1, 3]])
    assert not np.allclose(adversarial[0], images.numpy()[0])


def test_robust_radius_is_validated_round_trips_and_retrains_the_gender_stage():
    assert TrainConfig().gender_robust_radius == 0.0
    with pytest.raises(ValueError, match="gender_robust_radius must be >= 0, got -1"):
        TrainConfig(gender_robust_radius=-1.0)
    with pytest.raises(ValueError, match="gender_robust_steps must be an integer >= 1, got 0"):
        TrainConfig(gender_robust_steps=0)
    config = parsed_train_config("--gender_robust_radius=1.5", "--gender_robust_steps=2")
    assert (config.gender_robust_radius, config.gender_robust_steps) == (1.5, 2)
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    # A CNN trained otherwise is another CNN: a resumed run must retrain it.
    for name in ("gender_robust_radius", "gender_robust_steps"):
        assert name in stages.STAGE_SETTINGS["gender"]


def _gender_config(tmp_path, radius):
    return TrainConfig(
        data=DataConfig(dataset="synthetic", image_size=SIZE, channels=3, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4),
        networks=NetworkConfig(classifier_width=0.25),
        workdir=str(tmp_path), gender=StageConfig(steps=4, learning_rate=1e-2),
        checkpoint_every=2, steps_per_loop=2, export_dir=None,
        gender_robust_radius=radius, gender_robust_steps=2)


def assert_loss_taken_on_adversarial_faces(make_task, weights, batch, unknown):
    """The per-face loss of the task at radius 0 and 0.5 (the same weights, the same seed):
    0 for the face of unknown label, and higher on average on the adversarial faces."""
    values = {}
    for radius in (0.0, 0.5):
        task = make_task(radius)
        task.build()
        task.model.set_weights(weights)
        tf.random.set_seed(0)
        total, _ = task.per_example(batch, tf.constant(0, tf.int64))
        values[radius] = total.numpy()
    assert values[0.0][unknown] == 0 and values[0.5][unknown] == 0  # No label: no loss.
    known = [index for index in range(len(values[0.0])) if index != unknown]
    # Dropout is on in the training pass, so compare the means, not each face.
    assert values[0.5][known].mean() > values[0.0][known].mean() + 0.1, values


def test_the_gender_loss_is_taken_on_the_adversarial_faces(tmp_path):
    images, male = _faces(8)
    batch = {"image": images, "male": tf.constant([1, 0, 1, 0, -1, 0, 1, 1], tf.int64)}
    assert_loss_taken_on_adversarial_faces(
        lambda radius: GenderTask(_gender_config(tmp_path, radius)),
        _classifier().get_weights(), batch, unknown=4)


def test_robust_gender_stage_trains_on_two_replicas(tmp_path):
    config = _gender_config(tmp_path, 0.5)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    task = GenderTask(config)  # trainer.train builds it under the strategy's scope.
    result = trainer.train(task, config.gender, config, strategy, tmp_path / "gender")
    assert [step for step, _ in result.history] == [2, 4]
    for _, values in result.history:
        assert np.isfinite(values["cross_entropy"]) and 0 <= values["accuracy"] <= 1


def test_the_radius_warms_up_linearly():
    radii = [float(robust.warmed_up_radius(1.0, 4, tf.constant(step, tf.int64)))
             for step in range(6)]
    np.testing.assert_allclose(radii, [0.25, 0.5, 0.75, 1.0, 1.0, 1.0], rtol=1e-6)
    assert float(robust.warmed_up_radius(0.7, 0, tf.constant(0, tf.int64))) == \
        pytest.approx(0.7)
    with pytest.raises(ValueError, match="gender_robust_warmup must be an integer >= 0"):
        TrainConfig(gender_robust_warmup=-1)
    config = parsed_train_config("--gender_robust_radius=1", "--gender_robust_warmup=300")
    assert config.gender_robust_warmup == 300
    assert "gender_robust_warmup" in stages.STAGE_SETTINGS["gender"]


def test_warmup_attacks_early_steps_within_the_smaller_ball(tmp_path, monkeypatch):
    radii = []
    real = robust.l2_adversarial_images

    def spy(model, images, male, weight, radius, steps):
        radii.append(float(radius))
        return real(model, images, male, weight, radius, steps)

    monkeypatch.setattr(robust, "l2_adversarial_images", spy)
    config = dataclasses.replace(_gender_config(tmp_path, 0.8), gender_robust_warmup=4)
    task = GenderTask(config)
    task.build()
    images, male = _faces(4)
    for step in (0, 1, 9):
        task.per_example({"image": images, "male": male}, tf.constant(step, tf.int64))
    np.testing.assert_allclose(radii, [0.2, 0.4, 0.8], rtol=1e-6)


def test_gender_reading_change_is_zero_for_the_same_reading_and_grows_both_ways():
    from semiadv.train import losses

    original = tf.constant([[0.0, 1.0], [2.0, -1.0]])
    np.testing.assert_allclose(losses.gender_reading_change(original, original), [0, 0],
                               atol=1e-6)
    # Reading more of its gender and reading less both cost.
    more = losses.gender_reading_change(tf.constant([[0.0, 3.0], [4.0, -1.0]]), original)
    less = losses.gender_reading_change(tf.constant([[0.0, 0.0], [0.0, 0.0]]), original)
    assert np.all(more.numpy() > 0.05) and np.all(less.numpy() > 0.05)
    # The KL of two known distributions: p = softmax([0, 1]), q = softmax([0, 3]).
    p = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    q = np.exp([0.0, 3.0]) / np.exp([0.0, 3.0]).sum()
    assert more.numpy()[0] == pytest.approx(float(np.sum(p * np.log(p / q))), rel=1e-5)
    # No gradient into the original's reading: it is the fixed target.
    with tf.GradientTape() as tape:
        tape.watch(original)
        value = tf.reduce_sum(losses.gender_reading_change(original * 2.0, original))
    assert tape.gradient(value, original) is not None
    with tf.GradientTape() as tape:
        tape.watch(original)
        value = tf.reduce_sum(losses.gender_reading_change(tf.constant([[0.0, 3.0], [4.0, -1.0]]),
                                                           original))
    assert tape.gradient(value, original) is None


def test_san_holds_x_sm_to_the_originals_reading(tmp_path):
    from semiadv.train import losses
    from _worker import SIZE as SAN_SIZE, san_task, tiny_config

    config = dataclasses.replace(tiny_config(tmp_path, 2), gender_same_target="original",
                                 gender_ensemble=0)
    with pytest.raises(ValueError, match="gender_same_target must be one of"):
        dataclasses.replace(config, gender_same_target="true")
    task = san_task(config)
    task.build()
    logits_layer = task.gender.get_layer("logits")  # Readings that differ between faces.
    logits_layer.kernel.assign(logits_layer.kernel * 100.0)
    rng = np.random.default_rng(4)
    image = tf.constant(rng.uniform(0, 1, (4, SAN_SIZE, SAN_SIZE, 3)).astype(np.float32))
    male = tf.constant([1, 0, -1, 0], tf.int64)  # Unknown gender still has a reading.
    batch = {"image": image, "male": male}
    _, report = task.per_example(batch, tf.constant(0, tf.int64))
    same, opposite = task.prototypes_of(batch)
    outputs = task.model({"image": image, "same_prototype": same,
                          "opposite_prototype": opposite})
    expected = losses.gender_reading_change(task.gender(outputs["same"]), task.gender(image))
    np.testing.assert_allclose(report["gender_same"], expected, rtol=1e-4, atol=1e-6)
    assert report["gender_same"].numpy()[2] > 0  # Counted without a label.
    label = losses.gender_cross_entropy(task.gender(outputs["same"]), tf.maximum(male, 0))
    assert not np.allclose(report["gender_same"], label, rtol=1e-2)
    parsed = parsed_train_config("--gender_same_target=original")
    assert parsed.gender_same_target == "original"
    assert "gender_same_target" in stages.STAGE_SETTINGS["san"]
