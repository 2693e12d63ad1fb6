"""NAVSIM v2 (EPDMS) specifics: what the cache adds for v2 and how a v2 row is scored.

Fact sheet §1.2, §1.6–1.7, §1.10, checklist 8–12 (navsim ``main``, one-stage, non-reactive traffic):

* ground truth over 4 s (frames 0..8 → 41 steps), minus every track overlapping the ego box at t0
  (log-replay traffic policy); per 10 Hz step the red on-route lane connectors of 2 Hz frame
  ``floor(t / 0.5 s)``, on-route meaning the lanes of the frame's *uncorrected* route;
* history comfort pads the simulation with the logged past (14/15 states from the 4 history frames,
  sampled at 0.1 s and treated as evenly spaced);
* the human filter scores the logged future alone and lifts an agent sub-score to 1 where the human
  scores exactly 0;
* EC compares the agent's simulated plan with its plan 0.5 s earlier in the same log; without a
  predecessor EC is NaN and drops out of the weighting.

NAVSIM v2 publishes no per-token reference scores for this data, so v2 is checked rule by rule in the
tests, not token by token like v1.1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely

from planlab.evaluation.frames import frame_dynamics, frame_pose
from planlab.evaluation.gt_observation import GTObservation
from planlab.geometry.boxes import boxes_overlap
from planlab.metrics.pdm.comfort import two_frame_extended_comfort
from planlab.metrics.pdm.inputs import ScoringScene, concat_scenes
from planlab.metrics.pdm.scorer import SubScores, aggregate_v2, apply_human_filter, epdms, subscores_v2
from planlab.sim.pdm_closed.route import load_route
from planlab.sim.resample import interpolate_poses
from planlab.sim.vehicle import STATE_SIZE, ego_coords, rear_axle_roundtrip
from planlab.sim.world import DrivableMap, ObjectTracks

if TYPE_CHECKING:
    from planlab.evaluation.cache import MetricCacheEntry

V2_HORIZON_S = 4.0
HISTORY_SAMPLE_US = 100_000
EC_MAX_GAP_US = 550_000  # a predecessor scene starts at most 0.55 s earlier


def red_light_ids(
    window: list[dict[str, Any]], num_history_frames: int, route_lane_ids: set[str], frames: int
) -> list[list[str]]:
    """Per future 2 Hz frame 0..frames-1: ids of red on-route lane connectors (zero-order hold source)."""
    out = []
    start = num_history_frames - 1
    for frame in window[start : start + frames]:
        out.append([str(c) for c, red in frame.get("traffic_lights", []) if red and str(c) in route_lane_ids])
    return out


def uncorrected_route_lanes(map_api: Any, frame: dict[str, Any]) -> dict[str, Any]:
    """On-route lanes / lane connectors of the frame's route as logged (no correction)."""
    _, lanes = load_route(map_api, [str(i) for i in frame["roadblock_ids"]])
    return lanes


def history_states(window: list[dict[str, Any]], num_history_frames: int) -> np.ndarray:
    """The logged past as NAVSIM's HC sees it: ``(14 or 15, 11)`` states at 0.1 s up to (not incl.) t0.

    An interpolated trajectory over the history frames (rear-axle pose, velocity and acceleration
    linear in µs, heading after unwrap), sampled with ``arange(start, end, 0.1 s)`` minus the last sample.
    """
    frames = window[:num_history_frames]
    times = np.array([int(f["timestamp"]) for f in frames], dtype=np.int64)
    poses = np.stack([frame_pose(f) for f in frames])
    rx, ry = rear_axle_roundtrip(poses[:, 0], poses[:, 1], poses[:, 2])
    dyn = np.stack([np.concatenate(frame_dynamics(f)) for f in frames])  # vx, vy, ax, ay
    query = np.arange(times[0], times[-1], HISTORY_SAMPLE_US, dtype=np.int64)
    query = np.clip(query, times[0], times[-1])[:-1]
    if len(query) == 0:
        return np.zeros((0, STATE_SIZE))
    pose_q = interpolate_poses(times[None], np.stack([rx, ry, poses[:, 2]], axis=-1)[None], query[None])[0]
    t = times.astype(np.float64)
    q = query.astype(np.float64)
    out = np.zeros((len(query), STATE_SIZE))
    x, y = rear_axle_roundtrip(pose_q[:, 0], pose_q[:, 1], pose_q[:, 2])
    out[:, 0], out[:, 1], out[:, 2] = x, y, pose_q[:, 2]
    for k, col in enumerate((3, 4, 5, 6)):
        out[:, col] = np.interp(q, t, dyn[:, k])
    return out


