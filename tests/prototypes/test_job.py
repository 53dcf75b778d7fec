"""Tests for `semiadv.prototypes.job`: the prototypes of a dataset's training split."""

import logging
import os
import subprocess
import sys

import _dataset_files
import numpy as np
import pytest

from semiadv.config import DataConfig
from semiadv.data import attributes
from semiadv.data import input_pipeline
from semiadv.data import utkface_source
from semiadv.prototypes import job
from semiadv.prototypes import storage


def test_compute_and_save_on_synthetic_data(tmp_path):
    config = DataConfig(dataset="synthetic", image_size=16, batch_size=8, seed=2,
                        synthetic_identities=20, synthetic_images_per_identity=3)
    output = tmp_path / "prototypes.npz"
    result = job.compute_and_save(config, output)
    loaded = storage.load_prototypes(output)
    np.testing.assert_array_equal(loaded.male, result.male)
    assert output.with_suffix(".png").exists()
    train = input_pipeline.read_split(config, "train")
    males, females = int((train["male"] == 1).sum()), int((train["male"] == 0).sum())
    assert result.counts == (males, females) and males > 0 and females > 0
    np.testing.assert_allclose(result.male, train["image"][train["male"] == 1].mean(0), atol=1e-5)
    np.testing.assert_allclose(result.female, train["image"][train["male"] == 0].mean(0),
                               atol=1e-5)
    assert result.male_weight == pytest.approx(males / (males + females))
    assert np.abs(result.male - result.female).max() > 0.05
    forced = job.compute_and_save(config, tmp_path / "half.npz", male_weight=0.5)
    np.testing.assert_allclose(forced.neutral, (forced.male + forced.female) / 2, atol=1e-6)
    assert result.by_attribute == {} and loaded.by_attribute == {}  # The default: gender only.


def test_prototypes_per_age_group_and_race_on_synthetic_data(tmp_path):
    config = DataConfig(dataset="synthetic", image_size=16, batch_size=8, seed=2,
                        synthetic_identities=40, synthetic_images_per_identity=2)
    result = job.compute_and_save(config, tmp_path / "p.npz", attributes=("age_group", "race"))
    train = input_pipeline.read_split(config, "train")
    for name, size in (("age_group", 4), ("race", 5)):
        values = result.by_attribute[name]
        assert values.counts == tuple(np.bincount(train[name], minlength=size).tolist())
        for value, image in values.images.items():
            np.testing.assert_allclose(image, train["image"][train[name] == value].mean(0),
                                       atol=1e-5)
    races = result.by_attribute["race"]
    assert not races.missing
    # The synthetic race codes are skin bands: their mean faces darken code by code.
    centre = [races.images[code][6:10, 5:11].mean() for code in range(5)]
    assert all(np.diff(centre) < 0), centre
    loaded = storage.load_prototypes(tmp_path / "p.npz")
    assert loaded.by_attribute["race"].counts == races.counts


def _utkface_run(folder, output, *flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-m", "semiadv.apps.prototypes_main", f"--dataset=utkface:{folder}",
         "--image_size=16", "--validation_fraction=0", "--test_fraction=0", "--cache=none",
         f"--output={output}", *flags], capture_output=True, text=True, timeout=180, env=env)


def test_utkface_names_give_prototypes_per_value_and_values_without_faces_are_left_out(
        tmp_path, caplog):
    folder = _dataset_files.write_utkface_folder(tmp_path / "utk")
    config = _dataset_files.utkface_config(folder, cache="none")
    with caplog.at_level(logging.WARNING):
        result = job.compute_and_save(config, tmp_path / "p.npz",
                                      attributes=("age_group", "race"))
    # Counted by hand from _dataset_files.UTKFACE_AGE_RACE: ages 14, 20..33 (9), 55, 116 and
    # one unknown; races 0 x5, 1 x2, 2 x2, 3, 4 x2 and one unknown (the code 7).
    assert result.counts == (7, 6)
    assert result.by_attribute["age_group"].counts == (1, 9, 1, 1)
    assert result.by_attribute["race"].counts == (5, 2, 2, 1, 2)
    # The only face over 60 (116 years) is the one of grey 140.
    np.testing.assert_allclose(result.by_attribute["age_group"].images[3][12:, :, 0],
                               140 / 255, atol=3 / 255)
    assert "no faces" not in caplog.text

    only_young = tmp_path / "young"
    only_young.mkdir()
    for name in ("20_0_0_20170110224238891.jpg.chip.jpg", "21_1_2_20170110224238892.jpg.chip.jpg"):
        _dataset_files.write_jpeg(only_young / name, 100)
    output = tmp_path / "out" / "young.npz"
    run = _utkface_run(only_young, output, "--attributes=gender,age_group,race")
    assert run.returncode == 0, run.stderr
    assert ("prototypes per age_group: 0-19 0, 20-39 2, 40-59 0, 60+ 0 "
            "(no faces: 0-19, 40-59, 60+; left out)") in run.stdout
    assert ("prototypes per race: White 1, Black 0, Asian 1, Indian 0, Others 0 "
            "(no faces: Black, Indian, Others; left out)") in run.stdout
    loaded = storage.load_prototypes(output)
    assert loaded.counts == (1, 1)
    assert list(loaded.by_attribute["age_group"].images) == [1]
    assert sorted(loaded.by_attribute["race"].images) == [0, 2]
    assert output.with_suffix(".png").exists()


def test_prototypes_per_value_on_real_utkface(shared_faces, tmp_path):
    # Every 79th name: 300 faces of every age and race, linked (never copied into the repo).
    source = shared_faces / "utkface"
    folder = tmp_path / "utk300"
    folder.mkdir()
    for name in sorted(os.listdir(source))[::79]:
        os.symlink(source / name, folder / name)
    config = _dataset_files.utkface_config(folder, image_size=32, batch_size=64, cache="none")
    result = job.compute_and_save(config, tmp_path / "p.npz", attributes=("age_group", "race"))
    labels = [utkface_source.parse_utkface_labels(name) for name in os.listdir(folder)]
    labels = [item for item in labels if item is not None]
    assert sum(result.counts) == len(labels)
    assert result.by_attribute["race"].counts == tuple(
        np.bincount([item.race for item in labels], minlength=5).tolist())
    assert result.by_attribute["age_group"].counts == tuple(
        np.bincount(attributes.age_group([item.age for item in labels]), minlength=4).tolist())
    assert min(result.by_attribute["race"].counts) >= 20  # Every value has faces.
    # Real mean faces: the White prototype's cheeks and nose are lighter than the Black one's.
    races = result.by_attribute["race"].images
    assert races[0][12:22, 10:22].mean() > races[1][12:22, 10:22].mean() + 0.1
