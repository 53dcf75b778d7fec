"""Tests for `semiadv.data.specs`: every spec kind, its options, and bad specs named."""

import pytest

from _python import run_python
from semiadv.data import specs


@pytest.mark.parametrize("spec, kind, path, aligned", [
    ("synthetic", "synthetic", None, True),
    ("celeb_a", "celeb_a", None, True),
    ("lfw", "lfw", None, True),
    ("utkface:/data/utk", "utkface", "/data/utk", True),
    ("utkface:/data/utk?aligned=0", "utkface", "/data/utk", False),
    ("folder:/data/photos", "folder", "/data/photos", False),
    ("folder:/data/photos?aligned=1", "folder", "/data/photos", True),
    ("folder:/data/photos?aligned=0", "folder", "/data/photos", False),
])
def test_parse_spec_kinds_and_options(spec, kind, path, aligned):
    parsed = specs.parse_spec(spec)
    assert parsed.kind == kind
    assert (None if parsed.path is None else str(parsed.path)) == path
    assert parsed.aligned is aligned


def test_parse_spec_expands_home():
    parsed = specs.parse_spec("folder:~/photos?aligned=1")
    assert "~" not in str(parsed.path) and parsed.path.name == "photos"


@pytest.mark.parametrize("spec", [
    "", "imagenet", "synthetic:/x", "celeb_a:/x", "lfw:x", "utkface", "utkface:", "folder:",
    "folder:/x?aligned=2", "folder:/x?align=1", "folder:/x?aligned", "Synthetic",
])
def test_parse_spec_rejects_bad_specs_naming_them(spec):
    with pytest.raises(ValueError, match="spec") as error:
        specs.parse_spec(spec)
    assert repr(spec) in str(error.value)


def test_specs_splits_names_and_attribute_choices_never_import_tensorflow():
    # Flag validators and the preflight check parse specs and names before TensorFlow loads.
    script = ("import sys\n"
              "from semiadv.data import attributes, specs, splits, utkface_source\n"
              "specs.parse_spec('utkface:/x'); utkface_source.parse_utkface_name('1_0_0_1.jpg')\n"
              "attributes.age_group([30])\n"
              "from semiadv.prototypes import by_attribute, kinds\n"
              "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n")
    assert run_python(script, timeout=120).stdout.strip() == "[]"
