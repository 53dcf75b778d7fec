"""Ensemble SAN: K extra frozen gender classifiers, diverse and seeded, averaged in the loss."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from semiadv.train import distribute
from semiadv.models import gender_classifiers
from semiadv.train import main_job
from semiadv.train import ensemble
from semiadv.train.autoencoder_task import AutoencoderTask
from semiadv.train.gender_tasks import GenderMemberTask
from semiadv.train.san_task import SanTask
from semiadv.train import trainer
from semiadv.config import TrainConfig, from_dict, to_json

# The tiny nets, prototypes and configs the trainer and pipeline tests use.
from _worker import SIZE, build_models, fixed_prototypes, san_task, tiny_config  # noqa: E402
from test_main_job import tiny_job_config  # noqa: E402
from test_trainer import cross_entropy  # noqa: E402


def _ensemble_config(tmp_path, members, steps=2):
    return dataclasses.replace(tiny_config(tmp_path, steps), gender_ensemble=members)


def _member(config, index):
    return ensemble.build_gender_member(ensemble.gender_member(config, index), SIZE, 3)


def _ensemble_task(config):
    """A SanTask whose autoencoder, G_0 and matcher a seed fixes, with its seeded members."""
    return san_task(config, lambda k: _member(config, k))


def test_gender_ensemble_is_validated_and_round_trips():
    assert TrainConfig().gender_ensemble == 0
    with pytest.raises(ValueError, match="gender_ensemble must be 0 or more, got -1"):
        TrainConfig(gender_ensemble=-1)
    config = TrainConfig(gender_ensemble=3)
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config


def test_gender_ensemble_flag_reaches_the_config():
    from semiadv.apps import train_flags

    try:
        flags.FLAGS(["test", "--gender_ensemble=2", "--mixed_precision=none"])
        assert train_flags.train_config().gender_ensemble == 2
    finally:
        flags.FLAGS.unparse_flags()


def test_autoencoder_flags_reach_the_config_and_round_trip():
    from semiadv.apps import train_flags

    assert not TrainConfig().networks.residual
    try:
        flags.FLAGS(["test", "--residual", "--upsampling=bilinear", "--mixed_precision=none"])
        config = train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()
    assert config.networks.residual and config.networks.upsampling == "bilinear"
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config


def test_pretrain_binary_refuses_a_member_beyond_the_ensemble(tmp_path):
    # A subprocess: importing pretrain_main here would make --net required in every later
    # in-process flag parse of the session.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "semiadv.apps.pretrain_main", "--net=gender_2",
         "--gender_ensemble=1", f"--workdir={tmp_path}"],
        capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode != 0
    assert "--net=gender_<k> needs k <= --gender_ensemble + --flow_links - 1" in result.stderr
    assert not any(tmp_path.iterdir())


def _pretrain_flag_checks(tmp_path, cases):
    # Each case passes the flag checks or fails them; a passing run then stops at a work dir
    # that is a file, a user error of its own, so no training starts.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    blocker = tmp_path / "file"
    blocker.write_text("")
    for net, extra in cases:
        result = subprocess.run(
            [sys.executable, "-m", "semiadv.apps.pretrain_main", f"--net={net}", *extra,
             f"--workdir={blocker}"], capture_output=True, text=True, timeout=180, env=env)
        assert result.returncode == 2, result.stderr
        if net == "age_group":
            assert "need that attribute in --hide_attributes" in result.stderr
        else:
            assert "--net" not in result.stderr and "--workdir" in result.stderr, result.stderr


def test_pretrain_binary_takes_the_classifiers_of_flow_links(tmp_path):
    # gender_2 is link 3's classifier with --flow_links=3 (main_job.pretrain trains it).
    _pretrain_flag_checks(tmp_path, [("gender_2", ["--flow_links=3"])])


@pytest.mark.slow
def test_pretrain_binary_takes_the_attribute_classifiers_named(tmp_path):
    _pretrain_flag_checks(tmp_path, [("race", ["--hide_attributes=gender,race"]),
                                     ("age_group", ["--hide_attributes=gender,race"])])


def test_member_recipe_is_a_deterministic_function_of_k(tmp_path):
    config = tiny_config(tmp_path, steps=1)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, seed=5))
    members = [ensemble.gender_member(config, k) for k in range(1, 8)]
    assert members == [ensemble.gender_member(config, k) for k in range(1, 8)]
    assert [m.seed for m in members] == [6, 7, 8, 9, 10, 11, 12]
    assert [m.stage for m in members[:2]] == ["gender_1", "gender_2"]
    # Members 1..6 cover every (network, augmentation) pair; 7 repeats 1 with its own seed.
    recipes = [(m.architecture, m.width, m.augment) for m in members]
    assert len(set(recipes[:6])) == 6
    assert recipes[6] == recipes[0]
    assert {m.architecture for m in members} == {"vgg", "cnn"}
    assert {m.width for m in members} == {0.0625, 0.125, 0.25}  # 0.5x, 1x, 2x of 0.125.
    assert {m.augment for m in members} == {"flip", "views"}
    assert ensemble.member_index("gender_12") == 12
    for not_a_member in ("gender", "gender_0", "gender_01", "gender_x", "matcher"):
        assert ensemble.member_index(not_a_member) is None
    with pytest.raises(ValueError, match="numbered from 1"):
        ensemble.gender_member(config, 0)


def test_members_differ_from_each_other_and_build_reproducibly(tmp_path):
    config = tiny_config(tmp_path, steps=1)
    keras.utils.set_random_seed(0)
    paper = gender_classifiers.build_gender_classifier(
        SIZE, 3, width=config.networks.classifier_width)
    built = {k: _member(config, k) for k in (1, 2, 3, 5)}

    def shapes(model):
        return [tuple(w.shape) for w in model.weights]

    # Three architectures / widths, all unlike the paper's CNN.
    assert len({str(shapes(model)) for model in (paper, built[1], built[2], built[3])}) == 4
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in built[1].layers)
    # None is the evaluation's independent ResNet.
    for model in built.values():
        assert not any(isinstance(layer, keras.layers.Add) for layer in model.layers)
        assert model.output.shape == (None, 2) and model.output.dtype == "float32"
    # Same architecture (half-width CNN), other seed: other weights.
    assert shapes(built[2]) == shapes(built[5])
    assert not all(np.array_equal(a, b)
                   for a, b in zip(built[2].get_weights(), built[5].get_weights()))
    # The member's seed alone fixes its weights, whatever was drawn before.
    keras.utils.set_random_seed(123)
    np.random.random(10)
    for k in (1, 2):
        for a, b in zip(built[k].get_weights(), _member(config, k).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_member_task_learns_from_its_augmentation(tmp_path):
    config = tiny_config(tmp_path, steps=1)
    rng = np.random.default_rng(1)
    image, view_a = rng.uniform(0, 1, (2, 4, SIZE, SIZE, 3)).astype(np.float32)
    batch = {"image": image, "view_a": view_a, "view_b": image,
             "male": tf.constant([1, 0, 1, -1], tf.int64)}
    for index, augment, learns_from in ((1, "views", view_a), (2, "flip", image)):
        task = GenderMemberTask(config, index)
        assert (task.name, task.augment) == (f"gender_{index}", augment)
        seen = []

        def model(images, training, seen=seen):
            seen.append((images, training))
            return tf.zeros([4, 2])

        task.model = model
        total, _ = task.per_example(batch, 0)
        np.testing.assert_array_equal(seen[0][0], learns_from)
        assert seen[0][1] is True
        assert total.shape == (4,) and float(total[3]) == 0.0  # Unknown gender: no loss.


def test_ensemble_gender_loss_is_the_mean_of_the_members(tmp_path):
    config = dataclasses.replace(_ensemble_config(tmp_path, 2), gender_weight=2.0,
                                 match_weight=3.0, pixel_weight=0.5)
    task = _ensemble_task(config)
    task.build()
    classifiers = (task.gender, *task.gender_members)
    assert len(classifiers) == 3
    assert task.reports[-1] == "flip_rate_ensemble"
    assert all(not c.trainable for c in classifiers)
    trained = {id(v) for v in task.model.trainable_variables}
    assert not any(id(v) in trained for c in classifiers for v in c.weights)
    # Random nets score random faces near 50/50; shift each one's logits apart so a wrong
    # average (or G_0 alone) cannot pass for the right one.
    rng = np.random.default_rng(0)
    for classifier in classifiers:
        logits_layer = classifier.get_layer("logits")
        logits_layer.bias.assign(rng.normal(0, 2, 2).astype(np.float32))

    image = rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    male = np.array([1, 0, 1, -1])
    batch = {"image": tf.constant(image), "male": tf.constant(male, tf.int64),
             "flipped": tf.constant([False, True, False, False])}
    total, report = task.per_example(batch, tf.constant(0, tf.int64))

    # By hand, from the autoencoder's outputs for the same prototypes.
    same, opposite = task.prototypes_of(batch)
    outputs = task.model({"image": batch["image"], "same_prototype": same,
                          "opposite_prototype": opposite})
    x_sm, x_op = outputs["same"].numpy(), outputs["opposite"].numpy()
    known = (male >= 0).astype(np.float32)
    label = np.maximum(male, 0)
    per_member, flips = [], []
    for classifier in classifiers:
        logits_sm, logits_op = classifier(x_sm).numpy(), classifier(x_op).numpy()
        per_member.append((cross_entropy(logits_sm, label) * known,
                           cross_entropy(logits_op, 1 - label) * known))
        flips.append((logits_op.argmax(axis=1) != label).astype(np.float32))
    gender = np.mean([s + o for s, o in per_member], axis=0)
    assert not np.allclose(gender, per_member[0][0] + per_member[0][1], rtol=1e-2)

    expected = (2.0 * gender + 3.0 * (report["match_same"] + report["match_opposite"])
                + 0.5 * report["pixel"])
    np.testing.assert_allclose(total, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(report["loss"], expected, rtol=1e-4, atol=1e-6)
    # The paper's CNN's terms keep their report names.
    np.testing.assert_allclose(report["gender_same"], per_member[0][0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(report["gender_opposite"], per_member[0][1], rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_array_equal(report["flip_rate_opposite"], flips[0])
    np.testing.assert_allclose(report["flip_rate_ensemble"], np.mean(flips, axis=0), rtol=1e-6)


def test_three_element_load_models_still_means_no_ensemble(tmp_path):
    # Old callers (benchmarks, the trainer tests) return (autoencoder, gender, matcher) only.
    config = _ensemble_config(tmp_path, 0)
    task = SanTask(config, fixed_prototypes(), lambda: build_models(config))
    assert "flip_rate_ensemble" not in task.reports
    task.build()
    assert task.gender_members == ()
    _, report = task.per_example({"image": tf.zeros([2, SIZE, SIZE, 3]),
                                  "male": tf.constant([0, 1], tf.int64)}, 0)
    assert set(report) == set(task.reports)
    # A config that asks for members then fails at build, naming the mismatch.
    asks = _ensemble_config(tmp_path, 1)
    task = SanTask(asks, fixed_prototypes(), lambda: build_models(asks))
    with pytest.raises(ValueError, match="0 extra gender classifiers, but gender_ensemble is 1"):
        task.build()


def test_two_replica_san_step_trains_against_the_members(tmp_path):
    config = _ensemble_config(tmp_path, 2)
    histories = {}
    for name, strategy in (("one", tf.distribute.OneDeviceStrategy("/cpu:0")),
                           ("two", distribute.make_strategy("mirrored"))):
        task = _ensemble_task(config)
        result = trainer.train(task, config.san, config, strategy, tmp_path / name)
        histories[name] = result.history
    assert strategy.num_replicas_in_sync == 2
    assert [step for step, _ in histories["two"]] == [1, 2]
    for (_, one), (_, two) in zip(histories["one"], histories["two"]):
        assert set(two) == set(task.reports) and "flip_rate_ensemble" in two
        assert 0.0 <= two["flip_rate_ensemble"] <= 1.0
        for key in one:
            np.testing.assert_allclose(one[key], two[key], rtol=1e-4, atol=1e-5, err_msg=key)
    # Frozen members (BatchNormalization statistics included) end as they started.
    for k, member in enumerate(task.gender_members, start=1):
        for current, initial in zip(member.get_weights(), _member(config, k).get_weights()):
            np.testing.assert_array_equal(current, initial)


# Slow (~16 s: a whole job); the default run keeps the members' recipes and the
# two-replica step against them.
@pytest.mark.slow
def test_main_job_pretrains_the_members(tmp_path):
    config = tiny_job_config(tmp_path, steps=2, gender_ensemble=1, export_dir=None)
    summary = main_job.run(config)
    work = tmp_path / "work"
    for stage in ("gender", "gender_1", "matcher", "autoencoder", "san"):
        assert (work / stage / "model.keras").exists(), stage
    assert list((work / "gender_1" / "ckpt").glob("ckpt-2*"))
    member = keras.models.load_model(work / "gender_1" / "model.keras", safe_mode=True)
    assert member.name == "gender_member1"
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in member.layers)
    assert json.loads((work / "config.json").read_text())["gender_ensemble"] == 1
    assert 0.0 <= summary["flip_rate_opposite"] <= 1.0
    assert summary["export"] is None


def parsed_train_config(*argv):
    """The binaries' TrainConfig from these flags (the parsed flags are reset after)."""
    from semiadv.apps import train_flags

    try:
        flags.FLAGS(["test", *argv, "--mixed_precision=none"])
        return train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()


