"""Polylines with arc length: projection (shapely ``project`` semantics), interpolation, resampling."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Polyline:
    """An open 2-D polyline of ``N >= 2`` vertices (consecutive duplicates removed on construction).

    ``headings[i]`` is the direction from vertex i to i+1; the last vertex repeats the previous heading
    (nuPlan's discrete-path convention).
    """

    points: np.ndarray
    s: np.ndarray = field(init=False, repr=False)
    headings: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)[:, :2]
        if len(pts) >= 2:
            keep = np.ones(len(pts), dtype=bool)
            keep[1:] = np.any(np.diff(pts, axis=0) != 0.0, axis=1)
            pts = pts[keep]
        if len(pts) < 2:
            raise ValueError("a polyline needs at least two distinct vertices")
        seg = np.diff(pts, axis=0)
        seglen = np.hypot(seg[:, 0], seg[:, 1])
        s = np.concatenate([[0.0], np.cumsum(seglen)])
        h = np.arctan2(seg[:, 1], seg[:, 0])
        h = np.concatenate([h, h[-1:]])
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "s", s)
        object.__setattr__(self, "headings", h)

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def _nearest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each point: (segment index, parameter t in [0,1], squared distance)."""
        q = np.asarray(points, dtype=np.float64)[..., None, :]  # (..., 1, 2)
        a = self.points[:-1]
        d = self.points[1:] - a
        dd = np.sum(d * d, -1)
        t = np.clip(np.sum((q - a) * d, -1) / dd, 0.0, 1.0)  # (..., M)
        proj = a + t[..., None] * d
        dist2 = np.sum((q - proj) ** 2, -1)
        idx = np.argmin(dist2, axis=-1)
        t_best = np.take_along_axis(t, idx[..., None], -1)[..., 0]
        d_best = np.take_along_axis(dist2, idx[..., None], -1)[..., 0]
        return idx, t_best, d_best

    def project(self, points: np.ndarray) -> np.ndarray:
        """Arc length of the nearest point on the polyline for each of ``points (..., 2)``."""
        idx, t, _ = self._nearest(points)
        seglen = np.diff(self.s)
        return self.s[idx] + t * seglen[idx]

    def distance(self, points: np.ndarray) -> np.ndarray:
        """Euclidean distance from ``points (..., 2)`` to the polyline."""
        return np.sqrt(self._nearest(points)[2])

    def interpolate(self, s: np.ndarray) -> np.ndarray:
        """Poses ``(..., 3)`` at arc lengths ``s`` (clipped to [0, length]); heading of the segment."""
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        idx = np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.s) - 2)
        seglen = self.s[idx + 1] - self.s[idx]
        t = (s - self.s[idx]) / seglen
        xy = self.points[idx] + t[..., None] * (self.points[idx + 1] - self.points[idx])
        return np.concatenate([xy, self.headings[idx][..., None]], axis=-1)

    def resample(self, spacing: float) -> Polyline:
        """A polyline through points every ``spacing`` metres (the end point always kept)."""
        n = max(int(np.ceil(self.length / spacing)), 1)
        s = np.linspace(0.0, self.length, n + 1)
        return Polyline(self.interpolate(s)[:, :2])

    def offset(self, lateral: float) -> Polyline:
        """A parallel polyline shifted ``lateral`` metres to the left (negative: right), per vertex."""
        normal = np.stack([-np.sin(self.headings), np.cos(self.headings)], axis=-1)
        return Polyline(self.points + lateral * normal)
