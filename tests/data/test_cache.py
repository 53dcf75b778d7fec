"""Tests for `semiadv.data.cache`: every cache mode reads the same; the disk cache decodes once."""

import os
from pathlib import Path

import _dataset_files
import numpy as np
import pytest
import tensorflow as tf

from semiadv.config import DataConfig
from semiadv.data import cache
from semiadv.data import image_ops
from semiadv.data import input_pipeline
from semiadv.data import records as records_lib

GOOD = _dataset_files.GOOD_UTKFACE
config_of = _dataset_files.utkface_config


@pytest.fixture
def utkface_dir(tmp_path):
    return _dataset_files.write_utkface_folder(tmp_path / "utk")


def test_utkface_every_cache_mode_reads_the_same(utkface_dir):
    in_memory = input_pipeline.read_split(config_of(utkface_dir, cache="memory"), "train")
    for mode in ("disk", "none"):
        other = input_pipeline.read_split(config_of(utkface_dir, cache=mode), "train")
        for key in in_memory:
            np.testing.assert_array_equal(in_memory[key], other[key])
    # Over the memory budget, "memory" falls back to the disk cache.
    over_budget = records_lib.load_records(
        config_of(utkface_dir, cache="memory", cache_megabytes=0), "train")
    assert over_budget.images is None and over_budget.cache_file is not None


def test_disk_cache_decodes_once_and_redecodes_what_changed(utkface_dir, tmp_path, monkeypatch):
    config = config_of(utkface_dir, cache="disk", cache_dir=str(tmp_path / "decoded"))
    first = input_pipeline.read_split(config, "train")
    files = sorted(p.name for p in (tmp_path / "decoded").iterdir())
    assert [Path(f).suffix for f in files] == [".json", ".u8"]  # no partial file left behind
    rows = (tmp_path / "decoded" / files[1]).stat().st_size
    assert rows == len(GOOD) * 16 * 16 * 3

    decodings = []
    real_decode_photos = cache.decode_photos
    monkeypatch.setattr(cache, "decode_photos",
                        lambda *a: decodings.append(1) or real_decode_photos(*a))
    records_lib.load_records.cache_clear()
    again = input_pipeline.read_split(config, "train")
    assert decodings == []  # Read from the cache file, not decoded again.
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])

    # A file cut short (a killed run, a full disk) is not trusted: decoded again.
    (tmp_path / "decoded" / files[1]).write_bytes(b"\0" * 10)
    records_lib.load_records.cache_clear()
    np.testing.assert_array_equal(input_pipeline.read_split(config, "train")["image"],
                                  first["image"])
    assert decodings == [1]

    # A photo rewritten with other pixels gets a new cache entry with its new pixels.
    name = next(iter(GOOD))
    _dataset_files.write_jpeg(utkface_dir / name, 240)
    os.utime(utkface_dir / name, ns=(1, 1))
    records_lib.load_records.cache_clear()
    changed = input_pipeline.read_split(config, "train")
    assert decodings == [1, 1]
    assert len(list((tmp_path / "decoded").glob("*.u8"))) == 2
    assert not np.array_equal(changed["image"], first["image"])


def test_disk_cache_failure_leaves_nothing_behind(utkface_dir, tmp_path, monkeypatch):
    def broken(paths, config, store):
        raise OSError("disk full")

    monkeypatch.setattr(cache, "decode_photos", broken)
    config = config_of(utkface_dir, cache="disk", cache_dir=str(tmp_path / "decoded"))
    with pytest.raises(OSError, match="disk full"):
        records_lib.load_records(config, "train")
    assert list((tmp_path / "decoded").iterdir()) == []


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_photos_tensorflow_cannot_decode_are_left_out_and_named(utkface_dir, tmp_path,
                                                                 monkeypatch, mode):
    real_decode_photo = image_ops.decode_photo
    bad = "21_1_0_20170110224238892.jpg.chip.jpg"

    def fails_on_bad(path, image_size, channels):
        check = tf.debugging.Assert(
            tf.logical_not(tf.strings.regex_full_match(path, f".*{bad}")), [path])
        with tf.control_dependencies([check]):
            return tf.identity(real_decode_photo(path, image_size, channels))

    monkeypatch.setattr(image_ops, "decode_photo", fails_on_bad)
    config = config_of(utkface_dir, cache=mode, cache_dir=str(tmp_path / "decoded"))
    for _ in range(2):  # Decoded, then (disk) read back from the cache's index.
        records_lib.load_records.cache_clear()
        records = records_lib.load_records(config, "train")
        assert len(records) == len(GOOD) - 1
        assert dict(records.skipped)[str(utkface_dir / bad)] == cache.UNDECODABLE
        assert cache.UNDECODABLE == "TensorFlow could not decode it"
        examples = input_pipeline.read_split(config, "train")
        assert sorted(examples["male"].tolist()) == sorted(
            male for name, (male, _) in GOOD.items() if name != bad)


def test_cache_mode_is_validated():
    with pytest.raises(ValueError, match="cache must be one of"):
        DataConfig(cache="ram")


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert cache.cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("SEMIADV_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_root() == tmp_path / ".cache" / "semiadv"
