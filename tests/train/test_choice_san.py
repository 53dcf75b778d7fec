"""The choice-conditioned SAN (hide_attributes): its losses, its stage and what it learns."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import TrainConfig, from_dict, to_json
from semiadv.errors import UserValueError
from semiadv.models import choice_autoencoder, gender_classifiers, matchers
from semiadv.train import choice_task, distribute, losses, stages, trainer
from semiadv.train.attribute_tasks import AttributeTask

from _worker import SIZE, fixed_prototypes  # noqa: E402
from test_ensemble import parsed_train_config  # noqa: E402
from test_trainer import san_config  # noqa: E402

ALL = ("gender", "age_group", "race")


def test_divergence_from_chance_is_kl_from_uniform():
    logits = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [3.0, -1.0, 0.5, 0.0, 2.0]], np.float32)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = (0.2 * (np.log(0.2) - np.log(p))).sum(1)
    np.testing.assert_allclose(losses.divergence_from_chance(logits), expected, atol=1e-6)
    assert float(losses.divergence_from_chance(logits)[0]) == pytest.approx(0.0, abs=1e-6)


def test_attribute_cross_entropy_masks_unknown_labels():
    logits = tf.constant([[2.0, 0.0, -1.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(logits)
        values = losses.attribute_cross_entropy(logits, tf.constant([2, -1]))
    assert float(values[1]) == 0.0
    p = np.exp([2.0, 0.0, -1.0, 0.5]) / np.exp([2.0, 0.0, -1.0, 0.5]).sum()
    assert float(values[0]) == pytest.approx(-np.log(p[2]), rel=1e-5)
    np.testing.assert_array_equal(tape.gradient(values, logits)[1], 0.0)


def test_config_checks_hide_attributes():
    assert TrainConfig().choice_attributes == ()
    config = TrainConfig(hide_attributes=("race", "gender"))
    assert config.hide_attributes == config.choice_attributes == ("gender", "race")
    assert config.attribute_classifiers == ("race",)
    for bad in (("age",), ("race",), ("gender", "gender")):
        with pytest.raises(UserValueError, match="hide_attributes"):
            TrainConfig(hide_attributes=bad)
    with pytest.raises(UserValueError, match="flow_links 1"):
        TrainConfig(hide_attributes=("gender",), flow_links=2)
    assert TrainConfig().attribute_hidden_target == "chance"
    with pytest.raises(UserValueError, match="attribute_hidden_target must be one of "
                                             "chance, other, got 'random'"):
        TrainConfig(attribute_hidden_target="random")


def test_attribute_hidden_target_flag_reaches_the_config_and_round_trips():
    config = parsed_train_config("--hide_attributes=gender,race",
                                 "--attribute_hidden_target=other")
    assert config.attribute_hidden_target == "other"
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config


def test_other_value_shifts_by_half_the_classes_and_keeps_unknown():
    ages = choice_task.other_value(tf.constant([0, 1, 2, 3, -1]), 4)
    np.testing.assert_array_equal(ages, [2, 3, 0, 1, -1])
    races = choice_task.other_value(tf.constant([[0], [1], [2], [3], [4], [-1]]), 5)
    np.testing.assert_array_equal(races, [2, 3, 4, 0, 1, -1])


def test_stages_of_a_choice_san(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), hide_attributes=ALL)
    assert stages.stage_order(config)[:4] == ("prototypes", "gender", "age_group", "race")
    assert stages.stage_order(TrainConfig())[:3] == ("prototypes", "gender", "matcher")
    race = stages.settings(stages.flatten(config), "race")
    assert "gender.steps" in race and "networks.classifier_width" in race
    assert "gender_robust_radius" not in race and "hide_attributes" not in race
    assert "hide_attributes" in stages.settings(stages.flatten(config), "autoencoder")
    assert "attribute_weight" in stages.settings(stages.flatten(config), "san")
    assert "attribute_hidden_target" in stages.settings(stages.flatten(config), "san")
    assert stages.trained_from("race", config) == ("race", "san")


def test_sampled_choices_hide_only_hideable_attributes():
    config = TrainConfig(hide_attributes=("gender", "race"))
    hide = choice_task.sample_choice(config, 4000, seed=1).numpy()
    assert set(np.unique(hide)) == {0.0, 1.0}
    np.testing.assert_array_equal(hide[:, 1], 0.0)
    np.testing.assert_allclose(hide[:, [0, 2]].mean(0), 0.5, atol=0.05)


def _fixed_race_classifier(seed=0):
    """Logits of 5 races, a fixed linear function of the face's mean colour, centred on grey
    0.5: confident (the weights are large), reading faces of other tints as other races, and
    movable by any change of the colours."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(image)
    dense = keras.layers.Dense(5, name="logits")
    model = keras.Model(image, dense(pooled), name="race_classifier")
    kernel = np.random.default_rng(seed).normal(0, 24, (3, 5)).astype(np.float32)
    dense.set_weights([kernel, -0.5 * kernel.sum(0)])
    return model


