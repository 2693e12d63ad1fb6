"""``MapData``: a map to be written, as typed records per GeoPackage table (explicit integer fids).

Each record class is one table of the nuPlan layout with the columns of contract §1.5 (plus the extra
real columns the calibration map carries). Column types decide how a column is stored:
``int`` → INTEGER, never null; ``int | None`` → INTEGER with NULL (reads back as float64/NaN, like the
half-null ``baseline_paths.lane_fid``); ``float`` / ``float | None`` → REAL (None = NULL); ``str`` → TEXT,
never null. ``lanes_polygons.lane_fid`` is not a field: it is always written equal to ``fid`` (P6).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, ClassVar

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from planlab.errors import DataError
from planlab.maps import layers as L
from planlab.maps.table import LayerTable


@dataclass(frozen=True, kw_only=True)
class Record:
    """One feature: an explicit positive integer ``fid`` (the GeoPackage primary key) and a geometry."""

    layer: ClassVar[str] = ""
    geometry_type: ClassVar[str] = "Polygon"

    fid: int
    geometry: BaseGeometry


@dataclass(frozen=True, kw_only=True)
class LaneGroupRecord(Record):
    """``lane_groups_polygons``: a roadblock (lanes of one direction side by side)."""

    layer: ClassVar[str] = L.LANE_GROUPS
    left_boundary_fid: int | None = None
    right_boundary_fid: int | None = None


@dataclass(frozen=True, kw_only=True)
class LaneRecord(Record):
    """``lanes_polygons``: a lane; ``lane_index`` 0 is the leftmost lane of its group."""

    layer: ClassVar[str] = L.LANES
    lane_group_fid: int
    lane_index: int
    speed_limit_mps: float | None = None
    left_boundary_fid: int | None = None
    right_boundary_fid: int | None = None
    lane_type_fid: int = 0
    width: float | None = None


@dataclass(frozen=True, kw_only=True)
class LaneGroupConnectorRecord(Record):
    """``lane_group_connectors``: a roadblock connector from one lane group to another, in a junction."""

    layer: ClassVar[str] = L.LANE_GROUP_CONNECTORS
    from_lane_group_fid: int
    to_lane_group_fid: int
    intersection_fid: int


@dataclass(frozen=True, kw_only=True)
class LaneConnectorRecord(Record):
    """``lane_connectors``: exits lane ``exit_lane_fid`` (upstream), enters ``entry_lane_fid`` (P8).

    The geometry is the connector's centre line (real maps store a LineString). ``exit_lane_group_fid``,
    ``entry_lane_group_fid`` and ``intersection_fid`` are filled from the lanes and the parent connector
    when left None.
    """

    layer: ClassVar[str] = L.LANE_CONNECTORS
    geometry_type: ClassVar[str] = "LineString"
    exit_lane_fid: int
    entry_lane_fid: int
    lane_group_connector_fid: int
    exit_lane_group_fid: int | None = None
    entry_lane_group_fid: int | None = None
    intersection_fid: int | None = None
    speed_limit_mps: float | None = None
    traffic_light_stop_line_fids: str = ""


@dataclass(frozen=True, kw_only=True)
class LaneConnectorPolygonRecord(Record):
    """``gen_lane_connectors_scaled_width_polygons``: the polygon of one lane connector (exactly one, P7)."""

    layer: ClassVar[str] = L.LANE_CONNECTOR_POLYGONS
    lane_connector_fid: int
    left_boundary_fid: int | None = None
    right_boundary_fid: int | None = None
    baseline_path_fid: int | None = None


@dataclass(frozen=True, kw_only=True)
class BaselinePathRecord(Record):
    """``baseline_paths``: the centre line of one lane (``lane_fid``) or one connector (``lane_connector_fid``)."""

    layer: ClassVar[str] = L.BASELINE_PATHS
    geometry_type: ClassVar[str] = "LineString"
    lane_fid: int | None = None
    lane_connector_fid: int | None = None
    path_type_fid: int = 0


@dataclass(frozen=True, kw_only=True)
class BoundaryRecord(Record):
    layer: ClassVar[str] = L.BOUNDARIES
    geometry_type: ClassVar[str] = "LineString"
    boundary_type_fid: int = 0


@dataclass(frozen=True, kw_only=True)
class IntersectionRecord(Record):
    layer: ClassVar[str] = L.INTERSECTIONS
    intersection_type_fid: int = 0


@dataclass(frozen=True, kw_only=True)
class StopPolygonRecord(Record):
    """``stop_polygons``: ``stop_polygon_type_fid`` is a :class:`planlab.maps.StopLineType` value."""

    layer: ClassVar[str] = L.STOP_POLYGONS
    stop_polygon_type_fid: int
    lane_fid: int | None = None
    lane_connector_fid: int | None = None


@dataclass(frozen=True, kw_only=True)
class CrosswalkRecord(Record):
    layer: ClassVar[str] = L.CROSSWALKS
    intersection_fids: str = ""


@dataclass(frozen=True, kw_only=True)
class WalkwayRecord(Record):
    layer: ClassVar[str] = L.WALKWAYS


@dataclass(frozen=True, kw_only=True)
class CarparkAreaRecord(Record):
    layer: ClassVar[str] = L.CARPARK_AREAS


@dataclass(frozen=True, kw_only=True)
class GenericDrivableAreaRecord(Record):
    layer: ClassVar[str] = L.GENERIC_DRIVABLE_AREAS


@dataclass(frozen=True, kw_only=True)
class RoadSegmentRecord(Record):
    layer: ClassVar[str] = L.ROAD_SEGMENTS
    lane_group_fids: str = ""


@dataclass(frozen=True, kw_only=True)
class TrafficLightRecord(Record):
    """``traffic_lights``: not read by nuPlan's map API; schema kept minimal (**[unverified]** vs real maps)."""

    layer: ClassVar[str] = L.TRAFFIC_LIGHTS
    geometry_type: ClassVar[str] = "Point"
    lane_connector_fid: int | None = None


