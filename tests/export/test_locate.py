"""Tests of semiadv.export.locate: finding an export's SavedModel and checking its signatures."""

import subprocess
import sys
from pathlib import Path

import pytest

from semiadv.export import locate
from semiadv.prototypes.kinds import KINDS

SIZE = 16
REPO = Path(__file__).resolve().parents[2]


def _version(model_dir, version, content=b"pb"):
    (model_dir / str(version)).mkdir(parents=True)
    (model_dir / str(version) / "saved_model.pb").write_bytes(content)


def test_a_model_dir_resolves_to_its_highest_version_with_a_saved_model(tmp_path):
    model_dir = tmp_path / "san"
    _version(model_dir, 2)
    _version(model_dir, 10)
    (model_dir / "11").mkdir()  # Not exported (yet): skipped.
    (model_dir / "notes").mkdir()
    assert locate.existing_versions(model_dir) == [2, 10, 11]
    assert locate.resolve_export(model_dir) == model_dir / "10"
    assert locate.resolve_export(model_dir / "2") == model_dir / "2"
    assert locate.existing_versions(tmp_path / "missing") == []
    for missing in (tmp_path / "missing", model_dir / "11", tmp_path):
        with pytest.raises(FileNotFoundError, match=r"no SavedModel \(saved_model.pb\) in"):
            locate.resolve_export(missing)


class _FakeRemote:
    """A `locate.Filesystem` holding a few files by URL."""

    def __init__(self, files):
        self.files = files

    def exists(self, url):
        return url in self.files

    def saved_model_versions(self, model_url):
        tails = (url[len(model_url) + 1:].split("/") for url in self.files
                 if url.startswith(model_url + "/"))
        return [int(tail[0]) for tail in tails
                if len(tail) == 2 and tail[0].isdigit() and tail[1] == "saved_model.pb"]

    def read_bytes(self, url):
        return self.files[url]


def test_urls_resolve_through_the_given_filesystem(tiny_export_16):
    saved_model = (tiny_export_16 / "saved_model.pb").read_bytes()
    remote = _FakeRemote({"gs://bucket/exports/san/3/saved_model.pb": saved_model,
                          "gs://bucket/exports/san/12/saved_model.pb": saved_model,
                          "gs://bucket/exports/san/20/variables/x": b""})
    assert locate.resolve_export("gs://bucket/exports/san/", remote) == "gs://bucket/exports/san/12"
    assert locate.resolve_export("gs://bucket/exports/san/3", remote) == \
        "gs://bucket/exports/san/3"
    assert locate.read_image_shape("gs://bucket/exports/san", "same", remote) == (SIZE, SIZE, 3)
    with pytest.raises(FileNotFoundError, match="gs://bucket/other"):
        locate.resolve_export("gs://bucket/other", remote)


def test_image_shape_is_read_without_loading_the_export(tiny_export_16, tmp_path):
    for prototype in KINDS:
        shape = locate.read_image_shape(str(tiny_export_16), prototype)
        assert shape == locate.load_signature(tiny_export_16, prototype)[2] == (SIZE, SIZE, 3)
    # A model dir resolves to its newest version, as for semiadv-perturb.
    assert locate.read_image_shape(str(tiny_export_16.parent), "same") == (SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="prototype must be one of"):
        locate.read_image_shape(str(tiny_export_16), "other")
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        locate.read_image_shape(str(tmp_path / "missing"), "same")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"\xff\xff\xff not a SavedModel")
    with pytest.raises(ValueError, match="cannot parse"):
        locate.read_image_shape(str(broken), "same")


def test_signature_checks_name_the_export_and_what_it_has():
    shapes = {"same": {"image": [None, 8, 8, 3]}, "odd": {"image": [None, None, 8, 3]},
              "__saved_model_init_op": {}}
    assert locate.image_shape(shapes, "e", "same") == (8, 8, 3)
    with pytest.raises(ValueError, match=r"export e has no signature 'opposite' \(it has "
                                         r"\['odd', 'same'\]\)"):
        locate.image_shape(shapes, "e", "opposite")
    shapes["opposite"] = shapes.pop("odd")
    with pytest.raises(ValueError, match=r"has image shape \[None, None, 8, 3\], expected"):
        locate.image_shape(shapes, "e", "opposite")
    with pytest.raises(ValueError, match="prototype must be one of"):
        locate.load_signature("anywhere", "other")


def test_locating_a_local_export_never_imports_tensorflow(tiny_export_16):
    script = (
        "import sys\n"
        "from semiadv.export import locate\n"
        f"print(locate.read_image_shape({str(tiny_export_16.parent)!r}, 'opposite'))\n"
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:5]\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               cwd=REPO, timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split() == ["(16,", "16,", "3)"]
