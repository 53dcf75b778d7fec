"""Tests for `semiadv.data.tfds_sources`: CelebA and LFW on tfds mock data (no download)."""

import numpy as np
import tensorflow_datasets as tfds

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.data import records as records_lib
from semiadv.data import splits


def _batches(dataset, count):
    return list(dataset.take(count).as_numpy_iterator())


def test_celeb_a_through_tfds():
    config = DataConfig(dataset="celeb_a", image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=8):
        train = _batches(input_pipeline.make_dataset(config, "train", training=True,
                                                     augment="flip"), 3)
        validation = list(input_pipeline.make_dataset(config, "validation", training=False)
                          .as_numpy_iterator())
    for batch in train + validation:
        assert batch["image"].shape[1:] == (32, 32, 3) and batch["image"].dtype == np.float32
        assert np.isfinite(batch["image"]).all()
        assert batch["image"].min() >= 0 and batch["image"].max() <= 1
        assert set(batch["male"].tolist()) <= {0, 1} and batch["male"].dtype == np.int64
        assert (batch["identity"] == -1).all()
        for key in ("age", "age_group", "race"):  # CelebA labels neither (Young is no age).
            assert batch[key].dtype == np.int64 and (batch[key] == -1).all(), key
        assert batch["landmarks"].shape[1:] == (5, 2) and batch["landmarks"].dtype == np.float32
    assert all(b["image"].shape[0] == 4 for b in train)
    assert "flipped" in train[0]
    assert sum(len(b["male"]) for b in validation) == 8
    assert not records_lib.has_identities(config)


def test_lfw_through_tfds():
    config = DataConfig(dataset="lfw", image_size=16, batch_size=4, validation_fraction=0.3,
                        test_fraction=0.3)
    with tfds.testing.mock_data(num_examples=40):
        by_split = {split: list(input_pipeline.make_dataset(config, split, training=False)
                                .as_numpy_iterator()) for split in splits.SPLITS}
        train = _batches(input_pipeline.make_dataset(config, "train", training=True), 2)
    identities = {}
    for split, batches in by_split.items():
        assert batches, split
        for batch in batches:
            assert batch["image"].shape[1:] == (16, 16, 3)
            assert batch["identity"].dtype == np.int64 and (batch["male"] == -1).all()
            for key in ("age", "age_group", "race"):
                assert (batch[key] == -1).all() and len(batch[key]) == len(batch["image"]), key
        identities[split] = set(np.concatenate([b["identity"] for b in batches]).tolist())
    assert sum(len(ids) for ids in identities.values()) > 0
    assert not identities["train"] & identities["validation"]
    assert not identities["train"] & identities["test"]
    assert not identities["validation"] & identities["test"]
    assert train[1]["image"].shape == (4, 16, 16, 3)
    assert set(np.concatenate([b["identity"] for b in train]).tolist()) <= identities["train"]
    assert records_lib.has_identities(config)
