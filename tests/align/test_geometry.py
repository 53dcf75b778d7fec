"""Tests for semiadv.align.geometry: similarity transforms and the canonical eye points."""

import math

import numpy as np
import pytest

from semiadv.align import geometry


def test_similarity_from_points_exact_for_two_points():
    # (0, 0) -> (10, 20) and (1, 0) -> (10, 22): rotate 90 degrees, scale 2.
    matrix = geometry.similarity_from_points([[0, 0], [1, 0]], [[10, 20], [10, 22]])
    np.testing.assert_allclose(matrix, [[0, -2, 10], [2, 0, 20]], atol=1e-12)


def test_similarity_from_points_recovers_a_known_transform_from_many_points():
    angle, scale, shift = math.radians(-17.0), 0.6, np.array([3.5, -8.25])
    linear = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    src = np.array([[0, 0], [40, 3], [12, 50], [-7, 21], [30, 30]], dtype=np.float64)
    dst = src @ linear.T + shift
    np.testing.assert_allclose(geometry.similarity_from_points(src, dst), np.hstack([linear, shift[:, None]]), atol=1e-12)
    np.testing.assert_allclose(geometry.apply_affine(geometry.similarity_from_points(src, dst), src), dst, atol=1e-9)


def test_similarity_from_points_rejects_bad_points():
    with pytest.raises(ValueError, match="coincide"):
        geometry.similarity_from_points([[1, 1], [1, 1]], [[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="shapes"):
        geometry.similarity_from_points([[1, 1]], [[0, 0]])


def test_canonical_eye_points_scale_with_the_crop():
    np.testing.assert_allclose(geometry.canonical_eye_points(200), [[59.0, 59.0], [134.0, 59.0]])
    # Same framing at every size, in continuous coordinates (index + 0.5).
    np.testing.assert_allclose((geometry.canonical_eye_points(64) + 0.5) / 64, (geometry.canonical_eye_points(200) + 0.5) / 200)


def test_plausible_eye_pair_sorts_and_refuses_what_no_face_has():
    box = (0, 0, 100, 100)
    eyes = geometry.plausible_eye_pair([(70, 40), (30, 42)], box, 0.25, 0.7, 40.0)
    assert eyes == ((30.0, 42.0), (70.0, 40.0))  # Sorted left to right.
    assert geometry.plausible_eye_pair([(45, 40), (55, 40)], box, 0.25, 0.7, 40.0) is None
    assert geometry.plausible_eye_pair([(10, 40), (95, 40)], box, 0.25, 0.7, 40.0) is None
    assert geometry.plausible_eye_pair([(30, 20), (60, 60)], box, 0.25, 0.7, 40.0) is None
    assert geometry.plausible_eye_pair([(30, 20), (60, 60)], box, 0.25, 0.7, 60.0) is not None
    assert geometry.plausible_eye_pair([(130, 40), (170, 40)], box, 0.25, 0.7, 40.0) is None