@dataclass(frozen=True, kw_only=True)
class DubinsNodeRecord(Record):
    """``dubins_nodes``: not read by nuPlan's map API; kept for the real layer list."""

    layer: ClassVar[str] = L.DUBINS_NODES
    geometry_type: ClassVar[str] = "Point"


RECORD_TYPES: dict[str, type[Record]] = {
    cls.layer: cls
    for cls in (
        LaneGroupRecord,
        LaneRecord,
        LaneGroupConnectorRecord,
        LaneConnectorRecord,
        LaneConnectorPolygonRecord,
        BaselinePathRecord,
        BoundaryRecord,
        IntersectionRecord,
        StopPolygonRecord,
        CrosswalkRecord,
        WalkwayRecord,
        CarparkAreaRecord,
        GenericDrivableAreaRecord,
        RoadSegmentRecord,
        TrafficLightRecord,
        DubinsNodeRecord,
    )
}

# MapData attribute name -> table name.
_FIELD_TABLES: dict[str, str] = {
    "lane_groups": L.LANE_GROUPS,
    "lanes": L.LANES,
    "lane_group_connectors": L.LANE_GROUP_CONNECTORS,
    "lane_connectors": L.LANE_CONNECTORS,
    "lane_connector_polygons": L.LANE_CONNECTOR_POLYGONS,
    "baseline_paths": L.BASELINE_PATHS,
    "boundaries": L.BOUNDARIES,
    "intersections": L.INTERSECTIONS,
    "stop_polygons": L.STOP_POLYGONS,
    "crosswalks": L.CROSSWALKS,
    "walkways": L.WALKWAYS,
    "carpark_areas": L.CARPARK_AREAS,
    "generic_drivable_areas": L.GENERIC_DRIVABLE_AREAS,
    "road_segments": L.ROAD_SEGMENTS,
    "traffic_lights": L.TRAFFIC_LIGHTS,
    "dubins_nodes": L.DUBINS_NODES,
}


