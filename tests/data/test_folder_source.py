"""Tests for `semiadv.data.folder_source`: labels.csv, identity folders, odd formats, alignment."""

import csv
import logging
import shutil

import _dataset_files
import cv2
import numpy as np
import pytest

from semiadv.config import DataConfig
from semiadv.data import input_pipeline
from semiadv.data import records as records_lib


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
        _dataset_files.write_jpeg(tmp_path / f"p{i}.jpg", 30 * i + 10)
    (tmp_path / "sub").mkdir()
    _dataset_files.write_jpeg(tmp_path / "sub" / "q.jpg", 200)
    _write_labels(tmp_path, [
        ("p0.jpg", 1, 7), ("p1.jpg", 0, 7), ("p2.jpg", 1, ""), ("sub/q.jpg", 0, 9),
        ("p3.jpg", 2, 1),        # bad male value
        ("p4.jpg", "yes", 1),    # bad male value
        ("missing.jpg", 1, 3),   # no such file
        ("p5.jpg", 1, "x"),      # bad identity
    ])
    config = _folder_config(tmp_path)
    with caplog.at_level(logging.WARNING):
        records = records_lib.load_records(config, "train")
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
    examples = input_pipeline.read_split(config, "train")
    assert examples["image"].shape == (4, 16, 16, 3)
    assert records_lib.has_identities(config)


def test_folder_labels_csv_missing_column(tmp_path):
    _dataset_files.write_jpeg(tmp_path / "a.jpg", 10)
    _write_labels(tmp_path, [("a.jpg", 7)], header=("file", "identity"))
    with pytest.raises(ValueError, match=r"labels\.csv.*missing column.*'male'") as error:
        records_lib.load_records(_folder_config(tmp_path), "train")
    assert str(tmp_path / "labels.csv") in str(error.value)


def test_folder_labels_csv_with_byte_order_mark(tmp_path):
    _dataset_files.write_jpeg(tmp_path / "a.jpg", 10)
    _dataset_files.write_jpeg(tmp_path / "b.jpg", 90)
    (tmp_path / "labels.csv").write_text("file,male\na.jpg,1\nb.jpg,0\n", encoding="utf-8-sig")
    records = records_lib.load_records(_folder_config(tmp_path), "train")
    assert sorted(records.male.tolist()) == [0, 1]
    assert not records_lib.has_identities(_folder_config(tmp_path))
    # No age or race columns: unknown.
    for labels in (records.age, records.age_group, records.race):
        assert labels.tolist() == [-1, -1]


def test_folder_labels_csv_age_and_race(tmp_path):
    rows = [  # file, male, age, race (grey value = 20 * (row index + 1))
        ("a.jpg", 1, 19, 0), ("b.jpg", 0, 20, 1), ("c.jpg", 1, 59, 4), ("d.jpg", 0, 60, ""),
        ("e.jpg", 1, "", 2), ("f.jpg", 0, -1, -1), ("g.jpg", 1, " 7 ", " 3 "),
    ]
    for index, (file, *_) in enumerate(rows):
        _dataset_files.write_jpeg(tmp_path / file, 20 * (index + 1))
    _write_labels(tmp_path, rows, header=("file", "male", "age", "race"))
    config = _folder_config(tmp_path)
    examples = input_pipeline.read_split(config, "train")
    got = {}
    for index, image in enumerate(examples["image"]):
        value = int(round(image[12:, :, 0].mean() * 255 / 20))  # the row's grey, in 20s
        got[value] = tuple(int(examples[key][index])
                           for key in ("male", "age", "age_group", "race", "identity"))
    assert got == {1: (1, 19, 0, 0, -1), 2: (0, 20, 1, 1, -1), 3: (1, 59, 2, 4, -1),
                   4: (0, 60, 3, -1, -1), 5: (1, -1, -1, 2, -1), 6: (0, -1, -1, -1, -1),
                   7: (1, 7, 0, 3, -1)}


@pytest.mark.parametrize("column, value", [
    ("age", "abc"), ("age", "20.5"), ("age", "-3"), ("age", "131"), ("race", "5"),
    ("race", "White"), ("race", "-2"),
])
def test_folder_labels_csv_bad_age_or_race_is_a_user_error(tmp_path, column, value):
    from semiadv.errors import UserValueError

    for file in ("a.jpg", "b.jpg"):
        _dataset_files.write_jpeg(tmp_path / file, 10)
    cells = {"age": "30", "race": "1", column: value}
    _write_labels(tmp_path, [("a.jpg", 1, 30, 1), ("b.jpg", 0, cells["age"], cells["race"])],
                  header=("file", "male", "age", "race"))
    with pytest.raises(UserValueError) as error:
        records_lib.load_records(_folder_config(tmp_path), "train")
    message = str(error.value)
    assert f"{tmp_path / 'labels.csv'}:3: {column} {value!r} is not a whole number" in message
    assert "\n" not in message


