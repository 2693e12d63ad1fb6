"""What a simulated ego is judged against, as arrays: tracked-object boxes over time, drivable-map polygons.

Shared by the PDM-Closed planner (its constant-velocity forecast) and the scorer (the ground-truth
observation of the metric cache). No per-object Python objects: boxes are corner arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import shapely

from planlab.sim.vehicle import box_coords

# nuPlan's at-fault "stopped track" threshold (is_track_stopped, 5e-2 m/s in devkit v1.2)
TRACK_STOPPED_SPEED = 5e-2


class PolygonType(IntEnum):
    """Map-object classes of NAVSIM's PDMDrivableMap (fact sheet §1.5)."""

    ROADBLOCK = 0
    LANE = 1
    LANE_CONNECTOR = 2
    INTERSECTION = 3
    CARPARK_AREA = 4


DRIVABLE_AREA_TYPES = (PolygonType.ROADBLOCK, PolygonType.INTERSECTION, PolygonType.CARPARK_AREA)
LANE_TYPES = (PolygonType.LANE, PolygonType.LANE_CONNECTOR)


@dataclass
class ObjectTracks:
    """Oriented boxes of tracked objects at observation steps 0..T-1 (10 Hz), global frame.

    ``corners (T, N, 4, 2)`` in FL, RL, RR, FR order and ``centers (T, N, 2)`` are meaningful where
    ``present (T, N)``. Per object: its first appearance decides typing (fact sheet §1.2):
    ``is_agent`` (vehicle/pedestrian/bicycle → at-fault penalty 0, else 0.5) and ``speed`` (|v|, 0 for
    static objects); ``ignore`` marks objects already overlapping the ego at t0 (PDM-Closed's
    collided tracks), which NC and TTC skip.
    """

    tokens: list[str]
    corners: np.ndarray
    centers: np.ndarray
    present: np.ndarray
    is_agent: np.ndarray
    speed: np.ndarray
    ignore: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.tokens)
        t = self.present.shape[0] if self.present.ndim == 2 else 0
        self.corners = np.asarray(self.corners, dtype=np.float64).reshape(t, n, 4, 2)
        self.centers = np.asarray(self.centers, dtype=np.float64).reshape(t, n, 2)
        self.present = np.asarray(self.present, dtype=bool).reshape(t, n)
        self.is_agent = np.asarray(self.is_agent, dtype=bool).reshape(n)
        self.speed = np.asarray(self.speed, dtype=np.float64).reshape(n)
        self.ignore = np.asarray(self.ignore, dtype=bool).reshape(n)

    @property
    def num_steps(self) -> int:
        return self.present.shape[0]

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def stopped(self) -> np.ndarray:
        """nuPlan ``is_track_stopped``: static objects, or agents with |v| <= 0.05 m/s."""
        return ~self.is_agent | (self.speed <= TRACK_STOPPED_SPEED)

    @classmethod
    def from_boxes(
        cls,
        tokens: list[str],
        x: np.ndarray,
        y: np.ndarray,
        heading: np.ndarray,
        length: np.ndarray,
        width: np.ndarray,
        present: np.ndarray,
        is_agent: np.ndarray,
        speed: np.ndarray,
        ignore: np.ndarray | None = None,
    ) -> ObjectTracks:
        """Tracks from box centres/headings ``(T, N)`` and per-object sizes ``(N,)``."""
        present = np.asarray(present, dtype=bool)
        xs = np.where(present, x, 0.0)
        ys = np.where(present, y, 0.0)
        hs = np.where(present, heading, 0.0)
        coords = box_coords(xs, ys, hs, np.asarray(length)[None, :], np.asarray(width)[None, :])
        n = len(tokens)
        return cls(
            tokens=list(tokens),
            corners=coords[..., :4, :],
            centers=coords[..., 4, :],
            present=present,
            is_agent=is_agent,
            speed=speed,
            ignore=np.zeros(n, dtype=bool) if ignore is None else ignore,
        )

    @classmethod
    def empty(cls, num_steps: int) -> ObjectTracks:
        z = np.zeros((num_steps, 0))
        return cls([], z.reshape(num_steps, 0, 4, 2), z.reshape(num_steps, 0, 2), z.astype(bool), [], [], [])


@dataclass
class DrivableMap:
    """NAVSIM's drivable-map polygons around the ego (fact sheet §1.5) with type and on-route flag."""

    tokens: list[str]
    types: np.ndarray
    on_route: np.ndarray
    polygons: np.ndarray  # object array of shapely Polygons
    bounds: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.types = np.asarray(self.types, dtype=np.int8).reshape(-1)
        self.on_route = np.asarray(self.on_route, dtype=bool).reshape(-1)
        polys = np.empty(len(self.tokens), dtype=object)
        polys[:] = list(self.polygons)
        self.polygons = polys
        if not (len(self.tokens) == len(self.types) == len(self.on_route) == len(self.polygons)):
            raise ValueError("drivable map: tokens, types, on_route and polygons differ in length")
        shapely.prepare(self.polygons)
        self.bounds = shapely.bounds(self.polygons).reshape(-1, 4) if len(self.polygons) else np.zeros((0, 4))

    def __len__(self) -> int:
        return len(self.tokens)
