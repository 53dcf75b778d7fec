"""Sequential SANs (FlowSAN): links, their classifiers and stages, training, resume and export."""

import json
import re

import keras
import numpy as np
import pytest
from absl import logging as absl_logging
import tensorflow as tf

from _python import run_python
from semiadv.config import StageConfig, TrainConfig
from semiadv.errors import UserValueError
from semiadv.prototypes import mixing, storage
from semiadv.train import flow, main_job, stages, trainer
from semiadv.train.san_task import SanTask
from test_main_job import tiny_job_config


def test_links_stages_and_classifiers():
    config = TrainConfig(flow_links=3, gender_ensemble=1)
    assert flow.link_stages(config) == ("san", "san_2", "san_3")
    assert [flow.link_index(s) for s in ("san", "san_2", "san_12", "san_1", "gender")] == [
        1, 2, 12, None, None]
    # Links 2 and 3 each get a classifier of their own, past the ensemble's member 1.
    assert flow.auxiliary_stages(config) == ("gender_2", "gender_3")
    assert stages.stage_order(config) == (
        "prototypes", "gender", "gender_1", "gender_2", "gender_3", "matcher", "autoencoder",
        "san", "san_2", "san_3")
    # A link is trained from the links before it; every link from the networks.
    assert stages.trained_from("san_2", config) == ("san_2", "san_3")
    assert stages.trained_from("san", config) == ("san", "san_2", "san_3")
    assert stages.trained_from("gender_3", config) == ("gender_3", "san", "san_2", "san_3")
    assert stages.trained_from("prototypes", config)[-4:] == (
        "autoencoder", "san", "san_2", "san_3")
    # One link: the stages of a run without chains.
    assert stages.stage_order(TrainConfig()) == (
        "prototypes", "gender", "matcher", "autoencoder", "san")


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_flow_links_must_be_a_positive_integer(value):
    with pytest.raises(UserValueError, match="flow_links must be an integer >= 1"):
        TrainConfig(flow_links=value)


_ORIGINAL_SAVE = tf.train.CheckpointManager.save


class _Killed(BaseException):
    """A hard kill: nothing in the job catches it."""


def _kill_after_checkpoint(monkeypatch, stage_name, step):
    """Makes the run die right after `stage_name` saves its checkpoint of `step`."""
    def save(self, *args, **kwargs):
        path = _ORIGINAL_SAVE(self, *args, **kwargs)
        if f"/{stage_name}/ckpt" in path and path.endswith(f"ckpt-{step}"):
            raise _Killed(path)
        return path

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save)


def _files(directory):
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns
            for p in sorted(directory.rglob("*")) if p.is_file()}


