"""A vehicle's path: consecutive lanes and connectors joined into one polyline with absolute arc length.

Vehicles in the world move along such a path (``s`` never resets while lanes are appended or dropped), with an
optional lateral offset profile for lane changes and nudges. Headings are interpolated between vertex
tangents so that yaw is smooth even at 10 Hz on tight junction turns.
"""

from __future__ import annotations

import bisect

import numpy as np

from planlab.world.network import RoadNetwork

A_LAT_MAX = 2.0  # m/s²: lateral acceleration the speed profile allows in curves
YAW_RATE_MAX = 0.6  # rad/s


def smoothstep5(u: np.ndarray | float) -> np.ndarray | float:
    """Quintic smoothstep 10u³ − 15u⁴ + 6u⁵ on [0, 1] (zero first and second derivative at both ends)."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10.0 + u * (-15.0 + 6.0 * u))


def smoothstep5_d1(u: np.ndarray | float) -> np.ndarray | float:
    u = np.clip(u, 0.0, 1.0)
    return 30.0 * u * u * (1.0 - u) ** 2


class LanePath:
    """Lanes ``lanes[i]`` laid end to end; ``start[i]`` is the absolute arc length where lane i begins."""

    def __init__(
        self, net: RoadNetwork, lanes: list[int], s0: float = 0.0, yaw_rate_max: float = YAW_RATE_MAX
    ):
        self.net = net
        self.yaw_rate_max = yaw_rate_max  # rad/s: the speed profile's cap on the yaw rate in curves
        self.lanes: list[int] = []
        self.start: list[float] = []
        self._pts = np.zeros((0, 2))
        self._s = np.zeros(0)
        self._hd = np.zeros(0)
        self._vlim = np.zeros(0)
        self._end = s0
        for lane in lanes:
            self.append(lane)

    # ---- building ---------------------------------------------------------------------------------------
    def append(self, lane_id: int) -> None:
        seg = self.net.lanes[lane_id]
        pts = seg.center  # baseline vertices, ≤ 1 m apart
        d = np.diff(pts, axis=0)
        ds = np.hypot(d[:, 0], d[:, 1])
        s = self._end + np.concatenate([[0.0], np.cumsum(ds)])
        h = np.arctan2(d[:, 1], d[:, 0])
        # Vertex tangents: average of neighbouring segment headings (unwrapped).
        hv = np.empty(len(pts))
        hu = np.unwrap(h)
        hv[1:-1] = 0.5 * (hu[:-1] + hu[1:])
        hv[0], hv[-1] = hu[0], hu[-1]
        kappa = np.zeros(len(pts))
        if len(pts) > 2:
            kappa[1:-1] = (hu[1:] - hu[:-1]) / (0.5 * (ds[1:] + ds[:-1]))
        kw = np.abs(kappa)
        if len(kw) > 7:  # be conservative: the max curvature within ±3 vertices
            padded = np.pad(kw, 3, mode="edge")
            kw = np.lib.stride_tricks.sliding_window_view(padded, 7).max(axis=1)
        vlim = np.minimum(
            seg.speed_limit,
            np.minimum(np.sqrt(A_LAT_MAX / np.maximum(kw, 1e-6)), self.yaw_rate_max / np.maximum(kw, 1e-6)),
        )
        if self.lanes:
            # Same point as the previous lane's end: drop the duplicate vertex, keep heading continuity.
            prev = self._hd[-1]
            hv = hv + 2 * np.pi * np.round((prev - hv[0]) / (2 * np.pi))
            pts, s, hv, vlim = pts[1:], s[1:], hv[1:], vlim[1:]
        self.lanes.append(lane_id)
        self.start.append(self._end)
        self._pts = np.concatenate([self._pts, pts])
        self._s = np.concatenate([self._s, s])
        self._hd = np.concatenate([self._hd, hv])
        self._vlim = np.concatenate([self._vlim, vlim])
        self._end = float(self._s[-1])

    def trim_before(self, s: float) -> None:
        """Drop whole lanes that end before arc length ``s`` (memory stays bounded on long drives)."""
        k = 0
        while k + 1 < len(self.lanes) and self.start[k + 1] < s:
            k += 1
        if k == 0:
            return
        cut = int(np.searchsorted(self._s, self.start[k], side="left"))
        self.lanes = self.lanes[k:]
        self.start = self.start[k:]
        self._pts, self._s, self._hd, self._vlim = (
            self._pts[cut:],
            self._s[cut:],
            self._hd[cut:],
            self._vlim[cut:],
        )

    # ---- queries --------------------------------------------------------------------------------------------
    @property
    def end(self) -> float:
        return self._end

    @property
    def begin(self) -> float:
        return float(self._s[0])

    @property
    def last_lane(self) -> int:
        return self.lanes[-1]

    def lane_at(self, s: float) -> tuple[int, float]:
        """(lane id, arc length inside that lane) at absolute arc length ``s``."""
        k = min(max(bisect.bisect_right(self.start, s) - 1, 0), len(self.lanes) - 1)
        return self.lanes[k], s - self.start[k]

    def lane_index_at(self, s: float) -> int:
        return min(max(bisect.bisect_right(self.start, s) - 1, 0), len(self.lanes) - 1)

    def pose(self, s: np.ndarray | float) -> np.ndarray:
        """(x, y, heading) at arc length(s) ``s`` (clipped to the path)."""
        s = np.asarray(s, dtype=np.float64).clip(self._s[0], self._s[-1])
        x = np.interp(s, self._s, self._pts[:, 0])
        y = np.interp(s, self._s, self._pts[:, 1])
        h = np.interp(s, self._s, self._hd)
        return np.stack([x, y, h], axis=-1)

    def pose1(self, s: float) -> tuple[float, float, float]:
        """(x, y, heading) at one arc length (scalar fast path of :meth:`pose`)."""
        arr = self._s
        if s <= arr[0]:
            return float(self._pts[0, 0]), float(self._pts[0, 1]), float(self._hd[0])
        if s >= arr[-1]:
            return float(self._pts[-1, 0]), float(self._pts[-1, 1]), float(self._hd[-1])
        i = int(arr.searchsorted(s, side="right")) - 1
        s0, s1 = arr[i], arr[i + 1]
        t = (s - s0) / (s1 - s0) if s1 > s0 else 0.0
        p0, p1 = self._pts[i], self._pts[i + 1]
        h0, h1 = self._hd[i], self._hd[i + 1]
        return (
            float(p0[0] + t * (p1[0] - p0[0])),
            float(p0[1] + t * (p1[1] - p0[1])),
            float(h0 + t * (h1 - h0)),
        )

    def vertices(self, s0: float, s1: float, max_step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(arc lengths, points (K, 2), headings) of path vertices in [s0, s1], thinned to about ``max_step``
        apart (vertices are ≤ 1 m apart, so no interpolation is needed)."""
        i0 = int(self._s.searchsorted(s0))
        i1 = int(self._s.searchsorted(s1, side="right"))
        stride = max(1, int(max_step))
        sl = slice(i0, i1, stride)
        return self._s[sl], self._pts[sl], self._hd[sl]

    def speed_limit(self, s0: float, s1: float) -> tuple[np.ndarray, np.ndarray]:
        """(arc lengths, speed limits) of the vertices in [s0, s1]."""
        i0 = int(self._s.searchsorted(s0))
        i1 = int(self._s.searchsorted(s1, side="right"))
        return self._s[i0:i1], self._vlim[i0:i1]

    def project(
        self, xy: np.ndarray, s_hint: float, back: float = 15.0, ahead: float = 40.0
    ) -> tuple[float, float]:
        """(arc length, signed lateral offset, left positive) of ``xy`` near ``s_hint``."""
        i0 = max(int(np.searchsorted(self._s, s_hint - back)) - 1, 0)
        i1 = min(int(np.searchsorted(self._s, s_hint + ahead)) + 1, len(self._s) - 1)
        a = self._pts[i0:i1]
        b = self._pts[i0 + 1 : i1 + 1]
        d = b - a
        dd = np.maximum(np.sum(d * d, axis=1), 1e-12)
        t = np.clip(np.sum((xy - a) * d, axis=1) / dd, 0.0, 1.0)
        proj = a + t[:, None] * d
        dist = np.hypot(*(xy - proj).T)
        k = int(np.argmin(dist))
        s = self._s[i0 + k] + t[k] * (self._s[i0 + k + 1] - self._s[i0 + k])
        cross = d[k, 0] * (xy[1] - a[k, 1]) - d[k, 1] * (xy[0] - a[k, 0])
        return float(s), float(np.sign(cross) * dist[k])


