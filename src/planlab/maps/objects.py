"""Map objects with nuPlan's semantics: lanes, lane connectors, roadblocks, their connectors, polygons.

Objects are light views on one row of a map layer (the map caches one object per id). Properties are
computed on first use. Lane-graph semantics follow contract §1.6: a lane's ``outgoing_edges`` are the
connectors whose ``exit_lane_fid`` is the lane; a connector's ``outgoing_edges`` is its ``entry_lane_fid``
lane; a roadblock's ``interior_edges`` are its lanes in table row order.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

from planlab.errors import DataError
from planlab.geometry import Polyline
from planlab.maps import layers as L
from planlab.maps.layers import SemanticMapLayer, StopLineType

if TYPE_CHECKING:
    from planlab.maps.gpkg import GPKGMap
    from planlab.maps.table import LayerTable


def as_xy(point: Any) -> tuple[float, float]:
    """(x, y) of a point given as a tuple/array, a shapely Point, or any object with ``.x`` and ``.y``."""
    if hasattr(point, "x") and hasattr(point, "y"):
        return float(point.x), float(point.y)
    arr = np.asarray(point, dtype=np.float64).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"a point needs x and y, got {point!r}")
    return float(arr[0]), float(arr[1])


def discrete_path(coords: np.ndarray) -> np.ndarray:
    """Poses (N, 3) = (x, y, heading) of a polyline's vertices, nuPlan's discrete-path convention.

    contract §1.5: each vertex's heading is the direction to the next vertex; the last vertex repeats the
    previous heading. Computed on the raw vertices (a duplicate vertex gets heading atan2(0, 0) = 0, as in
    nuPlan; the validator flags such baselines).
    """
    xy = np.asarray(coords, dtype=np.float64)[:, :2]
    d = np.diff(xy, axis=0)
    heading = np.arctan2(d[:, 1], d[:, 0])
    heading = np.concatenate([heading, heading[-1:]])
    return np.concatenate([xy, heading[:, None]], axis=1)


class MapObject:
    """One feature of a map layer: its id (decimal string of the fid), geometry and row."""

    semantic_layer: SemanticMapLayer | None = None
    table_name: str = ""

    def __init__(self, map_api: GPKGMap, row: int, table_name: str | None = None) -> None:
        self._map = map_api
        self._row = row
        if table_name is not None:
            self.table_name = table_name
        self.id: str = self._table.ids[row]

    @property
    def _table(self) -> LayerTable:
        return self._map.table(self.table_name)

    @property
    def fid(self) -> int:
        """The integer feature id (GeoPackage primary key)."""
        return int(self._table.fids[self._row])

    @property
    def geometry(self) -> Any:
        """The geometry stored in this object's own table row."""
        return self._table.geometry(self._row)

    def attribute(self, column: str) -> Any:
        """The raw value of ``column`` in this object's row (DataError when the column is missing)."""
        value = self._table.column(column)[self._row]
        return value.item() if isinstance(value, np.generic) else value

    def _optional_float(self, column: str) -> float | None:
        if not self._table.has_column(column):
            return None
        value = self._table.column(column)[self._row]
        if value is None:
            return None
        value = float(value)
        return None if math.isnan(value) else value

    def distance_to(self, point: Any) -> float:
        """Euclidean distance [m] from ``point`` to the geometry (0 inside a polygon)."""
        return float(shapely.distance(self.geometry, Point(*as_xy(point))))

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and other._map is self._map  # type: ignore[attr-defined]
            and other.id == self.id  # type: ignore[attr-defined]
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id, id(self._map)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


class PolygonMapObject(MapObject):
    """A feature whose geometry is a polygon (intersections, crosswalks, car parks, …)."""

    @property
    def polygon(self) -> Polygon:
        return self.geometry

    def contains_point(self, point: Any) -> bool:
        """True when the point is strictly inside (a boundary point is outside; fact sheet §1.5)."""
        return bool(shapely.contains_xy(self.polygon, *as_xy(point)))


