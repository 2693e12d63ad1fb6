"""A path the planner follows: discrete poses with arc length, linear interpolation and projection.

NAVSIM's ``PDMPath``: headings are unwrapped before interpolation; arc length is the running sum of
vertex distances (duplicate vertices at lane joins are kept, they add zero length); projection is
shapely's ``project`` on the vertex linestring; interpolation clips to [1e-5, length] and wraps the
heading with atan2.
"""

from __future__ import annotations

import numpy as np
import shapely
import shapely.ops
from shapely.geometry import LineString


def normalize_angle(angle: np.ndarray) -> np.ndarray:
    return np.arctan2(np.sin(angle), np.cos(angle))


def parallel_poses(poses: np.ndarray, offset: float) -> np.ndarray:
    """Poses shifted ``offset`` metres to the left of each heading (NAVSIM ``parallel_discrete_path``)."""
    theta = poses[:, 2] + np.pi / 2
    return np.stack(
        [poses[:, 0] + np.cos(theta) * offset, poses[:, 1] + np.sin(theta) * offset, poses[:, 2]], axis=1
    )


class PDMPath:
    """Discrete poses ``(N, 3)`` (x, y, heading) with arc-length interpolation."""

    def __init__(self, poses: np.ndarray) -> None:
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) < 2:
            raise ValueError(f"a path needs (N >= 2, 3) poses, got {poses.shape}")
        self.poses = poses
        self.states = poses.copy()
        self.states[:, 2] = np.unwrap(self.states[:, 2], axis=0)
        diff = np.diff(poses[:, :2], axis=0)
        self.progress = np.cumsum(np.append(0.0, np.linalg.norm(diff.T, axis=0)), dtype=np.float64)
        self.linestring: LineString = shapely.linestrings(self.states[:, :2])
        # scipy interp1d sorts its abscissa with a stable sort; duplicated arc lengths keep their order
        order = np.argsort(self.progress, kind="mergesort")
        self._x = self.progress[order]
        self._y = self.states[order]

    @property
    def length(self) -> float:
        return float(self.progress[-1])

    def project(self, points: np.ndarray) -> np.ndarray:
        """Arc length of the nearest point on the linestring (GEOS ``project``)."""
        return shapely.line_locate_point(
            self.linestring, shapely.points(np.asarray(points, dtype=np.float64))
        )

    def interpolate(self, distances: np.ndarray) -> np.ndarray:
        """Poses ``(..., 3)`` at arc lengths ``distances`` (clipped to [1e-5, length])."""
        d = np.minimum(np.maximum(np.asarray(distances, dtype=np.float64), 1e-5), self.length)  # clip
        flat = d.reshape(-1)
        idx = np.searchsorted(self._x, flat, side="left")
        idx = np.minimum(np.maximum(idx, 1), len(self._x) - 1)
        lo = idx - 1
        x_lo = self._x[lo]
        y_lo = self._y[lo]
        # scipy interp1d: slope · (x − x_lo) + y_lo
        out = (self._y[idx] - y_lo) / (self._x[idx] - x_lo)[:, None] * (flat - x_lo)[:, None] + y_lo
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        out[np.isnan(out)] = 0.0
        return out.reshape(d.shape + (3,))

    def substring(self, start: float, end: float) -> LineString:
        """Vertices with arc length in [start, end] (shapely's substring when fewer than two)."""
        start = float(np.clip(start, 0.0, self.length))
        end = float(np.clip(end, 0.0, self.length))
        inside = (start <= self.progress) & (self.progress <= end)
        coords = self.states[inside, :2]
        if len(coords) > 1:
            return LineString(coords)
        return shapely.ops.substring(self.linestring, start, end)


class PathStack:
    """Several :class:`PDMPath` with the same vertex count (a centerline and its parallels), interpolated
    together: ``interpolate(d, which)`` equals ``paths[which[i]].interpolate(d[i])`` row by row."""

    def __init__(self, paths: list[PDMPath]) -> None:
        if len({len(p.progress) for p in paths}) != 1:
            raise ValueError("stacked paths need the same number of vertices")
        self.paths = paths
        self._x = np.stack([p._x for p in paths])
        self._y = np.stack([p._y for p in paths])
        self._length = np.array([p.length for p in paths])

    def interpolate(self, distances: np.ndarray, which: np.ndarray) -> np.ndarray:
        d = np.minimum(np.maximum(np.asarray(distances, dtype=np.float64), 1e-5), self._length[which])
        idx = np.empty(len(d), dtype=np.int64)
        for k in range(len(self.paths)):
            mask = which == k
            idx[mask] = np.searchsorted(self._x[k], d[mask], side="left")
        idx = np.minimum(np.maximum(idx, 1), self._x.shape[1] - 1)
        lo = idx - 1
        x_lo = self._x[which, lo]
        y_lo = self._y[which, lo]
        out = (self._y[which, idx] - y_lo) / (self._x[which, idx] - x_lo)[:, None] * (d - x_lo)[
            :, None
        ] + y_lo
        out[:, 2] = np.arctan2(np.sin(out[:, 2]), np.cos(out[:, 2]))
        out[np.isnan(out)] = 0.0
        return out
