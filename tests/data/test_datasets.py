"""Tests for `semiadv.data.datasets`: specs, every loader (with bad inputs), splits, order and sharding."""

import csv
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from semiadv.data import datasets as data
from semiadv.config import DataConfig

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


# ----------------------------------------------------------------------------------------------
# parse_spec


@pytest.mark.parametrize("spec, kind, path, aligned", [
    ("synthetic", "synthetic", None, True),
    ("celeb_a", "celeb_a", None, True),
    ("lfw", "lfw", None, True),
    ("utkface:/data/utk", "utkface", "/data/utk", True),
    ("utkface:/data/utk?aligned=0", "utkface", "/data/utk", False),
    ("folder:/data/photos", "folder", "/data/photos", False),
    ("folder:/data/photos?aligned=1", "folder", "/data/photos", True),
    ("folder:/data/photos?aligned=0", "folder", "/data/photos", False),
])
def test_parse_spec_kinds_and_options(spec, kind, path, aligned):
    parsed = data.parse_spec(spec)
    assert parsed.kind == kind
    assert (None if parsed.path is None else str(parsed.path)) == path
    assert parsed.aligned is aligned


def test_parse_spec_expands_home():
    parsed = data.parse_spec("folder:~/photos?aligned=1")
    assert "~" not in str(parsed.path) and parsed.path.name == "photos"


@pytest.mark.parametrize("spec", [
    "", "imagenet", "synthetic:/x", "celeb_a:/x", "lfw:x", "utkface", "utkface:", "folder:",
    "folder:/x?aligned=2", "folder:/x?align=1", "folder:/x?aligned", "Synthetic",
])
def test_parse_spec_rejects_bad_specs_naming_them(spec):
    with pytest.raises(ValueError, match="spec") as error:
        data.parse_spec(spec)
    assert repr(spec) in str(error.value)


def test_bad_split_and_augment_raise():
    with pytest.raises(ValueError, match="'training'"):
        data.load_records(SYNTHETIC, "training")
    with pytest.raises(ValueError, match="'rotate'"):
        data.make_dataset(SYNTHETIC, "train", training=True, augment="rotate")


# ----------------------------------------------------------------------------------------------
# Synthetic: examples, splits, order


@pytest.mark.parametrize("channels", [1, 3])
def test_synthetic_examples(channels):
    config = DataConfig(**{**SYNTHETIC.__dict__, "channels": channels})
    batch = next(iter(data.make_dataset(config, "train", training=True)))
    assert set(batch) == {"image", "male", "identity"}
    assert batch["image"].dtype == tf.float32 and batch["image"].shape == (8, 16, 16, channels)
    assert batch["male"].dtype == tf.int64 and batch["identity"].dtype == tf.int64
    image = batch["image"].numpy()
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.05
    assert set(batch["male"].numpy()) <= {0, 1}
    assert ((batch["identity"].numpy() >= 0) & (batch["identity"].numpy() < 24)).all()


def test_synthetic_is_deterministic_and_matches_make_faces():
    from semiadv.data import synthetic

    first = data.read_split(SYNTHETIC, "validation")
    data.load_records.cache_clear()
    second = data.read_split(SYNTHETIC, "validation")
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    faces = synthetic.make_faces(24, 4, 16, 3, seed=3)
    # Validation keeps the original order: each example is the make_faces one, to uint8 precision.
    for image, identity in zip(first["image"], first["identity"]):
        candidates = faces["image"][faces["identity"] == identity]
        assert np.abs(candidates - image).reshape(4, -1).max(axis=1).min() <= 0.5 / 255 + 1e-6
        assert faces["male"][faces["identity"] == identity][0] == first["male"][
            list(first["identity"]).index(identity)]


def test_synthetic_splits_disjoint_by_identity_and_cover_everything():
    identities = {split: data.load_records(SYNTHETIC, split).identity for split in data.SPLITS}
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


def test_split_of_is_stable_when_keys_are_added():
    keys = [f"file:{i}.jpg" for i in range(200)]
    alone = data.split_of(keys[:50], 0, 0.2, 0.2)
    together = data.split_of(keys, 0, 0.2, 0.2)
    np.testing.assert_array_equal(alone, together[:50])
    shares = {split: np.mean(together == split) for split in data.SPLITS}
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["validation"] < 0.3
    assert not np.array_equal(together, data.split_of(keys, 1, 0.2, 0.2))