class PolylineMapObject(MapObject):
    """A feature whose geometry is a LineString (baseline paths, boundaries)."""

    @property
    def linestring(self) -> LineString:
        return self.geometry

    @property
    def length(self) -> float:
        """Length [m] of the line (shapely, like nuPlan's ``linestring.length``)."""
        return float(self.linestring.length)

    @cached_property
    def discrete_path(self) -> np.ndarray:
        """(N, 3) poses (x, y, heading) at the vertices; see :func:`discrete_path`."""
        return discrete_path(np.asarray(self.linestring.coords))

    @cached_property
    def polyline(self) -> Polyline:
        """The line as a :class:`planlab.geometry.Polyline` (arc length, projection, resampling)."""
        try:
            return Polyline(np.asarray(self.linestring.coords))
        except ValueError as exc:
            raise DataError(f"{self._table.source}: {self.table_name} fid {self.id}: {exc}") from None

    def get_nearest_arc_length_from_position(self, point: Any) -> float:
        """Arc length [m] along the line of the point nearest to ``point``."""
        return float(self.linestring.project(Point(*as_xy(point))))


class BaselinePath(PolylineMapObject):
    """A lane's or lane connector's centreline (``baseline_paths`` row)."""

    semantic_layer = SemanticMapLayer.BASELINE_PATHS
    table_name = L.BASELINE_PATHS


class Boundary(PolylineMapObject):
    """A lane or lane-group edge (``boundaries`` row)."""

    semantic_layer = SemanticMapLayer.BOUNDARIES
    table_name = L.BOUNDARIES


class Intersection(PolygonMapObject):
    """A junction polygon; its ``interior_edges`` are the roadblock connectors inside it."""

    semantic_layer = SemanticMapLayer.INTERSECTION
    table_name = L.INTERSECTIONS

    @cached_property
    def interior_edges(self) -> list[RoadBlockConnector]:
        rbc = self._map.table(L.LANE_GROUP_CONNECTORS)
        if not rbc.has_column("intersection_fid"):
            return []
        return [
            self._map.object_at(L.LANE_GROUP_CONNECTORS, r)
            for r in rbc.rows_with("intersection_fid", self.fid)
        ]


class StopLine(PolygonMapObject):
    """A stop polygon (``stop_polygons`` row) with its :class:`StopLineType`."""

    semantic_layer = SemanticMapLayer.STOP_LINE
    table_name = L.STOP_POLYGONS

    @property
    def stop_line_type(self) -> StopLineType:
        value = self._table.fk_id("stop_polygon_type_fid", self._row)
        if value is None:
            return StopLineType.UNKNOWN
        try:
            return StopLineType(int(value))
        except ValueError:
            return StopLineType.UNKNOWN


class Crosswalk(PolygonMapObject):
    semantic_layer = SemanticMapLayer.CROSSWALK
    table_name = L.CROSSWALKS


class Walkway(PolygonMapObject):
    semantic_layer = SemanticMapLayer.WALKWAYS
    table_name = L.WALKWAYS


class CarparkArea(PolygonMapObject):
    semantic_layer = SemanticMapLayer.CARPARK_AREA
    table_name = L.CARPARK_AREAS


class GenericDrivableArea(PolygonMapObject):
    semantic_layer = SemanticMapLayer.GENERIC_DRIVABLE_AREAS
    table_name = L.GENERIC_DRIVABLE_AREAS


class RoadSegment(PolygonMapObject):
    semantic_layer = SemanticMapLayer.ROAD_SEGMENTS
    table_name = L.ROAD_SEGMENTS


