"""A small, fully conformant hand-built map for tests and examples: an eastbound road with one junction.

Layout (metres, relative to ``origin``; x east, y north):

- lane group 1001 (west arm, x −100…−10) and 1002 (east arm, x 10…100), eastbound, two lanes each
  (lane_index 0 = left/inner, y −3.5…0; lane_index 1 = right/outer, y −7…−3.5);
- lane group 1003: a southbound side road (x −5.25…−1.75, y −120…−20), one lane;
- junction 5001 (x −10…10, y −20…0) with roadblock connector 3001 (straight, connectors 4001/4002)
  and 3002 (right turn, connector 4003: 0.5 m straight, a radius 6 m arc, then straight into the side road);
- traffic-light stop polygons 6001/6002 on the west arm, a crosswalk, a sidewalk, a car park,
  a bus bay (generic drivable area) and road segments.

Lane 2005 (side road) has no speed limit (NULL), as the calibration map's side road does.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

from planlab.maps.records import (
    BaselinePathRecord,
    BoundaryRecord,
    CarparkAreaRecord,
    CrosswalkRecord,
    GenericDrivableAreaRecord,
    IntersectionRecord,
    LaneConnectorPolygonRecord,
    LaneConnectorRecord,
    LaneGroupConnectorRecord,
    LaneGroupRecord,
    LaneRecord,
    MapData,
    RoadSegmentRecord,
    StopPolygonRecord,
    WalkwayRecord,
)

LANE_WIDTH = 3.5


def _line(points: np.ndarray, spacing: float = 1.0) -> np.ndarray:
    """Densify a polyline so consecutive vertices are at most ``spacing`` apart (contract P10)."""
    pts = np.asarray(points, dtype=np.float64)
    out = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        n = max(int(np.ceil(np.hypot(*(b - a)) / spacing)), 1)
        t = np.linspace(0.0, 1.0, n + 1)[1:, None]
        out.extend(a + t * (b - a))
    return np.array(out)


def small_junction(origin: tuple[float, float] = (587000.0, 4474000.0)) -> MapData:
    """The map described in the module docstring, shifted by ``origin`` (default: inside UTM 17N)."""
    ox, oy = origin

    def box(x0: float, y0: float, x1: float, y1: float) -> Polygon:
        return shapely.box(ox + x0, oy + y0, ox + x1, oy + y1)

    def line(points: list[tuple[float, float]] | np.ndarray) -> LineString:
        return LineString(_line(np.asarray(points, dtype=np.float64) + (ox, oy)))

    data = MapData(meta={"version": "planlab-example-1", "description": "planlab small_junction example map"})
    # Lane groups and their lanes (eastbound arms: two lanes; side road: one).
    data.lane_groups += [
        LaneGroupRecord(
            fid=1001, geometry=box(-100, -7, -10, 0), left_boundary_fid=7001, right_boundary_fid=7002
        ),
        LaneGroupRecord(
            fid=1002, geometry=box(10, -7, 100, 0), left_boundary_fid=7003, right_boundary_fid=7004
        ),
        LaneGroupRecord(
            fid=1003, geometry=box(-5.25, -120, -1.75, -20), left_boundary_fid=7005, right_boundary_fid=7006
        ),
    ]
    lanes = [  # fid, group, index, x0, x1, y_low, y_high, speed
        (2001, 1001, 0, -100, -10, -3.5, 0.0, 13.9),
        (2002, 1001, 1, -100, -10, -7.0, -3.5, 13.9),
        (2003, 1002, 0, 10, 100, -3.5, 0.0, 13.9),
        (2004, 1002, 1, 10, 100, -7.0, -3.5, 13.9),
    ]
    for fid, group, index, x0, x1, ylo, yhi, speed in lanes:
        data.lanes.append(
            LaneRecord(
                fid=fid, geometry=box(x0, ylo, x1, yhi), lane_group_fid=group, lane_index=index,
                speed_limit_mps=speed, width=LANE_WIDTH,
            )
        )  # fmt: skip
        yc = 0.5 * (ylo + yhi)
        data.baseline_paths.append(
            BaselinePathRecord(fid=fid + 2500, geometry=line([(x0, yc), (x1, yc)]), lane_fid=fid)
        )
    data.lanes.append(
        LaneRecord(
            fid=2005,
            geometry=box(-5.25, -120, -1.75, -20),
            lane_group_fid=1003,
            lane_index=0,
            width=LANE_WIDTH,
        )
    )
    data.baseline_paths.append(
        BaselinePathRecord(fid=4505, geometry=line([(-3.5, -20.0), (-3.5, -120.0)]), lane_fid=2005)
    )

    # Junction, roadblock connectors, lane connectors (+ their polygons and baselines).
    data.intersections.append(IntersectionRecord(fid=5001, geometry=box(-10, -20, 10, 0)))
    # Straight 0.5 m first, so the flat cap of the buffered polygon lies exactly on the junction edge x = -10.
    turn = np.array(
        [(-9.5 + 6.0 * np.sin(a), -11.25 + 6.0 * np.cos(a)) for a in np.linspace(0.0, np.pi / 2, 13)]
    )
    turn_path = np.vstack([[(-10.0, -5.25)], turn, [(-3.5, -20.0)]])
    connectors = [  # fid, exit, entry, parent, centre line, speed, stop polygon
        (4001, 2001, 2003, 3001, np.array([(-10.0, -1.75), (10.0, -1.75)]), 13.9, "6001"),
        (4002, 2002, 2004, 3001, np.array([(-10.0, -5.25), (10.0, -5.25)]), 13.9, "6002"),
        (4003, 2002, 2005, 3002, turn_path, 6.0, "6002"),
    ]
    turn_polygon = None
    for fid, exit_lane, entry_lane, parent, centre, speed, stops in connectors:
        centre_line = line(centre)
        polygon = shapely.buffer(
            centre_line, LANE_WIDTH / 2, cap_style="flat", join_style="round", quad_segs=16
        )
        if fid == 4003:
            turn_polygon = polygon
        data.lane_connectors.append(
            LaneConnectorRecord(
                fid=fid, geometry=centre_line, exit_lane_fid=exit_lane, entry_lane_fid=entry_lane,
                lane_group_connector_fid=parent, speed_limit_mps=speed, traffic_light_stop_line_fids=stops,
            )
        )  # fmt: skip
        data.lane_connector_polygons.append(
            LaneConnectorPolygonRecord(
                fid=fid + 100, geometry=polygon, lane_connector_fid=fid, baseline_path_fid=fid + 200
            )
        )
        data.baseline_paths.append(
            BaselinePathRecord(fid=fid + 200, geometry=centre_line, lane_connector_fid=fid)
        )
    data.lane_group_connectors += [
        LaneGroupConnectorRecord(
            fid=3001,
            geometry=box(-10, -7, 10, 0),
            from_lane_group_fid=1001,
            to_lane_group_fid=1002,
            intersection_fid=5001,
        ),
        LaneGroupConnectorRecord(
            fid=3002,
            geometry=turn_polygon,
            from_lane_group_fid=1001,
            to_lane_group_fid=1003,
            intersection_fid=5001,
        ),
    ]

    # Boundaries of the lane groups (left/right seen in the driving direction).
    edges = [
        ((-100, 0), (-10, 0)), ((-100, -7), (-10, -7)), ((10, 0), (100, 0)), ((10, -7), (100, -7)),
        ((-1.75, -20), (-1.75, -120)), ((-5.25, -20), (-5.25, -120)),
    ]  # fmt: skip
    for i, (a, b) in enumerate(edges):
        data.boundaries.append(BoundaryRecord(fid=7001 + i, geometry=line([a, b])))

    # Traffic-light stop polygons at the end of the west arm's lanes.
    data.stop_polygons += [
        StopPolygonRecord(fid=6001, geometry=box(-13, -3.5, -11, 0), stop_polygon_type_fid=2, lane_fid=2001),
        StopPolygonRecord(fid=6002, geometry=box(-13, -7, -11, -3.5), stop_polygon_type_fid=2, lane_fid=2002),
    ]
    data.crosswalks.append(CrosswalkRecord(fid=8001, geometry=box(10, -7, 13, 0), intersection_fids="5001"))
    data.walkways.append(WalkwayRecord(fid=8101, geometry=box(-100, 0, 100, 3)))
    data.carpark_areas.append(CarparkAreaRecord(fid=8201, geometry=box(30, -40, 60, -10)))
    data.generic_drivable_areas.append(GenericDrivableAreaRecord(fid=8301, geometry=box(70, -10, 90, -7)))
    data.road_segments += [
        RoadSegmentRecord(fid=8401, geometry=box(-100, -7, -10, 0), lane_group_fids="1001"),
        RoadSegmentRecord(fid=8402, geometry=box(10, -7, 100, 0), lane_group_fids="1002"),
        RoadSegmentRecord(fid=8403, geometry=box(-5.25, -120, -1.75, -20), lane_group_fids="1003"),
    ]
    return data
