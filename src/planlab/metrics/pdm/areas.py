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
    size = r * s
    # x and y of the points per flat (row, step): 4 corners, centre, rear axle
    px = np.empty((size, 6))
    py = np.empty((size, 6))
    px[:, :5] = coords[..., 0].reshape(size, 5)
    py[:, :5] = coords[..., 1].reshape(size, 5)
    px[:, 5] = rear_axle[..., 0].reshape(size)
    py[:, 5] = rear_axle[..., 1].reshape(size)
    lo_x, hi_x, lo_y, hi_y = px[:, 0].copy(), px[:, 0].copy(), py[:, 0].copy(), py[:, 0].copy()
    for k in range(1, 6):
        np.minimum(lo_x, px[:, k], out=lo_x)
        np.maximum(hi_x, px[:, k], out=hi_x)
        np.minimum(lo_y, py[:, k], out=lo_y)
        np.maximum(hi_y, py[:, k], out=hi_y)
    lo_x, hi_x, lo_y, hi_y = (a.reshape(r, s) for a in (lo_x, hi_x, lo_y, hi_y))
    row_box = np.stack([lo_x.min(axis=1), lo_y.min(axis=1), hi_x.max(axis=1), hi_y.max(axis=1)], axis=1)
    rows, polys = scene_pairs(row_scene, batch.poly_start, batch.poly_count)
    keep = bbox_overlap(row_box[rows], batch.poly_bounds[polys])
    rows, polys = rows[keep], polys[keep]
    # (row, polygon, step) triples whose step box meets the polygon's bounds
    pb = batch.poly_bounds[polys][:, None, :]  # (P, 1, 4)
    meets = (
        (hi_x[rows] >= pb[..., 0])
        & (lo_x[rows] <= pb[..., 2])
        & (hi_y[rows] >= pb[..., 1])
        & (lo_y[rows] <= pb[..., 3])
    )
    qi, qs = np.nonzero(meets)
    q_row, q_poly = rows[qi], polys[qi]
    flat = q_row * s + qs  # flat (row, step) index of each triple
    types = batch.poly_types[q_poly]
    is_lane = np.isin(types, [int(t) for t in LANE_TYPES])
    is_drivable = np.isin(types, [int(t) for t in DRIVABLE_AREA_TYPES])
    on_route = batch.poly_on_route[q_poly] & is_lane
    is_junction = types == int(PolygonType.INTERSECTION)
    # only the points a flag reads: corners in lanes and drivable areas, the centre in on-route lanes
    # and junctions, the rear axle in junctions
    cand = np.empty((len(qi), 6), dtype=bool)
    cand[:, :4] = (is_lane | is_drivable)[:, None]
    cand[:, 4] = on_route | is_junction
    cand[:, 5] = is_junction
    qx, qy = px[flat], py[flat]  # (Q, 6)
    qb = batch.poly_bounds[q_poly]
    cand &= qx >= qb[:, 0:1]
    cand &= qx <= qb[:, 2:3]
    cand &= qy >= qb[:, 1:2]
    cand &= qy <= qb[:, 3:4]
    inside = np.zeros(cand.shape, dtype=bool)  # (Q, 6)
    idx = np.flatnonzero(cand)
    if len(idx):
        shapely.prepare(batch.polygons)  # no-op for prepared ones; results equal the unprepared test
        inside.reshape(-1)[idx] = shapely.contains_xy(
            batch.polygons[q_poly[idx // 6]], qx.reshape(-1)[idx], qy.reshape(-1)[idx]
        )

    def count(weights: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=weights, minlength=size).reshape(r, s)

    corners_in = inside[:, :4]
    n_lanes = count(corners_in.any(-1) & is_lane)
    has_all = count(corners_in.all(-1) & is_lane) > 0
    multiple_lanes = (n_lanes > 1) & ~has_all

    drv = corners_in & is_drivable[:, None]
    covered = np.stack([count(drv[:, k]) > 0 for k in range(4)], axis=-1)
    non_drivable = covered.sum(-1) < 4

    oncoming = count(inside[:, 4] & on_route) == 0
    in_intersection = count(inside[:, 5] & is_junction) > 0
    center_in_intersection = count(inside[:, 4] & is_junction) > 0
    return EgoAreas(multiple_lanes, non_drivable, oncoming, in_intersection, center_in_intersection)