def _choice_task(config, race_classifier=None):
    nets = config.networks

    def load_models():
        keras.utils.set_random_seed(7)
        autoencoder = choice_autoencoder.build_choice_autoencoder(
            SIZE, 3, nets.encoder_filters, nets.decoder_filters)
        gender = gender_classifiers.build_gender_classifier(SIZE, 3, width=0.125)
        matcher = matchers.build_matcher(SIZE, 3, embedding_dim=8, width=0.125)
        classifiers = {}
        for name in config.attribute_classifiers:
            classifiers[name] = (race_classifier if name == "race" and race_classifier
                                 else AttributeTask(config, name).build())
        return autoencoder, gender, matcher, (), classifiers

    return choice_task.ChoiceSanTask(config, fixed_prototypes(), load_models)


def _batch(size=4, seed=0, race=None):
    rng = np.random.default_rng(seed)
    return {"image": tf.constant(rng.uniform(0.1, 0.9, (size, SIZE, SIZE, 3)), tf.float32),
            "male": tf.constant(rng.integers(0, 2, size)),
            "age_group": tf.constant(rng.integers(0, 4, size)),
            "race": tf.constant(rng.integers(0, 5, size) if race is None else race)}


def test_a_choice_san_trains_on_two_replicas_with_finite_losses(tmp_path):
    config = san_config(tmp_path, hide_attributes=ALL, ssim_weight=1.0, colour_weight=0.1)
    task = _choice_task(config)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    result = trainer.train(task, config.san, config, strategy, tmp_path / "san")
    assert [step for step, _ in result.history] == [2, 4]
    for _, values in result.history:
        assert set(task.reports) <= set(values)
        assert all(np.isfinite(value) for value in values.values()), values
        assert values["age_group_hidden"] > 0 and values["race_kept"] >= 0
    # Every autoencoder variable gets a gradient: the choice planes reach encoder and combiner.
    batch = _batch()
    with tf.GradientTape() as tape:
        total, _ = task.per_example({**batch, "hide": tf.constant(
            [[1.0, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]])}, tf.constant(0))
        loss = tf.reduce_mean(total)
    gradients = tape.gradient(loss, task.model.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in gradients)
    assert all(np.abs(g.numpy()).max() > 0 for g in gradients)


def test_unknown_labels_contribute_nothing(tmp_path):
    config = san_config(tmp_path, hide_attributes=("gender", "race"))
    task = _choice_task(config, _fixed_race_classifier())
    task.build()
    hide = tf.constant([[0.0, 0, 1], [0.0, 0, 1], [0.0, 0, 0]])
    batch = {**_batch(3, race=[-1, 2, -1]), "hide": hide}
    total, report = task.per_example(batch, tf.constant(0))
    assert float(report["race_hidden"][0]) == 0.0 and float(report["race_kept"][0]) == 0.0
    assert float(report["race_hidden"][1]) > 0.0
    assert float(report["race_kept"][2]) == 0.0
    without = _choice_task(dataclasses.replace(config, attribute_weight=0.0),
                           _fixed_race_classifier())
    without.build()
    without.model.set_weights(task.model.get_weights())
    total_without, _ = without.per_example(batch, tf.constant(0))
    np.testing.assert_allclose(total.numpy()[[0, 2]], total_without.numpy()[[0, 2]], rtol=1e-6)
    assert float(total[1]) > float(total_without[1])