def test_training_order_is_a_function_of_seed_and_step():
    from_zero = _batches(data.make_dataset(SYNTHETIC, "train", training=True), 9)
    resumed = _batches(data.make_dataset(SYNTHETIC, "train", training=True, start_step=4), 5)
    for expected, actual in zip(from_zero[4:], resumed):
        for key in expected:
            np.testing.assert_array_equal(expected[key], actual[key])
    again = _batches(data.make_dataset(SYNTHETIC, "train", training=True), 9)
    np.testing.assert_array_equal(np.stack([b["image"] for b in again]),
                                  np.stack([b["image"] for b in from_zero]))
    other_seed = DataConfig(**{**SYNTHETIC.__dict__, "seed": 4})
    assert not np.array_equal(
        _batches(data.make_dataset(other_seed, "train", training=True), 1)[0]["identity"],
        from_zero[0]["identity"])


def test_every_epoch_is_a_permutation():
    records = data.load_records(SYNTHETIC, "train")
    n = len(records)
    positions, index_at = data.training_indices(n, seed=3)
    indices = np.array(list(positions.map(index_at).take(3 * n).as_numpy_iterator()))
    epochs = indices.reshape(3, n)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    assert not np.array_equal(epochs[0], epochs[1])  # Reshuffled each epoch.
    assert not np.array_equal(epochs[0], np.arange(n))
    # Through the pipeline too: n examples of whole epochs, each example once per epoch.
    config = DataConfig(**{**SYNTHETIC.__dict__, "batch_size": 4})
    n = len(data.load_records(config, "train"))
    assert n % 4 == 0  # 12 people of 4 photos in this split: whole batches tile the epochs.
    batches = _batches(data.make_dataset(config, "train", training=True), 2 * n // 4)
    images = np.concatenate([b["image"] for b in batches]).reshape(2, n, -1)
    for epoch in images:
        assert len(np.unique(epoch, axis=0)) == n


def test_too_few_examples_for_one_batch():
    config = DataConfig(**{**SYNTHETIC.__dict__, "batch_size": 1000})
    with pytest.raises(ValueError, match="fewer than one global batch of 1000"):
        data.make_dataset(config, "train", training=True)


def test_validation_is_one_ordered_pass_with_a_partial_last_batch():
    records = data.load_records(SYNTHETIC, "validation")
    batches = list(data.make_dataset(SYNTHETIC, "validation", training=False).as_numpy_iterator())
    assert sum(len(b["male"]) for b in batches) == len(records)
    np.testing.assert_array_equal(np.concatenate([b["identity"] for b in batches]),
                                  records.identity)
    np.testing.assert_allclose(np.concatenate([b["image"] for b in batches]),
                               records.images.astype(np.float32) / 255, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Sharding


def _global_batches(config, steps, **kwargs):
    return _batches(data.make_dataset(config, "train", training=True, **kwargs), steps)


def test_mirrored_strategy_replicas_together_read_the_global_batch():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    expected = _global_batches(SYNTHETIC, 3, start_step=2)
    iterator = iter(data.distribute(strategy, SYNTHETIC, "train", training=True, start_step=2))
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
    whole = data.read_split(SYNTHETIC, "validation")
    shards = []
    for i in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                             num_replicas_in_sync=2)
        batches = list(data.make_dataset(SYNTHETIC, "validation", training=False,
                                         input_context=context).as_numpy_iterator())
        assert all(len(b["male"]) <= 4 for b in batches)
        shards.append(np.concatenate([b["image"] for b in batches]))
    assert abs(len(shards[0]) - len(shards[1])) <= 1
    assert len(shards[0]) + len(shards[1]) == len(whole["image"])
    np.testing.assert_array_equal(
        _sorted_rows(np.concatenate(shards), np.zeros(len(whole["image"]))),
        _sorted_rows(whole["image"], np.zeros(len(whole["image"]))))


# ----------------------------------------------------------------------------------------------
# Augmentation


def test_flip_flag_matches_the_image():
    plain = _global_batches(SYNTHETIC, 3)
    flipped = _global_batches(SYNTHETIC, 3, augment="flip")
    flags = np.concatenate([b["flipped"] for b in flipped])
    assert flags.dtype == bool and 0 < flags.sum() < len(flags)
    for original, augmented in zip(plain, flipped):
        np.testing.assert_array_equal(original["identity"], augmented["identity"])
        for image, result, flag in zip(original["image"], augmented["image"],
                                       augmented["flipped"]):
            np.testing.assert_array_equal(result, image[:, ::-1] if flag else image)
            assert not np.array_equal(image[:, ::-1], image)  # Faces are not exactly symmetric.


def test_flip_mirrors_landmarks_with_the_face():
    image = np.zeros((16, 16, 1), np.float32)
    landmarks = np.array([[4.0, 6.0], [11.0, 5.0], [8.0, 9.0], [5.0, 12.0], [10.0, 12.0]],
                         np.float32)
    for x, y in landmarks.astype(int):
        image[y, x] = 1.0
    results = [data._flip({"image": image, "landmarks": landmarks}, 0, tf.constant(p, tf.int64))
               for p in range(8)]
    assert {bool(r["flipped"]) for r in results} == {True, False}
    for result in results:
        points = result["landmarks"].numpy()
        if not result["flipped"]:
            np.testing.assert_array_equal(points, landmarks)
            continue
        np.testing.assert_array_equal(points, [[4, 5], [11, 6], [7, 9], [5, 12], [10, 12]])
        flipped_image = result["image"].numpy()
        for x, y in points.astype(int):  # Each landmark still sits on its dot.
            assert flipped_image[y, x, 0] == 1.0
        assert points[0, 0] < points[1, 0]  # The left eye is still on the left.


def test_views_are_two_different_augmentations_in_range():
    batch = _global_batches(SYNTHETIC, 1, augment="views")[0]
    assert {"view_a", "view_b", "image"} <= set(batch)
    for key in ("view_a", "view_b"):
        assert batch[key].shape == batch["image"].shape and batch[key].dtype == np.float32
        assert batch[key].min() >= 0.0 and batch[key].max() <= 1.0
        assert not np.allclose(batch[key], batch["image"], atol=1e-3)
    assert np.abs(batch["view_a"] - batch["view_b"]).mean() > 0.01
    # Views are still the same face: closer to their own original than to another example's.
    own = np.abs(batch["view_a"] - batch["image"]).mean()
    other = np.abs(batch["view_a"] - np.roll(batch["image"], 1, axis=0)).mean()
    assert own < other
    again = _global_batches(SYNTHETIC, 1, augment="views")[0]
    np.testing.assert_array_equal(again["view_a"], batch["view_a"])


# ----------------------------------------------------------------------------------------------
# UTKFace


def _write_jpeg(path, value, size=40, gray=False):
    image = np.full((size, size) if gray else (size, size, 3), value, np.uint8)
    if not gray:
        image[: size // 2, :, 1] = 255 - value  # Not flat: the resize must keep its layout.
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 98])
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