def test_folder_identity_layout_and_odd_formats(tmp_path):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = 255
    deep = np.full((24, 24, 3), 40000, np.uint16)
    for person, files in {"alice": 3, "bob": 2}.items():
        (tmp_path / person).mkdir()
        for i in range(files):
            _dataset_files.write_jpeg(tmp_path / person / f"{i}.jpg", 50 * i + 20)
    _write_png(tmp_path / "alice" / "rgba.png", rgba)
    _write_png(tmp_path / "bob" / "deep.png", deep)
    _dataset_files.write_jpeg(tmp_path / "bob" / "gray.jpg", 128, gray=True)
    (tmp_path / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    config = _folder_config(tmp_path)
    records = records_lib.load_records(config, "train")
    assert [p for p, _ in records.skipped] == [str(tmp_path / "bob" / "broken.jpg")]
    examples = input_pipeline.read_split(config, "train")
    assert examples["image"].shape == (8, 16, 16, 3)
    np.testing.assert_array_equal(np.sort(examples["identity"]), [0, 0, 0, 0, 1, 1, 1, 1])
    assert (examples["male"] == -1).all()
    for key in ("age", "age_group", "race"):
        assert (examples[key] == -1).all(), key
    assert records_lib.has_identities(config)
    values = {round(float(image.mean()) * 255) for image in examples["image"]}
    assert 200 in values  # The opaque RGBA PNG.
    assert round(40000 * 255 / 65535) in values  # The 16-bit PNG, scaled to 8 bits.
    assert 128 in values  # The grayscale JPEG, to three channels.
    gray = DataConfig(**{**config.__dict__, "channels": 1})
    assert input_pipeline.read_split(gray, "train")["image"].shape == (8, 16, 16, 1)


def test_folder_bad_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist") as error:
        records_lib.load_records(_folder_config(tmp_path / "absent"), "train")
    assert str(tmp_path / "absent") in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError) as error:
        records_lib.load_records(_folder_config(tmp_path / "empty"), "train")
    assert str(tmp_path / "empty") in str(error.value)
    (tmp_path / "nobody" / "person").mkdir(parents=True)
    with pytest.raises(ValueError, match="no usable images") as error:
        records_lib.load_records(_folder_config(tmp_path / "nobody"), "train")
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
    records = records_lib.load_records(config, "train")
    assert len(records) >= 2
    aligned = list(cache.iterdir())
    assert len(aligned) == 1 and (aligned[0] / "align_report.json").exists()
    # The pipeline reads the aligned crops, never the photos.
    assert all(path.startswith(str(aligned[0]) + "/") for path in records.paths.tolist())
    assert all(cv2.imread(path).shape == (32, 32, 3) for path in records.paths.tolist())
    examples = input_pipeline.read_split(config, "train")
    assert examples["image"].shape[1:] == (32, 32, 3)
    assert set(examples["identity"].tolist()) <= {0, 1}


def test_folder_is_aligned_again_when_its_photos_change(tmp_path, monkeypatch):
    from semiadv.align import folder as folder_alignment

    calls = []

    def fake_align_folder(source, target, image_size, detector_name):
        # Stands in for the aligner: "aligned" crops are the photos themselves.
        assert detector_name == "haar"  # DataConfig's default
        calls.append(str(target))
        shutil.copytree(source, target, dirs_exist_ok=True)
        (target / "align_report.json").write_text("{}")

    monkeypatch.setattr(folder_alignment, "align_folder", fake_align_folder)
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
    assert len(records_lib.load_records(config, "train")) == 4
    records_lib.load_records.cache_clear()
    assert len(records_lib.load_records(config, "train")) == 4
    assert len(calls) == 1  # Unchanged photos: the cached alignment is reused.
    cv2.imwrite(str(source / "p1" / "2.png"), rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    records_lib.load_records.cache_clear()
    assert len(records_lib.load_records(config, "train")) == 5
    assert len(calls) == 2 and calls[0] != calls[1]
