"""Scoring trajectories against metric-cache entries: resample, simulate, sub-scores, joint aggregation.

This is NAVSIM's ``pdm_score`` (fact sheet §1.1–1.7) for many scenes at once. The PDM-Closed reference
has already been simulated and scored against the ground truth when the cache was built (it does not
depend on the agent), so each agent trajectory costs one simulation; the two proposals are then
aggregated jointly exactly as NAVSIM's ``PDMScorer`` does (agent = proposal 1, PDM-Closed = 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from planlab.metrics.pdm.inputs import ScoringScene, concat_scenes
from planlab.metrics.pdm.scorer import SubScores, aggregate_v11, subscores_v11
from planlab.sim.resample import agent_reference_poses, resample_trajectory
from planlab.sim.simulator import simulate
from planlab.sim.world import DrivableMap, ObjectTracks

if TYPE_CHECKING:
    import shapely

    from planlab.evaluation.cache import MetricCacheEntry

V11_COLUMNS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
    "score",
)


def pdm_closed_score_fn_v11(
    states: np.ndarray,
    row_scene: np.ndarray,
    scenes: list[tuple[ObjectTracks, DrivableMap, shapely.LineString, list]],
) -> np.ndarray:
    """PDMS of PDM-Closed's proposals, each scene's proposals scored jointly against its own forecast.

    Red-light polygons (the 4th item) are IDM obstacles only; the v1.1 scorer skips them.
    """
    batch = concat_scenes([ScoringScene(f"pdm_closed_{i}", *scene[:3]) for i, scene in enumerate(scenes)])
    sub = subscores_v11(states, row_scene, batch)
    out = np.empty(len(states))
    for i in range(len(scenes)):
        rows = np.flatnonzero(row_scene == i)
        _, score = aggregate_v11(
            sub.no_at_fault_collisions[rows],
            sub.drivable_area_compliance[rows],
            sub.driving_direction_compliance[rows],
            sub.time_to_collision_within_bound[rows],
            sub.comfort[rows],
            sub.progress_raw[rows],
        )
        out[rows] = score
    return out


def simulate_reference(
    entries: Sequence[MetricCacheEntry], poses: np.ndarray | None = None, times_us: np.ndarray | None = None
) -> np.ndarray:
    """Simulated PDM-Closed states ``(B, 41, 11)`` of cache entries (their stored 51-pose trajectories)."""
    times = np.stack([e.pdm_times_us for e in entries]) if times_us is None else times_us
    poses = np.stack([e.pdm_poses for e in entries]) if poses is None else poses
    t0 = np.array([e.t0_us for e in entries], dtype=np.int64)
    refs = resample_trajectory(times, poses, t0)
    init = np.stack([e.initial_state for e in entries])
    return simulate(refs, init)


def simulate_agent(
    entries: Sequence[MetricCacheEntry],
    local_poses: np.ndarray,
    interval: float,
    row_entry: np.ndarray | None = None,
) -> np.ndarray:
    """Simulated states ``(R, 41, 11)`` of agent trajectories ``(R, N, 3)`` (rear-axle frame of row's scene)."""
    row_entry = np.arange(len(local_poses)) if row_entry is None else np.asarray(row_entry, dtype=np.int64)
    pose0 = np.stack([entries[i].ego_pose for i in row_entry])
    t0 = np.array([entries[i].t0_us for i in row_entry], dtype=np.int64)
    refs = agent_reference_poses(pose0, t0, local_poses, interval)
    init = np.stack([entries[i].initial_state for i in row_entry])
    return simulate(refs, init)


def score_states_v11(
    entries: Sequence[MetricCacheEntry], states: np.ndarray, row_entry: np.ndarray | None = None
) -> SubScores:
    """v1.1 sub-scores of simulated ``states (R, 41, 11)`` against the ground truth of their entries."""
    row_entry = np.arange(len(states)) if row_entry is None else np.asarray(row_entry, dtype=np.int64)
    used, row_scene = np.unique(row_entry, return_inverse=True)
    batch = concat_scenes([entries[i].scoring_scene("v1.1") for i in used])
    return subscores_v11(states, row_scene, batch)


def joint_with_pdm_v11(
    entries: Sequence[MetricCacheEntry], agent: SubScores, row_entry: np.ndarray
) -> dict[str, np.ndarray]:
    """NAVSIM's per-token result: agent (proposal 1) aggregated jointly with the cached PDM-Closed (proposal 0)."""
    pdm = [entries[i].pdm_subscores_v11 for i in row_entry]

    def pair(name: str, values: np.ndarray) -> np.ndarray:
        return np.stack([np.array([p[name] for p in pdm], dtype=np.float64), values], axis=1)

    nc = pair("no_at_fault_collisions", agent.no_at_fault_collisions)
    dac = pair("drivable_area_compliance", agent.drivable_area_compliance)
    ddc = pair("driving_direction_compliance", agent.driving_direction_compliance)
    ttc = pair("time_to_collision_within_bound", agent.time_to_collision_within_bound)
    comfort = pair("comfort", agent.comfort)
    progress = pair("progress_raw", agent.progress_raw)
    ep, score = aggregate_v11(nc, dac, ddc, ttc, comfort, progress)
    return {
        "no_at_fault_collisions": nc[:, 1],
        "drivable_area_compliance": dac[:, 1],
        "ego_progress": ep[:, 1],
        "time_to_collision_within_bound": ttc[:, 1],
        "comfort": comfort[:, 1],
        "driving_direction_compliance": ddc[:, 1],
        "score": score[:, 1],
        "progress_raw": progress[:, 1],
    }


def score_v11(
    entries: Sequence[MetricCacheEntry], local_poses: np.ndarray, interval: float = 0.5
) -> dict[str, np.ndarray]:
    """PDMS (v1.1) rows for one trajectory per entry: ``local_poses (B, N, 3)`` at ``interval`` seconds."""
    row_entry = np.arange(len(entries))
    states = simulate_agent(entries, local_poses, interval, row_entry)
    agent = score_states_v11(entries, states, row_entry)
    return joint_with_pdm_v11(entries, agent, row_entry)
