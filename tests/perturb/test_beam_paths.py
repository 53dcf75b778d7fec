"""Tests of semiadv.perturb.beam.paths: patterns and the names of their outputs."""

import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

from semiadv.perturb.beam import paths  # noqa: E402


def test_patterns_name_outputs_relative_to_their_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    assert paths.normalize_pattern(str(folder)) == (f"{folder}/**", str(folder))
    assert paths.normalize_pattern(f"{folder}/sub*/*.jpg") == (f"{folder}/sub*/*.jpg",
                                                                      str(folder))
    assert paths.normalize_pattern("gs://bucket/photos/") == ("gs://bucket/photos/**",
                                                                     "gs://bucket/photos")
    assert paths.normalize_pattern("gs://bucket/**") == ("gs://bucket/**", "gs://bucket")


def test_relative_names_and_folders():
    assert paths.relative_name("/data/photos/sub/a.jpg", "/data/photos") == "sub/a.jpg"
    assert paths.relative_name("gs://bucket/photos/a.jpg", "gs://bucket/photos/") == "a.jpg"
    assert paths.is_within("/data/photos/a.jpg", "/data/photos")
    assert paths.is_within("/data/photos", "/data/photos")
    assert not paths.is_within("/data/photos2/a.jpg", "/data/photos")
    assert paths.normalized("gs://bucket/out/") == "gs://bucket/out"
    assert paths.normalized("gs://") == "gs://"