class LateralPlan:
    """Lateral offset d(s) as a sum of quintic transitions: (s_start, s_end, delta) each."""

    def __init__(self) -> None:
        self.steps: list[tuple[float, float, float]] = []
        self.base = 0.0

    def add(self, s0: float, s1: float, delta: float) -> None:
        self.steps.append((float(s0), float(max(s1, s0 + 1e-3)), float(delta)))

    def offset(self, s: np.ndarray | float) -> np.ndarray | float:
        if not self.steps:
            return self.base if np.ndim(s) == 0 else np.full(np.shape(s), self.base)
        s = np.asarray(s, dtype=np.float64)
        out = np.full(s.shape, self.base)
        for s0, s1, dv in self.steps:
            out = out + dv * smoothstep5((s - s0) / (s1 - s0))
        return out if out.ndim else float(out)

    def slope(self, s: np.ndarray | float) -> np.ndarray | float:
        if not self.steps:
            return 0.0 if np.ndim(s) == 0 else np.zeros(np.shape(s))
        s = np.asarray(s, dtype=np.float64)
        out = np.zeros(s.shape)
        for s0, s1, dv in self.steps:
            out = out + dv * smoothstep5_d1((s - s0) / (s1 - s0)) / (s1 - s0)
        return out if out.ndim else float(out)

    def prune(self, s: float) -> None:
        """Fold finished transitions into the base offset."""
        keep = []
        for s0, s1, dv in self.steps:
            if s1 <= s:
                self.base += dv
            else:
                keep.append((s0, s1, dv))
        self.steps = keep
        if abs(self.base) < 1e-9:
            self.base = 0.0

    @property
    def idle(self) -> bool:
        return not self.steps and self.base == 0.0

    def final(self) -> float:
        return self.base + sum(dv for _, _, dv in self.steps)
