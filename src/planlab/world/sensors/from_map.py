"""Ground paint of a nuPlan-layout map: a :class:`StaticGeometry` read through ``planlab.maps``' ``MapAPI``.

Road surface = roadblocks ∪ roadblock connectors ∪ intersections ∪ generic drivable areas; car parks, walkways;
crosswalk areas become zebra stripes. Lane markings are derived from each lane's baseline and width (US
practice): the left edge of the leftmost lane of a lane group is solid yellow, edges between lanes of one group
are dashed white, the right edge of the rightmost lane is solid white. Stop lines are 0.4 m bars across the lane
end wherever a lane connector has stop lines (``traffic_light_stop_line_fids``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from planlab.maps.layers import SemanticMapLayer
from planlab.world.sensors.ground import GroundClass, LaneMarking, StaticGeometry

_SURFACES: tuple[tuple[GroundClass, SemanticMapLayer], ...] = (
    (GroundClass.ROAD, SemanticMapLayer.ROADBLOCK),
    (GroundClass.ROAD, SemanticMapLayer.ROADBLOCK_CONNECTOR),
    (GroundClass.ROAD, SemanticMapLayer.INTERSECTION),
    (GroundClass.ROAD, SemanticMapLayer.GENERIC_DRIVABLE_AREAS),
    (GroundClass.CARPARK, SemanticMapLayer.CARPARK_AREA),
    (GroundClass.WALKWAY, SemanticMapLayer.WALKWAYS),
    (GroundClass.CROSSWALK, SemanticMapLayer.CROSSWALK),
)


def _near(geoms: np.ndarray, center: np.ndarray | None, radius: float | None) -> np.ndarray:
    """Mask of geometries whose bounding box comes within ``radius`` of ``center`` (all when no centre)."""
    import shapely

    if center is None or radius is None or len(geoms) == 0:
        return np.ones(len(geoms), dtype=bool)
    b = shapely.bounds(geoms)
    cx, cy = float(center[0]), float(center[1])
    return (
        (b[:, 0] <= cx + radius)
        & (b[:, 2] >= cx - radius)
        & (b[:, 1] <= cy + radius)
        & (b[:, 3] >= cy - radius)
    )


def static_geometry_from_map(
    map_api: Any,
    center: np.ndarray | None = None,
    radius: float | None = None,
    marking_width: float = 0.15,
    buildings: list[tuple[object, float]] | None = None,
) -> StaticGeometry:
    """Everything painted on the ground of ``map_api`` (optionally only within ``radius`` of ``center``), plus
    ``buildings`` (``(footprint, height)`` pairs; maps have no building layer)."""
    layers: dict[GroundClass, list] = {}
    for klass, layer in _SURFACES:
        try:
            _, geoms = map_api.layer_polygons(layer)
        except Exception:  # noqa: BLE001 - a map without this (optional) layer just has no such paint
            continue
        geoms = np.asarray(geoms, dtype=object)
        layers.setdefault(klass, []).extend(geoms[_near(geoms, center, radius)].tolist())

    markings: list[LaneMarking] = []
    lane_ids, lane_polys = map_api.layer_polygons(SemanticMapLayer.LANE)
    lane_polys = np.asarray(lane_polys, dtype=object)
    keep = _near(lane_polys, center, radius)
    group_max: dict[str, int] = {}
    lanes = []
    for lane_id in np.asarray(lane_ids, dtype=object)[keep].tolist():
        lane = map_api.get_map_object(lane_id, SemanticMapLayer.LANE)
        if lane is None:
            continue
        lanes.append(lane)
    for lane in lanes:
        group = lane.get_roadblock_id()
        if group not in group_max:
            indices = [e.lane_index for e in lane.parent.interior_edges if e.lane_index is not None]
            group_max[group] = max(indices) if indices else 0
    for lane in lanes:
        line = lane.baseline_path.polyline
        if line.length <= 0:
            continue
        width = float(lane.polygon.area) / line.length
        idx = lane.lane_index if lane.lane_index is not None else 0
        left = line.offset(0.5 * width).points
        if idx == 0:
            markings.append(LaneMarking(left, marking_width, GroundClass.MARKING_YELLOW))
        else:
            markings.append(LaneMarking(left, marking_width, GroundClass.MARKING_WHITE, dashed=True))
        if idx == group_max[lane.get_roadblock_id()]:
            markings.append(
                LaneMarking(line.offset(-0.5 * width).points, marking_width, GroundClass.MARKING_WHITE)
            )

    # Stop lines: one bar per lane end whose outgoing connectors carry stop lines.
    seen: set[tuple[int, int]] = set()
    for lane in lanes:
        if not any(c.stop_line_fids for c in lane.outgoing_edges):
            continue
        line = lane.baseline_path.polyline
        x, y, h = line.interpolate(np.array([max(line.length - 0.4, 0.0)]))[0]
        key = (int(round(x * 2)), int(round(y * 2)))
        if key in seen:
            continue
        seen.add(key)
        half = 0.5 * float(lane.polygon.area) / max(line.length, 1e-6)
        nx, ny = -math.sin(h), math.cos(h)
        bar = np.array([[x + half * nx, y + half * ny], [x - half * nx, y - half * ny]])
        markings.append(LaneMarking(bar, 0.4, GroundClass.STOP_LINE))
    return StaticGeometry.from_layers(layers, markings, buildings=buildings or [])