class LaneGraphEdge(PolygonMapObject):
    """Common part of lanes and lane connectors: baseline, speed limit, graph edges, parent roadblock."""

    _parent_column = ""
    _parent_table = ""
    _baseline_column = ""

    def _one_row(self, table_name: str, column: str) -> int:
        table = self._map.table(table_name)
        rows = table.rows_with(column, self.fid)
        if len(rows) != 1:
            # contract §1.5 / P7: nuPlan asserts exactly one match here.
            raise DataError(
                f"{table.source}: layer {table_name!r} has {len(rows)} rows with {column} = {self.id} (expected 1)"
            )
        return rows[0]

    @cached_property
    def baseline_path(self) -> BaselinePath:
        """The centreline (the single ``baseline_paths`` row pointing at this object)."""
        return self._map.object_at(L.BASELINE_PATHS, self._one_row(L.BASELINE_PATHS, self._baseline_column))

    @property
    def length(self) -> float:
        """Length [m] of the baseline path."""
        return self.baseline_path.length

    @property
    def speed_limit_mps(self) -> float | None:
        """Speed limit [m/s]; None when stored as NULL/NaN (NAVSIM then falls back to 15 m/s)."""
        return self._optional_float("speed_limit_mps")

    def get_roadblock_id(self) -> str:
        """Id of the parent roadblock (lanes) or roadblock connector (lane connectors)."""
        parent = (
            self._table.fk_id(self._parent_column, self._row)
            if self._table.has_column(self._parent_column)
            else None
        )
        if parent is None:
            raise DataError(
                f"{self._table.source}: {self.table_name} fid {self.id} has no {self._parent_column} (contract P6)"
            )
        return parent

    @property
    def parent(self) -> RoadBlock | RoadBlockConnector:
        """The roadblock (or roadblock connector) this edge belongs to."""
        layer = (
            SemanticMapLayer.ROADBLOCK
            if self._parent_table == L.LANE_GROUPS
            else SemanticMapLayer.ROADBLOCK_CONNECTOR
        )
        obj = self._map.get_map_object(self.get_roadblock_id(), layer)
        if obj is None:
            raise DataError(
                f"{self._table.source}: {self.table_name} fid {self.id} refers to missing "
                f"{self._parent_table} fid {self.get_roadblock_id()}"
            )
        return obj  # type: ignore[return-value]

    def _boundary(self, table_name: str, row: int, column: str) -> Boundary | None:
        table = self._map.table(table_name)
        if not table.has_column(column):
            return None
        fid = table.fk_id(column, row)
        if fid is None:
            return None
        boundaries = self._map.table(L.BOUNDARIES)
        brow = boundaries.row_of_id(fid)
        if brow is None:
            raise DataError(f"{table.source}: {table_name} fid {self.id} refers to missing boundary {fid}")
        return self._map.object_at(L.BOUNDARIES, brow)


class Lane(LaneGraphEdge):
    """A lane (``lanes_polygons`` row)."""

    semantic_layer = SemanticMapLayer.LANE
    table_name = L.LANES
    _parent_column = "lane_group_fid"
    _parent_table = L.LANE_GROUPS
    _baseline_column = "lane_fid"

    @cached_property
    def incoming_edges(self) -> list[LaneConnector]:
        """Lane connectors that enter this lane (``entry_lane_fid == id``), table order."""
        lc = self._map.table(L.LANE_CONNECTORS)
        return [self._map.object_at(L.LANE_CONNECTORS, r) for r in lc.rows_with("entry_lane_fid", self.fid)]

    @cached_property
    def outgoing_edges(self) -> list[LaneConnector]:
        """Lane connectors that leave this lane (``exit_lane_fid == id``), table order."""
        lc = self._map.table(L.LANE_CONNECTORS)
        return [self._map.object_at(L.LANE_CONNECTORS, r) for r in lc.rows_with("exit_lane_fid", self.fid)]

    @property
    def lane_index(self) -> int | None:
        """Position in the lane group, 0 = leftmost (contract §1.5)."""
        if not self._table.has_column("lane_index"):
            return None
        value = self._table.fk_id("lane_index", self._row)
        return None if value is None else int(value)

    @property
    def left_boundary(self) -> Boundary | None:
        return self._boundary(L.LANES, self._row, "left_boundary_fid")

    @property
    def right_boundary(self) -> Boundary | None:
        return self._boundary(L.LANES, self._row, "right_boundary_fid")

    @property
    def adjacent_edges(self) -> tuple[Lane | None, Lane | None]:
        """(left neighbour, right neighbour) in the same lane group, by ``lane_index`` ∓ 1."""
        idx = self.lane_index
        if idx is None:
            return None, None
        left = right = None
        for lane in self.parent.interior_edges:
            if lane.lane_index == idx - 1:
                left = lane
            elif lane.lane_index == idx + 1:
                right = lane
        return left, right  # type: ignore[return-value]

    def is_left_of(self, other: Lane) -> bool:
        """True when both lanes share a lane group and this one has the smaller ``lane_index``."""
        if self.get_roadblock_id() != other.get_roadblock_id():
            raise ValueError(f"lanes {self.id} and {other.id} are in different lane groups")
        a, b = self.lane_index, other.lane_index
        if a is None or b is None:
            raise DataError(f"{self._table.source}: lanes_polygons has no lane_index")
        return a < b