def test_gender_jitter_is_validated_and_reaches_the_config():
    assert TrainConfig().gender_jitter == 0.0
    with pytest.raises(ValueError, match=r"gender_jitter must be in \[0, 0.5\), got 0.6"):
        TrainConfig(gender_jitter=0.6)
    config = parsed_train_config("--gender_jitter=0.1")
    assert config.gender_jitter == 0.1
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    # A SAN trained with other views is another SAN: a resumed run must not mix them.
    from semiadv.train import stages
    assert "gender_jitter" in stages.STAGE_SETTINGS["san"]


def test_gender_jitter_feeds_each_classifier_its_own_views(tmp_path, monkeypatch):
    from semiadv.models import dlib_resnet

    config = dataclasses.replace(_ensemble_config(tmp_path, 2), gender_jitter=0.1,
                                 match_weight=0.0, pixel_weight=0.0)
    task = _ensemble_task(config)
    task.build()
    classifiers = (task.gender, *task.gender_members)
    rng = np.random.default_rng(1)
    for classifier in classifiers:
        # Random nets barely tell random faces apart: scaled up, their logits move with the
        # pixels, so rolled and unrolled views score apart.
        logits_layer = classifier.get_layer("logits")
        logits_layer.kernel.assign(logits_layer.kernel * 100.0)
    # A stand-in for the random views that each call makes different and checkable: call k
    # rolls the images k + 1 pixels down.
    calls = []

    def views(images, jitter):
        assert jitter == 0.1 and len(images) == 2
        calls.append(len(calls) + 1)
        return [tf.roll(image, calls[-1], axis=1) for image in images]

    monkeypatch.setattr(dlib_resnet, "jittered_views", views)
    image = rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    male = np.array([1, 0, 1, 0])
    batch = {"image": tf.constant(image), "male": tf.constant(male, tf.int64)}
    total, report = task.per_example(batch, tf.constant(0, tf.int64))
    assert calls == [1, 2, 3]  # One draw per classifier, G_0 first.

    same, opposite = task.prototypes_of(batch)
    outputs = task.model({"image": batch["image"], "same_prototype": same,
                          "opposite_prototype": opposite})
    expected, plain = [], []
    for shift, classifier in enumerate(classifiers, start=1):
        for views_of, into in ((lambda x: np.roll(x, shift, axis=1), expected),
                               (lambda x: x, plain)):
            logits_sm = classifier(views_of(outputs["same"].numpy())).numpy()
            logits_op = classifier(views_of(outputs["opposite"].numpy())).numpy()
            into.append(cross_entropy(logits_sm, male) + cross_entropy(logits_op, 1 - male))
    np.testing.assert_allclose(total, np.mean(expected, axis=0), rtol=1e-4, atol=1e-6)
    # The views matter: the unjittered term is another number.
    assert not np.allclose(total, np.mean(plain, axis=0), rtol=1e-3)