def human_future(window: list[dict[str, Any]], num_history_frames: int, num_poses: int = 8) -> np.ndarray:
    """The logged future ``(num_poses, 3)`` in the current rear-axle frame (NAVSIM ``get_future_trajectory``)."""
    start = num_history_frames - 1
    poses = np.stack([frame_pose(f) for f in window[start : start + num_poses + 1]])
    origin = poses[0]
    c, s = np.cos(-origin[2]), np.sin(-origin[2])
    d = poses[1:] - origin
    x = d[:, 0] * c - d[:, 1] * s
    y = d[:, 0] * s + d[:, 1] * c
    h = np.arctan2(np.sin(d[:, 2]), np.cos(d[:, 2]))
    return np.stack([x, y, h], axis=-1)


def log_replay_tracks(gt: GTObservation, initial_state: np.ndarray) -> ObjectTracks:
    """The v2 non-reactive observation: GT tracks, minus those overlapping the ego box at t0."""
    tracks = gt.object_tracks()
    if len(tracks) == 0:
        return tracks
    ego = ego_coords(initial_state[None, None])[0, 0, :4]
    overlap = tracks.present[0] & boxes_overlap(ego[None], tracks.corners[0])
    keep = np.flatnonzero(~overlap)
    return ObjectTracks(
        tokens=[tracks.tokens[i] for i in keep],
        corners=tracks.corners[:, keep],
        centers=tracks.centers[:, keep],
        present=tracks.present[:, keep],
        is_agent=tracks.is_agent[keep],
        speed=tracks.speed[keep],
        ignore=tracks.ignore[keep],
    )


