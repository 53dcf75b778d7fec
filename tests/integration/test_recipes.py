"""The flagfiles parse into valid configs, and the paper's recipe runs on tfds mock data."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags

from semiadv.train import main_job
from semiadv.apps import train_flags  # noqa: F401  (defines the flags the flagfiles set)

FLAGFILES = sorted((Path(__file__).resolve().parents[2] / "flags").glob("*.cfg"))


def _config_from(flagfile, *overrides):
    """Parses a flagfile the way a binary does, then puts every flag back to its default."""
    try:
        flags.FLAGS(["test", f"--flagfile={flagfile}", *overrides])
        return train_flags.train_config()
    finally:
        flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=lambda p: p.name)
def test_flagfiles_make_valid_configs(flagfile):
    config = _config_from(flagfile)
    assert config.workdir.startswith("models/")
    assert config.export_dir == "exports"


def test_paper_recipe_matches_the_paper():
    config = _config_from(Path(FLAGFILES[0]).parent / "paper_celeba224.cfg")
    assert (config.data.dataset, config.data.image_size, config.data.channels) == ("celeb_a", 224, 1)
    assert config.data.batch_size == 8 and config.pixel_loss == "l1"
    assert config.san.learning_rate == 2e-4
    # 20 epochs of CelebA's 162,770 training photos, matching from epoch 5.
    steps_per_epoch = 162_770 // 8
    assert config.san.steps == 20 * steps_per_epoch
    assert config.match_warmup_steps == 5 * steps_per_epoch


def test_demo_uses_the_residual_bilinear_autoencoder():
    """The demo shows faces: the paper's autoencoder re-synthesises a 32x32 face through its
    bottleneck into a blob (issue 13), the residual one changes the face it is given."""
    config = _config_from(Path(FLAGFILES[0]).parent / "demo.cfg")
    assert config.networks.residual and config.networks.upsampling == "bilinear"
    # A residual autoencoder starts as the identity: nothing to pre-train.
    assert config.autoencoder.steps == 0
    assert (config.data.dataset, config.data.image_size) == ("synthetic", 32)


def test_paper_recipe_runs_two_steps_on_mock_celeb_a(tmp_path):
    config = _config_from(
        Path(FLAGFILES[0]).parent / "paper_celeba224.cfg", "--image_size=32",
        f"--workdir={tmp_path / 'work'}", "--export_dir=",
        "--gender_steps=2", "--matcher_steps=2", "--autoencoder_steps=2", "--san_steps=2",
        "--match_warmup_steps=1", "--decoder_filters=16,8", "--classifier_width=0.125",
        "--matcher_width=0.0625", "--checkpoint_every=1", "--steps_per_loop=1")
    with tfds.testing.mock_data(num_examples=24):
        summary = main_job.run(config)
    assert summary["export"] is None  # Export is covered by test_pipeline; here it costs time.
    for stage in ("gender", "matcher", "autoencoder", "san"):
        assert (tmp_path / "work" / stage / "model.keras").exists()
    assert 0.0 <= summary["flip_rate_opposite"] <= 1.0


def test_celeb_a_prototypes_carry_the_mean_landmarks(tmp_path):
    from semiadv.prototypes import storage
    from semiadv.prototypes import job as prototypes_job
    from semiadv.config import DataConfig

    config = DataConfig(dataset="celeb_a", image_size=16, batch_size=4)
    with tfds.testing.mock_data(num_examples=12):
        result = prototypes_job.compute_and_save(config, tmp_path / "p.npz")
    loaded = storage.load_prototypes(tmp_path / "p.npz")
    assert loaded.landmarks.shape == (5, 2)
    np.testing.assert_allclose(loaded.landmarks, result.landmarks)
    assert np.all(np.isfinite(loaded.landmarks))
