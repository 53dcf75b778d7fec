"""Plug-in evaluators: `module:factory` specs and the entry-point group."""

import importlib.metadata

import numpy as np
import pytest

from semiadv.evaluation import plugins


def test_module_factory_spec_loads_an_evaluator(plugin_module):
    gender = plugins.load_factory(f"{plugin_module}:make_gender")
    assert (gender.name, gender.kind) == ("brightness", "gender")
    images = np.full((3, 16, 16, 1), 0.7, np.float32)
    np.testing.assert_allclose(plugins.apply(gender, images, batch_size=2), 0.7, atol=1e-6)
    with pytest.raises(TypeError, match="make_nothing.*name"):
        plugins.load_factory(f"{plugin_module}:make_nothing")
    with pytest.raises(ValueError, match="module:factory"):
        plugins.load_factory("no_colon")
    with pytest.raises(AttributeError, match="missing"):
        plugins.load_factory(f"{plugin_module}:missing")


def test_entry_point_group_loads_evaluators(plugin_module, monkeypatch):
    points = [importlib.metadata.EntryPoint("pixels", f"{plugin_module}:make_matcher",
                                            plugins.ENTRY_POINT_GROUP)]
    seen = []

    def fake_entry_points(group):
        seen.append(group)
        return points if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    (matcher,) = plugins.entry_point_evaluators()
    assert seen == ["semiadv.evaluators"] and matcher.kind == "matcher"
    embeddings = plugins.apply(matcher, np.zeros((2, 16, 16, 3), np.float32))
    assert embeddings.shape == (2, 16 * 16 * 3)
