"""The edit on whole photos, faces re-detected and re-cropped at 1x and 2x (issue #23)."""

import re

import numpy as np
import pytest

from semiadv.evaluation import whole_photos

from _photo_faces import FixedFaces, group_photo


class _Brightness:
    """A foreign toy gender classifier: male when the face is bright."""

    name, kind, image_size, relation = "brightness", "gender", 16, "foreign"

    def __call__(self, images):
        return (images.mean(axis=(1, 2, 3)) > 0.45).astype(np.float32)


class _Pixels:
    name, kind, image_size = "raw pixels", "matcher", 16

    def __call__(self, images):
        return images.reshape(len(images), -1)


def _section(perturb, photos=4):
    faces = [group_photo(seed=seed) for seed in range(photos)]
    labels = {"male": np.array([1, 0] * (photos // 2)), "identity": -np.ones(photos, int)}
    return whole_photos.whole_photo_section(
        faces, labels, perturb, 16, 3, [("brightness", _Brightness())],
        [("raw pixels", _Pixels())], batch_size=8, impostors_per_probe=3,
        detector=FixedFaces())


def test_an_unchanged_photo_meets_every_target():
    section = _section(lambda crops: crops)
    assert (section["photos"], section["faces_found"], section["faces_found_after"]) == (4, 4, 4)
    assert section["sizes"] == [16, 32]
    assert section["ssim"] == pytest.approx(1.0)
    errors = section["gender"]["brightness"]
    assert set(errors) == {"original", "opposite", "original_32", "opposite_32"}
    assert errors["opposite"] == errors["original"]
    assert section["matching"]["raw pixels"]["opposite"] == pytest.approx(
        section["matching"]["raw pixels"]["original"])
    assert all(target["met"] for target in section["targets"].values())


def test_a_visible_edit_is_measured_on_the_whole_photo():
    section = _section(lambda crops: crops * 0.1)
    assert section["faces_found_after"] == 4
    assert 0.3 < section["ssim"] < 0.97  # The darkened face, not the untouched background.
    assert not section["targets"]["SSIM of the whole photo"]["met"]
    errors = section["gender"]["brightness"]
    assert errors["opposite"] >= errors["original"]  # Darker faces read female.
    assert whole_photos.read_photos(
        __import__("semiadv.config", fromlist=["DataConfig"]).DataConfig(
            dataset="synthetic"), "test", 5) == ([], {})


def test_the_report_marks_the_targets():
    from semiadv.evaluation import report

    text = "".join(report.whole_photos_markdown(
        {"whole_photos": {"photos": _section(lambda crops: crops * 0.1),
                          "synthetic": {"skipped": "synthetic is not made of photo files"}}}))
    # Every scored network says what it is to the SAN (the classifiers here are foreign).
    assert "| brightness | **foreign** |" in text
    assert re.search(r"\| raw pixels \| (seen|sibling|\*\*foreign\*\*) \|", text)
    assert "SSIM of the whole photo: >= 0.97: **missed**" in text
    assert "`synthetic`: synthetic is not made of photo files." in text


def test_photo_files_are_read_spread_with_their_labels(tmp_path):
    from _dataset_files import GOOD_UTKFACE, utkface_config, write_utkface_folder

    config = utkface_config(write_utkface_folder(tmp_path / "utk"))
    paths, labels = whole_photos.read_photos(config, "train", 5)
    assert len(paths) == 5 and len(set(paths)) == 5
    names = [path.rsplit("/", 1)[-1] for path in paths]
    assert [GOOD_UTKFACE[name][0] for name in names] == list(labels["male"])
    photo = next(whole_photos.read_photo_files(paths[:1]))
    assert photo.dtype == np.uint8 and photo.shape == (40, 40, 3)