def test_hiding_moves_the_reading_to_chance_and_keeping_holds_it(tmp_path):
    # Only the race terms (gender, identity and fidelity weighted 0): a few dozen steps on a
    # fixed batch with random choices. Afterwards the race classifier, confident on the faces,
    # reads the hide-race outputs near chance and the keep outputs as it reads the faces.
    config = san_config(tmp_path, hide_attributes=("gender", "race"), gender_weight=0.0,
                        match_weight=0.0, pixel_weight=0.0, attribute_weight=1.0)
    classifier = _fixed_race_classifier()
    task = _choice_task(config, classifier)
    task.build()
    rng = np.random.default_rng(2)
    tinted = rng.uniform(0, 0.3, (8, SIZE, SIZE, 3)) + rng.uniform(0.05, 0.65, (8, 1, 1, 3))
    batch = {**_batch(8, seed=1), "image": tf.constant(tinted, tf.float32)}
    assert len(set(np.argmax(classifier(batch["image"]), 1))) >= 3  # Faces read differently.
    hide_race = tf.constant([[0.0, 0, 1]] * 8)
    keep = tf.zeros([8, 3])

    def readings():
        same, opposite = task.prototypes_of(batch)
        kept, hidden = (task.outputs(batch["image"], same, opposite, hide, training=False)[1]
                        for hide in (keep, hide_race))
        original = classifier(batch["image"])
        return (float(tf.reduce_mean(losses.divergence_from_chance(classifier(hidden)))),
                float(tf.reduce_mean(losses.reading_change(classifier(kept), original))),
                float(tf.reduce_mean(losses.divergence_from_chance(original))))

    _, kept_change_before, original_divergence = readings()
    assert original_divergence > 1.0  # Confident on the faces: far from chance.
    assert kept_change_before > 1.0  # The untrained autoencoder changes the reading.
    optimizer = keras.optimizers.Adam(1e-2)
    step = tf.function(lambda: _train_step(task, optimizer, batch))
    for _ in range(40):
        step()
    hidden_divergence, kept_change, _ = readings()
    # Measured: hidden 3.65 -> 0.25 nats from chance (faces: 6.2), kept 1.98 -> 0.65 nats.
    assert hidden_divergence < 0.1 * original_divergence, (hidden_divergence, original_divergence)
    assert kept_change < 0.5 * kept_change_before, (kept_change, kept_change_before)