@dataclass
class MapData:
    """Everything one map.gpkg holds, as record lists per table (rows are stored in fid order)."""

    lane_groups: list[LaneGroupRecord] = field(default_factory=list)
    lanes: list[LaneRecord] = field(default_factory=list)
    lane_group_connectors: list[LaneGroupConnectorRecord] = field(default_factory=list)
    lane_connectors: list[LaneConnectorRecord] = field(default_factory=list)
    lane_connector_polygons: list[LaneConnectorPolygonRecord] = field(default_factory=list)
    baseline_paths: list[BaselinePathRecord] = field(default_factory=list)
    boundaries: list[BoundaryRecord] = field(default_factory=list)
    intersections: list[IntersectionRecord] = field(default_factory=list)
    stop_polygons: list[StopPolygonRecord] = field(default_factory=list)
    crosswalks: list[CrosswalkRecord] = field(default_factory=list)
    walkways: list[WalkwayRecord] = field(default_factory=list)
    carpark_areas: list[CarparkAreaRecord] = field(default_factory=list)
    generic_drivable_areas: list[GenericDrivableAreaRecord] = field(default_factory=list)
    road_segments: list[RoadSegmentRecord] = field(default_factory=list)
    traffic_lights: list[TrafficLightRecord] = field(default_factory=list)
    dubins_nodes: list[DubinsNodeRecord] = field(default_factory=list)
    # Extra ``meta`` rows (e.g. version, description); the CRS rows are written by ``write_map``.
    meta: dict[str, str] = field(default_factory=dict)

    def tables(self) -> dict[str, list[Record]]:
        """{table name: records sorted by fid} for the 16 tables, in writing order.

        A GeoPackage table is read back in primary-key (fid) order whatever the insertion order, so fid
        order *is* the table row order every reader sees (e.g. the order of a roadblock's lanes).
        """
        return {
            table: sorted(getattr(self, attr), key=lambda r: r.fid) for attr, table in _FIELD_TABLES.items()
        }

    def unsorted_tables(self) -> dict[str, list[Record]]:
        """{table name: records} in the order they were added."""
        return {table: list(getattr(self, attr)) for attr, table in _FIELD_TABLES.items()}

    def add(self, record: Record) -> None:
        """Append ``record`` to the list of its table."""
        for attr, table in _FIELD_TABLES.items():
            if table == record.layer:
                getattr(self, attr).append(record)
                return
        raise TypeError(f"not a map record: {type(record).__name__}")

    def shifted(self, dx: float = 0.0, dy: float = 0.0, fid_offset: int = 0) -> MapData:
        """A copy moved by (dx, dy) metres with every fid and fid reference increased by ``fid_offset``.

        For tiling several towns into one GeoPackage (contract §1.1: at most four maps per maps root, so
        towns share a file at disjoint coordinates with fids unique across the tiles). Type codes
        (``*_type_fid``) are not ids and stay unchanged; comma-separated fid lists are shifted too.
        """
        out = MapData(meta=dict(self.meta))
        for records in self.unsorted_tables().values():
            for r in records:
                out.add(_shift_record(r, dx, dy, fid_offset))
        return out

    def merged(self, *others: MapData) -> MapData:
        """One map holding the records of ``self`` and ``others`` (meta of ``self``); fids must not clash."""
        out = MapData(meta=dict(self.meta))
        seen: dict[int, str] = {}
        for part in (self, *others):
            for table, records in part.unsorted_tables().items():
                for r in records:
                    if r.fid in seen:
                        raise DataError(
                            f"merging maps: fid {r.fid} of {table} is already used in {seen[r.fid]}"
                        )
                    seen[r.fid] = table
                    out.add(r)
        return out

    def max_fid(self) -> int:
        """Largest fid over all tables (0 for an empty map)."""
        return max((int(r.fid) for recs in self.unsorted_tables().values() for r in recs), default=0)

    def to_tables(self, crs: str, source: str = "<MapData>") -> dict[str, LayerTable]:
        """In-memory tables with the dtypes the reader would see after a write (see module docstring)."""
        fills = _derived_connector_columns(self)
        out: dict[str, LayerTable] = {}
        for table, records in self.tables().items():
            arrays = layer_arrays(table, records, fills.get(table))
            fids = arrays.pop("fid")[0]
            columns = {}
            for name, (values, mask) in arrays.items():
                if mask is not None and mask.any():
                    values = values.astype(np.float64)
                    values[mask] = np.nan
                columns[name] = values
            geoms = np.array([r.geometry for r in records], dtype=object)
            out[table] = LayerTable(table, fids, geoms, columns, crs=crs, source=source)
        return out


# Integer columns that hold codes, not ids (never shifted by ``MapData.shifted``).
_TYPE_COLUMNS = frozenset(
    {
        "lane_index",
        "lane_type_fid",
        "path_type_fid",
        "boundary_type_fid",
        "intersection_type_fid",
        "stop_polygon_type_fid",
    }
)
# Text columns holding comma-separated fids.
_ID_TEXT_COLUMNS = frozenset({"traffic_light_stop_line_fids", "intersection_fids", "lane_group_fids"})


def _shift_record(r: Record, dx: float, dy: float, fid_offset: int) -> Record:
    changes: dict[str, Any] = {}
    if dx or dy:
        changes["geometry"] = shapely.transform(r.geometry, lambda xy: xy + (dx, dy))
    if fid_offset:
        for name, kind in column_kinds(type(r)):
            value = getattr(r, name)
            if value is None or name in _TYPE_COLUMNS:
                continue
            if kind.startswith("int") and (name == "fid" or name.endswith("_fid")):
                changes[name] = int(value) + fid_offset
            elif name in _ID_TEXT_COLUMNS and value:
                parts = [p.strip() for p in str(value).split(",") if p.strip()]
                changes[name] = ",".join(str(int(p) + fid_offset) for p in parts)
    return dataclasses.replace(r, **changes) if changes else r


# ---------------------------------------------------------------------------------------------------------
# typed columns


