"""Stage records: a rerun whose flags would change a finished stage refuses before any work,
settings that shape no weights take effect, and --retrain_from retrains what it names."""

import dataclasses
import json

import pytest

from semiadv import pipeline, stages
from semiadv.config import StageConfig, TrainConfig
from tests.test_pipeline import tiny_job_config


def test_every_train_config_field_is_placed_once():
    """A new TrainConfig field must be placed deliberately: until then it shapes every stage."""
    placed = [*stages.NOT_TRAINING, *stages.NOT_PROTOTYPES, *stages.EVERY_STAGE,
              *(name for names in stages.STAGE_SETTINGS.values() for name in names)]
    assert len(placed) == len(set(placed)), "a field is in two lists"
    fields = set(stages.flatten(TrainConfig()))
    assert fields - set(placed) == set(), "fields in no list of semiadv/stages.py"
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


def test_rerun_with_changed_flags_refuses_then_retrains_on_request(tmp_path):
    config = tiny_job_config(tmp_path, steps=2)
    pipeline.run(config)
    work = tmp_path / "work"
    for stage in ("prototypes", "gender", "matcher", "autoencoder", "san"):
        assert stages.record_path(work, stage).exists(), stage
    assert _record(config, "san")["san.steps"] == 2
    config_json = (work / "config.json").read_text()

    # The rerun: new SAN steps and weight, and a new export dir.
    changed = dataclasses.replace(config, san=StageConfig(steps=4, learning_rate=1e-3),
                                  match_weight=2.0, export_dir=str(tmp_path / "elsewhere"))
    with pytest.raises(stages.StageMismatchError) as refusal:
        pipeline.run(changed)
    message = str(refusal.value)
    assert "--san_steps: 2 -> 4 (finished stage san)" in message
    assert "--match_weight: 8.0 -> 2.0" in message
    assert "--retrain_from=san" in message and "--workdir" in message
    assert "export_dir" not in message
    assert (work / "config.json").read_text() == config_json  # Nothing was written.
    assert not (tmp_path / "elsewhere").exists()

    # A setting that shapes no weights takes effect: the new export dir gets an export.
    moved = dataclasses.replace(config, export_dir=str(tmp_path / "elsewhere"),
                                checkpoint_every=1)
    summary = pipeline.run(moved)
    assert summary["export"] == str(tmp_path / "elsewhere" / "tiny" / "1")
    assert json.loads((work / "config.json").read_text())["export_dir"] == moved.export_dir

    # --retrain_from=san deletes the SAN stage only; the rerun trains it with the new flags.
    gender_model = (work / "gender" / "model.keras").stat().st_mtime_ns
    assert stages.retrain(changed, ["san"]) == ("san",)
    assert not (work / "san").exists()
    pipeline.run(changed)
    assert _record(changed, "san")["san.steps"] == 4
    assert _record(changed, "san")["match_weight"] == 2.0
    assert _record(changed, "gender")["gender.steps"] == 2
    assert (work / "gender" / "model.keras").stat().st_mtime_ns == gender_model
    assert json.loads((work / "config.json").read_text())["san"]["steps"] == 4
    stages.check(changed)  # Now consistent.

    # Retraining the wrong stage leaves the changed one refused, and deletes nothing.
    wider = dataclasses.replace(changed, gender=StageConfig(steps=3, learning_rate=1e-3))
    with pytest.raises(stages.StageMismatchError, match=r"--retrain_from=gender"):
        stages.retrain(wider, ["matcher"])
    assert (work / "matcher" / "model.keras").exists()
    # gender is retrained with the SAN trained from it, not the matcher or autoencoder.
    assert stages.retrain(wider, ["gender"]) == ("gender", "san")
    assert (work / "matcher" / "model.keras").exists()
    assert not (work / "gender").exists() and not (work / "san").exists()


def test_work_dir_without_records_is_judged_by_its_config_json(tmp_path):
    config = tiny_job_config(tmp_path, steps=2, export_dir=None)
    work = tmp_path / "work"
    pipeline.run(config)
    # As trained before stage records existed.
    (work / stages.PROTOTYPES_RECORD).unlink()
    for stage in ("gender", "matcher", "autoencoder", "san"):
        (work / stage / stages.RECORD_NAME).unlink()
    with pytest.raises(stages.StageMismatchError, match=r"--autoencoder_steps: 2 -> 5"):
        stages.check(dataclasses.replace(
            config, autoencoder=StageConfig(steps=5, learning_rate=1e-3)))
    stages.check(dataclasses.replace(config, steps_per_loop=1))  # Shapes no weights.
    with pytest.raises(stages.StageMismatchError, match=r"--retrain_from=prototypes,gender,matcher"):
        stages.check(dataclasses.replace(
            config, data=dataclasses.replace(config.data, seed=5)))
    # The next run adopts config.json as each finished stage's record.
    pipeline.run(config)
    assert _record(config, "autoencoder")["autoencoder.steps"] == 2
