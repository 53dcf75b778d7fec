"""Tests for `semiadv.data.splits`: stable hashing of keys into splits."""

import numpy as np

from semiadv.data import splits


def test_split_of_is_stable_when_keys_are_added():
    keys = [f"file:{i}.jpg" for i in range(200)]
    alone = splits.split_of(keys[:50], 0, 0.2, 0.2)
    together = splits.split_of(keys, 0, 0.2, 0.2)
    np.testing.assert_array_equal(alone, together[:50])
    shares = {split: np.mean(together == split) for split in splits.SPLITS}
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["validation"] < 0.3
    assert not np.array_equal(together, splits.split_of(keys, 1, 0.2, 0.2))


def test_split_keys_use_the_identity_where_known():
    assert splits.split_keys(["a.jpg", "b.jpg", "c.jpg"], [7, -1, 0]) == [
        "id:7", "file:b.jpg", "id:0"]
    # Every photo of a person hashes to the same key, so lands in the same split.
    keys = splits.split_keys([f"{i}.jpg" for i in range(40)], [i % 4 for i in range(40)])
    assigned = splits.split_of(keys, 0, 0.3, 0.3)
    for person in range(4):
        assert len(set(assigned[person::4])) == 1
