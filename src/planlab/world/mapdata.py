"""Turn a :class:`~planlab.world.network.RoadNetwork` into the maps room's ``MapData`` and write the maps root.

The world writes one GeoPackage per nuPlan location (contract §1.1: the maps DB opens all four) through
``planlab.maps.write_map`` (validated, atomic, GDAL bookkeeping) and pins GDAL's notion of "now" so that the
``last_change`` stamps in ``gpkg_contents`` do not vary: the same seed gives byte-identical map files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from shapely.geometry import LineString, Point, Polygon

from planlab.maps import (
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
    TrafficLightRecord,
    WalkwayRecord,
    write_map,
)
from planlab.world.network import RoadNetwork

# The date GDAL stamps into gpkg_contents.last_change (and similar) while the world writes maps.
# Intersection type codes (written as ``intersection_type_fid``; not read by nuPlan's map API).
_INTERSECTION_TYPES = {"signal": 1, "stop": 2, "priority": 3, "merge": 4, "none": 0}


def _poly(p: Polygon) -> Polygon:
    """A polygon with a counter-clockwise exterior (OGC convention; contract §1.5 ring orientation)."""
    from shapely.geometry.polygon import orient

    return orient(p, sign=1.0)


def network_to_map_data(net: RoadNetwork) -> MapData:
    """All layers of ``net`` as ``MapData`` records (fids are the network's fids, globally unique)."""
    d = MapData(meta={"planlab_town": net.name, "planlab_origin": f"{net.origin[0]:.3f},{net.origin[1]:.3f}"})
    for b in net.blocks.values():
        if b.kind == "roadblock":
            lanes = [net.lanes[i] for i in b.lanes]
            d.add(
                LaneGroupRecord(
                    fid=b.fid,
                    geometry=_poly(b.polygon),
                    left_boundary_fid=lanes[0].left_boundary,
                    right_boundary_fid=lanes[-1].right_boundary,
                )
            )
        else:
            d.add(
                LaneGroupConnectorRecord(
                    fid=b.fid,
                    geometry=_poly(b.polygon),
                    from_lane_group_fid=int(b.src),
                    to_lane_group_fid=int(b.dst),
                    intersection_fid=int(b.node),
                )
            )
    for lane in net.lanes.values():
        line = LineString(lane.center)
        if lane.kind == "lane":
            d.add(
                LaneRecord(
                    fid=lane.fid,
                    geometry=_poly(lane.polygon),
                    lane_group_fid=lane.block,
                    lane_index=lane.index,
                    speed_limit_mps=float(lane.speed_limit),
                    left_boundary_fid=lane.left_boundary,
                    right_boundary_fid=lane.right_boundary,
                    width=float(lane.width),
                )
            )
            d.add(BaselinePathRecord(fid=lane.baseline_fid, geometry=line, lane_fid=lane.fid))
        else:
            stop = "" if lane.phase is None or lane.stop_line is None else str(lane.stop_line)
            d.add(
                LaneConnectorRecord(
                    fid=lane.fid,
                    geometry=line,
                    exit_lane_fid=lane.predecessors[0],
                    entry_lane_fid=lane.successors[0],
                    lane_group_connector_fid=lane.block,
                    intersection_fid=lane.node,
                    speed_limit_mps=float(lane.speed_limit),
                    traffic_light_stop_line_fids=stop,
                )
            )
            d.add(
                LaneConnectorPolygonRecord(
                    fid=lane.polygon_fid,
                    geometry=_poly(lane.polygon),
                    lane_connector_fid=lane.fid,
                    left_boundary_fid=lane.left_boundary,
                    right_boundary_fid=lane.right_boundary,
                    baseline_path_fid=lane.baseline_fid,
                )
            )
            d.add(BaselinePathRecord(fid=lane.baseline_fid, geometry=line, lane_connector_fid=lane.fid))
    for bd in net.boundaries.values():
        d.add(BoundaryRecord(fid=bd.fid, geometry=LineString(bd.line), boundary_type_fid=bd.boundary_type))
    for j in net.junctions.values():
        d.add(
            IntersectionRecord(
                fid=j.fid,
                geometry=_poly(j.polygon),
                intersection_type_fid=_INTERSECTION_TYPES.get(j.control, 0),
            )
        )
    for s in net.stop_polygons.values():
        d.add(
            StopPolygonRecord(
                fid=s.fid,
                geometry=_poly(s.polygon),
                stop_polygon_type_fid=int(s.attrs["type"]),
                lane_fid=s.attrs.get("lane_fid"),
            )
        )
    for c in net.crosswalks.values():
        jf = c.attrs.get("junction")
        d.add(
            CrosswalkRecord(
                fid=c.fid, geometry=_poly(c.polygon), intersection_fids="" if jf is None else str(jf)
            )
        )
    for w in net.walkways.values():
        d.add(WalkwayRecord(fid=w.fid, geometry=_poly(w.polygon)))
    for c in net.carparks.values():
        d.add(CarparkAreaRecord(fid=c.fid, geometry=_poly(c.polygon)))
    for g in net.generic_drivable.values():
        d.add(GenericDrivableAreaRecord(fid=g.fid, geometry=_poly(g.polygon)))
    road_blocks: dict[int, list[int]] = {}
    for b in net.blocks.values():
        if b.kind == "roadblock" and b.road is not None:
            road_blocks.setdefault(b.road, []).append(b.fid)
    for r in net.road_segments.values():
        ids = road_blocks.get(r.attrs.get("road"), [])
        d.add(
            RoadSegmentRecord(fid=r.fid, geometry=_poly(r.polygon), lane_group_fids=",".join(map(str, ids)))
        )
    for h in net.signal_heads.values():
        d.add(
            TrafficLightRecord(
                fid=h.fid,
                geometry=Point(float(h.position[0]), float(h.position[1])),
                lane_connector_fid=h.connectors[0] if h.connectors else None,
            )
        )
    return d


def write_network(net: RoadNetwork, maps_root: str | os.PathLike, version: str | None = None) -> Path:
    """Write ``net`` as ``<maps_root>/<location>/<version>/map.gpkg`` (validated, atomic, reproducible)."""
    # write_map pins GDAL's date itself: the same network always gives a byte-identical file
    return write_map(network_to_map_data(net), maps_root, net.location, version, crs=net.crs)


def bounds_center(net: RoadNetwork) -> np.ndarray:
    minx, miny, maxx, maxy = net.map_objects_bounds()
    return np.array([0.5 * (minx + maxx), 0.5 * (miny + maxy)])
