"""Reader for nuPlan-layout GeoPackage maps: ``GPKGMap`` (one location) and ``load_map`` (cached).

Reading follows nuPlan's maps DB (contract §1.2): the CRS is ``meta.projectedCoordSystem``; a layer is
read with its feature id (the GeoPackage primary key) as index and reprojected only when its stored CRS
differs from the meta CRS; ids are the decimal strings of the integer fids; layers load lazily, once.
Only pyogrio (raw arrays), numpy and shapely are used, so opening a map costs milliseconds.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point

from planlab.errors import DataError
from planlab.maps import layers as L
from planlab.maps.graph import LaneGraph, build_lane_graph
from planlab.maps.layers import (
    MAP_FILE_NAME,
    MAP_INDEX_FILE,
    QUERYABLE_LAYERS,
    SemanticMapLayer,
    StopLineType,
    table_of,
)
from planlab.maps.objects import OBJECT_CLASSES, MapObject, as_xy
from planlab.maps.table import LayerTable, concat_tables, parse_id

MAPS_ROOT_ENV = "NUPLAN_MAPS_ROOT"
# Locations and versions become directory names (DESIGN.md: identifiers that reach a path).
_SAFE_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

# ---------------------------------------------------------------------------------------------------------
# CRS handling (pyproj only imported when a layer is not stored in the meta CRS)


@lru_cache(maxsize=64)
def _same_crs(stored: str, target: str) -> bool:
    """geopandas' ``to_crs`` early return: the two CRS definitions are exactly the same."""
    if stored.strip().lower() == target.strip().lower():
        return True
    import pyproj

    return pyproj.CRS.from_user_input(stored).is_exact_same(pyproj.CRS.from_user_input(target))


@lru_cache(maxsize=64)
def _transformer(stored: str, target: str) -> Any:
    import pyproj

    # always_xy: (easting, northing) / (lon, lat) order, as geopandas' to_crs uses.
    return pyproj.Transformer.from_crs(
        pyproj.CRS.from_user_input(stored), pyproj.CRS.from_user_input(target), always_xy=True
    )