GOOD_UTKFACE = {
    # name: (our male label, grey value drawn in the image)
    "20_0_0_20170110224238891.jpg.chip.jpg": (1, 20),
    "21_1_0_20170110224238892.jpg.chip.jpg": (0, 40),
    "22_0_1_20170110224238893.jpg.chip.jpg": (1, 60),
    "23_1_2_20170110224238894.jpg.chip.jpg": (0, 80),
    "24_1_3_20170110224238895.jpg.chip.jpg": (0, 100),
    "25_0_4_20170110224238896.jpg.chip.jpg": (1, 120),
    "116_1_4_20170110224238897.jpg.chip.jpg": (0, 140),
    # The real oddities that still say age, gender and race: kept.
    "24_0_1_20170116220224657 .jpg.chip.jpg": (1, 160),
    "55_0_0_20170116232725357jpg.chip.jpg": (1, 180),
    "14_0_0_2017011022340900.jpg.chip.jpg": (1, 200),  # a 16-digit date
    "28_1_2_201701161846515488.jpg.chip.jpg": (0, 220),  # an 18-digit date
}
MALFORMED_UTKFACE = (  # the race is missing: the gender cannot be trusted to be read right
    "39_1_20170116174525125.jpg.chip.jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
)


@pytest.mark.parametrize("name, male", [
    ("20_0_0_20170110224238891.jpg.chip.jpg", 1),
    ("20_1_0_20170110224238891.jpg.chip.jpg", 0),
    ("24_0_1_20170116220224657 .jpg.chip.jpg", 1),
    ("55_0_0_20170116232725357jpg.chip.jpg", 1),
    ("14_0_0_2017011022340900.jpg.chip.jpg", 1),
    ("39_1_20170116174525125.jpg.chip.jpg", None),
    ("20_2_0_20170110224238891.jpg.chip.jpg", None),
    ("20_0_5_20170110224238891.jpg.chip.jpg", None),
    ("x_0_0_20170110224238891.jpg.chip.jpg", None),
    ("20_0_0.jpg", None),
    ("photo.jpg", None),
])
def test_parse_utkface_name(name, male):
    assert data.parse_utkface_name(name) == male


