"""Score many candidate trajectories per scene with the evaluator's own simulator and scorer.

For training targets such as Hydra-MDP's per-vocabulary sub-scores: every candidate is resampled,
simulated (LQR + bicycle) and scored against the scene's metric-cache entry exactly like an agent
trajectory, in batches over (scene × candidate).

Progress normalisation (EP needs a reference, fact sheet §1.6):

* ``"pdm_closed"`` (default): each candidate is normalised together with the cached PDM-Closed
  trajectory only — the score a planner would get for submitting that candidate (NAVSIM's official
  two-proposal scoring, as GTRS generates its targets);
* ``"joint"``: all K candidates and PDM-Closed are normalised together (WoTE-style vocabulary scoring).

For ``epdms`` the two-frame extended comfort has no predecessor here, so it is NaN and left out
of the score (weight 14), and the v2 human filter is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from planlab.errors import ConfigError
from planlab.evaluation.epdms import _values, joint_with_pdm_v2, score_states_v2
from planlab.evaluation.scoring import joint_with_pdm_v11, score_states_v11, simulate_agent
from planlab.metrics.pdm.scorer import aggregate_v2, aggregate_v11, apply_human_filter, epdms

if TYPE_CHECKING:
    from planlab.evaluation.cache import MetricCacheEntry

NORMALIZATIONS = ("pdm_closed", "joint")
PDMS_KEYS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
    "score",
    "progress_raw",
)


def score_candidates(
    entries: Sequence[MetricCacheEntry],
    candidates: np.ndarray,
    interval: float = 0.5,
    metric: str = "pdms",
    normalization: str = "pdm_closed",
    chunk_rows: int = 4096,
) -> dict[str, np.ndarray]:
    """Sub-scores ``(B, K)`` of candidates for B scenes.

    ``candidates``: ``(B, K, N, 3)`` per-scene candidates, or ``(K, N, 3)`` one vocabulary for all
    scenes; poses (x, y, heading) in each scene's current rear-axle frame, ``interval`` seconds apart.
    Returns ``{name: (B, K) array}`` with every sub-score of the metric, ``ego_progress``, ``score`` and
    ``progress_raw`` (metres along the centerline, before normalisation).
    """
    if metric not in ("pdms", "epdms"):
        raise ConfigError(f"unknown metric {metric!r}; valid: pdms, epdms")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    cand = np.asarray(candidates, dtype=np.float64)
    b = len(entries)
    if cand.ndim == 3:
        cand = np.broadcast_to(cand, (b, *cand.shape))
    if cand.ndim != 4 or cand.shape[0] != b or cand.shape[-1] != 3:
        raise ConfigError(
            f"candidates must be (B, K, N, 3) or (K, N, 3) with B = {b}, got {np.shape(candidates)}"
        )
    if not np.all(np.isfinite(cand)):
        raise ConfigError("candidates contain NaN or infinite values")
    k = cand.shape[1]
    flat = cand.reshape(b * k, *cand.shape[2:])
    row_entry = np.repeat(np.arange(b), k)
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(flat), chunk_rows):
        rows = slice(start, start + chunk_rows)
        states = simulate_agent(entries, flat[rows], interval, row_entry[rows])
        if metric == "pdms":
            sub = score_states_v11(entries, states, row_entry[rows])
            part = joint_with_pdm_v11(entries, sub, row_entry[rows])
            if normalization == "joint":
                part = {"_sub": sub}  # type: ignore[dict-item]
        else:
            sub = score_states_v2(entries, states, row_entry[rows])
            part = joint_with_pdm_v2(entries, sub, row_entry[rows])
            if normalization == "joint":
                part = {"_sub": sub}  # type: ignore[dict-item]
        for name, values in part.items():
            out.setdefault(name, []).append(values)  # type: ignore[arg-type]
    if normalization == "joint":
        return _joint(entries, out["_sub"], b, k, metric)  # type: ignore[arg-type]
    result = {name: np.concatenate(v).reshape(b, k) for name, v in out.items()}
    if metric == "epdms":
        result["two_frame_extended_comfort"] = np.full((b, k), np.nan)
        result["score"] = epdms({n: v for n, v in result.items()})
    return result


def _stack_sub(subs: list, name: str) -> np.ndarray:
    return np.concatenate([getattr(s, name) if hasattr(s, name) else s.extra[name] for s in subs])


def _joint(
    entries: Sequence[MetricCacheEntry], subs: list, b: int, k: int, metric: str
) -> dict[str, np.ndarray]:
    """All K candidates + PDM-Closed normalised together per scene."""
    if metric == "pdms":
        pdm = [e.pdm_subscores_v11 for e in entries]
        names = (
            "no_at_fault_collisions",
            "drivable_area_compliance",
            "driving_direction_compliance",
            "time_to_collision_within_bound",
            "comfort",
            "progress_raw",
        )
        grid = {}
        for n in names:
            agent = _stack_sub(subs, n).reshape(b, k)
            grid[n] = np.concatenate([np.array([[p[n]] for p in pdm]), agent], axis=1)
        ep, score = aggregate_v11(
            grid["no_at_fault_collisions"],
            grid["drivable_area_compliance"],
            grid["driving_direction_compliance"],
            grid["time_to_collision_within_bound"],
            grid["comfort"],
            grid["progress_raw"],
        )
        out = {n: v[:, 1:] for n, v in grid.items()}
        out["ego_progress"] = ep[:, 1:]
        out["score"] = score[:, 1:]
        return out
    pdm2 = [e.pdm_subscores_v2 for e in entries]
    values = {n: np.concatenate([_values(s)[n] for s in subs]).reshape(b, k) for n in _values(subs[0])}
    progress = np.concatenate([s.progress_raw for s in subs]).reshape(b, k)
    grid = {n: np.concatenate([np.array([[p[n]] for p in pdm2]), v], axis=1) for n, v in values.items()}
    prog = np.concatenate([np.array([[p["progress_raw"]] for p in pdm2]), progress], axis=1)
    ep, _ = aggregate_v2(grid, prog)
    out = {n: v[:, 1:] for n, v in grid.items()}
    out["ego_progress"] = ep[:, 1:]
    human = {n: np.array([[e.human_subscores_v2[n]] for e in entries]) for n in out}
    out = apply_human_filter(out, human)
    out["progress_raw"] = progress
    out["two_frame_extended_comfort"] = np.full((b, k), np.nan)
    out["score"] = epdms(out)
    return out