# Slow (~40 s: two links trained, killed, resumed, exported); the default run keeps the
# chain grown from one link and the per-link retraining tests below.
@pytest.mark.slow
def test_a_two_link_chain_resumes_per_link_and_exports_one_perturber(
        tmp_path, monkeypatch, caplog):
    built = []
    original_build = SanTask.build

    def spy_build(self):
        model = original_build(self)
        built.append((self.link, self.gender.name, len(self.gender_members),
                      [link.name for link in self.earlier_links]))
        return model

    monkeypatch.setattr(SanTask, "build", spy_build)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    caplog.set_level("INFO")
    # Killed right after link 2's checkpoint of step 1 (of 2).
    short = StageConfig(steps=1, learning_rate=1e-3)  # The networks matter little here.
    config = tiny_job_config(tmp_path, steps=2, steps_per_loop=1, checkpoint_every=1,
                             flow_links=2, gender=short, matcher=short,
                             autoencoder=StageConfig(steps=0))
    _kill_after_checkpoint(monkeypatch, "san_2", 1)
    try:
        with pytest.raises(_Killed):
            main_job.run(config)
        work = tmp_path / "work"
        assert trainer.stage_done(work / "san") and not trainer.stage_done(work / "san_2")
        assert (work / "gender_1" / "model.keras").exists()  # Link 2's classifier.
        assert [b[0] for b in built] == [1, 2]
        finished = {stage: _files(work / stage) for stage in ("gender", "gender_1", "san")}

        monkeypatch.setattr(tf.train.CheckpointManager, "save", _ORIGINAL_SAVE)
        caplog.clear()
        summary = main_job.run(config)
    finally:
        absl_logging.set_verbosity(verbosity)
    # Finished links and classifiers were not trained again: not a file of theirs changed.
    assert {stage: _files(work / stage) for stage in finished} == finished
    assert "san: done already" in caplog.text and "gender_1: done already" in caplog.text
    assert re.search(r"san_2: resumed from \S*ckpt-1\b", caplog.text), caplog.text[-2000:]
    assert "san_2 step 2/2" in caplog.text and "san_2 step 1/2" not in caplog.text
    assert "san step" not in caplog.text
    assert trainer.stage_done(work / "san_2")
    # Link 2 trained against its own classifier (the ensemble recipe 1: a VGG), on link 1.
    assert built[-1] == (2, "gender_member1", 0, ["autoencoder"])
    assert keras.models.load_model(work / "gender" / "model.keras").name != \
        keras.models.load_model(work / "gender_1" / "model.keras").name
    record = json.loads((work / "san_2" / "stage_config.json").read_text())
    assert record["stage"] == "san_2"

    # One perturber: the export's signatures and its .keras file apply link 1, then link 2.
    export = tmp_path / "exports" / "tiny" / "1"
    assert summary["export"] == str(export)
    links = [keras.models.load_model(work / s / "model.keras") for s in ("san", "san_2")]
    prototypes = storage.load_prototypes(work / "prototypes.npz")
    faces = np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)).astype(np.float32)
    male = np.array([1, 0, 1, 0], np.float32)
    p_male, p_female = tf.constant(prototypes.male), tf.constant(prototypes.female)
    same = mixing.same_prototype(tf.constant(male), p_male, p_female)
    opposite = mixing.opposite_prototype(tf.constant(male), p_male, p_female)
    by_link = tf.constant(faces)
    for link in links:  # X'_OP of X'_OP: one link after the other.
        by_link = link({"image": by_link, "same_prototype": same,
                        "opposite_prototype": opposite})["opposite"]
    loaded = tf.saved_model.load(str(export))
    served = loaded.signatures["opposite_labelled"](image=tf.constant(faces),
                                                    male=tf.constant(male))["perturbed"]
    np.testing.assert_allclose(served, by_link, atol=1e-5)
    # perturber.keras, opened by Keras alone (no semiadv import, safe mode) in a fresh process.
    np.save(tmp_path / "faces.npy", faces)
    np.save(tmp_path / "want.npy", by_link.numpy())
    code = (
        "import sys, numpy as np, keras\n"
        f"model = keras.models.load_model({str(export / 'perturber.keras')!r})\n"
        f"faces = np.load({str(tmp_path / 'faces.npy')!r})\n"
        "out = model({'image': faces, 'male': np.array([1, 0, 1, 0], np.float32)})\n"
        "np.testing.assert_allclose(keras.ops.convert_to_numpy(out['opposite']),"
        f" np.load({str(tmp_path / 'want.npy')!r}), atol=1e-5)\n"
        "assert 'semiadv' not in sys.modules\n"
        "print('same outputs')\n")
    assert "same outputs" in run_python(code).stdout
    one_link = links[0]({"image": tf.constant(faces), "same_prototype": same,
                         "opposite_prototype": opposite})["opposite"]
    assert np.abs(by_link - one_link).max() > 1e-4  # Link 2 does something.



def test_a_finished_one_link_work_dir_grows_into_a_chain_without_retraining(tmp_path):
    """flow_links shapes no finished stage: raising it trains only the new links."""
    one = TrainConfig(workdir=str(tmp_path))
    for stage in ("gender", "matcher", "autoencoder", "san"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / trainer.FINAL_MODEL).write_bytes(b"finished")
        stages.record(one, stage)
    stages.check(TrainConfig(workdir=str(tmp_path), flow_links=3))
    with pytest.raises(stages.StageMismatchError, match="--san_steps"):
        stages.check(TrainConfig(workdir=str(tmp_path), flow_links=3,
                                 san=one.san.__class__(steps=7)))


