"""Smooth plane curves for road and connector centrelines: straight runs joined by curvature-continuous turns.

Every curve is returned as a dense sample ``(N, 3) = (x, y, heading)`` with exact end points, so a lane's
last vertex and the next connector's first vertex can be shared bit for bit (format contract §1.5:
consecutive baselines are continuous). Turns ramp curvature up and down with sin² profiles (clothoid-like),
which keeps yaw acceleration bounded for the vehicles that follow them (fact sheet §1.6 comfort bounds).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from planlab.geometry.se2 import wrap_angle

# Fraction of a turn's length spent ramping curvature in (and again out); the middle has constant curvature.
TURN_RAMP = 0.35
_UNIT_SAMPLES = 4001


def _profile(u: np.ndarray, ramp: float) -> np.ndarray:
    """Normalised curvature shape on u in [0, 1]: sin² ramp up, plateau 1, sin² ramp down."""
    f = np.ones_like(u)
    if ramp > 0:
        up = u < ramp
        f[up] = np.sin(0.5 * np.pi * u[up] / ramp) ** 2
        down = u > 1.0 - ramp
        f[down] = np.sin(0.5 * np.pi * (1.0 - u[down]) / ramp) ** 2
    return f


@lru_cache(maxsize=512)
def _unit_turn(delta_key: float, ramp: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """A turn of length 1 and heading change ``delta``: (u, points (N,2), tangent length, peak curvature)."""
    delta = float(delta_key)
    u = np.linspace(0.0, 1.0, _UNIT_SAMPLES)
    f = _profile(u, ramp)
    mean_f = 1.0 - ramp  # mean of the profile (each sin² ramp averages 1/2)
    kappa = delta / mean_f * f
    du = u[1] - u[0]
    theta = np.concatenate([[0.0], np.cumsum(0.5 * (kappa[1:] + kappa[:-1]) * du)])
    theta *= delta / theta[-1]  # remove the quadrature error so the end heading is exact
    c, s = np.cos(theta), np.sin(theta)
    x = np.concatenate([[0.0], np.cumsum(0.5 * (c[1:] + c[:-1]) * du)])
    y = np.concatenate([[0.0], np.cumsum(0.5 * (s[1:] + s[:-1]) * du)])
    pts = np.stack([x, y], axis=1)
    # Intersection of the start tangent (the x axis) with the end tangent line.
    tangent = x[-1] - y[-1] / np.tan(delta)
    return u, pts, float(tangent), float(np.max(np.abs(kappa)))


def turn_peak_curvature(delta: float, tangent_length: float, ramp: float = TURN_RAMP) -> float:
    """Peak |curvature| [1/m] of a symmetric smooth turn of heading change ``delta`` and tangent length."""
    _, _, t1, k1 = _unit_turn(round(abs(float(delta)), 12), ramp)
    length = tangent_length / t1
    return k1 / length


def tangent_for_min_radius(delta: float, radius: float, ramp: float = TURN_RAMP) -> float:
    """Tangent length of a smooth turn by ``delta`` whose tightest radius is ``radius`` metres."""
    _, _, t1, k1 = _unit_turn(round(abs(float(delta)), 12), ramp)
    return radius * k1 * t1


def resample_by_arclength(points: np.ndarray, spacing: float) -> np.ndarray:
    """Resample a dense polyline at (nearly) uniform arc length ``<= spacing``; end points kept exactly."""
    pts = np.asarray(points, dtype=np.float64)
    seg = np.hypot(*np.diff(pts, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.ceil(s[-1] / spacing)), 1)
    target = np.linspace(0.0, s[-1], n + 1)
    out = np.stack([np.interp(target, s, pts[:, 0]), np.interp(target, s, pts[:, 1])], axis=1)
    out[0] = pts[0]
    out[-1] = pts[-1]
    return out


def headings_of(points: np.ndarray) -> np.ndarray:
    """Tangent heading at every vertex (central differences inside, one-sided at the ends)."""
    d = np.gradient(points, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def _straight(p0: np.ndarray, p1: np.ndarray, spacing: float) -> np.ndarray:
    n = max(int(np.ceil(np.hypot(*(p1 - p0)) / spacing)), 1)
    t = np.linspace(0.0, 1.0, n + 1)[:, None]
    out = p0[None, :] * (1.0 - t) + p1[None, :] * t
    out[0], out[-1] = p0, p1
    return out


def smooth_turn(
    start: np.ndarray, heading: float, delta: float, tangent_length: float, spacing: float
) -> np.ndarray:
    """Points of a symmetric smooth turn starting at ``start`` with ``heading``, turning by ``delta``.

    The turn ends on the line through the tangent intersection point with heading ``heading + delta``,
    ``tangent_length`` metres from that intersection (like a circular fillet of the same tangent length).
    """
    sign = 1.0 if delta >= 0 else -1.0
    _, unit, t1, _ = _unit_turn(round(abs(float(delta)), 12), TURN_RAMP)
    scale = tangent_length / t1
    pts = unit * scale
    pts[:, 1] *= sign
    c, s = np.cos(heading), np.sin(heading)
    rot = np.array([[c, -s], [s, c]])
    pts = start[None, :] + pts @ rot.T
    # Exact end point: the intersection point plus tangent_length along the new heading.
    corner = start + tangent_length * np.array([c, s])
    end = corner + tangent_length * np.array([np.cos(heading + delta), np.sin(heading + delta)])
    err = end - pts[-1]
    w = np.linspace(0.0, 1.0, len(pts))[:, None]
    pts = pts + w * err[None, :]
    return resample_by_arclength(pts, spacing)


def hermite(
    p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, spacing: float, scale: float = 1.0
) -> np.ndarray:
    """Quintic Hermite curve with zero end curvature between two poses (for lane shifts and S-bends)."""
    chord = float(np.hypot(*(p1 - p0)))
    m = scale * chord
    t0 = m * np.array([np.cos(h0), np.sin(h0)])
    t1 = m * np.array([np.cos(h1), np.sin(h1)])
    t = np.linspace(0.0, 1.0, max(int(np.ceil(chord / spacing * 8)), 16))[:, None]
    t3, t4, t5 = t**3, t**4, t**5
    h00 = 1 - 10 * t3 + 15 * t4 - 6 * t5
    h10 = t - 6 * t3 + 8 * t4 - 3 * t5
    h01 = 10 * t3 - 15 * t4 + 6 * t5
    h11 = -4 * t3 + 7 * t4 - 3 * t5
    pts = h00 * p0 + h10 * t0 + h01 * p1 + h11 * t1
    pts[0], pts[-1] = p0, p1
    return resample_by_arclength(pts, spacing)


def _line_intersection(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float) -> tuple[float, float] | None:
    """Parameters (a, b) with p0 + a·u0 == p1 - b·u1, or None for (near-)parallel lines."""
    u0 = np.array([np.cos(h0), np.sin(h0)])
    u1 = np.array([np.cos(h1), np.sin(h1)])
    m = np.array([[u0[0], u1[0]], [u0[1], u1[1]]])
    det = np.linalg.det(m)
    if abs(det) < 1e-9:
        return None
    a, b = np.linalg.solve(m, p1 - p0)
    return float(a), float(b)


def connect_poses(p0: np.ndarray, h0: float, p1: np.ndarray, h1: float, spacing: float) -> np.ndarray:
    """A smooth curve from pose (p0, h0) to pose (p1, h1): straight + smooth turn + straight when the two
    tangent lines meet ahead of both poses, a quintic Hermite otherwise (small heading changes, S-shifts).

    The first and last vertices are exactly ``p0`` and ``p1``.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    delta = float(wrap_angle(h1 - h0))
    sol = _line_intersection(p0, h0, p1, h1) if abs(delta) > np.deg2rad(8.0) else None
    if sol is None or sol[0] <= 0.05 or sol[1] <= 0.05:
        return hermite(p0, h0, p1, h1, spacing)
    a, b = sol
    t = min(a, b)
    u0 = np.array([np.cos(h0), np.sin(h0)])
    u1 = np.array([np.cos(h1), np.sin(h1)])
    parts = []
    start = p0
    if a - t > 1e-6:
        start = p0 + (a - t) * u0
        parts.append(_straight(p0, start, spacing))
    turn = smooth_turn(start, h0, delta, t, spacing)
    if parts:
        turn = turn[1:]
    parts.append(turn)
    if b - t > 1e-6:
        tail_start = p1 - (b - t) * u1
        parts[-1][-1] = tail_start
        parts.append(_straight(tail_start, p1, spacing)[1:])
    out = np.concatenate(parts, axis=0)
    out[0], out[-1] = p0, p1
    return out