@pytest.fixture
def utkface_dir(tmp_path):
    folder = tmp_path / "utk"
    folder.mkdir()
    for name, (_, value) in GOOD_UTKFACE.items():
        _write_jpeg(folder / name, value)
    for name in MALFORMED_UTKFACE:
        _write_jpeg(folder / name, 250)
    (folder / "30_0_0_20170110224238000.jpg.chip.jpg").write_bytes(b"")
    whole = _write_jpeg(folder / "31_0_0_20170110224238001.jpg.chip.jpg", 10).read_bytes()
    (folder / "31_0_0_20170110224238001.jpg.chip.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "32_1_0_20170110224238002.jpg.chip.jpg").write_text("not a photo\n")
    (folder / "notes.txt").write_text("ignored: not an image extension\n")
    return folder


def _utk_config(folder, **overrides):
    values = dict(dataset=f"utkface:{folder}", image_size=16, batch_size=4,
                  validation_fraction=0.0, test_fraction=0.0)
    return DataConfig(**{**values, **overrides})


@pytest.mark.parametrize("cache", ["disk", "memory", "none"])
def test_utkface_skips_malformed_and_unusable_files(utkface_dir, caplog, cache):
    config = _utk_config(utkface_dir, cache=cache)
    with caplog.at_level(logging.WARNING):
        records = data.load_records(config, "train")
    assert (records.images is not None) == (cache == "memory")
    assert (records.cache_file is not None) == (cache == "disk")
    skipped = dict(records.skipped)
    bad_files = ["30_0_0_20170110224238000.jpg.chip.jpg", "31_0_0_20170110224238001.jpg.chip.jpg",
                 "32_1_0_20170110224238002.jpg.chip.jpg"]
    assert sorted(skipped) == sorted(str(utkface_dir / name)
                                     for name in MALFORMED_UTKFACE + tuple(bad_files))
    for name in MALFORMED_UTKFACE:
        assert "malformed UTKFace name" in skipped[str(utkface_dir / name)]
    assert "empty" in skipped[str(utkface_dir / bad_files[0])]
    assert "truncated" in skipped[str(utkface_dir / bad_files[1])]
    assert "not an image" in skipped[str(utkface_dir / bad_files[2])]
    assert len(records) == len(GOOD_UTKFACE)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 6 unusable file(s)" in warning and MALFORMED_UTKFACE[0] in warning
    # Labels follow the files: the grey level drawn into each photo tells which file it was.
    examples = data.read_split(config, "train")
    assert examples["image"].shape == (len(GOOD_UTKFACE), 16, 16, 3)
    by_value = {value: male for male, value in GOOD_UTKFACE.values()}
    for image, male, identity in zip(examples["image"], examples["male"], examples["identity"]):
        value = int(round(image[12:, :, 0].mean() * 255 / 20)) * 20  # bottom half: pure grey
        assert male == by_value[value], value
        assert identity == -1
    assert sorted(examples["male"].tolist()) == sorted(m for m, _ in GOOD_UTKFACE.values())


def test_utkface_every_cache_mode_reads_the_same(utkface_dir):
    in_memory = data.read_split(_utk_config(utkface_dir, cache="memory"), "train")
    for cache in ("disk", "none"):
        other = data.read_split(_utk_config(utkface_dir, cache=cache), "train")
        for key in in_memory:
            np.testing.assert_array_equal(in_memory[key], other[key])
    # Over the memory budget, "memory" falls back to the disk cache.
    over_budget = data.load_records(_utk_config(utkface_dir, cache="memory", cache_megabytes=0),
                                    "train")
    assert over_budget.images is None and over_budget.cache_file is not None


def test_disk_cache_decodes_once_and_redecodes_what_changed(utkface_dir, tmp_path, monkeypatch):
    config = _utk_config(utkface_dir, cache="disk", cache_dir=str(tmp_path / "decoded"))
    first = data.read_split(config, "train")
    files = sorted(p.name for p in (tmp_path / "decoded").iterdir())
    assert [Path(f).suffix for f in files] == [".json", ".u8"]  # no partial file left behind
    rows = (tmp_path / "decoded" / files[1]).stat().st_size
    assert rows == len(GOOD_UTKFACE) * 16 * 16 * 3

    decodings = []
    real_decode_each = data._decode_each
    monkeypatch.setattr(data, "_decode_each",
                        lambda *a: decodings.append(1) or real_decode_each(*a))
    data.load_records.cache_clear()
    again = data.read_split(config, "train")
    assert decodings == []  # Read from the cache file, not decoded again.
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])

    # A file cut short (a killed run, a full disk) is not trusted: decoded again.
    (tmp_path / "decoded" / files[1]).write_bytes(b"\0" * 10)
    data.load_records.cache_clear()
    np.testing.assert_array_equal(data.read_split(config, "train")["image"], first["image"])
    assert decodings == [1]

    # A photo rewritten with other pixels gets a new cache entry with its new pixels.
    name = next(iter(GOOD_UTKFACE))
    _write_jpeg(utkface_dir / name, 240)
    os.utime(utkface_dir / name, ns=(1, 1))
    data.load_records.cache_clear()
    changed = data.read_split(config, "train")
    assert decodings == [1, 1]
    assert len(list((tmp_path / "decoded").glob("*.u8"))) == 2
    assert not np.array_equal(changed["image"], first["image"])


