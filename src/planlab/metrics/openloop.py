"""Open-loop trajectory metrics: average / final displacement error and miss rate (no simulation).

Planned and logged poses ``(..., N, 2|3)`` at the same time stamps in the same frame. ADE is the mean
Euclidean distance over the N poses, FDE the distance at the last pose, a *miss* is an FDE above a
threshold (2 m by default, the usual motion-forecasting convention). ``heading_error`` is the mean
absolute wrapped heading difference when both sides carry headings.
"""

from __future__ import annotations

import numpy as np

from planlab.geometry.se2 import wrap_angle

MISS_THRESHOLD_M = 2.0


def _check(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape[-2:] != target.shape[-2:] or pred.shape[-1] not in (2, 3) or pred.shape[-2] < 1:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} must both be (..., N, 2|3)")
    return pred, target


def displacement_errors(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-pose Euclidean errors ``(..., N)``."""
    pred, target = _check(pred, target)
    return np.hypot(pred[..., 0] - target[..., 0], pred[..., 1] - target[..., 1])


def ade(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Average displacement error ``(...)`` [m]."""
    return displacement_errors(pred, target).mean(axis=-1)


def fde(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Final displacement error ``(...)`` [m]."""
    return displacement_errors(pred, target)[..., -1]


def miss(pred: np.ndarray, target: np.ndarray, threshold: float = MISS_THRESHOLD_M) -> np.ndarray:
    """True where the final pose is more than ``threshold`` metres off."""
    return fde(pred, target) > threshold


def heading_error(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean absolute wrapped heading difference ``(...)`` [rad]; needs (x, y, heading) on both sides."""
    pred, target = _check(pred, target)
    if pred.shape[-1] != 3:
        raise ValueError("heading_error needs poses with a heading column")
    return np.abs(wrap_angle(pred[..., 2] - target[..., 2])).mean(axis=-1)


def open_loop_summary(
    pred: np.ndarray, target: np.ndarray, threshold: float = MISS_THRESHOLD_M
) -> dict[str, float]:
    """Means over a batch ``(B, N, 2|3)``: ``ade``, ``fde``, ``miss_rate`` (and ``heading_error``)."""
    pred, target = _check(pred, target)
    out = {
        "ade": float(ade(pred, target).mean()),
        "fde": float(fde(pred, target).mean()),
        "miss_rate": float(miss(pred, target, threshold).mean()),
    }
    if pred.shape[-1] == 3:
        out["heading_error"] = float(heading_error(pred, target).mean())
    return out
