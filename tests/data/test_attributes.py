"""Tests for `semiadv.data.attributes`: the age groups and the value names."""

import numpy as np

from semiadv.data import attributes


def test_age_groups_and_their_names():
    ages = [-1, 0, 1, 19, 20, 39, 40, 59, 60, 116, 130]
    np.testing.assert_array_equal(attributes.age_group(ages), [-1, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3])
    assert attributes.age_group(np.array(ages)).dtype == np.int64
    assert attributes.AGE_GROUP_NAMES == ("0-19", "20-39", "40-59", "60+")
    assert attributes.age_group([]).shape == (0,)


def test_value_names_cover_every_prototype_attribute():
    assert attributes.VALUE_NAMES["race"] == ("White", "Black", "Asian", "Indian", "Others")
    assert attributes.VALUE_NAMES["male"] == ("female", "male")  # index = the label
    assert len(attributes.VALUE_NAMES["age_group"]) == len(attributes.AGE_GROUP_STARTS)
    np.testing.assert_array_equal(attributes.unknown(3), [-1, -1, -1])
