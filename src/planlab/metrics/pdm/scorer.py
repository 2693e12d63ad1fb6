"""Per-proposal sub-scores and their aggregation into PDMS (v1.1) and EPDMS (v2), fact sheet §1.6–1.7.

:func:`subscores` evaluates every simulated row of a batch against its scene; the aggregation
functions then combine rows that are scored *jointly* (NAVSIM scores the agent together with the
PDM-Closed reference: ego progress is normalised by the best of them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

from planlab.metrics.pdm.areas import EgoAreas, ego_areas
from planlab.metrics.pdm.collisions import no_at_fault_collisions, time_to_collision
from planlab.metrics.pdm.comfort import comfort_checks_v2, comfort_v11
from planlab.metrics.pdm.inputs import SceneBatch, scene_pairs
from planlab.metrics.pdm.progress import driving_direction_compliance, raw_progress
from planlab.scene.enums import StateIndex
from planlab.sim.vehicle import PACIFICA, VehicleParameters, ego_coords

PDMS_V11 = "v1.1"
EPDMS_V2 = "v2"
METRIC_VERSIONS = (PDMS_V11, EPDMS_V2)

PROGRESS_DISTANCE_THRESHOLD = 5.0  # m (v1.0 used 0.1)
V11_WEIGHTS = {
    "ego_progress": 5.0,
    "time_to_collision_within_bound": 5.0,
    "comfort": 2.0,
    "driving_direction_compliance": 0.0,
}


@dataclass
class SubScores:
    """Agent-independent sub-scores of each row (before joint progress normalisation)."""

    no_at_fault_collisions: np.ndarray
    drivable_area_compliance: np.ndarray
    driving_direction_compliance: np.ndarray
    time_to_collision_within_bound: np.ndarray
    comfort: np.ndarray
    progress_raw: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, index: np.ndarray | slice) -> SubScores:
        return SubScores(
            self.no_at_fault_collisions[index],
            self.drivable_area_compliance[index],
            self.driving_direction_compliance[index],
            self.time_to_collision_within_bound[index],
            self.comfort[index],
            self.progress_raw[index],
            {k: v[index] for k, v in self.extra.items()},
        )

    def as_dict(self) -> dict[str, np.ndarray]:
        d = {
            "no_at_fault_collisions": self.no_at_fault_collisions,
            "drivable_area_compliance": self.drivable_area_compliance,
            "driving_direction_compliance": self.driving_direction_compliance,
            "time_to_collision_within_bound": self.time_to_collision_within_bound,
            "comfort": self.comfort,
            "progress_raw": self.progress_raw,
        }
        d.update(self.extra)
        return d


def subscores_v11(
    states: np.ndarray,
    row_scene: np.ndarray,
    batch: SceneBatch,
    interval: float = 0.1,
    vehicle: VehicleParameters = PACIFICA,
    areas: EgoAreas | None = None,
) -> SubScores:
    """NAVSIM v1.1 sub-scores for simulated states ``(R, 41, 11)``; ``row_scene`` maps rows to scenes."""
    states = np.asarray(states, dtype=np.float64)
    row_scene = np.asarray(row_scene, dtype=np.int64)
    coords = ego_coords(states, vehicle)
    if areas is None:
        areas = ego_areas(coords, states[..., StateIndex.X : StateIndex.Y + 1], row_scene, batch)
    nc = no_at_fault_collisions(coords, states, areas, row_scene, batch)
    dac = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)  # t = 0 included
    ddc = driving_direction_compliance(coords[..., 4, :], areas.oncoming, interval)
    # v1.1: t = 0..40 against the 51-step observation (t + 9 <= 49)
    ttc = time_to_collision(
        coords, states, areas, row_scene, batch, max_time_index=states.shape[1] - 1, interval=interval
    )
    comfort = comfort_v11(states, interval)
    progress = raw_progress(coords[..., 4, :], row_scene, batch.centerlines)
    return SubScores(nc, dac, ddc, ttc, comfort, progress)


def aggregate_v11(
    nc: np.ndarray,
    dac: np.ndarray,
    ddc: np.ndarray,
    ttc: np.ndarray,
    comfort: np.ndarray,
    progress_raw: np.ndarray,
    threshold: float = PROGRESS_DISTANCE_THRESHOLD,
) -> tuple[np.ndarray, np.ndarray]:
    """(EP, PDMS) for proposals scored jointly along the last axis (NAVSIM ``_aggregate_scores``).

    ``PDMS = NC·DAC·(5·EP + 5·TTC + 2·C + 0·DDC)/12``; EP = masked progress / best masked progress
    when the best exceeds 5 m, else 1 (0 where NC·DAC = 0). NC = 0.5 also halves the EP numerator.
    """
    multi = nc * dac
    masked = progress_raw * multi
    best = masked.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = masked / best
    fallback = np.where(multi == 0.0, 0.0, 1.0)
    ep = np.where(best > threshold, normalised, fallback)
    w = V11_WEIGHTS
    weighted = (
        (ep * w["ego_progress"] + ttc * w["time_to_collision_within_bound"]) + comfort * w["comfort"]
    ) + ddc * w["driving_direction_compliance"]
    weighted = weighted / sum(w.values())
    return ep, multi * weighted


# ---------------------------------------------------------------------------------------------------- v2
V2_WEIGHTS = {
    "ego_progress": 5.0,
    "time_to_collision_within_bound": 5.0,
    "lane_keeping": 2.0,
    "history_comfort": 2.0,
    "two_frame_extended_comfort": 2.0,
}
V2_MULTIPLIERS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
)
# sub-scores the v2 human filter may lift to 1 (fact sheet §1.7, post-2025-09-29 behaviour)
HUMAN_FILTERED = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "lane_keeping",
    "history_comfort",
)
LANE_KEEPING_DEVIATION_LIMIT = 0.5  # m
LANE_KEEPING_HORIZON_S = 2.0
TTC_MAX_OFFSET = 9  # steps; v2 evaluates TTC only at t = 0 .. n - 1 - 9


def traffic_light_compliance(coords: np.ndarray, row_scene: np.ndarray, batch: SceneBatch) -> np.ndarray:
    """TLC per row: 0 when the ego box touches a red on-route lane connector at any step (t = 0 included)."""
    r, s = coords.shape[:2]
    tlc = np.ones(r)
    if len(batch.red_polygons) == 0:
        return tlc
    rows, items = scene_pairs(row_scene, batch.red_start, batch.red_count)
    steps = batch.red_step[items]
    keep = steps < s
    rows, items, steps = rows[keep], items[keep], steps[keep]
    if len(rows) == 0:
        return tlc
    ring = coords[rows, steps].copy()
    ring[:, 4] = ring[:, 0]  # FL, RL, RR, FR, FL
    hit = shapely.intersects(shapely.polygons(ring), batch.red_polygons[items])
    tlc[rows[hit]] = 0.0
    return tlc


def lane_keeping(
    centers: np.ndarray,
    in_junction: np.ndarray,
    row_scene: np.ndarray,
    centerlines: np.ndarray,
    interval: float = 0.1,
) -> np.ndarray:
    """LK per row: 0 once the centre stays > 0.5 m off the centerline for 2 s of consecutive steps.

    Steps with the centre inside a junction neither count nor reset the streak (fact sheet §1.6).
    """
    r, s = in_junction.shape
    lines = np.broadcast_to(centerlines[row_scene][:, None], (r, s))
    deviation = shapely.distance(lines, shapely.points(centers))
    exceed = deviation > LANE_KEEPING_DEVIATION_LIMIT
    needed = int(np.ceil(LANE_KEEPING_HORIZON_S / interval))
    streak = np.zeros(r, dtype=np.int64)
    failed = np.zeros(r, dtype=bool)
    for t in range(s):
        streak = np.where(in_junction[:, t], streak, np.where(exceed[:, t], streak + 1, 0))
        failed |= streak >= needed
    return np.where(failed, 0.0, 1.0)


def subscores_v2(
    states: np.ndarray,
    row_scene: np.ndarray,
    batch: SceneBatch,
    history: Sequence[np.ndarray | None] | None = None,
    interval: float = 0.1,
    vehicle: VehicleParameters = PACIFICA,
) -> SubScores:
    """NAVSIM v2 (EPDMS) sub-scores except EC; ``history[i]`` are the logged past states of row i's scene."""
    states = np.asarray(states, dtype=np.float64)
    row_scene = np.asarray(row_scene, dtype=np.int64)
    coords = ego_coords(states, vehicle)
    areas = ego_areas(coords, states[..., StateIndex.X : StateIndex.Y + 1], row_scene, batch)
    nc = no_at_fault_collisions(coords, states, areas, row_scene, batch)
    dac = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)
    # v2: progress with the centre inside a junction does not count as wrong-way driving
    ddc = driving_direction_compliance(
        coords[..., 4, :], areas.oncoming, interval, excluded=areas.center_in_intersection
    )
    tlc = traffic_light_compliance(coords, row_scene, batch)
    ttc = time_to_collision(
        coords,
        states,
        areas,
        row_scene,
        batch,
        max_time_index=states.shape[1] - 1 - TTC_MAX_OFFSET,
        interval=interval,
    )
    lk = lane_keeping(coords[..., 4, :], areas.center_in_intersection, row_scene, batch.centerlines, interval)
    hc = np.ones(len(states))
    if history is not None:
        by_length: dict[int, list[int]] = {}  # rows whose history has the same number of states
        for i, h in enumerate(history):
            if h is not None and len(h):
                by_length.setdefault(len(h), []).append(i)
        for idx in by_length.values():
            padded = np.concatenate([np.stack([history[i] for i in idx]), states[idx]], axis=1)
            hc[idx] = comfort_checks_v2(padded, vehicle.rear_axle_to_center, interval).all(axis=-1)
    progress = raw_progress(coords[..., 4, :], row_scene, batch.centerlines)
    comfort = np.ones(len(states))  # v1.1 comfort is not part of v2
    return SubScores(
        nc,
        dac,
        ddc,
        ttc,
        comfort,
        progress,
        {"traffic_light_compliance": tlc, "lane_keeping": lk, "history_comfort": hc},
    )


