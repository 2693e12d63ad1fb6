"""Open-loop ADE / FDE / miss rate against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from planlab.metrics.openloop import ade, fde, heading_error, miss, open_loop_summary


def test_displacement_metrics_by_hand() -> None:
    target = np.zeros((2, 4, 3))
    pred = np.zeros((2, 4, 3))
    pred[0, :, 1] = [0.0, 1.0, 2.0, 3.0]  # drifting sideways: errors 0, 1, 2, 3
    pred[1, :, 0] = 1.0  # constant 1 m ahead
    np.testing.assert_allclose(ade(pred, target), [1.5, 1.0])
    np.testing.assert_allclose(fde(pred, target), [3.0, 1.0])
    assert miss(pred, target).tolist() == [True, False]
    summary = open_loop_summary(pred, target)
    assert summary == pytest.approx({"ade": 1.25, "fde": 2.0, "miss_rate": 0.5, "heading_error": 0.0})


def test_heading_error_wraps() -> None:
    pred = np.array([[[0, 0, np.pi - 0.1]]])
    target = np.array([[[0, 0, -np.pi + 0.1]]])
    assert heading_error(pred, target)[0] == pytest.approx(0.2)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="must both be"):
        ade(np.zeros((8, 3)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match="heading"):
        heading_error(np.zeros((8, 2)), np.zeros((8, 2)))