class LaneConnector(LaneGraphEdge):
    """A lane connector (``lane_connectors`` row); its polygon is in the generated polygon table."""

    semantic_layer = SemanticMapLayer.LANE_CONNECTOR
    table_name = L.LANE_CONNECTORS
    _parent_column = "lane_group_connector_fid"
    _parent_table = L.LANE_GROUP_CONNECTORS
    _baseline_column = "lane_connector_fid"

    @cached_property
    def _polygon_row(self) -> int:
        return self._one_row(L.LANE_CONNECTOR_POLYGONS, "lane_connector_fid")

    @property
    def polygon(self) -> Polygon:
        """contract §1.6: the ``gen_lane_connectors_scaled_width_polygons`` row of this connector."""
        return self._map.table(L.LANE_CONNECTOR_POLYGONS).geometry(self._polygon_row)

    def _lane(self, column: str) -> Lane:
        lane_id = self._table.fk_id(column, self._row) if self._table.has_column(column) else None
        lane = None if lane_id is None else self._map.get_map_object(lane_id, SemanticMapLayer.LANE)
        if lane is None:
            raise DataError(
                f"{self._table.source}: lane_connectors fid {self.id}: {column} {lane_id} is not a lane"
            )
        return lane  # type: ignore[return-value]

    @cached_property
    def incoming_edges(self) -> list[Lane]:
        """[the lane this connector leaves] (``exit_lane_fid``; contract P8)."""
        return [self._lane("exit_lane_fid")]

    @cached_property
    def outgoing_edges(self) -> list[Lane]:
        """[the lane this connector enters] (``entry_lane_fid``; contract P8)."""
        return [self._lane("entry_lane_fid")]

    @property
    def left_boundary(self) -> Boundary | None:
        return self._boundary(L.LANE_CONNECTOR_POLYGONS, self._polygon_row, "left_boundary_fid")

    @property
    def right_boundary(self) -> Boundary | None:
        return self._boundary(L.LANE_CONNECTOR_POLYGONS, self._polygon_row, "right_boundary_fid")

    @property
    def stop_line_fids(self) -> list[str]:
        """Ids listed in ``traffic_light_stop_line_fids`` (comma-separated text, "" when none; P12)."""
        if not self._table.has_column("traffic_light_stop_line_fids"):
            return []
        text = self._table.column("traffic_light_stop_line_fids")[self._row]
        if not isinstance(text, str):
            return []
        return [part.strip() for part in text.replace(" ", "").split(",") if part.strip()]

    def has_traffic_lights(self) -> bool:
        """True when the connector lists stop lines (nuPlan: truthiness of the text column)."""
        return bool(self.stop_line_fids)

    @property
    def stop_lines(self) -> list[StopLine]:
        out = []
        for sid in self.stop_line_fids:
            obj = self._map.get_map_object(sid, SemanticMapLayer.STOP_LINE)
            if obj is None:
                raise DataError(
                    f"{self._table.source}: lane_connectors fid {self.id} lists missing stop line {sid}"
                )
            out.append(obj)
        return out  # type: ignore[return-value]