def fillet_path(
    waypoints: np.ndarray,
    radii: list[float] | float,
    spacing: float,
    h_start: float | None = None,
    h_end: float | None = None,
) -> np.ndarray:
    """A road centreline through ``waypoints``: straight legs, each interior corner rounded by a smooth turn
    whose tightest radius is the requested one (less where a short leg caps the turn). Optional start/end headings add a smooth
    connection from the first point (and into the last) when they differ from the first (last) leg.
    """
    w = np.asarray(waypoints, dtype=np.float64)
    if len(w) < 2:
        raise ValueError("fillet_path needs at least two waypoints")
    if len(w) == 2 and h_start is None and h_end is None:
        return _straight(w[0], w[1], spacing)
    if np.isscalar(radii):
        radii = [float(radii)] * max(len(w) - 2, 0)
    legs = np.diff(w, axis=0)
    leg_h = np.arctan2(legs[:, 1], legs[:, 0])
    leg_len = np.hypot(legs[:, 0], legs[:, 1])
    # Tangent length at each interior corner so that the tightest radius of the turn is the requested one
    # (capped so neighbouring turns never overlap on a short leg).
    tangents = []
    for i in range(1, len(w) - 1):
        d = float(wrap_angle(leg_h[i] - leg_h[i - 1]))
        t = tangent_for_min_radius(d, radii[i - 1]) if abs(d) > 1e-9 else 0.0
        tangents.append(min(t, 0.49 * leg_len[i - 1], 0.49 * leg_len[i]))
    pts: list[np.ndarray] = []
    cur = w[0]
    cur_h = leg_h[0]
    if h_start is not None and abs(wrap_angle(h_start - leg_h[0])) > 1e-6:
        raise ValueError("fillet_path: start heading must follow the first leg (add a waypoint)")
    for i in range(1, len(w) - 1):
        u_prev = legs[i - 1] / leg_len[i - 1]
        t = tangents[i - 1]
        turn_start = w[i] - t * u_prev
        if np.hypot(*(turn_start - cur)) > 1e-9:
            seg = _straight(cur, turn_start, spacing)
            pts.append(seg if not pts else seg[1:])
        d = float(wrap_angle(leg_h[i] - leg_h[i - 1]))
        if abs(d) > 1e-9 and t > 1e-9:
            turn = smooth_turn(turn_start, cur_h, d, t, spacing)
            pts.append(turn if not pts else turn[1:])
            cur = turn[-1]
        else:
            cur = turn_start
        cur_h = leg_h[i]
    seg = _straight(cur, w[-1], spacing)
    pts.append(seg if not pts else seg[1:])
    out = np.concatenate(pts, axis=0)
    if h_end is not None and abs(wrap_angle(h_end - leg_h[-1])) > 1e-6:
        raise ValueError("fillet_path: end heading must follow the last leg (add a waypoint)")
    out[0], out[-1] = w[0], w[-1]
    return out


def curvature(points: np.ndarray) -> np.ndarray:
    """Signed curvature [1/m] at each vertex of a polyline (finite differences of heading over arc length)."""
    pts = np.asarray(points, dtype=np.float64)
    d = np.diff(pts, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    h = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    if len(h) < 2:
        return np.zeros(len(pts))
    k = np.diff(h) / (0.5 * (seg[1:] + seg[:-1]))
    return np.concatenate([[k[0]], k, [k[-1]]])


def offset_polyline(points: np.ndarray, headings: np.ndarray, lateral: float | np.ndarray) -> np.ndarray:
    """Shift each vertex ``lateral`` metres to the left of its heading (negative: right)."""
    lat = np.asarray(lateral, dtype=np.float64)
    normal = np.stack([-np.sin(headings), np.cos(headings)], axis=-1)
    return points + (lat[..., None] if lat.ndim else lat) * normal
