"""Tests for `semiadv.prototypes.job`: the prototypes of a dataset's training split."""

import numpy as np
import pytest

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.prototypes import job
from semiadv.prototypes import storage


def test_compute_and_save_on_synthetic_data(tmp_path):
    config = DataConfig(dataset="synthetic", image_size=16, batch_size=8, seed=2,
                        synthetic_identities=20, synthetic_images_per_identity=3)
    output = tmp_path / "prototypes.npz"
    result = job.compute_and_save(config, output)
    loaded = storage.load_prototypes(output)
    np.testing.assert_array_equal(loaded.male, result.male)
    assert output.with_suffix(".png").exists()
    train = input_pipeline.read_split(config, "train")
    males, females = int((train["male"] == 1).sum()), int((train["male"] == 0).sum())
    assert result.counts == (males, females) and males > 0 and females > 0
    np.testing.assert_allclose(result.male, train["image"][train["male"] == 1].mean(0), atol=1e-5)
    np.testing.assert_allclose(result.female, train["image"][train["male"] == 0].mean(0),
                               atol=1e-5)
    assert result.male_weight == pytest.approx(males / (males + females))
    assert np.abs(result.male - result.female).max() > 0.05
    forced = job.compute_and_save(config, tmp_path / "half.npz", male_weight=0.5)
    np.testing.assert_allclose(forced.neutral, (forced.male + forced.female) / 2, atol=1e-6)