def test_retraining_a_link_also_deletes_longer_chains_links_trained_from_it(tmp_path):
    three = TrainConfig(workdir=str(tmp_path), flow_links=3)
    for stage in ("gender", "gender_1", "gender_2", "matcher", "autoencoder", "san", "san_2",
                  "san_3"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / trainer.FINAL_MODEL).write_bytes(b"finished")
        stages.record(three, stage)
    shorter = TrainConfig(workdir=str(tmp_path), flow_links=2, san=three.san.__class__(steps=7))
    # san_3 is not a stage of a 2-link run, but it was trained on the san_2 retrained here.
    assert stages.retrain(shorter, ["san"]) == ("san", "san_2", "san_3")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "autoencoder", "gender", "gender_1", "gender_2", "matcher"]


def test_the_run_summary_lists_each_link_and_its_classifier():
    from semiadv.train import run_summary

    lines = [line.strip() for line in run_summary.trained_lines(
        TrainConfig(flow_links=3, gender_ensemble=1, san=StageConfig(steps=9)))]
    assert lines[:4] == ["gender CNN (auxiliary classifier): 600 steps",
                         "extra gender classifier gender_1: 600 steps",
                         "gender classifier of link 2, gender_2: 600 steps",
                         "gender classifier of link 3, gender_3: 600 steps"]
    assert lines[-2:] == ["SAN link 2 (san_2, on link 1's outputs): 9 steps",
                          "SAN link 3 (san_3, on link 2's outputs): 9 steps"]
    assert not any("link" in line for line in run_summary.trained_lines(TrainConfig()))


def test_extra_classifiers_can_read_faces_at_their_own_sizes(tmp_path):
    from semiadv.config import DataConfig, NetworkConfig
    from semiadv.train import ensemble
    from test_ensemble import parsed_train_config

    config = TrainConfig(data=DataConfig(image_size=16),
                         networks=NetworkConfig(classifier_width=0.125),
                         member_input_sizes=(24, 16), flow_links=3)
    members = [ensemble.gender_member(config, k) for k in (1, 2, 3)]
    assert [m.input_size for m in members] == [24, None, 24]  # 16 is the data's own side.
    assert ensemble.gender_member(TrainConfig(), 1).input_size is None
    faces = tf.constant(np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)), tf.float32)
    network = ensemble.build_gender_member(members[0], 16, 3)
    assert network.get_layer("input_resize").get_config()["height"] == 24
    assert network.get_layer("gender_member1_network").input.shape == (None, 24, 24, 3)
    with tf.GradientTape() as tape:
        tape.watch(faces)
        logits = network(faces, training=False)
        loss = tf.reduce_sum(logits[:, 1] - logits[:, 0])
    gradient = tape.gradient(loss, faces).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0
    network.save(tmp_path / "member.keras")
    loaded = keras.models.load_model(tmp_path / "member.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(faces, training=False), logits, atol=1e-6)

    with pytest.raises(UserValueError, match=r"member_input_sizes must be integers >= 16"):
        TrainConfig(member_input_sizes=(8,))
    parsed = parsed_train_config("--member_input_sizes=48,96", "--image_size=64")
    assert parsed.member_input_sizes == (48, 96)
    assert "member_input_sizes" in stages.STAGE_SETTINGS["gender"]


def test_member_input_sizes_shape_the_extra_classifiers_not_the_papers_cnn(tmp_path):
    plain = TrainConfig(workdir=str(tmp_path), gender_ensemble=1)
    for stage in ("gender", "gender_1"):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / trainer.FINAL_MODEL).write_bytes(b"finished")
        stages.record(plain, stage)
    sized = TrainConfig(workdir=str(tmp_path), gender_ensemble=1, member_input_sizes=(48,))
    assert [(d.stage, d.field) for d in stages.differences(sized)] == [
        ("gender_1", "member_input_sizes")]
