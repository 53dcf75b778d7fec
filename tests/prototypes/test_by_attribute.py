"""Tests for `semiadv.prototypes.by_attribute`: per-value means, counts, missing values, names."""

import numpy as np
import pytest

from semiadv.errors import UserValueError
from semiadv.prototypes import average
from semiadv.prototypes import by_attribute


def test_means_and_counts_per_value_over_batches():
    accumulator = by_attribute.AttributeAccumulator("race")
    # Each face is a flat image of its value's grey, +0.1 for a second face of race 0.
    accumulator.add(np.array([0.1, 0.2, 0.9, 0.4]).reshape(4, 1, 1, 1) * np.ones((1, 2, 2, 1)),
                    np.array([0, 1, -1, 4]))
    accumulator.add(np.full((1, 2, 2, 1), 0.2), np.array([0]))
    result = accumulator.result()
    assert result.counts == (2, 1, 0, 0, 1)
    assert sorted(result.images) == [0, 1, 4] and result.missing == (2, 3)
    np.testing.assert_allclose(result.images[0], 0.15, atol=1e-7)  # (0.1 + 0.2) / 2
    np.testing.assert_allclose(result.images[1], 0.2, atol=1e-7)
    np.testing.assert_allclose(result.images[4], 0.4, atol=1e-7)  # The unknown 0.9 is ignored.
    assert result.images[0].dtype == np.float32 and result.images[0].shape == (2, 2, 1)
    assert result.describe() == "race: White 2, Black 1, Asian 0, Indian 0, Others 1"


def test_values_beyond_the_names_and_unknown_attributes_are_refused():
    with pytest.raises(ValueError, match="age_group values must be < 4, got 4"):
        by_attribute.AttributeAccumulator("age_group").add(np.zeros((1, 2, 2, 1)), np.array([4]))
    with pytest.raises(ValueError, match="'age'"):
        by_attribute.AttributeAccumulator("age")


def test_parse_attributes():
    assert by_attribute.parse_attributes(["gender"]) == ()
    assert by_attribute.parse_attributes([]) == ()
    assert by_attribute.parse_attributes(["race", " age_group", "gender", "race"]) == (
        "age_group", "race")
    with pytest.raises(UserValueError, match="unknown attribute.*'age'.*'sex'.*gender, age_group"):
        by_attribute.parse_attributes(["sex", "age", "race"])


def test_compute_prototypes_with_attributes():
    images = np.arange(6, dtype=np.float64).reshape(6, 1, 1, 1) / 10 * np.ones((1, 2, 2, 3))
    batch = {"image": images, "male": np.array([1, 0, 1, 0, -1, 1]),
             "age_group": np.array([0, 0, 3, -1, 3, 3]), "race": np.array([2, 2, 2, 2, 2, 2])}
    result = average.compute_prototypes([batch], attributes=("age_group", "race"))
    assert result.counts == (3, 2)  # Gender as before.
    np.testing.assert_allclose(result.male, (0.0 + 0.2 + 0.5) / 3, atol=1e-6)
    assert list(result.by_attribute) == ["age_group", "race"]
    ages = result.by_attribute["age_group"]
    assert ages.counts == (2, 0, 0, 3) and ages.missing == (1, 2)
    np.testing.assert_allclose(ages.images[3], (0.2 + 0.4 + 0.5) / 3, atol=1e-6)
    np.testing.assert_allclose(result.by_attribute["race"].images[2], 0.25, atol=1e-6)
    assert average.compute_prototypes([batch]).by_attribute == {}