def test_gender_jitter_passes_gradients_to_the_autoencoder(tmp_path):
    config = dataclasses.replace(_ensemble_config(tmp_path, 1), gender_jitter=0.1,
                                 match_weight=0.0, pixel_weight=0.0)
    task = _ensemble_task(config)
    task.build()
    rng = np.random.default_rng(2)
    batch = {"image": tf.constant(rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)),
             "male": tf.constant([1, 0, 1, 0], tf.int64)}
    with tf.GradientTape() as tape:
        total, _ = task.per_example(batch, tf.constant(0, tf.int64))
        loss = tf.reduce_mean(total)
    gradients = tape.gradient(loss, task.model.trainable_variables)
    norms = [float(tf.norm(g)) for g in gradients if g is not None]
    assert len(norms) == len(task.model.trainable_variables)
    assert all(np.isfinite(norms)) and max(norms) > 0


def test_encoder_prototype_is_validated_and_reaches_the_autoencoder():
    from semiadv.models import autoencoders
    from semiadv.train import stages
    from semiadv.config import NetworkConfig

    assert NetworkConfig().encoder_prototype == "same"
    with pytest.raises(ValueError, match="encoder_prototype must be one of"):
        NetworkConfig(encoder_prototype="opposite")
    config = parsed_train_config("--encoder_prototype=own")
    assert config.networks.encoder_prototype == "own"
    assert from_dict(TrainConfig, json.loads(to_json(config))) == config
    assert "networks.encoder_prototype" in stages.STAGE_SETTINGS["autoencoder"]
    task = AutoencoderTask(dataclasses.replace(
        config, data=dataclasses.replace(config.data, image_size=SIZE)), fixed_prototypes())
    assert autoencoders.encoder_prototype_of(task.build()) == "own"
    difference = parsed_train_config("--encoder_prototype=difference")
    task = AutoencoderTask(dataclasses.replace(
        difference, data=dataclasses.replace(difference.data, image_size=SIZE)), fixed_prototypes())
    assert autoencoders.encoder_prototype_of(task.build()) == "difference"