class RoadBlock(PolygonMapObject):
    """A lane group (``lane_groups_polygons`` row): a stretch of parallel lanes of one direction."""

    semantic_layer = SemanticMapLayer.ROADBLOCK
    table_name = L.LANE_GROUPS

    @cached_property
    def interior_edges(self) -> list[Lane]:
        """Lanes with ``lane_group_fid == id``, in table row order (contract §1.6)."""
        lanes = self._map.table(L.LANES)
        return [self._map.object_at(L.LANES, r) for r in lanes.rows_with("lane_group_fid", self.fid)]

    @cached_property
    def incoming_edges(self) -> list[RoadBlockConnector]:
        """Roadblock connectors with ``to_lane_group_fid == id``."""
        rbc = self._map.table(L.LANE_GROUP_CONNECTORS)
        return [
            self._map.object_at(L.LANE_GROUP_CONNECTORS, r)
            for r in rbc.rows_with("to_lane_group_fid", self.fid)
        ]

    @cached_property
    def outgoing_edges(self) -> list[RoadBlockConnector]:
        """Roadblock connectors with ``from_lane_group_fid == id``."""
        rbc = self._map.table(L.LANE_GROUP_CONNECTORS)
        return [
            self._map.object_at(L.LANE_GROUP_CONNECTORS, r)
            for r in rbc.rows_with("from_lane_group_fid", self.fid)
        ]

    @property
    def parent(self) -> None:
        return None


class RoadBlockConnector(PolygonMapObject):
    """A lane-group connector (``lane_group_connectors`` row): the lane connectors between two roadblocks."""

    semantic_layer = SemanticMapLayer.ROADBLOCK_CONNECTOR
    table_name = L.LANE_GROUP_CONNECTORS

    def _roadblock(self, column: str) -> RoadBlock:
        rb_id = self._table.fk_id(column, self._row) if self._table.has_column(column) else None
        obj = None if rb_id is None else self._map.get_map_object(rb_id, SemanticMapLayer.ROADBLOCK)
        if obj is None:
            raise DataError(
                f"{self._table.source}: lane_group_connectors fid {self.id}: {column} {rb_id} is not a roadblock"
            )
        return obj  # type: ignore[return-value]

    @cached_property
    def interior_edges(self) -> list[LaneConnector]:
        """Lane connectors with ``lane_group_connector_fid == id``, table order."""
        lc = self._map.table(L.LANE_CONNECTORS)
        return [
            self._map.object_at(L.LANE_CONNECTORS, r)
            for r in lc.rows_with("lane_group_connector_fid", self.fid)
        ]

    @cached_property
    def incoming_edges(self) -> list[RoadBlock]:
        """[the upstream roadblock] (``from_lane_group_fid``)."""
        return [self._roadblock("from_lane_group_fid")]

    @cached_property
    def outgoing_edges(self) -> list[RoadBlock]:
        """[the downstream roadblock] (``to_lane_group_fid``)."""
        return [self._roadblock("to_lane_group_fid")]

    @property
    def intersection(self) -> Intersection | None:
        """The junction this connector crosses; None when ``intersection_fid`` is absent or NULL."""
        if not self._table.has_column("intersection_fid"):
            return None
        fid = self._table.fk_id("intersection_fid", self._row)
        if fid is None:
            return None
        obj = self._map.get_map_object(fid, SemanticMapLayer.INTERSECTION)
        if obj is None:
            raise DataError(
                f"{self._table.source}: lane_group_connectors fid {self.id} refers to missing intersection {fid}"
            )
        return obj  # type: ignore[return-value]

    @property
    def parent(self) -> None:
        return None


# Which class builds the objects of each table.
OBJECT_CLASSES: dict[str, type[MapObject]] = {
    L.LANES: Lane,
    L.LANE_CONNECTORS: LaneConnector,
    L.LANE_GROUPS: RoadBlock,
    L.LANE_GROUP_CONNECTORS: RoadBlockConnector,
    L.BASELINE_PATHS: BaselinePath,
    L.BOUNDARIES: Boundary,
    L.INTERSECTIONS: Intersection,
    L.STOP_POLYGONS: StopLine,
    L.CROSSWALKS: Crosswalk,
    L.WALKWAYS: Walkway,
    L.CARPARK_AREAS: CarparkArea,
    L.GENERIC_DRIVABLE_AREAS: GenericDrivableArea,
    L.ROAD_SEGMENTS: RoadSegment,
}
