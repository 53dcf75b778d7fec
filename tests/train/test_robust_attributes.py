"""Adversarial training of the age group and race classifiers (`--attribute_robust_radius`)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import (DataConfig, NetworkConfig, StageConfig, TrainConfig, from_dict,
                            to_json)
from semiadv.models import gender_classifiers
from semiadv.train import distribute, losses, robust, stages, trainer
from semiadv.train.attribute_tasks import AttributeTask

from test_ensemble import parsed_train_config  # noqa: E402
from test_robust import assert_loss_taken_on_adversarial_faces  # noqa: E402

SIZE = 16
RACES = 5


def _race_classifier(seed=3):
    keras.utils.set_random_seed(seed)
    model = gender_classifiers.build_attribute_classifier(SIZE, 3, RACES, width=0.25,
                                                          name="race_classifier")
    # A random net barely tells faces apart; scaled up, its logits move with the pixels.
    logits = model.layers[-1]
    logits.kernel.assign(logits.kernel * 50.0)
    return model


def _faces(count=6, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(0.05, 0.95, (count, SIZE, SIZE, 3)).astype(np.float32))


def _race_cross_entropy(model, images, labels):
    return losses.attribute_cross_entropy(model(images, training=False), labels).numpy()


def test_a_multi_class_attack_raises_the_attribute_loss_within_the_ball():
    model = _race_classifier()
    images = _faces()
    labels = tf.constant([0, 1, 2, 3, 4, -1])
    known = tf.cast(labels >= 0, tf.float32)
    adversarial = robust.l2_adversarial_images(
        model, images, None, known, 0.5, 3,
        per_example_loss=lambda logits: losses.attribute_cross_entropy(logits, labels)).numpy()
    distance = np.sqrt(((adversarial - images.numpy()) ** 2).sum(axis=(1, 2, 3)))
    assert np.all(distance[:5] <= 0.5 + 1e-4) and np.all(distance[:5] > 0.1), distance
    assert distance[5] == 0.0  # An unknown race is not attacked.
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    clean = _race_cross_entropy(model, images, labels)[:5]
    attacked = _race_cross_entropy(model, adversarial, labels)[:5]
    assert np.all(attacked > clean), (clean, attacked)


def _config(tmp_path, radius, **overrides):
    return TrainConfig(
        data=DataConfig(dataset="synthetic", image_size=SIZE, channels=3, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4),
        networks=NetworkConfig(classifier_width=0.25), workdir=str(tmp_path),
        gender=StageConfig(steps=4, learning_rate=1e-2), checkpoint_every=2, steps_per_loop=2,
        export_dir=None, hide_attributes=("gender", "age_group", "race"),
        attribute_robust_radius=radius, attribute_robust_steps=2, **overrides)


def test_the_attribute_loss_is_taken_on_the_adversarial_faces(tmp_path):
    batch = {"image": _faces(8), "race": tf.constant([0, 1, 2, 3, 4, -1, 1, 2])}
    assert_loss_taken_on_adversarial_faces(
        lambda radius: AttributeTask(_config(tmp_path, radius), "race"),
        _race_classifier().get_weights(), batch, unknown=5)


def test_a_robust_attribute_stage_trains_on_two_replicas(tmp_path):
    config = _config(tmp_path, 0.5)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    result = trainer.train(AttributeTask(config, "age_group"), config.gender, config, strategy,
                           tmp_path / "age_group")
    assert [step for step, _ in result.history] == [2, 4]
    for _, values in result.history:
        assert np.isfinite(values["cross_entropy"]) and 0 <= values["accuracy"] <= 1


def test_the_radius_is_validated_parsed_and_shapes_the_attribute_stages_only(tmp_path):
    assert TrainConfig().attribute_robust_radius == 0.0
    with pytest.raises(ValueError, match="attribute_robust_radius must be >= 0, got -0.5"):
        TrainConfig(attribute_robust_radius=-0.5)
    with pytest.raises(ValueError, match="attribute_robust_steps must be an integer >= 1, got 0"):
        TrainConfig(attribute_robust_steps=0)
    config = parsed_train_config("--hide_attributes=gender,race", "--attribute_robust_radius=0.5",
                                 "--attribute_robust_steps=2")
    assert (config.attribute_robust_radius, config.attribute_robust_steps) == (0.5, 2)
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    flat = stages.flatten(_config(tmp_path, 0.5))
    for stage in ("age_group", "race"):
        assert stages.settings(flat, stage)["attribute_robust_radius"] == 0.5
        assert "gender_robust_radius" not in stages.settings(flat, stage)
    assert "attribute_robust_radius" not in stages.settings(flat, "gender")
    # A finished work dir trained plainly refuses a robust rerun, naming the flag.
    plain = _config(tmp_path, 0.0)
    (tmp_path / "race").mkdir()
    (tmp_path / "race" / trainer.FINAL_MODEL).write_bytes(b"")  # Finished, as far as a rerun sees.
    (tmp_path / "race" / stages.RECORD_NAME).write_text(json.dumps(
        {"stage": "race", "settings": stages.settings(stages.flatten(plain), "race")}))
    assert stages.differences(plain) == []
    found = stages.differences(_config(tmp_path, 0.5))
    assert [(d.stage, d.flag, d.old, d.new) for d in found] == [
        ("race", "--attribute_robust_radius", 0.0, 0.5)]
    with pytest.raises(stages.StageMismatchError, match="--retrain_from=race"):
        stages.check(_config(tmp_path, 0.5))


def test_grey_classifiers_are_blind_to_colour_at_equal_luma_and_keep_their_luma(tmp_path):
    from semiadv.models.gender_classifiers import LUMA

    config = _config(tmp_path, 0.0, attribute_grey=True)
    task = AttributeTask(config, "race")
    model = task.build()
    faces = _faces(4).numpy()
    # A tint orthogonal to the luma weights: the same grey face in other colours.
    tint = np.array([0.587, -0.299, 0.0], np.float32) * 0.1
    tinted = faces + tint
    np.testing.assert_allclose(model(tinted, training=False), model(faces, training=False),
                               atol=1e-4)
    plain = AttributeTask(_config(tmp_path, 0.0), "race").build()
    assert not np.allclose(plain(tinted, training=False), plain(faces, training=False),
                           atol=1e-4)
    # Training on two replicas leaves the luma layer as it was, and it survives a save.
    strategy = distribute.make_strategy("mirrored")
    result = trainer.train(AttributeTask(config, "race"), config.gender, config, strategy,
                           tmp_path / "race")
    trained = keras.models.load_model(tmp_path / "race" / trainer.FINAL_MODEL)
    np.testing.assert_allclose(trained.get_layer("luma").kernel.numpy().ravel(),
                               np.ravel(LUMA), rtol=1e-6)
    assert np.isfinite(result.history[-1][1]["cross_entropy"])
    parsed = parsed_train_config("--hide_attributes=gender,race", "--attribute_grey")
    assert parsed.attribute_grey
    assert "attribute_grey" in stages.settings(stages.flatten(config), "race")
    assert "attribute_grey" not in stages.settings(stages.flatten(config), "gender")
