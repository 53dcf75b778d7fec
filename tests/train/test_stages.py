"""Stage records: a rerun whose flags would change a finished stage refuses before any work,
settings that shape no weights take effect, and --retrain_from retrains what it names."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from semiadv.train import main_job
from semiadv.train import stages
from semiadv.config import StageConfig, TrainConfig
from test_main_job import tiny_job_config


def test_every_train_config_field_is_placed_once():
    """A new TrainConfig field must be placed deliberately: until then it shapes every stage."""
    placed = [*stages.NOT_TRAINING, *stages.NOT_PROTOTYPES, *stages.EVERY_STAGE,
              *(name for names in stages.STAGE_SETTINGS.values() for name in names)]
    assert len(placed) == len(set(placed)), "a field is in two lists"
    fields = set(stages.flatten(TrainConfig()))
    assert fields - set(placed) == set(), "fields in no list of semiadv/train/stages.py"
    assert set(placed) - fields == set(), "listed fields that TrainConfig does not have"


def test_an_unlisted_field_shapes_every_stage():
    flat = {**stages.flatten(TrainConfig()), "brand_new_setting": 3}
    for stage in ("prototypes", "gender", "gender_2", "matcher", "autoencoder", "san"):
        assert stages.settings(flat, stage)["brand_new_setting"] == 3, stage


def test_settings_follow_what_each_stage_is_trained_from():
    flat = stages.flatten(TrainConfig())
    gender, san = stages.settings(flat, "gender"), stages.settings(flat, "san")
    assert "gender.steps" in gender and "san.steps" not in gender
    assert "matcher.steps" not in gender and "export_dir" not in san
    assert {"gender.steps", "matcher.steps", "autoencoder.steps", "san.steps"} <= set(san)
    assert "data.batch_size" not in stages.settings(flat, "prototypes")
    assert "warp_prototypes" in stages.settings(flat, "autoencoder")


def _record(config, stage):
    return json.loads(stages.record_path(config.workdir, stage).read_text())["settings"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny work dir (no export: exporting takes half a minute)."""
    config = tiny_job_config(tmp_path_factory.mktemp("trained"), steps=2, export_dir=None)
    main_job.run(config)
    return config


@pytest.fixture
def finished(trained, tmp_path):
    """A copy of the finished work dir, for a test to change."""
    shutil.copytree(trained.workdir, tmp_path / "work")
    return dataclasses.replace(trained, workdir=str(tmp_path / "work"))


def test_finished_stages_are_recorded(finished):
    for stage in ("prototypes", "gender", "matcher", "autoencoder", "san"):
        assert stages.record_path(finished.workdir, stage).exists(), stage
    assert _record(finished, "san")["san.steps"] == 2
    assert _record(finished, "san")["match_weight"] == 8.0
    assert "san.steps" not in _record(finished, "gender")
    stages.check(finished)


def test_rerun_with_changed_flags_refuses_before_writing(finished, tmp_path):
    work = Path(finished.workdir)
    config_json = (work / "config.json").read_text()
    # A rerun with new SAN steps and weight, and a new export dir.
    changed = dataclasses.replace(finished, san=StageConfig(steps=4, learning_rate=1e-3),
                                  match_weight=2.0, export_dir=str(tmp_path / "elsewhere"))
    with pytest.raises(stages.StageMismatchError) as refusal:
        main_job.run(changed)
    message = str(refusal.value)
    assert "--san_steps: 2 -> 4 (finished stage san)" in message
    assert "--match_weight: 8.0 -> 2.0 (finished stage san)" in message
    assert "--retrain_from=san" in message and "--workdir" in message
    assert "export_dir" not in message
    assert (work / "config.json").read_text() == config_json  # Nothing was written.
    assert not (tmp_path / "elsewhere").exists()
    # Settings that shape no weights are no reason to refuse.
    stages.check(dataclasses.replace(finished, export_dir=str(tmp_path / "elsewhere"),
                                     checkpoint_every=1, steps_per_loop=1, jit_compile=True))


