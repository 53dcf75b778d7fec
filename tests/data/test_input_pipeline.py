"""Tests for `semiadv.data.input_pipeline`: examples, order, resuming, sharding, read_split."""

import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.data import input_pipeline
from semiadv.data import records as records_lib

# A small synthetic set: 24 people x 4 photos at 16x16 draws in well under a second.
SYNTHETIC = DataConfig(dataset="synthetic", image_size=16, channels=3, batch_size=8, seed=3,
                       validation_fraction=0.25, test_fraction=0.25, synthetic_identities=24,
                       synthetic_images_per_identity=4)


def _batches(dataset, count):
    return list(dataset.take(count).as_numpy_iterator())


def _sorted_rows(images, identity):
    """Rows (identity, pixels...) sorted, to compare batches as multisets of examples."""
    rows = np.concatenate([identity.reshape(-1, 1).astype(np.float64),
                           images.reshape(len(images), -1).astype(np.float64)], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


def _global_batches(config, steps, **kwargs):
    return _batches(input_pipeline.make_dataset(config, "train", training=True, **kwargs), steps)


# ----------------------------------------------------------------------------------------------
# Synthetic: examples, order


@pytest.mark.parametrize("channels", [1, 3])
def test_synthetic_examples(channels):
    config = DataConfig(**{**SYNTHETIC.__dict__, "channels": channels})
    batch = next(iter(input_pipeline.make_dataset(config, "train", training=True)))
    assert set(batch) == {"image", "male", "identity", "age", "age_group", "race"}
    assert batch["image"].dtype == tf.float32 and batch["image"].shape == (8, 16, 16, channels)
    for key in ("male", "identity", "age", "age_group", "race"):
        assert batch[key].dtype == tf.int64 and batch[key].shape == (8,), key
    image = batch["image"].numpy()
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05
    assert set(batch["male"].numpy()) <= {0, 1}
    assert ((batch["identity"].numpy() >= 0) & (batch["identity"].numpy() < 24)).all()


def test_synthetic_is_deterministic_and_matches_make_faces():
    from semiadv.data import synthetic

    first = input_pipeline.read_split(SYNTHETIC, "validation")
    records_lib.load_records.cache_clear()
    second = input_pipeline.read_split(SYNTHETIC, "validation")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    faces = synthetic.make_faces(24, 4, 16, 3, seed=3)
    # Validation keeps the original order: each example is the make_faces one, to uint8 precision.
    for image, identity in zip(first["image"], first["identity"]):
        candidates = faces["image"][faces["identity"] == identity]
        assert np.abs(candidates - image).reshape(4, -1).max(axis=1).min() <= 0.5 / 255 + 1e-6
        for key in ("male", "age", "race"):  # Fixed per person.
            assert faces[key][faces["identity"] == identity][0] == first[key][
                list(first["identity"]).index(identity)], key
    np.testing.assert_array_equal(first["age_group"], attributes.age_group(first["age"]))
    assert len(set(first["race"])) > 1 and len(set(first["age_group"])) > 1


def test_training_order_is_a_function_of_seed_and_step():
    from_zero = _global_batches(SYNTHETIC, 9)
    resumed = _global_batches(SYNTHETIC, 5, start_step=4)
    for expected, actual in zip(from_zero[4:], resumed):
        for key in expected:
            np.testing.assert_array_equal(expected[key], actual[key])
    again = _global_batches(SYNTHETIC, 9)
    np.testing.assert_array_equal(np.stack([b["image"] for b in again]),
                                  np.stack([b["image"] for b in from_zero]))
    other_seed = DataConfig(**{**SYNTHETIC.__dict__, "seed": 4})
    assert not np.array_equal(
        _global_batches(other_seed, 1)[0]["identity"],
        from_zero[0]["identity"])


def test_every_epoch_is_a_permutation():
    records = records_lib.load_records(SYNTHETIC, "train")
    n = len(records)
    positions, index_at = input_pipeline.training_indices(n, seed=3)
    indices = np.array(list(positions.map(index_at).take(3 * n).as_numpy_iterator()))
    epochs = indices.reshape(3, n)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    assert not np.array_equal(epochs[0], epochs[1])  # Reshuffled each epoch.
    assert not np.array_equal(epochs[0], np.arange(n))
    # Through the pipeline too: n examples of whole epochs, each example once per epoch.
    config = DataConfig(**{**SYNTHETIC.__dict__, "batch_size": 4})
    n = len(records_lib.load_records(config, "train"))
    assert n % 4 == 0  # 12 people of 4 photos in this split: whole batches tile the epochs.
    batches = _global_batches(config, 2 * n // 4)
    images = np.concatenate([b["image"] for b in batches]).reshape(2, n, -1)
    for epoch in images:
        assert len(np.unique(epoch, axis=0)) == n


def test_an_unknown_augment_is_refused_naming_it():
    with pytest.raises(ValueError, match="'rotate'"):
        input_pipeline.make_dataset(SYNTHETIC, "train", training=True, augment="rotate")


def test_too_few_examples_for_one_batch():
    config = DataConfig(**{**SYNTHETIC.__dict__, "batch_size": 1000})
    with pytest.raises(ValueError, match="fewer than one global batch of 1000"):
        input_pipeline.make_dataset(config, "train", training=True)


def test_validation_is_one_ordered_pass_with_a_partial_last_batch():
    records = records_lib.load_records(SYNTHETIC, "validation")
    batches = list(input_pipeline.make_dataset(SYNTHETIC, "validation", training=False)
                   .as_numpy_iterator())
    assert sum(len(b["male"]) for b in batches) == len(records)
    np.testing.assert_array_equal(np.concatenate([b["identity"] for b in batches]),
                                  records.identity)
    np.testing.assert_allclose(np.concatenate([b["image"] for b in batches]),
                               records.images.astype(np.float32) / 255, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Sharding


def test_mirrored_strategy_replicas_together_read_the_global_batch():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    expected = _global_batches(SYNTHETIC, 3, start_step=2)
    iterator = iter(input_pipeline.distribute(strategy, SYNTHETIC, "train", training=True,
                                              start_step=2))
    for step in range(3):
        batch = next(iterator)
        images = strategy.experimental_local_results(batch["image"])
        identity = strategy.experimental_local_results(batch["identity"])
        assert len(images) == 2 and all(part.shape[0] == 4 for part in images)
        union = _sorted_rows(np.concatenate([part.numpy() for part in images]),
                             np.concatenate([part.numpy() for part in identity]))
        np.testing.assert_array_equal(
            union, _sorted_rows(expected[step]["image"], expected[step]["identity"]))


@pytest.mark.parametrize("augment", [None, "flip"])
def test_input_pipelines_together_read_the_global_batch(augment):
    expected = _global_batches(SYNTHETIC, 4, augment=augment)
    contexts = [tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                           num_replicas_in_sync=2) for i in range(2)]
    parts = [_global_batches(SYNTHETIC, 4, augment=augment, input_context=context)
             for context in contexts]
    for step in range(4):
        assert parts[0][step]["image"].shape[0] == 4 and parts[1][step]["image"].shape[0] == 4
        for key in expected[step]:
            # The pipelines read consecutive halves, so even the order is the global one.
            np.testing.assert_array_equal(
                np.concatenate([parts[0][step][key], parts[1][step][key]]), expected[step][key])


def test_validation_pipelines_shard_disjointly():
    whole = input_pipeline.read_split(SYNTHETIC, "validation")
    shards = []
    for i in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                             num_replicas_in_sync=2)
        batches = list(input_pipeline.make_dataset(SYNTHETIC, "validation", training=False,
                                                   input_context=context).as_numpy_iterator())
        assert all(len(b["male"]) <= 4 for b in batches)
        shards.append(np.concatenate([b["image"] for b in batches]))
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    assert len(shards[0]) + len(shards[1]) == len(whole["image"])
    np.testing.assert_array_equal(
        _sorted_rows(np.concatenate(shards), np.zeros(len(whole["image"]))),
        _sorted_rows(whole["image"], np.zeros(len(whole["image"]))))


# ----------------------------------------------------------------------------------------------
# read_split


def test_read_split_limit_and_order():
    whole = input_pipeline.read_split(SYNTHETIC, "test")
    first = input_pipeline.read_split(SYNTHETIC, "test", limit=5)
    assert len(first["male"]) == 5
    for key in whole:
        np.testing.assert_array_equal(first[key], whole[key][:5])
