"""End to end: the whole main job at 16x16, then a rerun that finds every stage done."""

import dataclasses
import json

import numpy as np
import tensorflow as tf

from semiadv.train import main_job
from semiadv.config import DataConfig, NetworkConfig, StageConfig, TrainConfig


def tiny_job_config(tmp_path, steps=4, **overrides):
    """The whole main job at 16x16 with narrow nets and `steps` steps a stage, in tmp_path.

    Also the run of tests/train/test_ensemble.py.
    """
    stage = StageConfig(steps=steps, learning_rate=1e-3)
    values = dict(
        data=DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                        synthetic_identities=20, synthetic_images_per_identity=4),
        networks=NetworkConfig(encoder_filters=(4, 4), decoder_filters=(8, 8),
                               classifier_width=0.125, matcher_width=0.125, embedding_dim=8),
        workdir=str(tmp_path / "work"), gender=stage, matcher=stage, autoencoder=stage,
        san=stage, checkpoint_every=2, steps_per_loop=2, export_dir=str(tmp_path / "exports"),
        export_name="tiny")
    values.update(overrides)
    return TrainConfig(**values)


def test_main_job_end_to_end(tmp_path, caplog):
    config = tiny_job_config(tmp_path)
    summary = main_job.run(config)

    work = tmp_path / "work"
    for stage_name in ("gender", "matcher", "autoencoder", "san"):
        assert (work / stage_name / "model.keras").exists(), stage_name
        assert list((work / stage_name / "ckpt").glob("ckpt-4*")), stage_name
    assert (work / "prototypes.npz").exists() and (work / "prototypes.png").exists()
    assert json.loads((work / "config.json").read_text())["data"]["image_size"] == 16
    assert summary["export"] == str(tmp_path / "exports" / "tiny" / "1")
    for key in ("accuracy_original", "accuracy_same", "flip_rate_opposite"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["examples"] > 0
    assert np.isfinite(summary["match_distance_opposite"])
    assert json.loads((work / "summary.json").read_text()) == summary

    # The export serves the trained perturber.
    loaded = tf.saved_model.load(summary["export"])
    faces = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    out = loaded.signatures["opposite"](image=tf.constant(faces))
    assert out["perturbed"].shape == (2, 16, 16, 3)

    # A rerun trains nothing and exports nothing new.
    caplog.set_level("INFO")
    again = main_job.run(config)
    assert again == summary
    assert "training steps" not in caplog.text
    assert sorted(p.name for p in (tmp_path / "exports" / "tiny").iterdir()) == ["1"]

    # Another --edit_strength retrains nothing and exports the scaled change as a new version.
    caplog.clear()
    stronger = main_job.run(dataclasses.replace(config, edit_strength=1.5))
    assert "training steps" not in caplog.text
    # The summary measures what the export serves: the stronger change is further from X.
    assert stronger["ssim_opposite"] < summary["ssim_opposite"]
    assert stronger["export"] == str(tmp_path / "exports" / "tiny" / "2")
    scaled = tf.saved_model.load(stronger["export"]).signatures["opposite"](
        image=tf.constant(faces))["perturbed"]
    np.testing.assert_allclose(scaled, np.clip(faces + 1.5 * (out["perturbed"] - faces), 0, 1),
                               atol=1e-5)


def test_matcher_without_identities_says_it_learns_from_views(tmp_path, caplog, monkeypatch):
    from semiadv.data import records
    from semiadv.train import distribute
    from semiadv.train import trainer

    stage = StageConfig(steps=1, learning_rate=1e-4)
    config = TrainConfig(
        data=DataConfig(dataset="synthetic", image_size=16, batch_size=8,
                        synthetic_identities=8, synthetic_images_per_identity=4),
        networks=NetworkConfig(matcher_width=0.125, embedding_dim=8),
        workdir=str(tmp_path), matcher=stage, export_dir=None)
    monkeypatch.setattr(records, "has_identities", lambda data_config: False)
    monkeypatch.setattr(trainer, "train", lambda *args, **kwargs: trainer.StageResult(None, []))
    caplog.set_level("WARNING")
    main_job.pretrain(config, "matcher", distribute.make_strategy("one_device"))
    assert "two augmented views of each photo" in caplog.text