@cache
def column_kinds(cls: type[Record]) -> tuple[tuple[str, str], ...]:
    """((column, kind), …) of a record class; kind ∈ int, int?, float, float?, str. ``fid`` first."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, str]] = []
    for f in fields(cls):
        if f.name == "geometry":
            continue
        out.append((f.name, _kind(hints[f.name], cls, f.name)))
    return tuple(out)


def _kind(hint: Any, cls: type, name: str) -> str:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
    base = {int: "int", float: "float", str: "str"}.get(hint)
    if base is None or (base == "str" and optional):
        raise TypeError(f"{cls.__name__}.{name}: unsupported column type {hint!r}")
    return base + ("?" if optional else "")


def layer_arrays(
    table: str, records: list[Record], fills: dict[str, np.ndarray] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{column: (values, null mask or None)} for one table; ``fid`` first; ``lane_fid`` added for lanes.

    ``fills`` supplies values for optional integer columns whose record value is None (derived FKs).
    Raises DataError naming table, fid and column for a value of the wrong type.
    """
    cls = RECORD_TYPES[table]
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, kind in column_kinds(cls):
        raw = [getattr(r, name) for r in records]
        fill = None if fills is None else fills.get(name)
        if fill is not None:
            raw = [fill[i] if v is None and fill[i] is not None else v for i, v in enumerate(raw)]
        out[name] = _column(table, records, name, kind, raw)
        if table == L.LANES and name == "fid":
            out["lane_fid"] = out["fid"]  # contract P6: lanes_polygons.lane_fid == fid
    return out


def _column(
    table: str, records: list[Record], name: str, kind: str, raw: list[Any]
) -> tuple[np.ndarray, Any]:
    n = len(raw)
    base, optional = kind.rstrip("?"), kind.endswith("?")
    mask = np.zeros(n, dtype=bool)
    if base == "int":
        values = np.zeros(n, dtype=np.int64)
        for i, v in enumerate(raw):
            if v is None and optional:
                mask[i] = True
            elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
                values[i] = int(v)
            else:
                raise DataError(f"{table} fid {records[i].fid}: {name} must be an integer, got {v!r}")
    elif base == "float":
        values = np.zeros(n, dtype=np.float64)
        for i, v in enumerate(raw):
            if v is None and optional:
                mask[i] = True
            elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_):
                values[i] = float(v)
                mask[i] = optional and bool(np.isnan(values[i]))
            else:
                raise DataError(f"{table} fid {records[i].fid}: {name} must be a number, got {v!r}")
    else:
        values = np.empty(n, dtype=object)
        for i, v in enumerate(raw):
            if not isinstance(v, str):
                raise DataError(f"{table} fid {records[i].fid}: {name} must be a string, got {v!r}")
            values[i] = v
    return values, (mask if optional else None)


def _derived_connector_columns(data: MapData) -> dict[str, dict[str, np.ndarray]]:
    """Values for the optional connector FKs left None: lane groups of the exit/entry lanes, junction."""
    lane_group = {r.fid: r.lane_group_fid for r in data.lanes}
    junction = {r.fid: r.intersection_fid for r in data.lane_group_connectors}
    conns = data.lane_connectors
    return {
        L.LANE_CONNECTORS: {
            "exit_lane_group_fid": np.array([lane_group.get(r.exit_lane_fid) for r in conns], dtype=object),
            "entry_lane_group_fid": np.array([lane_group.get(r.entry_lane_fid) for r in conns], dtype=object),
            "intersection_fid": np.array(
                [junction.get(r.lane_group_connector_fid) for r in conns], dtype=object
            ),
        }
    }


def derived_columns(data: MapData) -> dict[str, dict[str, np.ndarray]]:
    """Public view of the derived foreign keys the writer fills in (see :class:`LaneConnectorRecord`)."""
    return _derived_connector_columns(data)


def check_records(data: MapData) -> None:
    """Structural checks the GeoPackage itself needs; DataError naming table and fid on the first failure.

    Positive unique integer fids per table, records of the right class, non-null non-empty geometries of
    the table's single-part type. Semantic checks are :func:`planlab.maps.validate.validate_map`'s job.
    """
    for table, records in data.unsorted_tables().items():
        cls = RECORD_TYPES[table]
        seen: set[int] = set()
        for r in records:
            if type(r) is not cls:
                raise DataError(f"{table}: expected {cls.__name__} records, got {type(r).__name__}")
            if not isinstance(r.fid, int | np.integer) or isinstance(r.fid, bool) or r.fid < 1:
                raise DataError(f"{table}: fid must be a positive integer, got {r.fid!r}")
            if r.fid in seen:
                raise DataError(f"{table}: duplicate fid {r.fid}")
            seen.add(int(r.fid))
            g = r.geometry
            if not isinstance(g, BaseGeometry) or g.is_empty:
                raise DataError(f"{table} fid {r.fid}: geometry is missing or empty")
            if g.geom_type != cls.geometry_type:
                raise DataError(
                    f"{table} fid {r.fid}: geometry must be a {cls.geometry_type}, got {g.geom_type}"
                )
            if not np.isfinite(shapely.get_coordinates(g)).all():
                raise DataError(f"{table} fid {r.fid}: geometry has non-finite coordinates")