def test_disk_cache_failure_leaves_nothing_behind(utkface_dir, tmp_path, monkeypatch):
    def broken(records, config, store):
        raise OSError("disk full")

    monkeypatch.setattr(data, "_decode_each", broken)
    config = _utk_config(utkface_dir, cache="disk", cache_dir=str(tmp_path / "decoded"))
    with pytest.raises(OSError, match="disk full"):
        data.load_records(config, "train")
    assert list((tmp_path / "decoded").iterdir()) == []


@pytest.mark.parametrize("cache", ["disk", "memory"])
def test_photos_tensorflow_cannot_decode_are_left_out_and_named(utkface_dir, tmp_path,
                                                                 monkeypatch, cache):
    real_decode_file = data._decode_file
    bad = "21_1_0_20170110224238892.jpg.chip.jpg"

    def fails_on_bad(path, image_size, channels):
        check = tf.debugging.Assert(
            tf.logical_not(tf.strings.regex_full_match(path, f".*{bad}")), [path])
        with tf.control_dependencies([check]):
            return tf.identity(real_decode_file(path, image_size, channels))

    monkeypatch.setattr(data, "_decode_file", fails_on_bad)
    config = _utk_config(utkface_dir, cache=cache, cache_dir=str(tmp_path / "decoded"))
    for _ in range(2):  # Decoded, then (disk) read back from the cache's index.
        data.load_records.cache_clear()
        records = data.load_records(config, "train")
        assert len(records) == len(GOOD_UTKFACE) - 1
        assert dict(records.skipped)[str(utkface_dir / bad)] == "TensorFlow could not decode it"
        examples = data.read_split(config, "train")
        assert sorted(examples["male"].tolist()) == sorted(
            male for name, (male, _) in GOOD_UTKFACE.items() if name != bad)


def test_cache_mode_is_validated():
    with pytest.raises(ValueError, match="cache must be one of"):
        DataConfig(cache="ram")


def test_utkface_splits_are_disjoint_by_file(utkface_dir):
    config = _utk_config(utkface_dir, validation_fraction=0.3, test_fraction=0.3, seed=1,
                         cache="none")
    names = {split: set(data.load_records(config, split).paths.tolist()) for split in data.SPLITS}
    assert all(names.values())
    assert not names["train"] & names["validation"] and not names["train"] & names["test"]
    assert not names["validation"] & names["test"]
    assert names["train"] | names["validation"] | names["test"] == {
        str(utkface_dir / name) for name in GOOD_UTKFACE}


