"""No at-fault collision (NC) and time to collision within bound (TTC), fact sheet §1.6.

NAVSIM walks time steps and keeps, per proposal, a list of objects it already forgave (a non-at-fault
contact puts the object on it for the rest of the horizon). Because a forgiven object is skipped ever
after and an at-fault one has already cost its penalty, only each (proposal, object) pair's *first*
contact matters. That is what is computed here, for all pairs of a batch at once: a bounding-circle
filter, the exact separating-axis box test on the survivors (touching counts, like shapely
``intersects``), then the first event per pair.
"""

from __future__ import annotations

import numpy as np

from planlab.geometry.boxes import boxes_overlap, segment_intersects_boxes
from planlab.metrics.pdm.areas import EgoAreas
from planlab.metrics.pdm.inputs import SceneBatch, bbox_overlap, scene_pairs
from planlab.scene.enums import StateIndex

EGO_STOPPED_SPEED = 5e-2  # m/s, collision typing (NAVSIM get_collision_type)
TTC_STOPPED_SPEED = 5e-3  # m/s, ego below this ignores everything in TTC (scorer stopped_speed_threshold)
TTC_OFFSETS = (0, 3, 6, 9)  # steps: 0, 0.3, 0.6, 0.9 s (np.arange(0, 10, 3))
AHEAD_DEG = 30.0
BEHIND_DEG = 150.0


def relative_angle(ego_pose: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Angle [rad] between the ego heading and the vector rear axle -> ``point`` (nuPlan's helper).

    NaN when the point coincides with the rear axle (then neither ahead nor behind, like nuPlan).
    """
    vx = point[..., 0] - ego_pose[..., 0]
    vy = point[..., 1] - ego_pose[..., 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.sqrt(vx * vx + vy * vy)
        dot = np.cos(ego_pose[..., 2]) * (vx / n) + np.sin(ego_pose[..., 2]) * (vy / n)
        return np.arccos(dot)


def _radius(corners: np.ndarray, centers: np.ndarray) -> np.ndarray:
    return np.sqrt(((corners - centers[..., None, :]) ** 2).sum(-1)).max(-1)


def _object_radius(batch: SceneBatch, steps: int | None = None) -> np.ndarray:
    """Bounding-circle radius of every object box ``(T, N)`` (first ``steps`` observation steps)."""
    corners = batch.obj_corners if steps is None else batch.obj_corners[:steps]
    centers = batch.obj_centers if steps is None else batch.obj_centers[:steps]
    return _radius(corners, centers)


def _candidate_pairs(
    coords: np.ndarray, row_scene: np.ndarray, batch: SceneBatch, margin: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(row, object) pairs of the same scene whose swept bounding boxes meet (``margin`` grows the ego's)."""
    rows, objs = scene_pairs(row_scene, batch.obj_start, batch.obj_count)
    keep = ~batch.obj_ignore[objs]
    rows, objs = rows[keep], objs[keep]
    corners = coords[:, :, :4]
    margin = np.broadcast_to(np.asarray(margin, dtype=np.float64), (len(coords),))
    ego_box = np.stack(
        [
            corners[..., 0].min(axis=(1, 2)) - margin,
            corners[..., 1].min(axis=(1, 2)) - margin,
            corners[..., 0].max(axis=(1, 2)) + margin,
            corners[..., 1].max(axis=(1, 2)) + margin,
        ],
        axis=1,
    )
    keep = bbox_overlap(ego_box[rows], batch.obj_bounds[objs])
    return rows[keep], objs[keep]


def _first_per_pair(pair_idx: np.ndarray) -> np.ndarray:
    """Index of the first event of every pair in a pair-sorted event list."""
    if len(pair_idx) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], pair_idx[1:] != pair_idx[:-1]]))


