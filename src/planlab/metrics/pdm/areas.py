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
    step_lo, step_hi = points.min(axis=2), points.max(axis=2)  # (R, S, 2)
    row_box = np.concatenate([step_lo.min(axis=1), step_hi.max(axis=1)], axis=1)
    rows, polys = scene_pairs(row_scene, batch.poly_start, batch.poly_count)
    keep = bbox_overlap(row_box[rows], batch.poly_bounds[polys])
    rows, polys = rows[keep], polys[keep]
    # (row, polygon, step) triples whose step box meets the polygon's bounds
    pb = batch.poly_bounds[polys][:, None, :]  # (P, 1, 4)
    lo, hi = step_lo[rows], step_hi[rows]  # (P, S, 2)
    meets = (
        (hi[..., 0] >= pb[..., 0])
        & (lo[..., 0] <= pb[..., 2])
        & (hi[..., 1] >= pb[..., 1])
        & (lo[..., 1] <= pb[..., 3])
    )
    qi, qs = np.nonzero(meets)
    q_row, q_poly = rows[qi], polys[qi]
    types = batch.poly_types[q_poly]
    is_lane = np.isin(types, [int(t) for t in LANE_TYPES])
    is_drivable = np.isin(types, [int(t) for t in DRIVABLE_AREA_TYPES])
    on_route = batch.poly_on_route[q_poly] & is_lane
    is_junction = types == int(PolygonType.INTERSECTION)
    # only the points a flag reads: corners in lanes and drivable areas, the centre in on-route lanes
    # and junctions, the rear axle in junctions
    needed = np.empty((len(qi), 6), dtype=bool)
    needed[:, :4] = (is_lane | is_drivable)[:, None]
    needed[:, 4] = on_route | is_junction
    needed[:, 5] = is_junction
    q_pts = points[q_row, qs]  # (Q, 6, 2)
    qb = batch.poly_bounds[q_poly][:, None, :]
    cand = (
        needed
        & (q_pts[..., 0] >= qb[..., 0])
        & (q_pts[..., 0] <= qb[..., 2])
        & (q_pts[..., 1] >= qb[..., 1])
        & (q_pts[..., 1] <= qb[..., 3])
    )
    inside = np.zeros(cand.shape, dtype=bool)  # (Q, 6)
    ci, ck = np.nonzero(cand)
    if len(ci):
        shapely.prepare(batch.polygons)  # no-op for prepared ones; results equal the unprepared test
        inside[ci, ck] = shapely.contains_xy(batch.polygons[q_poly[ci]], q_pts[ci, ck, 0], q_pts[ci, ck, 1])

    flat = q_row * s + qs  # flat (row, step) index of each triple
    size = r * s

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