def aggregate_v2(
    values: dict[str, np.ndarray], progress_raw: np.ndarray, threshold: float = PROGRESS_DISTANCE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray]:
    """(EP, multiplier product) for proposals scored jointly along the last axis (v2 normalisation).

    v2: EP = clip(raw / best masked progress, 0, 1) when the best exceeds 5 m (the proposal's own raw
    progress is not masked), else 1 for every proposal (fact sheet §1.6 EP, checklist 2).
    """
    multi = np.ones_like(progress_raw)
    for name in V2_MULTIPLIERS:
        multi = multi * values[name]
    best = (progress_raw * multi).max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        normalised = np.clip(progress_raw / best, 0.0, 1.0)
    ep = np.where(best > threshold, normalised, 1.0)
    return ep, multi


def epdms(values: dict[str, np.ndarray], include_ec: bool = True) -> np.ndarray:
    """EPDMS = NC·DAC·DDC·TLC·(5·EP + 5·TTC + 2·LK + 2·HC + 2·EC)/16; a NaN EC drops its term (→ /14)."""
    multi = np.ones_like(values["ego_progress"], dtype=np.float64)
    for name in V2_MULTIPLIERS:
        multi = multi * values[name]
    total = np.zeros_like(multi)
    weight = np.zeros_like(multi)
    for name, w in V2_WEIGHTS.items():
        if name == "two_frame_extended_comfort":
            if not include_ec:
                continue
            v = values.get(name, np.full_like(multi, np.nan))
            present = ~np.isnan(v)
            total = total + np.where(present, w * np.nan_to_num(v), 0.0)
            weight = weight + np.where(present, w, 0.0)
        else:
            total = total + w * values[name]
            weight = weight + w
    return multi * total / weight


def apply_human_filter(agent: dict[str, np.ndarray], human: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """v2 human filter: where the logged human scores exactly 0 on a sub-score, the agent gets 1 on it."""
    out = dict(agent)
    for name in HUMAN_FILTERED:
        out[name] = np.where(np.asarray(human[name]) == 0.0, 1.0, agent[name])
    return out
