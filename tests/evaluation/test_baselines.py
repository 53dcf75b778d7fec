"""Blur and pixelation baselines: the transforms, the strength search, the reference matcher."""

import numpy as np
import pytest

from semiadv.evaluation import baselines, evaluators, plugins


def test_strength_search_hits_the_target_of_a_monotone_toy():
    calls = []

    def measure(strength):
        calls.append(strength)
        return 1.0 - strength / 10.0

    candidates = np.linspace(0, 10, 101)
    strength, value, history = baselines.search_strength(measure, 0.35, candidates)
    assert strength == pytest.approx(6.5) and value == pytest.approx(0.35)
    assert len(calls) <= 10 and len(history) == len(calls)
    # Out of reach: the closest end.
    assert baselines.search_strength(measure, -5.0, candidates)[0] == 10.0
    assert baselines.search_strength(measure, 2.0, candidates)[0] == 0.0


def test_blur_and_pixelation_transform_as_described():
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(baselines.gaussian_blur(images, 0.0), images)
    blurred = baselines.gaussian_blur(images, 2.0)
    assert blurred.std() < images.std() / 2
    np.testing.assert_allclose(blurred.mean(), images.mean(), atol=0.02)  # Reflect padding.
    cells = baselines.pixelate(images, 4)
    np.testing.assert_allclose(cells[:, :4, :4], images[:, :4, :4].mean(axis=(1, 2),
                                                                      keepdims=True)
                               .repeat(4, 1).repeat(4, 2), atol=1e-5)
    assert baselines.pixelate(images, 5).shape == images.shape


def test_seen_marks_and_the_baselines_never_calibrate_on_a_seen_matcher(plugin_module):
    from semiadv.evaluation import dlib_matcher

    assert dlib_matcher.DlibMatcher.seen  # The SAN recipes train against dlib's network.
    pixels = plugins.load_factory(f"{plugin_module}:make_matcher")
    auxiliary = plugins.KerasMatcher.__new__(plugins.KerasMatcher)
    auxiliary.origin, auxiliary.seen = "auxiliary", True

    class SeenPlugin:
        name, kind, seen = "told", "matcher", True

    assert not evaluators.is_seen(pixels) and evaluators.is_seen(SeenPlugin())
    assert evaluators.is_seen(auxiliary)
    matching = {name: {"conditions": {"original": {"tmr_at_fmr": {"0.01": tmr}}}}
                for name, tmr in (("aux", 0.9), ("told", 0.8), ("pixels", 0.1))}
    matchers = [("aux", auxiliary), ("told", SeenPlugin()), ("pixels", pixels)]
    # The weak unseen matcher, not the strong seen ones.
    assert baselines.reference_matcher(matchers, matching)[0] == "pixels"
    assert baselines.reference_matcher(matchers[:2], matching) is None
