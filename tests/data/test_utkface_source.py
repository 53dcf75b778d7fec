"""Tests for `semiadv.data.utkface_source`: names, malformed and unusable files, real UTKFace."""

import logging
import shutil

import _dataset_files
import numpy as np
import pytest

from semiadv.data import input_pipeline
from semiadv.data import records as records_lib
from semiadv.data import splits
from semiadv.data import utkface_source

GOOD, MALFORMED = _dataset_files.GOOD_UTKFACE, _dataset_files.MALFORMED_UTKFACE
config_of = _dataset_files.utkface_config

@pytest.mark.parametrize("name, labels", [
    ("20_0_0_20170110224238891.jpg.chip.jpg", (1, 20, 0)),
    ("20_1_0_20170110224238891.jpg.chip.jpg", (0, 20, 0)),
    ("24_0_1_20170116220224657 .jpg.chip.jpg", (1, 24, 1)),
    ("55_0_0_20170116232725357jpg.chip.jpg", (1, 55, 0)),
    ("14_0_0_2017011022340900.jpg.chip.jpg", (1, 14, 0)),
    ("116_1_4_20170110224238897.jpg.chip.jpg", (0, 116, 4)),
    ("1_1_3_20170110224238897.jpg.chip.jpg", (0, 1, 3)),
    # Four fields and a gender: kept, what cannot be read is -1.
    ("20_0_5_20170110224238891.jpg.chip.jpg", (1, 20, -1)),
    ("20_1_x_20170110224238891.jpg.chip.jpg", (0, 20, -1)),
    ("x_0_0_20170110224238891.jpg.chip.jpg", (1, -1, 0)),
    ("_1_2_20170110224238891.jpg.chip.jpg", (0, -1, 2)),
    ("999_0_2_20170110224238891.jpg.chip.jpg", (1, -1, 2)),
    ("\u00b2_0_2_20170110224238891.jpg.chip.jpg", (1, -1, 2)),  # a superscript two: no digit
    # A field missing, a gender that is no gender, no date: skipped.
    ("39_1_20170116174525125.jpg.chip.jpg", None),
    ("20_2_0_20170110224238891.jpg.chip.jpg", None),
    ("20_0_0_x.jpg.chip.jpg", None),
    ("20_0_0.jpg", None),
    ("photo.jpg", None),
])
def test_parse_utkface_name(name, labels):
    parsed = utkface_source.parse_utkface_labels(name)
    assert (None if parsed is None else (parsed.male, parsed.age, parsed.race)) == labels
    assert utkface_source.parse_utkface_name(name) == (None if labels is None else labels[0])


@pytest.fixture
def utkface_dir(tmp_path):
    return _dataset_files.write_utkface_folder(tmp_path / "utk")


@pytest.mark.parametrize("cache", ["disk", "memory", "none"])
def test_utkface_skips_malformed_and_unusable_files(utkface_dir, caplog, cache):
    config = config_of(utkface_dir, cache=cache)
    with caplog.at_level(logging.WARNING):
        records = records_lib.load_records(config, "train")
    assert (records.images is not None) == (cache == "memory")
    assert (records.cache_file is not None) == (cache == "disk")
    skipped = dict(records.skipped)
    bad_files = _dataset_files.UNUSABLE_UTKFACE
    assert sorted(skipped) == sorted(str(utkface_dir / name) for name in MALFORMED + bad_files)
    for name in MALFORMED:
        assert "malformed UTKFace name" in skipped[str(utkface_dir / name)]
    assert "empty" in skipped[str(utkface_dir / bad_files[0])]
    assert "truncated" in skipped[str(utkface_dir / bad_files[1])]
    assert "not an image" in skipped[str(utkface_dir / bad_files[2])]
    assert len(records) == len(GOOD)
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "skipped 6 unusable file(s)" in warning and MALFORMED[0] in warning
    assert "2 name(s) with an unreadable age or race, kept with -1" in warning
    # Labels follow the files: the grey level drawn into each photo tells which file it was.
    examples = input_pipeline.read_split(config, "train")
    assert examples["image"].shape == (len(GOOD), 16, 16, 3)
    by_value = {value: (male, *_dataset_files.UTKFACE_AGE_RACE[name])
                for name, (male, value) in GOOD.items()}
    for index, image in enumerate(examples["image"]):
        value = int(round(image[12:, :, 0].mean() * 255 / 20)) * 20  # bottom half: pure grey
        male, age, race = by_value.pop(value)
        assert (examples["male"][index], examples["age"][index], examples["race"][index]) == (
            male, age, race), value
        assert examples["identity"][index] == -1
    assert not by_value  # Every good file read once.
    # 0-19: 14; 20-39: 9 names of 20..33; 40-59: 55; 60+: 116; unknown: the "x" age.
    assert sorted(examples["age_group"].tolist()) == [-1, 0] + [1] * 9 + [2, 3]
    assert sorted(examples["male"].tolist()) == sorted(m for m, _ in GOOD.values())


