"""The distributed SAN step: equivalence across device counts, loss terms, frozen nets, resume."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from semiadv.train import distribute
from semiadv.train.autoencoder_task import AutoencoderTask
from semiadv.train.matcher_task import MatcherTask
from semiadv.train.san_task import SanTask
from semiadv.train import trainer
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig

# The tiny nets and prototypes the multi-worker and fault tests train too.
from _worker import SIZE, build_models, fixed_prototypes  # noqa: E402


def san_config(tmp_path, **overrides):
    values = dict(
        data=DataConfig(dataset="synthetic", image_size=SIZE, channels=3, batch_size=8,
                        synthetic_identities=12, synthetic_images_per_identity=4),
        networks=NetworkConfig(encoder_filters=(4, 4), decoder_filters=(8, 8),
                               classifier_width=0.125, matcher_width=0.125, embedding_dim=8),
        workdir=str(tmp_path), san=StageConfig(steps=4, learning_rate=1e-2),
        checkpoint_every=2, steps_per_loop=2, export_dir=None)
    values.update(overrides)
    return TrainConfig(**values)


def fixed_models(config):
    """Autoencoder, gender CNN and matcher weights, fixed by a seed."""
    keras.utils.set_random_seed(7)
    return [model.get_weights() for model in build_models(config)]


def fixed_san_task(config, weights):
    def load_models():
        models = build_models(config)
        for model, values in zip(models, weights):
            model.set_weights(values)
        return models

    return SanTask(config, fixed_prototypes(), load_models)


def _one_device():
    return tf.distribute.OneDeviceStrategy("/cpu:0")


def _two_devices():
    strategy = distribute.make_strategy("mirrored")  # The product's: the 2 logical CPUs.
    assert strategy.num_replicas_in_sync == 2
    return strategy


def test_two_replicas_match_one_device(tmp_path):
    config = san_config(tmp_path)
    weights = fixed_models(config)
    runs = {}
    for name, strategy in (("one", _one_device()), ("two", _two_devices())):
        task = fixed_san_task(config, weights)
        result = trainer.train(task, config.san, config, strategy, tmp_path / name)
        runs[name] = (result, task)
    one, two = runs["one"][0], runs["two"][0]
    assert [step for step, _ in one.history] == [2, 4]
    for (_, values_one), (_, values_two) in zip(one.history, two.history):
        assert values_one.keys() == values_two.keys()
        for key in values_one:
            np.testing.assert_allclose(values_one[key], values_two[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)
    start = weights[0]
    moved = False
    for before, w_one, w_two in zip(start, one.model.get_weights(), two.model.get_weights()):
        np.testing.assert_allclose(w_one, w_two, rtol=1e-4, atol=1e-5)
        moved |= not np.allclose(before, w_one)
    assert moved, "the autoencoder did not learn"
    # Frozen nets do not change.
    _, task_two = runs["two"]
    for model, values in ((task_two.gender, weights[1]), (task_two.matcher, weights[2])):
        for current, original in zip(model.get_weights(), values):
            np.testing.assert_array_equal(current, original)


def cross_entropy(logits, label):
    logits = logits - logits.max(axis=1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(len(label)), label]


def _lab(rgb):
    """sRGB in [0, 1] -> CIELAB (D65), the textbook formulas in float64."""
    rgb = rgb.astype(np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                             [0.0193339, 0.1191920, 0.9503041]]).T / [0.95047, 1.0, 1.08883]
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


@pytest.mark.parametrize("fidelity", [False, True, "tolerance"],
                         ids=["paper", "fidelity", "tolerance_no_match_same"])
def test_san_loss_terms_equal_hand_computation(tmp_path, fidelity):
    # `fidelity`: the SM gender term at 0.25 and the two fidelity terms on X'_OP switched on;
    # "tolerance" also leaves out the SM match term and frees the colour term below a
    # tolerance set (below) between the faces' ΔE values, so both sides of the hinge count.
    extra = dict(gender_same_weight=0.25, ssim_weight=4.0, colour_weight=0.1) if fidelity else {}
    if fidelity == "tolerance":
        extra["match_same"] = False
    config = san_config(tmp_path, gender_weight=2.0, match_weight=3.0, pixel_weight=0.5,
                     match_warmup_steps=5, **extra)
    weights = fixed_models(config)
    task = fixed_san_task(config, weights)
    task.build()
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (4, SIZE, SIZE, 3)).astype(np.float32)
    male = np.array([1, 0, 1, -1])
    flipped = np.array([True, False, False, True])
    batch = {"image": tf.constant(image), "male": tf.constant(male, tf.int64),
             "flipped": tf.constant(flipped)}

    # Hand computation, from the models' raw outputs and numpy formulas.
    protos = fixed_prototypes()
    y = np.maximum(male, 0)[:, None, None, None].astype(np.float32)
    same = y * protos.male + (1 - y) * protos.female
    opposite = (1 - y) * protos.male + y * protos.female
    same[flipped] = same[flipped][:, :, ::-1]
    opposite[flipped] = opposite[flipped][:, :, ::-1]
    outputs = task.model({"image": image, "same_prototype": same, "opposite_prototype": opposite})
    x_sm, x_op = outputs["same"].numpy(), outputs["opposite"].numpy()
    known = (male >= 0).astype(np.float32)
    label = np.maximum(male, 0)
    gender_same = cross_entropy(task.gender(x_sm).numpy(), label) * known
    gender_opposite = cross_entropy(task.gender(x_op).numpy(), 1 - label) * known
    original = task.matcher(image).numpy()
    match_same = ((original - task.matcher(x_sm).numpy()) ** 2).sum(axis=1)
    match_opposite = ((original - task.matcher(x_op).numpy()) ** 2).sum(axis=1)
    pixel = np.abs(image - x_sm).mean(axis=(1, 2, 3))
    ssim = tf.image.ssim(image, x_op, max_val=1.0, filter_size=min(11, SIZE)).numpy()
    colour_map = np.sqrt(((_lab(image) - _lab(x_op)) ** 2).sum(axis=-1))
    colour = colour_map.mean(axis=(1, 2))
    colour_cost = colour
    if fidelity == "tolerance":
        match_same = np.zeros_like(match_same)
        # Per pixel: some pixels of every face above the tolerance, some below.
        tolerance = float(np.median(colour_map))
        assert np.all((colour_map > tolerance).any(axis=(1, 2)))
        assert np.all((colour_map < tolerance).any(axis=(1, 2)))
        colour_cost = np.maximum(colour_map - tolerance, 0.0).mean(axis=(1, 2))
        # Per pixel is not the hinge of the mean: with pixels on both sides it costs more.
        assert np.all(colour_cost > np.maximum(colour - tolerance, 0.0) + 1e-4)
        config = dataclasses.replace(config, colour_tolerance=tolerance)
        task.config = config

    for step, match_on in ((0, 0.0), (5, 1.0)):
        total, report = task.per_example(batch, tf.constant(step, tf.int64))
        np.testing.assert_allclose(report["gender_same"], gender_same, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(report["gender_opposite"], gender_opposite, rtol=1e-4,
                                   atol=1e-6)
        np.testing.assert_allclose(report["match_same"], match_same, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(report["match_opposite"], match_opposite, rtol=1e-4,
                                   atol=1e-7)
        np.testing.assert_allclose(report["pixel"], pixel, rtol=1e-5)
        np.testing.assert_allclose(report["ssim_opposite"], ssim, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(report["colour_opposite"], colour, rtol=1e-3, atol=1e-4)
        expected = (2.0 * (config.gender_same_weight * gender_same + gender_opposite)
                    + 3.0 * match_on * (match_same + match_opposite) + 0.5 * pixel
                    + config.ssim_weight * (1 - ssim) + config.colour_weight * colour_cost)
        np.testing.assert_allclose(total, expected, rtol=1e-4, atol=1e-6)
    assert report["gender_same"][3] == 0.0  # Unknown gender contributes no gender loss.


def test_residual_san_starts_at_the_identity_and_learns_a_change(tmp_path):
    """`NetworkConfig.residual`: the distributed step trains the skip-connected autoencoder."""
    config = san_config(tmp_path, networks=dataclasses.replace(san_config(tmp_path).networks,
                                                            residual=True),
                     san=StageConfig(steps=6, learning_rate=1e-2), checkpoint_every=3,
                     steps_per_loop=3)
    weights = fixed_models(config)
    task = fixed_san_task(config, weights)
    result = trainer.train(task, config.san, config, _two_devices(), tmp_path / "residual")
    image = np.random.default_rng(0).uniform(0.1, 0.9, (4, SIZE, SIZE, 3)).astype(np.float32)
    protos = fixed_prototypes()
    inputs = {"image": image, "same_prototype": np.broadcast_to(protos.male, image.shape),
              "opposite_prototype": np.broadcast_to(protos.female, image.shape)}
    # The zero-initialised combiner: before training, both outputs are the input itself.
    before = build_models(config)[0]
    before.set_weights(weights[0])
    for value in before(inputs).values():
        np.testing.assert_array_equal(value, image)
    # After it, the gender term has made X'_OP differ from the face, more than X'_SM does
    # (the pixel loss holds X'_SM to the face, nothing holds X'_OP to it).
    outputs = {k: v.numpy() for k, v in result.model(inputs).items()}
    change_same = np.abs(outputs["same"] - image).mean()
    change_opposite = np.abs(outputs["opposite"] - image).mean()
    assert change_opposite > 1e-3 and change_opposite > change_same
    _, last = result.history[-1]
    assert np.isfinite(last["loss"]) and last["pixel"] > 0


def test_interrupted_run_resumes_from_last_checkpoint(tmp_path, monkeypatch):
    config = san_config(tmp_path, san=StageConfig(steps=6, learning_rate=1e-2))
    weights = fixed_models(config)
    uninterrupted = trainer.train(fixed_san_task(config, weights), config.san, config,
                                  _one_device(), tmp_path / "straight")

    class Killed(Exception):
        pass

    original_save = tf.train.CheckpointManager.save

    def save_then_die(self, checkpoint_number=None, **kwargs):
        path = original_save(self, checkpoint_number=checkpoint_number, **kwargs)
        if checkpoint_number == 4:
            raise Killed()
        return path

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_then_die)
    with pytest.raises(Killed):
        trainer.train(fixed_san_task(config, weights), config.san, config, _one_device(),
                      tmp_path / "killed")
    monkeypatch.undo()
    assert not trainer.stage_done(tmp_path / "killed")
    resumed = trainer.train(fixed_san_task(config, weights), config.san, config, _one_device(),
                            tmp_path / "killed")
    assert [step for step, _ in resumed.history] == [6]  # Only the steps after the checkpoint.
    assert trainer.stage_done(tmp_path / "killed")
    for a, b in zip(uninterrupted.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Done stages are not retrained.
    again = trainer.train(fixed_san_task(config, weights), config.san, config, _one_device(),
                          tmp_path / "killed")
    assert again.history == []


def test_non_finite_loss_stops_and_keeps_checkpoint(tmp_path):
    config = san_config(tmp_path, san=StageConfig(steps=6, learning_rate=1e-2))
    weights = fixed_models(config)
    trainer.train(fixed_san_task(config, weights), dataclasses.replace(config.san, steps=2), config,
                  _one_device(), tmp_path / "run")
    checkpoint_files = sorted(p.name for p in (tmp_path / "run" / "ckpt").iterdir())
    (tmp_path / "run" / trainer.FINAL_MODEL).unlink()  # Pretend the stage goes on to 6 steps.

    task = fixed_san_task(config, weights)
    original = task.per_example

    def poisoned(batch, step):
        total, report = original(batch, step)
        pixel = report["pixel"] * tf.where(step >= 3, np.nan, 1.0)
        return total + pixel, {**report, "pixel": pixel}

    task.per_example = poisoned
    with pytest.raises(trainer.NonFiniteLossError, match=r"non-finite .*pixel.* steps 3\.\.4"):
        trainer.train(task, config.san, config, _one_device(), tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "run" / "ckpt").iterdir()) == checkpoint_files
    assert not trainer.stage_done(tmp_path / "run")


def test_batch_must_split_over_replicas(tmp_path):
    config = san_config(tmp_path, data=dataclasses.replace(san_config(tmp_path).data, batch_size=7))
    with pytest.raises(ValueError, match="batch_size=7"):
        trainer.train(fixed_san_task(config, fixed_models(config)), config.san, config,
                      _two_devices(), tmp_path / "odd")


def _event_tags(log_dir):
    tags = {}
    for path in log_dir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags[value.tag] = value.metadata.plugin_data.plugin_name
    return tags


@pytest.mark.parametrize("image_summaries", [False, True])
def test_faces_reach_tensorboard_only_when_asked(tmp_path, image_summaries):
    config = san_config(tmp_path, image_summaries=image_summaries,
                     san=StageConfig(steps=2, learning_rate=1e-2))
    trainer.train(fixed_san_task(config, fixed_models(config)), config.san, config, _one_device(),
                  tmp_path / "run")
    tags = _event_tags(tmp_path / "run" / "logs")
    assert {"san/loss", "san/flip_rate_opposite", "san/accuracy_same", "san/match_same"} <= set(tags)
    image_tags = {tag for tag, plugin in tags.items() if plugin == "images"}
    assert image_tags == ({"san/original", "san/same", "san/opposite"} if image_summaries else set())


def test_matcher_learns_identities_from_its_own_dataset(tmp_path):
    # The main set (as UTKFace) would give the matcher no identities; --matcher_dataset does.
    config = san_config(tmp_path, matcher=StageConfig(steps=2, learning_rate=1e-4),
                     matcher_dataset="synthetic")
    config = dataclasses.replace(config, data=dataclasses.replace(
        config.data, dataset="utkface:/nonexistent"))
    task = MatcherTask(config)
    assert task.data.dataset == "synthetic"
    assert task.data.image_size == config.data.image_size
    result = trainer.train(task, config.matcher, config, _one_device(), tmp_path / "matcher")
    assert [step for step, _ in result.history] == [2]


def test_warped_prototypes_follow_each_faces_landmarks(tmp_path):
    template = np.array([[5, 6], [10, 6], [8, 9], [6, 12], [10, 12]], np.float32)
    protos = dataclasses.replace(fixed_prototypes(), landmarks=template)
    config = san_config(tmp_path, warp_prototypes=True)
    task = AutoencoderTask(config, protos)
    shift = np.array([2.0, 0.0], np.float32)
    batch = {"male": tf.constant([1, 0], tf.int64),
             "landmarks": tf.constant(np.stack([template, template + shift]))}
    same, opposite = (t.numpy() for t in task.prototypes_of(batch))
    # Where the landmarks are the template's, the prototype is unchanged; shifted landmarks
    # shift it (away from the borders, which are filled).
    np.testing.assert_allclose(same[0], protos.male, atol=1e-5)
    np.testing.assert_allclose(opposite[1][:, 4:14], protos.male[:, 2:12], atol=1e-5)
    np.testing.assert_allclose(same[1][:, 4:14], protos.female[:, 2:12], atol=1e-5)
    with pytest.raises(ValueError, match="needs landmarks"):
        AutoencoderTask(config, fixed_prototypes())


@pytest.mark.parametrize("flip_augment", [True, False])
def test_flip_augment_flag_decides_whether_faces_are_flipped(tmp_path, monkeypatch,
                                                             flip_augment):
    """--noflip_augment reaches the input pipeline: no face (nor its prototype) is flipped."""
    config = san_config(tmp_path, flip_augment=flip_augment,
                        san=StageConfig(steps=2, learning_rate=1e-2))
    flipped_seen = []
    original_distribute = trainer.input_pipeline.distribute

    def recording_distribute(*args, **kwargs):
        dataset = original_distribute(*args, **kwargs)
        flipped_seen.append(kwargs.get("augment"))
        return dataset

    monkeypatch.setattr(trainer.input_pipeline, "distribute", recording_distribute)
    trainer.train(fixed_san_task(config, fixed_models(config)), config.san, config,
                  _one_device(), tmp_path / "san")
    assert flipped_seen == ["flip" if flip_augment else None]
    batch = next(iter(trainer.input_pipeline.make_dataset(
        config.data, "train", training=True, augment=trainer.training_augment(
            fixed_san_task(config, None), config))))
    assert ("flipped" in batch) == flip_augment