def no_at_fault_collisions(
    coords: np.ndarray, states: np.ndarray, areas: EgoAreas, row_scene: np.ndarray, batch: SceneBatch
) -> np.ndarray:
    """NC per row: 1, or 0 / 0.5 for an at-fault contact with an agent / a static object."""
    r, s = coords.shape[:2]
    nc = np.ones(r)
    rows, objs = _candidate_pairs(coords, row_scene, batch)
    if len(rows) == 0:
        return nc
    # bounding-circle filter on (pair, step); box corners are gathered only for its survivors
    ego_c = coords[rows, :, 4]  # (P, S, 2)
    obj_c = batch.obj_centers[:s, objs].transpose(1, 0, 2)  # (P, S, 2)
    present = batch.obj_present[:s, objs].T
    reach = _radius(coords[:, :, :4], coords[:, :, 4])[rows] + _object_radius(batch, s)[:, objs].T + 1e-6
    d = ego_c - obj_c
    pi, ti = np.nonzero(present & (np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1]) <= reach))
    if len(pi) == 0:
        return nc
    ego_k = coords[rows[pi], ti, :4]
    obj_k = batch.obj_corners[ti, objs[pi]]
    hit = boxes_overlap(ego_k, obj_k)
    pi, ti, ego_k, obj_k = pi[hit], ti[hit], ego_k[hit], obj_k[hit]
    if len(pi) == 0:
        return nc
    er = rows[pi]
    speed = np.hypot(states[er, ti, StateIndex.VELOCITY_X], states[er, ti, StateIndex.VELOCITY_Y])
    ego_stopped = speed <= EGO_STOPPED_SPEED
    track_stopped = batch.obj_stopped[objs[pi]]
    angle = relative_angle(states[er, ti, :3], batch.obj_centers[ti, objs[pi]])
    behind = angle > np.deg2rad(BEHIND_DEG)
    front = segment_intersects_boxes(ego_k[:, 0], ego_k[:, 3], obj_k)
    lateral_at_fault = areas.multiple_lanes[er, ti] | areas.non_drivable[er, ti]
    # nuPlan collision typing, in its order: stopped ego, stopped track, rear, front, lateral
    at_fault = ~ego_stopped & (track_stopped | (~behind & (front | lateral_at_fault)))
    first = _first_per_pair(pi)
    fault_first = first[at_fault[first]]
    penalty = np.where(batch.obj_is_agent[objs[pi[fault_first]]], 0.0, 0.5)
    np.minimum.at(nc, rows[pi[fault_first]], penalty)
    return nc


def time_to_collision(
    coords: np.ndarray,
    states: np.ndarray,
    areas: EgoAreas,
    row_scene: np.ndarray,
    batch: SceneBatch,
    max_time_index: int,
    interval: float = 0.1,
) -> np.ndarray:
    """TTC per row (1 or 0), projecting the ego box 0/0.3/0.6/0.9 s ahead at steps 0..``max_time_index``."""
    r, s = coords.shape[:2]
    ttc = np.ones(r)
    speed = np.hypot(states[..., StateIndex.VELOCITY_X], states[..., StateIndex.VELOCITY_Y])  # (R, S)
    max_shift = speed.max(axis=1) * (max(TTC_OFFSETS) * interval) + 1e-6
    rows, objs = _candidate_pairs(coords, row_scene, batch, max_shift)
    if len(rows) == 0:
        return ttc
    n_obs = batch.num_steps
    steps = np.arange(min(max_time_index, s - 1) + 1)
    offsets = np.asarray(TTC_OFFSETS)
    obs_t = steps[:, None] + offsets[None, :]  # (S', K)
    valid_t = obs_t < n_obs
    obs_t_c = np.minimum(obs_t, n_obs - 1)

    heading = states[..., StateIndex.HEADING]
    dxy = np.stack([np.cos(heading) * speed, np.sin(heading) * speed], axis=-1)  # (R, S, 2)
    delta = offsets.astype(np.float64) * interval  # float(k) * 0.1 like NAVSIM

    ego_c = coords[rows][:, steps, 4]  # (P, S', 2)
    ego_shift = dxy[rows][:, steps, None, :] * delta[None, None, :, None]  # (P, S', K, 2)
    at_t, at_obj = obs_t_c[None, :, :], objs[:, None, None]  # gather (P, S', K) from the (T, N) arrays
    obj_c = batch.obj_centers[at_t, at_obj]  # (P, S', K, 2)
    present = batch.obj_present[at_t, at_obj] & valid_t[None]
    moving = speed[rows][:, steps] >= TTC_STOPPED_SPEED  # (P, S')
    ego_r = _radius(coords[:, :, :4], coords[:, :, 4])[rows][:, steps]
    reach = ego_r[:, :, None] + _object_radius(batch)[at_t, at_obj] + 1e-6
    d = ego_c[:, :, None, :] + ego_shift - obj_c
    dist = np.sqrt(d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1])
    pi, si, ki = np.nonzero(present & moving[:, :, None] & (dist <= reach))
    if len(pi) == 0:
        return ttc
    shifted = coords[rows[pi], steps[si], :4] + ego_shift[pi, si, ki][:, None, :]
    hit = boxes_overlap(shifted, batch.obj_corners[obs_t_c[si, ki], objs[pi]])
    pi, si, ki = pi[hit], si[hit], ki[hit]
    if len(pi) == 0:
        return ttc
    er = rows[pi]
    t = steps[si]
    angle = relative_angle(states[er, t, :3], batch.obj_centers[obs_t_c[si, ki], objs[pi]])
    ahead = angle < np.deg2rad(AHEAD_DEG)
    behind = angle > np.deg2rad(BEHIND_DEG)
    risky_area = areas.multiple_lanes[er, t] | areas.non_drivable[er, t] | areas.in_intersection[er, t]
    violation = ahead | (risky_area & ~behind)
    first = _first_per_pair(pi)
    bad = first[violation[first]]
    ttc[rows[pi[bad]]] = 0.0
    return ttc