def test_utkface_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        data.load_records(_utk_config(tmp_path / "absent"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        data.load_records(_utk_config(tmp_path / "empty"), "train")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    _write_jpeg(only_bad / MALFORMED_UTKFACE[0], 10)
    with pytest.raises(ValueError, match="no usable"):
        data.load_records(_utk_config(only_bad), "train")


def test_utkface_real_names(shared_faces):
    folder = shared_faces / "utkface"
    config = _utk_config(folder, cache="none", batch_size=16)
    records = data.load_records(config, "train")
    assert records.images is None  # Streamed: nothing decoded up front.
    skipped = sorted(where for where, _ in records.skipped)
    # Exactly the three names without a race; the space and the missing dot are kept.
    assert skipped == sorted(str(folder / name) for name in MALFORMED_UTKFACE)
    assert len(records) == 23704
    assert int(records.male.sum()) == 12390
    kept = set(records.paths.tolist())
    assert str(folder / "24_0_1_20170116220224657 .jpg.chip.jpg") in kept
    assert str(folder / "55_0_0_20170116232725357jpg.chip.jpg") in kept
    batches = _batches(data.make_dataset(config, "train", training=True), 2)
    assert batches[0]["image"].shape == (16, 16, 16, 3)
    assert 0.1 < batches[0]["image"].mean() < 0.9


def test_utkface_real_copy_memory_and_streaming(shared_faces, tmp_path):
    names = sorted(p.name for p in (shared_faces / "utkface").iterdir())[:12]
    for name in names:
        shutil.copy(shared_faces / "utkface" / name, tmp_path / name)
    in_memory = data.read_split(_utk_config(tmp_path, cache="memory"), "train")
    streamed = data.read_split(_utk_config(tmp_path, cache="none"), "train")
    assert in_memory["image"].shape == (12, 16, 16, 3)
    for key in in_memory:
        np.testing.assert_array_equal(in_memory[key], streamed[key])
    np.testing.assert_array_equal(in_memory["male"],
                                  [data.parse_utkface_name(n) for n in names])


# ----------------------------------------------------------------------------------------------
# Folder


def _write_png(path, image):
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def _write_labels(folder, rows, header=("file", "male", "identity")):
    with open(folder / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _folder_config(folder, **overrides):
    values = dict(dataset=f"folder:{folder}?aligned=1", image_size=16, batch_size=2,
                  validation_fraction=0.0, test_fraction=0.0)
    return DataConfig(**{**values, **overrides})


def test_folder_labels_csv(tmp_path, caplog):
    for i in range(6):
        _write_jpeg(tmp_path / f"p{i}.jpg", 30 * i + 10)
    (tmp_path / "sub").mkdir()
    _write_jpeg(tmp_path / "sub" / "q.jpg", 200)
    _write_labels(tmp_path, [
        ("p0.jpg", 1, 7), ("p1.jpg", 0, 7), ("p2.jpg", 1, ""), ("sub/q.jpg", 0, 9),
        ("p3.jpg", 2, 1),        # bad male value
        ("p4.jpg", "yes", 1),    # bad male value
        ("missing.jpg", 1, 3),   # no such file
        ("p5.jpg", 1, "x"),      # bad identity
    ])
    config = _folder_config(tmp_path)
    with caplog.at_level(logging.WARNING):
        records = data.load_records(config, "train")
    assert len(records) == 4
    labels = sorted(zip(records.male.tolist(), records.identity.tolist()))
    assert labels == [(0, 7), (0, 9), (1, -1), (1, 7)]
    skipped = dict(records.skipped)
    labels_file = str(tmp_path / "labels.csv")
    assert sorted(skipped) == [f"{labels_file}:{row}" for row in (6, 7, 8, 9)]
    assert "male must be 0 or 1, got 2" in skipped[f"{labels_file}:6"]
    assert "missing.jpg" in skipped[f"{labels_file}:8"] and "does not exist" in skipped[
        f"{labels_file}:8"]
    assert "skipped 4 unusable" in caplog.text
    examples = data.read_split(config, "train")
    assert examples["image"].shape == (4, 16, 16, 3)
    assert data.has_identities(config)


def test_folder_labels_csv_missing_column(tmp_path):
    _write_jpeg(tmp_path / "a.jpg", 10)
    _write_labels(tmp_path, [("a.jpg", 7)], header=("file", "identity"))
    with pytest.raises(ValueError, match=r"labels\.csv.*missing column.*'male'") as error:
        data.load_records(_folder_config(tmp_path), "train")
    assert str(tmp_path / "labels.csv") in str(error.value)


def test_folder_labels_csv_with_byte_order_mark(tmp_path):
    _write_jpeg(tmp_path / "a.jpg", 10)
    _write_jpeg(tmp_path / "b.jpg", 90)
    (tmp_path / "labels.csv").write_text("file,male\na.jpg,1\nb.jpg,0\n", encoding="utf-8-sig")
    records = data.load_records(_folder_config(tmp_path), "train")
    assert sorted(records.male.tolist()) == [0, 1]
    assert not data.has_identities(_folder_config(tmp_path))


def test_folder_identity_layout_and_odd_formats(tmp_path):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    deep = np.full((24, 24, 3), 40000, np.uint16)
    for person, files in {"alice": 3, "bob": 2}.items():
        (tmp_path / person).mkdir()
        for i in range(files):
            _write_jpeg(tmp_path / person / f"{i}.jpg", 50 * i + 20)
    _write_png(tmp_path / "alice" / "rgba.png", rgba)
    _write_png(tmp_path / "bob" / "deep.png", deep)
    _write_jpeg(tmp_path / "bob" / "gray.jpg", 128, gray=True)
    (tmp_path / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    config = _folder_config(tmp_path)
    records = data.load_records(config, "train")
    assert [p for p, _ in records.skipped] == [str(tmp_path / "bob" / "broken.jpg")]
    examples = data.read_split(config, "train")
    assert examples["image"].shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(np.sort(examples["identity"]), [0, 0, 0, 0, 1, 1, 1, 1])
    assert (examples["male"] == -1).all()
    assert data.has_identities(config)
    values = {round(float(image.mean()) * 255) for image in examples["image"]}
    assert 200 in values  # The opaque RGBA PNG.
    assert round(40000 * 255 / 65535) in values  # The 16-bit PNG, scaled to 8 bits.
    assert 128 in values  # The grayscale JPEG, to three channels.
    gray = DataConfig(**{**config.__dict__, "channels": 1})
    assert data.read_split(gray, "train")["image"].shape == (8, 16, 16, 1)


def test_folder_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as error:
        data.load_records(_folder_config(tmp_path / "absent"), "train")
    assert str(tmp_path / "absent") in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as error:
        data.load_records(_folder_config(tmp_path / "empty"), "train")
    assert str(tmp_path / "empty") in str(error.value)
    (tmp_path / "nobody" / "person").mkdir(parents=True)
    with pytest.raises(ValueError, match="no usable images") as error:
        data.load_records(_folder_config(tmp_path / "nobody"), "train")
    assert str(tmp_path / "nobody") in str(error.value)


def test_folder_unaligned_real_photos_go_through_the_aligner(shared_faces, tmp_path):
    source = tmp_path / "photos"
    people = sorted(p for p in (shared_faces / "celeba_identities").iterdir() if p.is_dir())[:2]
    for person in people:
        (source / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:3]:
            shutil.copy(photo, source / person.name / photo.name)
    cache = tmp_path / "aligned"
    config = DataConfig(dataset=f"folder:{source}", image_size=32, batch_size=2,
                        validation_fraction=0.0, test_fraction=0.0, align_cache_dir=str(cache),
                        cache="none")
    records = data.load_records(config, "train")
    assert len(records) >= 2
    aligned = list(cache.iterdir())
    assert len(aligned) == 1 and (aligned[0] / "align_report.json").exists()
    # The pipeline reads the aligned crops, never the photos.
    assert all(path.startswith(str(aligned[0]) + "/") for path in records.paths.tolist())
    assert all(cv2.imread(path).shape == (32, 32, 3) for path in records.paths.tolist())
    examples = data.read_split(config, "train")
    assert examples["image"].shape[1:] == (32, 32, 3)
    assert set(examples["identity"].tolist()) <= {0, 1}


def test_folder_is_aligned_again_when_its_photos_change(tmp_path, monkeypatch):
    from semiadv.align import aligner as align

    calls = []

    def fake_align_folder(source, target, image_size, detector_name):
        # Stands in for the aligner: "aligned" crops are the photos themselves.
        assert detector_name == "haar"  # DataConfig's default
        calls.append(str(target))
        shutil.copytree(source, target, dirs_exist_ok=True)
        (target / "align_report.json").write_text("{}")

    monkeypatch.setattr(align, "align_folder", fake_align_folder)
    source = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for person in range(2):
        (source / f"p{person}").mkdir(parents=True)
        for photo in range(2):
            cv2.imwrite(str(source / f"p{person}" / f"{photo}.png"),
                        rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    config = DataConfig(dataset=f"folder:{source}", image_size=16, batch_size=2,
                        validation_fraction=0.0, test_fraction=0.0,
                        align_cache_dir=str(tmp_path / "cache"), cache="none")
    assert len(data.load_records(config, "train")) == 4
    data.load_records.cache_clear()
    assert len(data.load_records(config, "train")) == 4
    assert len(calls) == 1  # Unchanged photos: the cached alignment is reused.
    cv2.imwrite(str(source / "p1" / "2.png"), rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    data.load_records.cache_clear()
    assert len(data.load_records(config, "train")) == 5
    assert len(calls) == 2 and calls[0] != calls[1]


# ----------------------------------------------------------------------------------------------
# tensorflow-datasets specs (mock data: no download)


def test_celeb_a_through_tfds():
    import tensorflow_datasets as tfds

    config = DataConfig(dataset="celeb_a", image_size=32, batch_size=4)
    with tfds.testing.mock_data(num_examples=8):
        train = _batches(data.make_dataset(config, "train", training=True, augment="flip"), 3)
        validation = list(data.make_dataset(config, "validation", training=False)
                          .as_numpy_iterator())
    for batch in train + validation:
        assert batch["image"].shape[1:] == (32, 32, 3) and batch["image"].dtype == np.float32
        assert np.isfinite(batch["image"]).all()
        assert batch["image"].min() >= 0 and batch["image"].max() <= 1
        assert set(batch["male"].tolist()) <= {0, 1} and batch["male"].dtype == np.int64
        assert (batch["identity"] == -1).all()
        assert batch["landmarks"].shape[1:] == (5, 2) and batch["landmarks"].dtype == np.float32
    assert all(b["image"].shape[0] == 4 for b in train)
    assert "flipped" in train[0]
    assert sum(len(b["male"]) for b in validation) == 8
    assert not data.has_identities(config)


def test_lfw_through_tfds():
    import tensorflow_datasets as tfds

    config = DataConfig(dataset="lfw", image_size=16, batch_size=4, validation_fraction=0.3,
                        test_fraction=0.3)
    with tfds.testing.mock_data(num_examples=40):
        splits = {split: list(data.make_dataset(config, split, training=False)
                              .as_numpy_iterator()) for split in data.SPLITS}
        train = _batches(data.make_dataset(config, "train", training=True), 2)
    identities = {}
    for split, batches in splits.items():
        assert batches, split
        for batch in batches:
            assert batch["image"].shape[1:] == (16, 16, 3)
            assert batch["identity"].dtype == np.int64 and (batch["male"] == -1).all()
        identities[split] = set(np.concatenate([b["identity"] for b in batches]).tolist())
    assert sum(len(ids) for ids in identities.values()) > 0
    assert not identities["train"] & identities["validation"]
    assert not identities["train"] & identities["test"]
    assert not identities["validation"] & identities["test"]
    assert train[1]["image"].shape == (4, 16, 16, 3)
    assert set(np.concatenate([b["identity"] for b in train]).tolist()) <= identities["train"]
    assert data.has_identities(config)


def test_tfds_specs_are_not_records():
    with pytest.raises(ValueError, match="make_dataset"):
        data.load_records(DataConfig(dataset="lfw"), "train")


# ----------------------------------------------------------------------------------------------
# read_split


def test_read_split_limit_and_order():
    whole = data.read_split(SYNTHETIC, "test")
    first = data.read_split(SYNTHETIC, "test", limit=5)
    assert len(first["male"]) == 5
    for key in whole:
        np.testing.assert_array_equal(first[key], whole[key][:5])
