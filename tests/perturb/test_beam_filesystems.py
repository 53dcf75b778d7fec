"""Tests of semiadv.perturb.beam.filesystems: writing and finding an export through Beam's
filesystems."""

from pathlib import Path

import pytest

pytest.importorskip("apache_beam", reason="apache_beam not installed (pip install -e '.[beam]')")

from apache_beam.io.filesystems import FileSystems  # noqa: E402

from semiadv.perturb.beam import filesystems  # noqa: E402


def test_write_is_atomic(tmp_path, monkeypatch):
    target = str(tmp_path / "out" / "face.png")
    filesystems.write_atomically(target, b"old")

    def killed(sources, destinations):
        raise OSError("worker killed before the rename")

    monkeypatch.setattr(FileSystems, "rename", killed)
    with pytest.raises(OSError, match="killed"):
        filesystems.write_atomically(target, b"new content")
    assert Path(target).read_bytes() == b"old"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["face.png"]


def test_beam_filesystem_lists_the_versions_holding_a_saved_model(tmp_path):
    model_dir = tmp_path / "san"
    for version in ("1", "3", "10"):
        (model_dir / version).mkdir(parents=True)
        (model_dir / version / "saved_model.pb").write_bytes(version.encode())
    (model_dir / "12").mkdir()  # A version without a SavedModel.
    (model_dir / "notes").mkdir()
    (model_dir / "notes" / "saved_model.pb").write_bytes(b"not a version")
    filesystem = filesystems.BeamFilesystem()
    assert sorted(filesystem.saved_model_versions(str(model_dir))) == [1, 3, 10]
    assert filesystem.saved_model_versions(str(tmp_path / "missing")) == []
    assert filesystem.exists(str(model_dir / "3" / "saved_model.pb"))
    assert not filesystem.exists(str(model_dir / "12" / "saved_model.pb"))
    assert filesystem.read_bytes(str(model_dir / "10" / "saved_model.pb")) == b"10"


def test_read_json_is_none_for_a_missing_or_damaged_file(tmp_path):
    assert filesystems.read_json(str(tmp_path / "missing.json")) is None
    (tmp_path / "damaged.json").write_text('{"files": ')
    assert filesystems.read_json(str(tmp_path / "damaged.json")) is None
    filesystems.write_atomically(str(tmp_path / "report.json"), b'{"files": {}}')
    assert filesystems.read_json(str(tmp_path / "report.json")) == {"files": {}}
