"""Ego progress along the route centerline and driving-direction compliance (fact sheet §1.6)."""

from __future__ import annotations

import numpy as np
import shapely

DDC_HORIZON_S = 1.0
DDC_COMPLIANCE_THRESHOLD = 2.0  # m
DDC_VIOLATION_THRESHOLD = 6.0  # m


def raw_progress(centers: np.ndarray, row_scene: np.ndarray, centerlines: np.ndarray) -> np.ndarray:
    """Projection of the box centre at the last step minus at step 0 onto the centerline, clipped at 0.

    shapely ``line_locate_point`` is the same GEOS projection NAVSIM's ``PDMPath.project`` calls.
    """
    r = len(centers)
    if r == 0:
        return np.zeros(0)
    # one projection per distinct (scene, point): proposals of a scene share their start
    scene = np.tile(np.asarray(row_scene), 2).astype(np.float64)[:, None]
    keys = np.concatenate([scene, np.concatenate([centers[:, 0], centers[:, -1]])], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    located = shapely.line_locate_point(centerlines[uniq[:, 0].astype(np.int64)], shapely.points(uniq[:, 1:]))
    along = located[inverse.reshape(-1)]
    start, end = along[:r], along[r:]
    return np.clip(end - start, 0.0, None)


def driving_direction_compliance(
    centers: np.ndarray,
    oncoming: np.ndarray,
    interval: float = 0.1,
    excluded: np.ndarray | None = None,
) -> np.ndarray:
    """DDC per row from box centres ``(R, S, 2)`` and oncoming-traffic flags ``(R, S)``.

    Progress while in oncoming traffic, summed over a 1 s window (10 steps back + the current); the
    worst window decides 1 / 0.5 / 0. ``excluded`` zeroes further steps (v2: centre inside a junction).
    """
    r, s = oncoming.shape
    progress = np.zeros((r, s))
    progress[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    mask = oncoming if excluded is None else oncoming & ~excluded
    progress[~mask] = 0.0
    horizon = int(DDC_HORIZON_S / interval)
    windows = np.stack([progress[:, max(0, t - horizon) : t + 1].sum(axis=-1) for t in range(s)], axis=-1)
    worst = windows.max(axis=-1)
    return np.where(
        worst < DDC_COMPLIANCE_THRESHOLD, 1.0, np.where(worst < DDC_VIOLATION_THRESHOLD, 0.5, 0.0)
    )
