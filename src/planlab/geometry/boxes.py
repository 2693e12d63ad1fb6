"""Oriented 2-D boxes, vectorised: corners, separating-axis overlap, point and segment tests.

A box is (cx, cy, heading, length, width) with length along the heading. Corners come in nuPlan's
``OrientedBox`` order FL, RL, RR, FR (front-left, rear-left, rear-right, front-right).
"""

from __future__ import annotations

import numpy as np

# Unit-box corner offsets in FL, RL, RR, FR order: (longitudinal, lateral) multiples of half length/width.
_CORNER_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def box_corners(cx, cy, heading, length, width) -> np.ndarray:
    """Corners ``(..., 4, 2)`` of boxes; inputs broadcast against each other."""
    cx, cy, heading, length, width = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (cx, cy, heading, length, width))
    )
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    lon = _CORNER_SIGNS[:, 0] * (0.5 * length)[..., None]
    lat = _CORNER_SIGNS[:, 1] * (0.5 * width)[..., None]
    x = cx[..., None] + c * lon - s * lat
    y = cy[..., None] + s * lon + c * lat
    return np.stack([x, y], axis=-1)


def _edge_axes(corners: np.ndarray) -> np.ndarray:
    """The two edge normals ``(..., 2, 2)`` of rectangles given by corners (..., 4, 2)."""
    e0 = corners[..., 1, :] - corners[..., 0, :]  # FL -> RL (along length)
    e1 = corners[..., 3, :] - corners[..., 0, :]  # FL -> FR (along width)
    axes = np.stack([np.stack([-e0[..., 1], e0[..., 0]], -1), np.stack([-e1[..., 1], e1[..., 0]], -1)], -2)
    return axes


def _separated_on(axes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True where some axis in ``axes (..., K, 2)`` separates point sets ``a (..., Na, 2)``, ``b``."""
    pa = np.einsum("...kd,...nd->...kn", axes, a)
    pb = np.einsum("...kd,...nd->...kn", axes, b)
    sep = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    return sep.any(-1)


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether rectangles ``a (..., 4, 2)`` and ``b (..., 4, 2)`` intersect (touching counts), broadcast.

    Separating-axis test on the four edge normals; equivalent to shapely ``intersects`` for rectangles.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    axes = np.concatenate([_edge_axes(a), _edge_axes(b)], axis=-2)
    return ~_separated_on(axes, a, b)


def segment_intersects_boxes(p0: np.ndarray, p1: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether segments ``p0->p1 (..., 2)`` intersect rectangles ``boxes (..., 4, 2)`` (touching counts)."""
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    seg = np.stack([p0, p1], axis=-2)
    seg, boxes = np.broadcast_arrays(seg[..., :, :], boxes[..., :2, :])[0], boxes
    seg = np.broadcast_to(np.stack([p0, p1], axis=-2), boxes.shape[:-2] + (2, 2))
    d = seg[..., 1, :] - seg[..., 0, :]
    seg_axis = np.stack([-d[..., 1], d[..., 0]], axis=-1)[..., None, :]
    axes = np.concatenate([seg_axis, _edge_axes(boxes)], axis=-2)
    return ~_separated_on(axes, seg, boxes)


def points_in_boxes(points: np.ndarray, boxes: np.ndarray, strict: bool = True) -> np.ndarray:
    """Whether ``points (..., 2)`` lie inside rectangles ``boxes (..., 4, 2)`` (broadcast).

    ``strict=True`` treats the boundary as outside, like shapely ``contains``.
    """
    pts = np.asarray(points, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64)
    origin = boxes[..., 0, :]
    u = boxes[..., 1, :] - origin
    v = boxes[..., 3, :] - origin
    w = pts - origin
    pu = np.sum(w * u, -1)
    pv = np.sum(w * v, -1)
    uu = np.sum(u * u, -1)
    vv = np.sum(v * v, -1)
    if strict:
        return (pu > 0) & (pu < uu) & (pv > 0) & (pv < vv)
    return (pu >= 0) & (pu <= uu) & (pv >= 0) & (pv <= vv)
