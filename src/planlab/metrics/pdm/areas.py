"""Where the ego box is at each step: several lanes, off the drivable area, in oncoming traffic, in a junction.

Fact sheet §1.5 (NAVSIM ``_calculate_ego_area`` and ``is_in_layer``). Point-in-polygon is shapely
``contains_xy`` (boundary points are outside, as NAVSIM's ``shapely.vectorized.contains``), run once
for the whole batch on the (point, polygon) pairs whose bounding boxes meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from planlab.metrics.pdm.inputs import (
    DRIVABLE_AREA_TYPES,
    LANE_TYPES,
    PolygonType,
    SceneBatch,
    bbox_overlap,
    scene_pairs,
)


@dataclass
class EgoAreas:
    """Per (row, step) flags; ``in_intersection`` is the rear-axle point strictly inside a junction."""

    multiple_lanes: np.ndarray
    non_drivable: np.ndarray
    oncoming: np.ndarray
    in_intersection: np.ndarray
    center_in_intersection: np.ndarray  # box centre strictly inside a junction (v2 DDC / LK exemption)


def ego_areas(
    coords: np.ndarray, rear_axle: np.ndarray, row_scene: np.ndarray, batch: SceneBatch
) -> EgoAreas:
    """Flags for ego boxes ``coords (R, S, 5, 2)`` (FL, RL, RR, FR, centre) and rear axles ``(R, S, 2)``."""
    r, s = coords.shape[:2]
    # points per (row, step): 4 corners, centre, rear axle
    points = np.concatenate([coords, rear_axle[:, :, None, :]], axis=2)  # (R, S, 6, 2)
    row_box = np.concatenate([points.min(axis=(1, 2)), points.max(axis=(1, 2))], axis=1)
    rows, polys = scene_pairs(row_scene, batch.poly_start, batch.poly_count)
    keep = bbox_overlap(row_box[rows], batch.poly_bounds[polys])
    rows, polys = rows[keep], polys[keep]
    inside = np.zeros((len(rows), s, 6), dtype=bool)
    if len(rows):
        pts = points[rows]  # (P, S, 6, 2)
        b = batch.poly_bounds[polys][:, None, None, :]
        cand = (
            (pts[..., 0] >= b[..., 0])
            & (pts[..., 0] <= b[..., 2])
            & (pts[..., 1] >= b[..., 1])
            & (pts[..., 1] <= b[..., 3])
        )
        pi, si, ki = np.nonzero(cand)
        if len(pi):
            geoms = batch.polygons[polys[pi]]
            inside[pi, si, ki] = shapely.contains_xy(geoms, pts[pi, si, ki, 0], pts[pi, si, ki, 1])

    types = batch.poly_types[polys]
    is_lane = np.isin(types, [int(t) for t in LANE_TYPES])
    is_drivable = np.isin(types, [int(t) for t in DRIVABLE_AREA_TYPES])
    on_route = batch.poly_on_route[polys] & is_lane
    is_junction = types == int(PolygonType.INTERSECTION)

    flat = rows[:, None] * s + np.arange(s)[None, :]  # (P, S) flat (row, step) index
    size = r * s
    corners_in = inside[..., :4]
    lane_any = corners_in.any(-1) & is_lane[:, None]
    lane_all = corners_in.all(-1) & is_lane[:, None]
    n_lanes = np.bincount(flat.ravel(), weights=lane_any.ravel(), minlength=size).reshape(r, s)
    has_all = np.bincount(flat.ravel(), weights=lane_all.ravel(), minlength=size).reshape(r, s) > 0
    multiple_lanes = (n_lanes > 1) & ~has_all

    covered = np.zeros((size, 4), dtype=bool)
    drv = corners_in & is_drivable[:, None, None]
    for k in range(4):
        covered[:, k] = np.bincount(flat.ravel(), weights=drv[..., k].ravel(), minlength=size) > 0
    non_drivable = covered.sum(-1).reshape(r, s) < 4

    center_on_route = inside[..., 4] & on_route[:, None]
    oncoming = np.bincount(flat.ravel(), weights=center_on_route.ravel(), minlength=size).reshape(r, s) == 0

    axle_in_junction = inside[..., 5] & is_junction[:, None]
    in_intersection = (
        np.bincount(flat.ravel(), weights=axle_in_junction.ravel(), minlength=size).reshape(r, s) > 0
    )
    center_in_junction = inside[..., 4] & is_junction[:, None]
    center_in_intersection = (
        np.bincount(flat.ravel(), weights=center_in_junction.ravel(), minlength=size).reshape(r, s) > 0
    )
    return EgoAreas(multiple_lanes, non_drivable, oncoming, in_intersection, center_in_intersection)
