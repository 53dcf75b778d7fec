"""The toy plug-in evaluators the evaluation tests load."""

import textwrap

import pytest


_PLUGIN_MODULE = textwrap.dedent('''
    import numpy as np

    class MeanBrightness:
        """Calls faces male when their mean is above 0.5 (a toy)."""
        name, kind, image_size = "brightness", "gender", 8

        def __call__(self, images):
            assert images.shape[1:3] == (8, 8)
            return images.mean(axis=(1, 2, 3))

    class PixelMatcher:
        name, kind = "raw pixels", "matcher"

        def __call__(self, images):
            return images.reshape(len(images), -1)

    def make_gender():
        return MeanBrightness()

    def make_matcher():
        return PixelMatcher()

    def make_nothing():
        return object()
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "fake_evaluators.py").write_text(_PLUGIN_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_evaluators"
