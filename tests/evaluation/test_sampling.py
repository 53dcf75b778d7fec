"""The evaluation reads faces spread over a split, not its first ones (UTKFace is age-ordered)."""

import numpy as np

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.evaluation import matching, sampling

from _dataset_files import utkface_config, write_jpeg


def _utkface_folder(folder, count=120):
    """`count` tiny UTKFace-named photos of ages 1..90, both genders, the five races."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for number in range(count):
        age, male, race = int(rng.integers(1, 91)), number % 2, number % 5
        write_jpeg(folder / f"{age}_{1 - male}_{race}_2017011022{number:07d}.jpg.chip.jpg",
                   int(rng.integers(0, 255)), size=16)
    return folder


def test_spread_indices_reach_the_end_of_the_split():
    np.testing.assert_array_equal(sampling.spread_indices(10, 3), [1, 5, 8])
    np.testing.assert_array_equal(sampling.spread_indices(2400, 1000)[[0, -1]], [1, 2398])
    np.testing.assert_array_equal(sampling.spread_indices(5, None), np.arange(5))
    np.testing.assert_array_equal(sampling.spread_indices(5, 9), np.arange(5))
    np.testing.assert_array_equal(sampling.spread(np.arange(10) * 2, 2), [4, 14])


def test_utkface_subset_keeps_the_splits_ages_and_labels(tmp_path):
    config = utkface_config(_utkface_folder(tmp_path / "utk"), batch_size=8)
    whole = input_pipeline.read_split(config, "train")
    assert len(whole["age"]) == 120
    first = input_pipeline.read_split(config, "train", limit=30)
    # File-name order: the first faces' ages start with "1", "2"...: not a sample.
    assert np.mean(first["age_group"] == 0) > 1.8 * np.mean(whole["age_group"] == 0)
    subset = sampling.read_spread(config, "train", 30)
    assert len(subset["age"]) == 30
    assert abs(np.median(subset["age"]) - np.median(whole["age"])) < 8
    assert abs(np.median(first["age"]) - np.median(whole["age"])) > 15
    for key in ("age_group", "race", "male"):
        share = [np.mean(subset[key] == value) for value in np.unique(whole[key])]
        expected = [np.mean(whole[key] == value) for value in np.unique(whole[key])]
        np.testing.assert_allclose(share, expected, atol=0.15, err_msg=key)
    # The test split read of the evaluation samples the same way.
    held_out = utkface_config(tmp_path / "utk", batch_size=8, test_fraction=0.5)
    test = matching.read_test_split(held_out, 20)
    whole_test = input_pipeline.read_split(held_out, "test")
    np.testing.assert_array_equal(test["age"], whole_test["age"][
        sampling.spread_indices(len(whole_test["age"]), 20)])


def test_identity_sets_keep_persons_whole():
    data = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8,
                      synthetic_identities=60, synthetic_images_per_identity=4)
    whole = input_pipeline.read_split(data, "test")
    subset = matching.read_test_split(data, 20)
    people, photos = np.unique(subset["identity"], return_counts=True)
    assert photos.min() >= 2 and len(subset["identity"]) <= 20 and len(people) >= 4
    assert matching.has_identity_pairs(subset["identity"])
    # Spread over the persons of the split: the last chosen comes from its second half.
    order = list(dict.fromkeys(whole["identity"]))
    assert order.index(people[np.argmax([order.index(p) for p in people])]) > len(order) // 2
    kept = np.isin(whole["identity"], people)
    np.testing.assert_array_equal(subset["image"], whole["image"][kept])
    assert subset["male"].min() == 0 and subset["male"].max() == 1
