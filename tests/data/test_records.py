"""Tests for `semiadv.data.records`: a split's examples, disjoint by identity, and bad splits."""

import numpy as np
import pytest

from semiadv.config import DataConfig
from semiadv.data import records as records_lib
from semiadv.data import splits

# A small synthetic set: 24 people x 4 photos at 16x16 draws in well under a second.
SYNTHETIC = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8, seed=3,
                       validation_fraction=0.25, test_fraction=0.25, synthetic_identities=24,
                       synthetic_images_per_identity=4)


def test_synthetic_splits_disjoint_by_identity_and_cover_everything():
    identities = {split: records_lib.load_records(SYNTHETIC, split).identity
                  for split in splits.SPLITS}
    sizes = {split: len(ids) for split, ids in identities.items()}
    assert sum(sizes.values()) == 24 * 4
    assert all(size > 0 for size in sizes.values())
    people = {split: set(ids.tolist()) for split, ids in identities.items()}
    assert not people["train"] & people["validation"]
    assert not people["train"] & people["test"]
    assert not people["validation"] & people["test"]
    assert people["train"] | people["validation"] | people["test"] == set(range(24))
    # Every photo of a person lands in the person's split.
    for ids in identities.values():
        assert all(count == 4 for count in np.unique(ids, return_counts=True)[1])


def test_an_unknown_split_is_refused_naming_it():
    with pytest.raises(ValueError, match="'training'"):
        records_lib.load_records(SYNTHETIC, "training")


def test_synthetic_images_are_held_once_read_only():
    records = records_lib.load_records(SYNTHETIC, "train")
    assert records.images.dtype == np.uint8 and records.images.shape[1:] == (16, 16, 3)
    assert not records.images.flags.writeable
    # The numpy images are a view of the tensor the pipelines gather from, not a copy.
    np.testing.assert_array_equal(records.image_tensor.numpy(), records.images)
    assert records.paths is None and records.cache_file is None
    assert records_lib.has_identities(SYNTHETIC)


def test_tfds_specs_are_not_records():
    with pytest.raises(ValueError, match="make_dataset"):
        records_lib.load_records(DataConfig(dataset="lfw"), "train")
