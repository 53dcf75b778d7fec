"""Tests for `semiadv.prototypes.storage` (and the figure it writes): round trips, atomic writes."""

import dataclasses

import numpy as np
import pytest

from semiadv.prototypes import average
from semiadv.prototypes import by_attribute
from semiadv.prototypes import figure
from semiadv.prototypes import storage
from semiadv.utils import imageio


def _example_prototypes(channels=3):
    rng = np.random.default_rng(0)
    male = rng.uniform(size=(16, 16, channels)).astype(np.float32)
    female = rng.uniform(size=(16, 16, channels)).astype(np.float32)
    return average.Prototypes(male, female, (0.3 * male + 0.7 * female).astype(np.float32),
                                 0.3, (30, 70))


@pytest.mark.parametrize("channels", [1, 3])
def test_save_and_load_round_trip(tmp_path, channels):
    original = _example_prototypes(channels)
    path = tmp_path / "run" / "prototypes.npz"
    storage.save_prototypes(original, path)
    loaded = storage.load_prototypes(path)
    for name in ("male", "female", "neutral"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(original, name))
    assert loaded.male_weight == 0.3 and loaded.counts == (30, 70)
    # The PNG shows male | neutral | female, each upscaled (nearest) to >= 128 px.
    picture = imageio.read_image(path.with_suffix(".png"))
    np.testing.assert_array_equal(picture, figure.prototype_figure(original))
    side, corners = figure.figure_panels(16)
    assert side == 128 and picture.shape[1] >= 3 * 128 and picture.shape[2] == 3
    for image, (top, left) in zip((original.male, original.neutral, original.female), corners):
        panel = picture[top:top + side, left:left + side]
        expected = np.rint(np.repeat(image, 3 // channels, axis=-1) * 255)
        np.testing.assert_allclose(panel[::8, ::8], expected, atol=1)
        np.testing.assert_array_equal(panel[::8, ::8], panel[7::8, 7::8])  # Nearest blocks.
        # The label band above each panel has dark text on white.
        band = picture[top - figure.FIGURE_LABEL_HEIGHT:top - 2, left:left + side]
        assert band.min() < 100 and np.median(band) == 255
    # Only the two files are left: no temporary names.
    assert sorted(p.name for p in path.parent.iterdir()) == ["prototypes.npz", "prototypes.png"]


def test_landmarks_round_trip_and_files_without_them_load(tmp_path):
    plain = _example_prototypes()
    landmarks = np.array([[5.0, 6.0], [10.0, 6.0]], np.float32)
    with_landmarks = average.Prototypes(plain.male, plain.female, plain.neutral,
                                        plain.male_weight, plain.counts, landmarks)
    storage.save_prototypes(with_landmarks, tmp_path / "celeb_a.npz", png=False)
    storage.save_prototypes(plain, tmp_path / "plain.npz", png=False)
    np.testing.assert_array_equal(storage.load_prototypes(tmp_path / "celeb_a.npz").landmarks,
                                  landmarks)
    assert storage.load_prototypes(tmp_path / "plain.npz").landmarks is None
    with np.load(tmp_path / "plain.npz") as data:
        assert sorted(data.files) == ["counts", "female", "male", "male_weight", "neutral"]
    assert storage.load_prototypes(tmp_path / "plain.npz").by_attribute == {}


def test_save_without_png_overwrites_atomically(tmp_path):
    path = tmp_path / "prototypes.npz"
    storage.save_prototypes(_example_prototypes(), path, png=False)
    second = _example_prototypes()
    second = average.Prototypes(second.female, second.male, second.neutral, 0.5, (1, 1))
    storage.save_prototypes(second, path, png=False)
    assert storage.load_prototypes(path).counts == (1, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["prototypes.npz"]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "prototypes.npz"
    storage.save_prototypes(_example_prototypes(), path, png=False)

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        storage.save_prototypes(_example_prototypes(), path, png=False)
    assert [p.name for p in tmp_path.iterdir()] == ["prototypes.npz"]
    assert storage.load_prototypes(path).counts == (30, 70)


def test_load_rejects_files_that_are_not_prototypes(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    truncated = tmp_path / "truncated.npz"
    storage.save_prototypes(_example_prototypes(), tmp_path / "good.npz", png=False)
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:200])
    flat = tmp_path / "flat.npz"
    np.savez(flat, male=np.zeros(4), female=np.zeros(4), neutral=np.zeros(4), male_weight=0.5,
             counts=np.array([1, 1]))
    for path in (text, array, other, truncated, flat, tmp_path / "absent.npz"):
        with pytest.raises(ValueError, match="prototype file") as error:
            storage.load_prototypes(path)
        assert str(path) in str(error.value)


def _with_attributes(channels=3):
    plain = _example_prototypes(channels)
    rng = np.random.default_rng(1)
    face = lambda: rng.uniform(size=(16, 16, channels)).astype(np.float32)  # noqa: E731
    ages = by_attribute.AttributePrototypes("age_group", {0: face(), 1: face(), 3: face()},
                                            (5, 12, 0, 3))
    races = by_attribute.AttributePrototypes("race", {k: face() for k in range(5)},
                                             (10, 4, 3, 2, 1))
    return dataclasses.replace(plain, by_attribute={"age_group": ages, "race": races})


@pytest.mark.parametrize("channels", [1, 3])
def test_attribute_prototypes_round_trip_into_the_npz_and_the_figure(tmp_path, channels):
    original = _with_attributes(channels)
    path = tmp_path / "prototypes.npz"
    storage.save_prototypes(original, path)
    with np.load(path) as data:
        assert sorted(data.files) == sorted(
            ["counts", "female", "male", "male_weight", "neutral", "age_group_counts",
             "age_group_0", "age_group_1", "age_group_3", "race_counts"]
            + [f"race_{k}" for k in range(5)])
        np.testing.assert_array_equal(data["age_group_counts"], [5, 12, 0, 3])
    loaded = storage.load_prototypes(path)
    np.testing.assert_array_equal(loaded.male, original.male)  # Gender as before.
    assert loaded.counts == (30, 70)
    assert list(loaded.by_attribute) == ["age_group", "race"]
    for name, values in original.by_attribute.items():
        assert loaded.by_attribute[name].counts == values.counts
        assert sorted(loaded.by_attribute[name].images) == sorted(values.images)
        for value, image in values.images.items():
            np.testing.assert_array_equal(loaded.by_attribute[name].images[value], image)
    assert loaded.by_attribute["age_group"].missing == (2,)
    # The figure: the gender row where it always was, then one row per attribute of its
    # values with faces (the age group without faces left out), each labelled above.
    picture = imageio.read_image(path.with_suffix(".png"))
    side, corners = figure.figure_panels(16)
    rows = figure.attribute_panels(original)
    assert [value for value, _, _ in rows["age_group"]] == [0, 1, 3]
    assert [value for value, _, _ in rows["race"]] == [0, 1, 2, 3, 4]
    assert rows["race"][0][1] > rows["age_group"][0][1] > corners[0][0] + side
    assert picture.shape == (rows["race"][0][1] + side + figure.FIGURE_MARGIN,
                             rows["race"][4][2] + side + figure.FIGURE_MARGIN, 3)
    for name, row in rows.items():
        for value, top, left in row:
            panel = picture[top:top + side, left:left + side]
            image = original.by_attribute[name].images[value]
            expected = np.rint(np.repeat(image, 3 // channels, axis=-1) * 255)
            np.testing.assert_allclose(panel[::8, ::8], expected, atol=1)
            band = picture[top - figure.ATTRIBUTE_LABEL_HEIGHT:top - 2, left:left + side]
            assert band.min() < 100 and np.median(band) == 255
    # The gender panels are untouched by the rows below.
    top, left = corners[0]
    np.testing.assert_allclose(picture[top:top + side:8, left:left + side:8],
                               np.rint(np.repeat(original.male, 3 // channels, axis=-1) * 255),
                               atol=1)


def test_files_with_bad_attribute_prototypes_are_refused(tmp_path):
    good = _example_prototypes()
    arrays = dict(male=good.male, female=good.female, neutral=good.neutral, male_weight=0.3,
                  counts=np.array([30, 70]))
    cases = {
        "short_counts": dict(race_counts=np.array([1, 2]), race_0=good.male, race_1=good.male),
        "no_image": dict(age_group_counts=np.array([1, 0, 0, 2]), age_group_0=good.male),
        "other_shape": dict(age_group_counts=np.array([1, 0, 0, 0]),
                            age_group_0=np.zeros((8, 8, 3), np.float32)),
        "unknown_attribute": dict(hair_counts=np.array([1]), hair_0=good.male),
    }
    for name, extra in cases.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays, **extra)
        with pytest.raises(ValueError, match="prototype file") as error:
            storage.load_prototypes(path)
        assert str(path) in str(error.value), name


def test_an_attribute_without_any_faces_round_trips_and_adds_no_row(tmp_path):
    plain = _example_prototypes()
    nobody = by_attribute.AttributePrototypes("age_group", {}, (0, 0, 0, 0))  # e.g. CelebA
    unknown_ages = dataclasses.replace(plain, by_attribute={"age_group": nobody})
    storage.save_prototypes(unknown_ages, tmp_path / "p.npz")
    loaded = storage.load_prototypes(tmp_path / "p.npz")
    assert loaded.by_attribute["age_group"].counts == (0, 0, 0, 0)
    assert loaded.by_attribute["age_group"].missing == (0, 1, 2, 3)
    np.testing.assert_array_equal(imageio.read_image(tmp_path / "p.png"),
                                  figure.prototype_figure(plain))