def test_retrain_from_deletes_the_stage_and_what_is_trained_from_it(finished):
    work = Path(finished.workdir)
    wider = dataclasses.replace(finished, gender=StageConfig(steps=3, learning_rate=1e-3))
    # Retraining another stage leaves the changed one refused, and deletes nothing.
    with pytest.raises(stages.StageMismatchError, match=r"--retrain_from=gender\b"):
        stages.retrain(wider, ["matcher"])
    assert (work / "matcher" / "model.keras").exists()
    with pytest.raises(ValueError, match="--retrain_from=gender_1: no such stage"):
        stages.retrain(wider, ["gender_1"])
    # The SAN is trained from the gender CNN; the matcher and autoencoder are not.
    assert stages.retrain(wider, ["gender"]) == ("gender", "san")
    assert not (work / "gender").exists() and not (work / "san").exists()
    assert (work / "matcher" / "model.keras").exists()
    assert (work / "autoencoder" / "model.keras").exists()
    stages.check(wider)
    assert stages.retrain(wider, ["gender"]) == ()  # The same command again deletes no more.
    # A new seed changes every finished stage (gender and san are gone): the prototypes
    # alone do not cover the matcher.
    reseeded = dataclasses.replace(finished, data=dataclasses.replace(finished.data, seed=5))
    with pytest.raises(stages.StageMismatchError,
                       match=r"--seed: 0 -> 5 \(finished stage matcher\).*--retrain_from=matcher"):
        stages.retrain(reseeded, ["prototypes"])
    assert (work / "prototypes.npz").exists()
    # The prototypes shape the autoencoder's pre-training too.
    assert stages.retrain(reseeded, ["prototypes", "gender", "matcher"]) == (
        "prototypes", "matcher", "autoencoder")
    assert not (work / "prototypes.npz").exists() and not (work / "autoencoder").exists()
    assert not (work / stages.PROTOTYPES_RECORD).exists()


def test_work_dir_without_records_is_judged_by_its_config_json(finished):
    work = Path(finished.workdir)
    # As trained before stage records existed.
    (work / stages.PROTOTYPES_RECORD).unlink()
    for stage in ("gender", "matcher", "autoencoder", "san"):
        (work / stage / stages.RECORD_NAME).unlink()
    with pytest.raises(stages.StageMismatchError, match=r"--autoencoder_steps: 2 -> 5"):
        stages.check(dataclasses.replace(
            finished, autoencoder=StageConfig(steps=5, learning_rate=1e-3)))
    stages.check(dataclasses.replace(finished, steps_per_loop=1))  # Shapes no weights.
    with pytest.raises(stages.StageMismatchError,
                       match=r"--retrain_from=prototypes,gender,matcher\b"):
        stages.check(dataclasses.replace(
            finished, data=dataclasses.replace(finished.data, seed=5)))


@pytest.mark.slow
def test_new_export_dir_exports_and_retrained_stage_is_recorded(finished, tmp_path):
    """End to end (exports twice, trains the SAN again: minutes on a shared CPU)."""
    work = Path(finished.workdir)
    # A setting that shapes no weights takes effect: the new export dir gets an export.
    moved = dataclasses.replace(finished, export_dir=str(tmp_path / "elsewhere"))
    summary = main_job.run(moved)
    assert summary["export"] == str(tmp_path / "elsewhere" / "tiny" / "1")
    assert json.loads((work / "config.json").read_text())["export_dir"] == moved.export_dir
    again = dataclasses.replace(moved, export_dir=str(tmp_path / "third"))
    assert main_job.run(again)["export"] == str(tmp_path / "third" / "tiny" / "1")

    gender_model = (work / "gender" / "model.keras").stat().st_mtime_ns
    changed = dataclasses.replace(again, san=StageConfig(steps=4, learning_rate=1e-3),
                                  match_weight=2.0)
    assert stages.retrain(changed, ["san"]) == ("san",)
    summary = main_job.run(changed)
    assert _record(changed, "san")["san.steps"] == 4
    assert _record(changed, "san")["match_weight"] == 2.0
    assert _record(changed, "gender")["gender.steps"] == 2
    assert (work / "gender" / "model.keras").stat().st_mtime_ns == gender_model
    assert json.loads((work / "config.json").read_text())["san"]["steps"] == 4
    # The retrained SAN is exported anew (its old export marker went with the stage).
    assert summary["export"] == str(tmp_path / "third" / "tiny" / "2")
    stages.check(changed)
    assert stages.retrain(changed, ["san"]) == ()  # The same command again keeps it.
    assert (work / "san" / "model.keras").exists()
