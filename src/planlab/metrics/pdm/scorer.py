"""Per-proposal sub-scores and their aggregation into PDMS (v1.1) and EPDMS (v2), fact sheet §1.6–1.7.

:func:`subscores` evaluates every simulated row of a batch against its scene; the aggregation
functions then combine rows that are scored *jointly* (NAVSIM scores the agent together with the
PDM-Closed reference: ego progress is normalised by the best of them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planlab.metrics.pdm.areas import EgoAreas, ego_areas
from planlab.metrics.pdm.collisions import no_at_fault_collisions, time_to_collision
from planlab.metrics.pdm.comfort import comfort_v11
from planlab.metrics.pdm.inputs import SceneBatch
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