def test_hiding_towards_another_value_moves_the_reading_there(tmp_path):
    # As above with attribute_hidden_target "other": the hide-race outputs are pushed towards
    # other_value(race label) and the hidden term is that cross-entropy.
    config = san_config(tmp_path, hide_attributes=("gender", "race"), gender_weight=0.0,
                        match_weight=0.0, pixel_weight=0.0, attribute_weight=1.0,
                        attribute_hidden_target="other")
    classifier = _fixed_race_classifier()
    task = _choice_task(config, classifier)
    task.build()
    rng = np.random.default_rng(2)
    tinted = rng.uniform(0, 0.3, (8, SIZE, SIZE, 3)) + rng.uniform(0.05, 0.65, (8, 1, 1, 3))
    # Labels: the classifier's own reading of the faces, so a target is another reading.
    race = np.argmax(classifier(tf.constant(tinted, tf.float32)), 1)
    batch = {**_batch(8, seed=1, race=race), "image": tf.constant(tinted, tf.float32),
             "hide": tf.constant([[0.0, 0, 1]] * 8)}
    targets = choice_task.other_value(tf.constant(race), 5).numpy()
    assert (targets != race).all()

    def hidden_readings():
        same, opposite = task.prototypes_of(batch)
        hidden = task.outputs(batch["image"], same, opposite, batch["hide"], training=False)[1]
        return classifier(hidden)

    _, report = task.per_example(batch, tf.constant(0))
    np.testing.assert_allclose(report["race_hidden"],
                               losses.attribute_cross_entropy(hidden_readings(), targets),
                               rtol=1e-4)
    readings = hidden_readings()
    before = float(tf.reduce_mean(losses.attribute_cross_entropy(readings, targets)))
    chance_before = float(tf.reduce_mean(losses.divergence_from_chance(readings)))
    optimizer = keras.optimizers.Adam(1e-2)
    step = tf.function(lambda: _train_step(task, optimizer, batch))
    for _ in range(40):
        step()
    readings = hidden_readings()
    after = float(tf.reduce_mean(losses.attribute_cross_entropy(readings, targets)))
    chance_after = float(tf.reduce_mean(losses.divergence_from_chance(readings)))
    reached = float(np.mean(np.argmax(readings, 1) == targets))
    # Measured: cross-entropy 2.78 -> 0.75 nats, 6 faces of 8 read as their target, and the
    # readings confident (not at chance, as the default target leaves them).
    assert after < 0.4 * before, (before, after)
    assert reached >= 0.5, reached
    assert chance_after > 0.5, chance_after


def _train_step(task, optimizer, batch):
    with tf.GradientTape() as tape:
        total, _ = task.per_example(batch, tf.constant(0))
        loss = tf.reduce_mean(total)
    variables = task.model.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss


@pytest.mark.slow
def test_the_main_job_trains_and_exports_a_choice_san(tmp_path, caplog):
    from test_main_job import tiny_job_config

    from semiadv.train import main_job

    config = tiny_job_config(tmp_path, steps=2, hide_attributes=ALL)
    summary = main_job.run(config)
    work = tmp_path / "work"
    for stage in ("gender", "age_group", "race", "matcher", "autoencoder", "san"):
        assert (work / stage / "model.keras").exists(), stage
        assert (work / stage / "stage_config.json").exists(), stage
    assert 0.0 <= summary["flip_rate_opposite"] <= 1.0
    loaded = tf.saved_model.load(summary["export"])
    faces = tf.constant(np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, 3)), tf.float32)
    np.testing.assert_allclose(loaded.signatures["hide_all"](image=faces)["perturbed"],
                               loaded.signatures["perturb"](image=faces, hide=tf.ones([2, 3]))
                               ["perturbed"], atol=1e-6)
    caplog.set_level("INFO")
    assert main_job.run(config) == summary  # A rerun finds every stage done.
    assert "training steps" not in caplog.text
    # Without race, the finished autoencoder and SAN were trained for another choice.
    with pytest.raises(stages.StageMismatchError, match="hide_attributes"):
        stages.check(dataclasses.replace(config, hide_attributes=("gender", "age_group")))


def test_a_rerun_with_other_hide_attributes_refuses_the_finished_autoencoder(tmp_path):
    config = TrainConfig(workdir=str(tmp_path), hide_attributes=ALL)
    for stage in ("race", "autoencoder"):  # Finished stages: their model file is written.
        (tmp_path / stage).mkdir()
        (tmp_path / stage / trainer.FINAL_MODEL).write_bytes(b"")
        stages.record(config, stage)
    stages.check(config)
    stages.check(dataclasses.replace(config, attribute_weight=3.0))  # The SAN's alone.
    with pytest.raises(stages.StageMismatchError,
                       match="--hide_attributes.*autoencoder.*--retrain_from=autoencoder"):
        stages.check(dataclasses.replace(config, hide_attributes=("gender", "race")))
    with pytest.raises(stages.StageMismatchError, match="--gender_steps.*race"):
        stages.check(dataclasses.replace(config, gender=dataclasses.replace(config.gender,
                                                                            steps=7)))
