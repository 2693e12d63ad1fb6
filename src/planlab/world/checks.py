"""Physical checks of a simulated log, recomputed from the recorded 10 Hz geometry (not from the simulator's
own bookkeeping): the expert never overlaps an agent and never leaves the drivable area, never enters a red
connector, stays inside NAVSIM's comfort bounds; agents never overlap each other.

Used by the tests over whole presets and by ``planlab data generate --check``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from planlab.geometry.boxes import box_corners, boxes_overlap
from planlab.world.actors import EGO_LENGTH, EGO_REAR_TO_CENTER, EGO_WIDTH
from planlab.world.episode import Episode
from planlab.world.network import RoadNetwork
from planlab.world.traffic import DT

# fact sheet §1.6: NAVSIM's comfort bounds (strict inequalities).
COMFORT_BOUNDS = {
    "lon_accel": (-4.05, 2.40),
    "lat_accel": 4.89,
    "jerk": 8.37,
    "lon_jerk": 4.13,
    "yaw_accel": 1.93,
    "yaw_rate": 0.95,
}


@dataclass
class CheckReport:
    """What went wrong in one log (empty lists = all fine) and the extremes measured."""

    ego_collisions: list[tuple[float, str]] = field(default_factory=list)
    agent_collisions: list[tuple[float, str, str]] = field(default_factory=list)
    offroad: list[float] = field(default_factory=list)
    red_entries: list[tuple[float, int]] = field(default_factory=list)
    comfort_violations: list[str] = field(default_factory=list)
    extremes: dict[str, float] = field(default_factory=dict)
    min_clearance: float = float("inf")  # smallest ego–agent gap [m] (box distance)

    @property
    def ok(self) -> bool:
        return not (
            self.ego_collisions
            or self.agent_collisions
            or self.offroad
            or self.red_entries
            or self.comfort_violations
        )

    def summary(self) -> str:
        parts = []
        if self.ego_collisions:
            parts.append(f"{len(self.ego_collisions)} ego collision steps (first {self.ego_collisions[0]})")
        if self.agent_collisions:
            parts.append(f"{len(self.agent_collisions)} agent overlaps (first {self.agent_collisions[0]})")
        if self.offroad:
            parts.append(f"{len(self.offroad)} off-road steps (first t={self.offroad[0]:.1f})")
        if self.red_entries:
            parts.append(f"red-light entries {self.red_entries}")
        parts += self.comfort_violations
        return "; ".join(parts) or "ok"


def ego_corners(ego_state: np.ndarray) -> np.ndarray:
    """Pacifica box corners (FL, RL, RR, FR) of rear-axle states ``(..., ≥3)`` (fact sheet §1.2)."""
    x, y, h = ego_state[..., 0], ego_state[..., 1], ego_state[..., 2]
    cx = x + EGO_REAR_TO_CENTER * np.cos(h)
    cy = y + EGO_REAR_TO_CENTER * np.sin(h)
    return box_corners(cx, cy, h, EGO_LENGTH, EGO_WIDTH)


def _savgol(x: np.ndarray, window: int, order: int, deriv: int = 0) -> np.ndarray:
    from scipy.signal import savgol_filter

    if len(x) < window:
        return np.gradient(x, DT) if deriv == 1 else x
    return savgol_filter(x, window, order, deriv=deriv, delta=DT, mode="interp")


def comfort_signals(ego: np.ndarray) -> dict[str, np.ndarray]:
    """Longitudinal/lateral acceleration, jerks, yaw rate and yaw acceleration of a 10 Hz ego track.

    Accelerations and jerks come from the logged speed; yaw terms from the unwrapped heading smoothed like
    NAVSIM (Savitzky–Golay window 5, fact sheet §1.6).
    """
    v = ego[:, 3]
    heading = np.unwrap(ego[:, 2])
    lon = ego[:, 4]
    yaw_rate = _savgol(heading, 5, 2, 1)
    yaw_acc = _savgol(heading, 5, 3, 2)
    lat = v * yaw_rate
    jerk_lon = np.gradient(lon, DT)
    jerk = np.gradient(np.hypot(lon, lat), DT)
    return {
        "lon_accel": lon,
        "lat_accel": lat,
        "lon_jerk": jerk_lon,
        "jerk": jerk,
        "yaw_rate": yaw_rate,
        "yaw_accel": yaw_acc,
    }


def check_episode(net: RoadNetwork, ep: Episode, clearance_radius: float = 60.0) -> CheckReport:
    rep = CheckReport()
    ego = np.array([s.ego for s in ep.steps])
    corners = ego_corners(ego)  # (T, 4, 2)
    # Drivable area: every corner strictly inside roadblocks ∪ intersections ∪ car parks (fact sheet §1.5).
    area = net.drivable
    shapely.prepare(area)
    inside = shapely.contains_xy(area, corners[..., 0], corners[..., 1])
    for k in np.nonzero(~inside.all(axis=1))[0]:
        rep.offroad.append(float(ep.steps[k].t))
    for k, st in enumerate(ep.steps):
        if len(st.boxes) == 0:
            continue
        b = st.boxes
        d = np.hypot(b[:, 0] - ego[k, 0], b[:, 1] - ego[k, 1])
        near = np.nonzero(d < clearance_radius)[0]
        if len(near):
            bc = box_corners(b[near, 0], b[near, 1], b[near, 6], b[near, 3], b[near, 4])
            hit = boxes_overlap(corners[k][None], bc)
            for i in np.nonzero(hit)[0]:
                rep.ego_collisions.append((float(st.t), st.ids[near[i]]))
            gaps = shapely.distance(shapely.polygons(corners[k]), shapely.polygons(bc))
            rep.min_clearance = min(rep.min_clearance, float(np.min(gaps)))
        # agents against each other
        allc = box_corners(b[:, 0], b[:, 1], b[:, 6], b[:, 3], b[:, 4])
        reach = 0.5 * np.hypot(b[:, 3], b[:, 4])
        dx = b[:, 0, None] - b[None, :, 0]
        dy = b[:, 1, None] - b[None, :, 1]
        close = np.hypot(dx, dy) < reach[:, None] + reach[None, :]
        ii, jj = np.nonzero(np.triu(close, 1))
        if len(ii):
            hit = boxes_overlap(allc[ii], allc[jj])
            for a, c in zip(ii[hit], jj[hit], strict=True):
                if st.kinds[a] == "static" and st.kinds[c] == "static":
                    continue  # parked cars in a row and cone lines may touch; they never move
                rep.agent_collisions.append((float(st.t), st.ids[a], st.ids[c]))
    for t, cid, state in ep.entered:
        if state == "red" and t >= ep.t0 - 1e-9:
            rep.red_entries.append((float(t), int(cid)))
    sig = comfort_signals(ego)
    for name, values in sig.items():
        bound = COMFORT_BOUNDS[name]
        if isinstance(bound, tuple):
            lo, hi = bound
            rep.extremes[name] = (
                float(values.min()) if abs(values.min()) > abs(values.max()) else float(values.max())
            )
            if values.min() <= lo or values.max() >= hi:
                rep.comfort_violations.append(
                    f"{name} {values.min():.2f}..{values.max():.2f} outside ({lo}, {hi})"
                )
        else:
            m = float(np.max(np.abs(values)))
            rep.extremes[name] = m
            if m >= bound:
                rep.comfort_violations.append(f"|{name}| {m:.2f} ≥ {bound}")
    return rep