def test_utkface_splits_are_disjoint_by_file(utkface_dir):
    config = config_of(utkface_dir, validation_fraction=0.3, test_fraction=0.3, seed=1,
                       cache="none")
    names = {split: set(records_lib.load_records(config, split).paths.tolist())
             for split in splits.SPLITS}
    assert all(names.values())
    assert not names["train"] & names["validation"] and not names["train"] & names["test"]
    assert not names["validation"] & names["test"]
    assert names["train"] | names["validation"] | names["test"] == {
        str(utkface_dir / name) for name in GOOD}


def test_utkface_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        records_lib.load_records(config_of(tmp_path / "absent"), "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        records_lib.load_records(config_of(tmp_path / "empty"), "train")
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    _dataset_files.write_jpeg(only_bad / MALFORMED[0], 10)
    with pytest.raises(ValueError, match="no usable"):
        records_lib.load_records(config_of(only_bad), "train")


def test_utkface_real_names(shared_faces):
    folder = shared_faces / "utkface"
    config = config_of(folder, cache="none", batch_size=16)
    records = records_lib.load_records(config, "train")
    assert records.images is None  # Streamed: nothing decoded up front.
    skipped = sorted(where for where, _ in records.skipped)
    # Exactly the three names without a race; the space and the missing dot are kept.
    assert skipped == sorted(str(folder / name) for name in MALFORMED)
    assert len(records) == 23704
    assert int(records.male.sum()) == 12390
    # Counted independently with awk on the names' third and first fields.
    assert np.bincount(records.race).tolist() == [10078, 4525, 3434, 3975, 1692]
    assert np.bincount(records.age_group).tolist() == [4592, 11880, 4544, 2688]
    assert (records.age.min(), records.age.max()) == (1, 116)
    kept = set(records.paths.tolist())
    assert str(folder / "24_0_1_20170116220224657 .jpg.chip.jpg") in kept
    assert str(folder / "55_0_0_20170116232725357jpg.chip.jpg") in kept
    batches = list(input_pipeline.make_dataset(config, "train", training=True)
                   .take(2).as_numpy_iterator())
    assert batches[0]["image"].shape == (16, 16, 16, 3)
    assert 0.1 < batches[0]["image"].mean() < 0.9


def test_utkface_real_copy_memory_and_streaming(shared_faces, tmp_path):
    names = sorted(p.name for p in (shared_faces / "utkface").iterdir())[:12]
    for name in names:
        shutil.copy(shared_faces / "utkface" / name, tmp_path / name)
    in_memory = input_pipeline.read_split(config_of(tmp_path, cache="memory"), "train")
    streamed = input_pipeline.read_split(config_of(tmp_path, cache="none"), "train")
    assert in_memory["image"].shape == (12, 16, 16, 3)
    for key in in_memory:
        np.testing.assert_array_equal(in_memory[key], streamed[key])
    np.testing.assert_array_equal(in_memory["male"],
                                  [utkface_source.parse_utkface_name(n) for n in names])
