"""The batch a scorer runs over: many scenes' objects and polygons flattened with a scene index.

One :class:`ScoringScene` holds, for one token: the tracked objects over the observation steps (GT
boxes interpolated to 10 Hz, or PDM-Closed's constant-velocity forecast), the red-light polygons per
step (v2), the drivable-map polygons with their NAVSIM types, and the route centerline.
:func:`concat_scenes` stacks many scenes so the metrics run once over a whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely

from planlab.sim.world import (
    DRIVABLE_AREA_TYPES,
    LANE_TYPES,
    TRACK_STOPPED_SPEED,
    DrivableMap,
    ObjectTracks,
    PolygonType,
)

__all__ = [
    "DRIVABLE_AREA_TYPES",
    "LANE_TYPES",
    "TRACK_STOPPED_SPEED",
    "DrivableMap",
    "ObjectTracks",
    "PolygonType",
    "SceneBatch",
    "ScoringScene",
    "bbox_overlap",
    "concat_scenes",
    "scene_pairs",
]


@dataclass
class ScoringScene:
    """Everything agent-independent the scorer needs for one token."""

    token: str
    objects: ObjectTracks
    drivable: DrivableMap
    centerline: shapely.LineString
    # v2: per observation step, the red on-route lane-connector polygons (empty list: none at all)
    red_lights: list[np.ndarray] = field(default_factory=list)


@dataclass
class SceneBatch:
    """Many :class:`ScoringScene` stacked: objects and polygons flattened with a scene index."""

    scenes: list[ScoringScene]
    obj_scene: np.ndarray
    obj_corners: np.ndarray  # (T, N, 4, 2)
    obj_centers: np.ndarray  # (T, N, 2)
    obj_present: np.ndarray  # (T, N)
    obj_is_agent: np.ndarray
    obj_stopped: np.ndarray
    obj_ignore: np.ndarray
    obj_bounds: np.ndarray  # (N, 4) bounding box of every object over all present steps
    obj_start: np.ndarray  # (B,) first object index of each scene
    obj_count: np.ndarray
    poly_scene: np.ndarray
    poly_types: np.ndarray
    poly_on_route: np.ndarray
    polygons: np.ndarray
    poly_bounds: np.ndarray
    poly_start: np.ndarray
    poly_count: np.ndarray
    centerlines: np.ndarray  # (B,) object array of LineStrings
    red_polygons: np.ndarray  # (M,) object array: every red-light polygon of every step of every scene
    red_scene: np.ndarray  # (M,)
    red_step: np.ndarray  # (M,)
    red_start: np.ndarray  # (B,)
    red_count: np.ndarray  # (B,)

    @property
    def num_steps(self) -> int:
        return self.obj_present.shape[0]

    def __len__(self) -> int:
        return len(self.scenes)


def concat_scenes(scenes: list[ScoringScene]) -> SceneBatch:
    """Stack scenes; all must share the number of observation steps."""
    if not scenes:
        raise ValueError("concat_scenes needs at least one scene")
    steps = {s.objects.num_steps for s in scenes}
    if len(steps) != 1:
        raise ValueError(f"scenes have different observation lengths: {sorted(steps)}")
    t = steps.pop()
    obj_count = np.array([len(s.objects) for s in scenes], dtype=np.int64)
    poly_count = np.array([len(s.drivable) for s in scenes], dtype=np.int64)
    obj_start = np.concatenate([[0], np.cumsum(obj_count)[:-1]]).astype(np.int64)
    poly_start = np.concatenate([[0], np.cumsum(poly_count)[:-1]]).astype(np.int64)
    centerlines = np.empty(len(scenes), dtype=object)
    centerlines[:] = [s.centerline for s in scenes]
    obj_corners = np.concatenate([s.objects.corners for s in scenes], axis=1).reshape(t, -1, 4, 2)
    obj_present = np.concatenate([s.objects.present for s in scenes], axis=1).reshape(t, -1)
    polygons = np.empty(int(poly_count.sum()), dtype=object)
    if len(polygons):
        polygons[:] = [p for s in scenes for p in s.drivable.polygons]
    red_polys: list = []
    red_scene: list[int] = []
    red_step: list[int] = []
    red_count = np.zeros(len(scenes), dtype=np.int64)
    for i, sc in enumerate(scenes):
        for step, polys in enumerate(sc.red_lights):
            for p in polys:
                red_polys.append(p)
                red_scene.append(i)
                red_step.append(step)
                red_count[i] += 1
    red_arr = np.empty(len(red_polys), dtype=object)
    red_arr[:] = red_polys
    return SceneBatch(
        scenes=scenes,
        obj_scene=np.repeat(np.arange(len(scenes)), obj_count),
        obj_corners=obj_corners,
        obj_centers=np.concatenate([s.objects.centers for s in scenes], axis=1).reshape(t, -1, 2),
        obj_present=obj_present,
        obj_is_agent=np.concatenate([s.objects.is_agent for s in scenes]),
        obj_stopped=np.concatenate([s.objects.stopped for s in scenes]),
        obj_ignore=np.concatenate([s.objects.ignore for s in scenes]),
        obj_bounds=_object_bounds(obj_corners, obj_present),
        obj_start=obj_start,
        obj_count=obj_count,
        poly_scene=np.repeat(np.arange(len(scenes)), poly_count),
        poly_types=np.concatenate([s.drivable.types for s in scenes]).astype(np.int8),
        poly_on_route=np.concatenate([s.drivable.on_route for s in scenes]).astype(bool),
        polygons=polygons,
        poly_bounds=np.concatenate([s.drivable.bounds for s in scenes], axis=0).reshape(-1, 4),
        poly_start=poly_start,
        poly_count=poly_count,
        centerlines=centerlines,
        red_polygons=red_arr,
        red_scene=np.asarray(red_scene, dtype=np.int64),
        red_step=np.asarray(red_step, dtype=np.int64),
        red_start=np.concatenate([[0], np.cumsum(red_count)[:-1]]).astype(np.int64),
        red_count=red_count,
    )


def _object_bounds(corners: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(N, 4) min-x, min-y, max-x, max-y over present steps (an empty box when never present)."""
    n = corners.shape[1]
    if n == 0:
        return np.zeros((0, 4))
    mask = present[..., None]
    xs = corners[..., 0]
    ys = corners[..., 1]
    inf = np.inf
    return np.stack(
        [
            np.where(mask, xs, inf).min(axis=(0, 2)),
            np.where(mask, ys, inf).min(axis=(0, 2)),
            np.where(mask, xs, -inf).max(axis=(0, 2)),
            np.where(mask, ys, -inf).max(axis=(0, 2)),
        ],
        axis=1,
    )


def bbox_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise overlap (touching counts) of boxes ``(..., 4)`` = (min x, min y, max x, max y)."""
    return (
        (a[..., 0] <= b[..., 2])
        & (b[..., 0] <= a[..., 2])
        & (a[..., 1] <= b[..., 3])
        & (b[..., 1] <= a[..., 3])
    )


def scene_pairs(
    row_scene: np.ndarray, item_start: np.ndarray, item_count: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """All (row, item) index pairs whose item belongs to the row's scene, row-major."""
    counts = item_count[row_scene]
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(row_scene)), counts)
    if total == 0:
        return rows, np.zeros(0, dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    within = np.arange(total) - np.repeat(first, counts)
    items = item_start[row_scene][rows] + within
    return rows, items