def _reproject(geoms: np.ndarray, stored: str, target: str) -> np.ndarray:
    transformer = _transformer(stored, target)

    def fn(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


# ---------------------------------------------------------------------------------------------------------
# low-level reading


def _pyogrio() -> Any:
    """pyogrio, imported on first use: it pulls in pandas (~0.4 s), which ``import planlab.maps`` avoids."""
    import pyogrio
    import pyogrio.raw

    return pyogrio


def _list_layers(path: Path) -> dict[str, str | None]:
    pyogrio = _pyogrio()
    if not path.is_file():
        raise DataError(f"map file not found: {path}")
    try:
        listed = pyogrio.list_layers(str(path))
    except Exception as exc:  # pyogrio raises DataSourceError and friends for non-GPKG files
        raise DataError(f"cannot open map {path} as a GeoPackage: {exc}") from None
    return {str(name): (None if gtype is None else str(gtype)) for name, gtype in listed}


def read_meta(path: Path) -> dict[str, str]:
    """The ``meta`` table as {key: value} (first row wins for a repeated key, as nuPlan takes row 0)."""
    pyogrio = _pyogrio()
    try:
        info, _, _, fields = pyogrio.raw.read(str(path), layer=L.META, read_geometry=False)
    except Exception as exc:
        raise DataError(f"{path}: cannot read layer 'meta': {exc}") from None
    names = [str(n) for n in info["fields"]]
    if "key" not in names or "value" not in names:
        raise DataError(f"{path}: layer 'meta' needs text columns 'key' and 'value', has {names}")
    keys = fields[names.index("key")]
    values = fields[names.index("value")]
    out: dict[str, str] = {}
    for k, v in zip(keys, values, strict=True):
        if k is not None and str(k) not in out and v is not None:
            out[str(k)] = str(v)
    return out


def read_layer(path: Path, name: str, target_crs: str) -> LayerTable:
    """Read one feature table as a :class:`LayerTable`, reprojected to ``target_crs`` if needed."""
    pyogrio = _pyogrio()
    try:
        meta, fids, wkb, fields = pyogrio.raw.read(str(path), layer=name, return_fids=True)
    except Exception as exc:
        raise DataError(f"{path}: cannot read layer {name!r}: {exc}") from None
    if wkb is None:
        raise DataError(f"{path}: layer {name!r} has no geometry column")
    geoms = shapely.from_wkb(wkb)
    stored = meta.get("crs")
    if stored is not None and ("Undefined geographic SRS" in stored or "Undefined Cartesian SRS" in stored):
        stored = None  # GPKG srs_id 0 / -1: GDAL's placeholders for "no spatial reference"
    if stored is None:
        # contract §1.2: geopandas refuses to reproject naive geometries, so nuPlan cannot read this layer.
        raise DataError(f"{path}: layer {name!r} has no spatial reference (CRS)")
    try:
        if len(geoms) and not _same_crs(stored, target_crs):
            geoms = _reproject(geoms, stored, target_crs)
    except Exception as exc:  # pyproj.exceptions.CRSError / ProjError
        raise DataError(f"{path}: cannot reproject layer {name!r} to {target_crs!r}: {exc}") from None
    columns = {str(n): np.asarray(v) for n, v in zip(meta["fields"], fields, strict=True)}
    if fids is None:
        raise DataError(f"{path}: layer {name!r} returned no feature ids")
    return LayerTable(name, fids, geoms, columns, crs=target_crs, source=str(path), stored_crs=stored)


# ---------------------------------------------------------------------------------------------------------
# the map


class GPKGMap:
    """One location's vector map, read lazily from ``<root>/<location>/<version>/map.gpkg``.

    Implements :class:`planlab.maps.api.MapAPI`. Thread-safe; immutable once read, so one instance is
    shared by every scene of the location (see :func:`load_map`).
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        location: str | None = None,
        version: str | None = None,
        *,
        tables: dict[str, LayerTable] | None = None,
        crs: str | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, int], MapObject] = {}
        self._derived: dict[Any, Any] = {}
        if path is None:
            # In-memory map (GPKGMap.from_tables): every table given, nothing read from disk.
            if tables is None or crs is None:
                raise ValueError("an in-memory map needs tables and crs")
            self._path: Path | None = None
            self._tables = dict(tables)
            self._available = {name: None for name in tables}
            self._meta = {"projectedCoordSystem": crs}
            self._location = location or "memory"
            self._version = version or "memory"
            return
        self._path = Path(path)
        self._available = _list_layers(self._path)
        if L.META not in self._available:
            raise DataError(f"{self._path}: layer 'meta' is missing")
        self._meta = read_meta(self._path)
        if "projectedCoordSystem" not in self._meta:
            raise DataError(f"{self._path}: layer 'meta' has no 'projectedCoordSystem' row")
        self._tables = {}
        parts = self._path.resolve().parts
        self._location = location or (parts[-3] if len(parts) >= 3 else "unknown")
        self._version = version or (parts[-2] if len(parts) >= 2 else "unknown")

    @classmethod
    def from_tables(
        cls, tables: dict[str, LayerTable], crs: str, location: str = "memory", version: str = "memory"
    ) -> GPKGMap:
        """A map over in-memory tables (e.g. a ``MapData`` before it is written)."""
        return cls(None, location, version, tables=tables, crs=crs)

    @classmethod
    def from_map_data(
        cls, data: Any, crs: str = "epsg:32617", location: str = "memory", version: str = "memory"
    ) -> GPKGMap:
        """The map a :class:`planlab.maps.records.MapData` describes, without writing it (same dtypes)."""
        return cls.from_tables(data.to_tables(crs), crs, location, version)

    # ---- identity --------------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def map_name(self) -> str:
        return self._location

    @property
    def location(self) -> str:
        return self._location

    @property
    def version(self) -> str:
        return self._version

    @property
    def crs(self) -> str:
        return self._meta["projectedCoordSystem"]

    @property
    def meta(self) -> dict[str, str]:
        """The ``meta`` table as a dict (``projectedCoordSystem``, ``geographicCoordSystem``, …)."""
        return dict(self._meta)

    def __repr__(self) -> str:
        where = self._path if self._path is not None else "memory"
        return f"GPKGMap({self._location!r}, version={self._version!r}, path={str(where)!r})"

    def __reduce__(self) -> Any:
        if self._path is not None:
            # Re-open from disk in the receiving process (shares that process's cache).
            return (open_map, (str(self._path), self._location, self._version))
        tables = {name: self.table(name) for name in self._available}
        return (GPKGMap.from_tables, (tables, self.crs, self._location, self._version))

    # ---- layers ----------------------------------------------------------------------------------------
    def layer_names(self) -> list[str]:
        """Every table in the file (including ``meta``)."""
        return list(self._available)

    def has_layer(self, name: str) -> bool:
        return name in self._available

    def table(self, name: str) -> LayerTable:
        """The table ``name``, read on first use (DataError naming file and layer when it is missing)."""
        table = self._tables.get(name)
        if table is not None:
            return table
        with self._lock:
            table = self._tables.get(name)
            if table is not None:
                return table
            if name not in self._available or self._path is None:
                where = self._path if self._path is not None else "in-memory map"
                raise DataError(f"{where}: layer {name!r} is missing")
            table = read_layer(self._path, name, self.crs)
            self._tables[name] = table
            return table

    def load_all_layers(self) -> None:
        """Read every feature table now (nuPlan's ``initialize_all_layers``)."""
        for name in self._available:
            if name != L.META:
                self.table(name)

    def _cached(self, key: Any, build: Any) -> Any:
        value = self._derived.get(key)
        if value is None:
            with self._lock:
                value = self._derived.get(key)
                if value is None:
                    value = build()
                    self._derived[key] = value
        return value

    def object_at(self, table_name: str, row: int) -> Any:
        """The (cached) map object of ``row`` in ``table_name``."""
        key = (table_name, row)
        obj = self._objects.get(key)
        if obj is None:
            with self._lock:
                obj = self._objects.get(key)
                if obj is None:
                    cls = OBJECT_CLASSES[table_name]
                    obj = cls(self, row, table_name)
                    self._objects[key] = obj
        return obj

    # ---- single objects --------------------------------------------------------------------------------
    def get_map_object(self, object_id: str, layer: SemanticMapLayer) -> MapObject | None:
        """The object with id ``object_id`` in ``layer``, or None (contract §1.6).

        LANE: accepted only when the fid is in ``lanes_polygons.lane_fid`` (nuPlan checks that column,
        then fetches the row by fid). Non-canonical id strings ("042", "42.0") match nothing.
        """
        layer = SemanticMapLayer(layer)
        if layer not in QUERYABLE_LAYERS:
            raise ValueError(f"get_map_object does not support layer {layer.name}")
        name = table_of(layer)
        table = self.table(name)
        fid = parse_id(object_id)
        if fid is None:
            return None
        if layer == SemanticMapLayer.LANE and not table.rows_with("lane_fid", fid):
            return None
        row = table.row(fid)
        return None if row is None else self.object_at(name, row)

    def get_route_block(self, object_id: str) -> MapObject | None:
        """A route id as NAVSIM resolves it: first as a roadblock, then as a roadblock connector."""
        return self.get_map_object(object_id, SemanticMapLayer.ROADBLOCK) or self.get_map_object(
            object_id, SemanticMapLayer.ROADBLOCK_CONNECTOR
        )

    # ---- spatial queries -------------------------------------------------------------------------------
    def _query_table(self, layer: SemanticMapLayer) -> LayerTable:
        """Table whose stored geometry nuPlan tests in proximity / distance queries.

        contract §1.6: for LANE_CONNECTOR that is ``lane_connectors`` (its LineStrings), not the polygons.
        """
        if layer == SemanticMapLayer.DRIVABLE_AREA:
            return self._drivable_area_table()
        return self.table(table_of(layer))

    def _drivable_area_table(self) -> LayerTable:
        def build() -> LayerTable:
            parts = [self.table(n) for n in L.DRIVABLE_AREA_LAYERS if self.has_layer(n)]
            return concat_tables("drivable_area", parts, self.crs)

        return self._cached("drivable_area", build)

    def get_proximal_map_objects(
        self, point: Any, radius: float, layers: list[SemanticMapLayer]
    ) -> dict[SemanticMapLayer, list[MapObject]]:
        """Objects whose stored geometry intersects the square of half-side ``radius`` around ``point``.

        contract §1.6: an axis-aligned square (not a circle), predicate ``intersects``, table order.
        """
        x, y = as_xy(point)
        patch = shapely.box(x - radius, y - radius, x + radius, y + radius)
        out: dict[SemanticMapLayer, list[MapObject]] = {}
        for layer in layers:
            layer = SemanticMapLayer(layer)
            if layer not in QUERYABLE_LAYERS:
                raise ValueError(f"get_proximal_map_objects does not support layer {layer.name}")
            name = table_of(layer)
            table = self.table(name)
            rows = table.query(patch, predicate="intersects")
            if layer == SemanticMapLayer.LANE:
                # nuPlan builds each object with get_map_object, which requires fid in lane_fid.
                lane_fids, valid = table.int_column("lane_fid")
                rows = rows[np.isin(table.fids[rows], lane_fids[valid])]
            out[layer] = [self.object_at(name, int(r)) for r in rows]
        return out

    def get_distance_to_nearest_map_object(
        self, point: Any, layer: SemanticMapLayer
    ) -> tuple[str | None, float]:
        """(id, distance [m]) of the object of ``layer`` nearest to ``point`` (0 inside a polygon).

        Ties go to the first row in table order. nuPlan raises on an empty layer; planlab returns
        (None, inf) so callers can take the minimum over several layers.
        """
        layer = SemanticMapLayer(layer)
        table = self._query_table(layer)
        if len(table) == 0:
            return None, math.inf
        rows, dist = table.tree.query_nearest(Point(*as_xy(point)), return_distance=True, all_matches=True)
        best = int(np.min(rows))
        return table.ids[best], float(dist[0])

    def _polygon_table(self, layer: SemanticMapLayer) -> tuple[LayerTable, np.ndarray | None]:
        """(table of polygons, optional row mask) that ``is_in_layer`` / ``get_all_map_objects`` test."""
        if layer == SemanticMapLayer.LANE_CONNECTOR:
            return self.table(L.LANE_CONNECTOR_POLYGONS), None
        if layer == SemanticMapLayer.TURN_STOP:
            stops = self.table(L.STOP_POLYGONS)
            kinds, valid = stops.int_column("stop_polygon_type_fid")
            return stops, valid & (kinds == int(StopLineType.TURN_STOP))
        return self._query_table(layer), None

    def _containing_rows(
        self, xy: tuple[float, float], layer: SemanticMapLayer
    ) -> tuple[LayerTable, np.ndarray]:
        table, mask = self._polygon_table(layer)
        rows = table.query(Point(*xy), predicate="within")  # point within polygon == polygon contains point
        if mask is not None:
            rows = rows[mask[rows]]
        return table, rows

    def is_in_layer(self, point: Any, layer: SemanticMapLayer) -> bool:
        """True when some polygon of ``layer`` contains the point (a boundary point is outside).

        TURN_STOP tests ``stop_polygons`` of type 3; DRIVABLE_AREA the virtual union table. Deviation:
        LANE_CONNECTOR tests the connector polygons (nuPlan tests the ``lane_connectors`` lines, which
        never contain a point; NAVSIM never calls it).
        """
        _, rows = self._containing_rows(as_xy(point), SemanticMapLayer(layer))
        return len(rows) > 0

    def points_in_layer(self, points: np.ndarray, layer: SemanticMapLayer) -> np.ndarray:
        """Vectorised :meth:`is_in_layer` for ``points (..., 2)``; returns bool ``(...)``."""
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.reshape(-1, 2)
        table, mask = self._polygon_table(SemanticMapLayer(layer))
        out = np.zeros(len(flat), dtype=bool)
        if len(table) and len(flat):
            geoms = shapely.points(flat)
            pidx, rows = table.tree.query(geoms, predicate="within")
            if mask is not None:
                keep = mask[rows]
                pidx = pidx[keep]
            out[pidx] = True
        return out.reshape(pts.shape[:-1])

    def get_all_map_objects(self, point: Any, layer: SemanticMapLayer) -> list[MapObject]:
        """Objects of ``layer`` whose polygon contains the point, in table order.

        contract §1.6: LANE_CONNECTOR uses the ``gen_lane_connectors_scaled_width_polygons`` rows.
        """
        layer = SemanticMapLayer(layer)
        if layer == SemanticMapLayer.DRIVABLE_AREA:
            raise ValueError("get_all_map_objects does not support the virtual DRIVABLE_AREA layer")
        table, rows = self._containing_rows(as_xy(point), layer)
        if layer == SemanticMapLayer.LANE_CONNECTOR:
            ids = [table.fk_id("lane_connector_fid", int(r)) for r in rows]
            objs = [self.get_map_object(i, layer) for i in ids if i is not None]
            return [o for o in objs if o is not None]
        name = table_of(layer)
        return [self.object_at(name, int(r)) for r in rows]

    def get_one_map_object(self, point: Any, layer: SemanticMapLayer) -> MapObject | None:
        """The one object containing the point; None if none; DataError when several overlap there."""
        objs = self.get_all_map_objects(point, layer)
        if len(objs) > 1:
            x, y = as_xy(point)
            raise DataError(
                f"{self._path or 'map'}: {len(objs)} {SemanticMapLayer(layer).name} objects contain "
                f"({x:.3f}, {y:.3f}): {[o.id for o in objs]}"
            )
        return objs[0] if objs else None

    # ---- whole layers ----------------------------------------------------------------------------------
    def layer_polygons(self, layer: SemanticMapLayer) -> tuple[list[str], np.ndarray]:
        """(ids, geometries) of every object of ``layer``, aligned, table order; cached.

        LANE_CONNECTOR: connector ids with their generated polygons (in polygon-table order). DRIVABLE_AREA:
        the virtual union table (road segments, intersections, generic drivable areas, car parks).
        """
        layer = SemanticMapLayer(layer)

        def build() -> tuple[list[str], np.ndarray]:
            if layer == SemanticMapLayer.LANE_CONNECTOR:
                polys = self.table(L.LANE_CONNECTOR_POLYGONS)
                values, valid = polys.int_column("lane_connector_fid")
                rows = np.flatnonzero(valid)
                return [str(int(values[r])) for r in rows], polys.geometries[rows]
            table, mask = self._polygon_table(layer)
            if mask is not None:
                rows = np.flatnonzero(mask)
                return [table.ids[r] for r in rows], table.geometries[rows]
            return list(table.ids), table.geometries

        return self._cached(("layer_polygons", layer), build)

    def layer_ids(self, layer: SemanticMapLayer) -> list[str]:
        """Ids of every object of ``layer`` in table order."""
        return list(self._query_table(SemanticMapLayer(layer)).ids)

    def get_all_objects(self, layer: SemanticMapLayer) -> list[MapObject]:
        """Every object of ``layer`` in table order."""
        layer = SemanticMapLayer(layer)
        name = table_of(layer)
        return [self.object_at(name, r) for r in range(len(self.table(name)))]

    @property
    def lane_graph(self) -> LaneGraph:
        """The lane / roadblock graph as dicts of ids (built once)."""
        return self._cached(
            "lane_graph",
            lambda: build_lane_graph(
                self.table(L.LANES),
                self.table(L.LANE_CONNECTORS),
                self.table(L.LANE_GROUPS),
                self.table(L.LANE_GROUP_CONNECTORS),
                self.table(L.BASELINE_PATHS),
            ),
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) over the lane groups, intersections and car parks."""
        boxes = [
            self.table(n).bounds
            for n in (L.LANE_GROUPS, L.INTERSECTIONS, L.CARPARK_AREAS)
            if self.has_layer(n)
        ]
        b = np.concatenate([x for x in boxes if len(x)]) if any(len(x) for x in boxes) else np.zeros((1, 4))
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


# ---------------------------------------------------------------------------------------------------------
# maps root, index JSON and the process-wide cache


def resolve_maps_root(maps_root: str | os.PathLike | None) -> Path:
    """``maps_root`` or ``$NUPLAN_MAPS_ROOT``; DataError when neither names an existing directory."""
    if maps_root is None:
        env = os.environ.get(MAPS_ROOT_ENV)
        if not env:
            raise DataError(f"no maps root given and {MAPS_ROOT_ENV} is not set")
        maps_root = env
    root = Path(maps_root).expanduser()
    if not root.is_dir():
        raise DataError(f"maps root is not a directory: {root}")
    return root


def read_maps_index(maps_root: str | os.PathLike | None) -> dict[str, str]:
    """{location: version} from ``<root>/nuplan-maps-v1.0.json`` (contract §1.1)."""
    root = resolve_maps_root(maps_root)
    path = root / MAP_INDEX_FILE
    if not path.is_file():
        raise DataError(f"map index not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot parse map index {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(f"map index {path}: expected a JSON object keyed by location")
    out: dict[str, str] = {}
    for location, entry in data.items():
        if not isinstance(entry, dict) or "version" not in entry:
            raise DataError(f"map index {path}: location {location!r} has no 'version'")
        out[str(location)] = str(entry["version"])
    return out


def map_path(maps_root: str | os.PathLike | None, location: str, version: str | None = None) -> Path:
    """``<root>/<location>/<version>/map.gpkg``, the version read from the index when not given."""
    root = resolve_maps_root(maps_root)
    if not _SAFE_COMPONENT.fullmatch(location):
        raise DataError(f"map location {location!r} is not a safe directory name")
    if version is None:
        index = read_maps_index(root)
        if location not in index:
            raise DataError(
                f"location {location!r} is not in {root / MAP_INDEX_FILE} (has: {', '.join(sorted(index))})"
            )
        version = index[location]
    if not _SAFE_COMPONENT.fullmatch(version) or version in (".", ".."):
        raise DataError(f"map version {version!r} for {location!r} is not a safe directory name")
    return root / location / version / MAP_FILE_NAME


_CACHE: dict[tuple[Any, ...], GPKGMap] = {}
_CACHE_LOCK = threading.Lock()


def open_map(path: str | os.PathLike, location: str | None = None, version: str | None = None) -> GPKGMap:
    """A :class:`GPKGMap` for ``path``, shared per process while the file is unchanged."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise DataError(f"map file not found: {path}") from None
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, location, version)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    gmap = GPKGMap(path, location, version)
    with _CACHE_LOCK:
        return _CACHE.setdefault(key, gmap)


def load_map(maps_root: str | os.PathLike | None, location: str, version: str | None = None) -> GPKGMap:
    """The map of ``location`` under ``maps_root`` (default ``$NUPLAN_MAPS_ROOT``), cached per process.

    The version comes from ``nuplan-maps-v1.0.json`` unless given.
    """
    path = map_path(maps_root, location, version)
    if not path.is_file():
        raise DataError(f"map file for location {location!r} not found: {path}")
    return open_map(path, location, path.parent.name)


def clear_map_cache() -> None:
    """Forget every cached map (tests; long-running processes after maps were rewritten)."""
    with _CACHE_LOCK:
        _CACHE.clear()