def red_lights_per_step(
    ids_per_frame: list[list[str]], polygons: dict[str, Any], num_steps: int
) -> list[np.ndarray]:
    """Red-light polygons per 10 Hz step from the 2 Hz frame ``floor(t / 0.5 s)`` (zero-order hold)."""
    out = []
    for k in range(num_steps):
        ids = ids_per_frame[min(k // 5, len(ids_per_frame) - 1)] if ids_per_frame else []
        arr = np.empty(len(ids), dtype=object)
        arr[:] = [polygons[i] for i in ids]
        out.append(arr)
    return out


def pdm_closed_score_fn_v2(
    states: np.ndarray,
    row_scene: np.ndarray,
    scenes: list[tuple[ObjectTracks, DrivableMap, shapely.LineString, list]],
) -> np.ndarray:
    """v2 selection score of PDM-Closed's proposals (EPDMS without EC, HC = 1, red lights count for TLC)."""
    n_steps = scenes[0][0].num_steps
    batch = concat_scenes(
        [
            ScoringScene(f"pdm_closed_{i}", tracks, drivable, line, [_as_array(red)] * n_steps)
            for i, (tracks, drivable, line, red) in enumerate(scenes)
        ]
    )
    sub = subscores_v2(states, row_scene, batch)
    values = _values(sub)
    out = np.empty(len(states))
    for i in range(len(scenes)):
        rows = np.flatnonzero(row_scene == i)
        group = {k: v[rows] for k, v in values.items()}
        ep, _ = aggregate_v2(group, sub.progress_raw[rows])
        group["ego_progress"] = ep
        out[rows] = epdms(group, include_ec=False)
    return out


def _as_array(polys: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(polys), dtype=object)
    arr[:] = list(polys)
    return arr


def _values(sub: SubScores) -> dict[str, np.ndarray]:
    return {
        "no_at_fault_collisions": sub.no_at_fault_collisions,
        "drivable_area_compliance": sub.drivable_area_compliance,
        "driving_direction_compliance": sub.driving_direction_compliance,
        "traffic_light_compliance": sub.extra["traffic_light_compliance"],
        "time_to_collision_within_bound": sub.time_to_collision_within_bound,
        "lane_keeping": sub.extra["lane_keeping"],
        "history_comfort": sub.extra["history_comfort"],
    }


def subscore_dict(sub: SubScores, k: int) -> dict[str, float]:
    """Row ``k`` of v2 sub-scores as plain floats (incl. raw progress), for the cache."""
    out = {name: float(v[k]) for name, v in _values(sub).items()}
    out["progress_raw"] = float(sub.progress_raw[k])
    return out


def score_states_v2(
    entries: Sequence[MetricCacheEntry],
    states: np.ndarray,
    row_entry: np.ndarray | None = None,
    with_history: bool = True,
) -> SubScores:
    """v2 sub-scores (no EC) of simulated ``states (R, 41, 11)`` against their entries' v2 world."""
    row_entry = np.arange(len(states)) if row_entry is None else np.asarray(row_entry, dtype=np.int64)
    used, row_scene = np.unique(row_entry, return_inverse=True)
    batch = concat_scenes([entries[i].scoring_scene("v2") for i in used])
    history = [entries[i].history_states if with_history else None for i in row_entry]
    return subscores_v2(states, row_scene, batch, history)


def joint_with_pdm_v2(
    entries: Sequence[MetricCacheEntry], agent: SubScores, row_entry: np.ndarray
) -> dict[str, np.ndarray]:
    """Agent rows aggregated with the cached PDM-Closed row (EP), then the human filter; no EC yet."""
    pdm = [entries[i].pdm_subscores_v2 for i in row_entry]
    values = _values(agent)
    progress = np.stack([np.array([p["progress_raw"] for p in pdm]), agent.progress_raw], axis=1)
    pair = {k: np.stack([np.array([p[k] for p in pdm]), v], axis=1) for k, v in values.items()}
    ep, _ = aggregate_v2(pair, progress)
    out = {k: v for k, v in values.items()}
    out["ego_progress"] = ep[:, 1]
    human = {k: np.array([entries[i].human_subscores_v2[k] for i in row_entry]) for k in out}
    out = apply_human_filter(out, human)
    out["progress_raw"] = agent.progress_raw
    return out


def extended_comfort_pairs(
    tokens: Sequence[str], log_names: Sequence[str], t0_us: Sequence[int]
) -> dict[int, tuple[int, float]]:
    """index → (index of the scene starting ≤ 0.55 s earlier in the same log, gap [s]); latest such scene."""
    by_log: dict[str, list[int]] = {}
    for i, log in enumerate(log_names):
        by_log.setdefault(log, []).append(i)
    pairs: dict[int, tuple[int, float]] = {}
    for idx in by_log.values():
        idx = sorted(idx, key=lambda i: t0_us[i])
        for a, b in zip(idx[:-1], idx[1:], strict=True):
            gap = int(t0_us[b]) - int(t0_us[a])
            if 0 < gap <= EC_MAX_GAP_US:
                pairs[b] = (a, gap * 1e-6)
    return pairs


def finalize_v2(
    rows: list[dict[str, float]],
    states: Sequence[np.ndarray | None],
    tokens: Sequence[str],
    log_names: Sequence[str],
    t0_us: Sequence[int],
) -> None:
    """Fill EC (NaN without predecessor) and the EPDMS score into ``rows`` (dicts of sub-scores), in place."""
    pairs = extended_comfort_pairs(tokens, log_names, t0_us)
    ec = np.full(len(rows), np.nan)
    groups: dict[float, list[tuple[int, int]]] = {}
    for cur, (prev, gap) in pairs.items():
        if states[cur] is not None and states[prev] is not None:
            groups.setdefault(round(gap, 6), []).append((cur, prev))
    for gap, items in groups.items():
        cur = np.stack([states[c] for c, _ in items])  # type: ignore[misc]
        prev = np.stack([states[p] for _, p in items])  # type: ignore[misc]
        ec[[c for c, _ in items]] = two_frame_extended_comfort(cur, prev, gap)
    for i, row in enumerate(rows):
        if not row:
            continue
        row["two_frame_extended_comfort"] = float(ec[i])
        values = {k: np.array([v]) for k, v in row.items()}
        row["score"] = float(epdms(values)[0])


def score_v2(
    entries: Sequence[MetricCacheEntry], local_poses: np.ndarray, interval: float = 0.5
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """v2 sub-scores (no EC, no score yet) for one trajectory per entry, and the simulated states."""
    from planlab.evaluation.scoring import simulate_agent

    row_entry = np.arange(len(entries))
    states = simulate_agent(entries, local_poses, interval, row_entry)
    agent = score_states_v2(entries, states, row_entry)
    return joint_with_pdm_v2(entries, agent, row_entry), states
