"""Writer for nuPlan-layout maps: ``write_map`` (one GeoPackage, atomically) and the maps-root index.

Written with GDAL through ``pyogrio.raw.write`` so the GeoPackage bookkeeping is GDAL's own (contract
§1.3): every record's ``fid`` becomes the table's INTEGER PRIMARY KEY, ``meta`` is an attribute table,
every feature table carries the meta CRS. A maps root that the real nuPlan devkit accepts also needs the
index JSON listing all four locations and a map file at each (P2, P3): see :func:`finalize_maps_root`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import shapely

from planlab.atomic import atomic_path, atomic_write_text
from planlab.errors import ConfigError, DataError
from planlab.maps import layers as L
from planlab.maps.gpkg import _SAFE_COMPONENT, read_maps_index
from planlab.maps.layers import (
    DEFAULT_MAP_VERSIONS,
    MAP_FILE_NAME,
    MAP_INDEX_FILE,
    MAP_LOCATIONS,
    MAPLOCKS_DIR,
    NON_EMPTY_LAYERS,
    StopLineType,
)
from planlab.maps.records import RECORD_TYPES, MapData, Record, check_records, derived_columns, layer_arrays

# Placeholder features of otherwise empty tables sit this far [m] beyond the map's bounding box, so no
# 100 m query square around an ego on the road ever reaches them (contract P9).
PLACEHOLDER_OFFSET_M = 1000.0


def _check_location_version(location: str, version: str) -> None:
    if location not in MAP_LOCATIONS:
        raise ConfigError(
            f"map location {location!r} is not one of nuPlan's: {', '.join(MAP_LOCATIONS)} (P16)"
        )
    if not _SAFE_COMPONENT.fullmatch(version) or version in (".", ".."):
        raise ConfigError(
            f"map version {version!r} is not a safe directory name ([A-Za-z0-9][A-Za-z0-9._-]*)"
        )


def check_crs(crs: str) -> str:
    """``crs`` unchanged if pyproj reads it as a projected CRS in metres; ConfigError otherwise."""
    import pyproj

    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise ConfigError(f"map CRS {crs!r} is not a valid CRS: {exc}") from None
    if not parsed.is_projected:
        raise ConfigError(f"map CRS {crs!r} is not projected (nuPlan maps use a UTM zone in metres, P4)")
    return crs


def _placeholder_geometry(geometry_type: str, anchor: tuple[float, float]) -> Any:
    x, y = anchor
    if geometry_type == "Polygon":
        return shapely.box(x, y, x + 1.0, y + 1.0)
    if geometry_type == "LineString":
        return shapely.LineString([(x, y), (x + 1.0, y)])
    return shapely.Point(x, y)


def with_placeholders(data: MapData) -> MapData:
    """A copy of ``data`` where each empty optional table holds one 1 m feature far from every road.

    contract P9: a harmless feature per layer, more than 100 m from any driving area. Its fid follows the
    largest fid of the map, keeping fids globally unique.
    """
    tables = data.tables()
    geoms = [r.geometry for recs in tables.values() for r in recs]
    if not geoms:
        raise DataError("cannot write an empty map")
    xmin, ymin, _, _ = shapely.total_bounds(np.array(geoms, dtype=object))
    anchor = (float(xmin) - PLACEHOLDER_OFFSET_M, float(ymin) - PLACEHOLDER_OFFSET_M)
    out = dataclasses.replace(data, **{k: list(v) for k, v in vars(data).items() if isinstance(v, list)})
    next_fid = data.max_fid() + 1
    for table, records in tables.items():
        if records or table in NON_EMPTY_LAYERS:
            continue
        cls = RECORD_TYPES[table]
        extra: dict[str, Any] = {}
        if table == L.STOP_POLYGONS:
            extra["stop_polygon_type_fid"] = int(StopLineType.UNKNOWN)
        out.add(cls(fid=next_fid, geometry=_placeholder_geometry(cls.geometry_type, anchor), **extra))
        next_fid += 1
    return out


def _write_layer(path: Path, table: str, records: list[Record], crs: str, fills: Any) -> None:
    import pyogrio.raw

    cls = RECORD_TYPES[table]
    arrays = layer_arrays(table, records, fills)
    names = list(arrays)
    wkb = shapely.to_wkb(np.array([shapely.force_2d(r.geometry) for r in records], dtype=object))
    pyogrio.raw.write(
        str(path),
        np.asarray(wkb, dtype=object),
        [arrays[n][0] for n in names],
        names,
        field_mask=[arrays[n][1] for n in names],
        layer=table,
        driver="GPKG",
        geometry_type=cls.geometry_type,
        crs=crs,
        # No R-tree: readers load whole layers (nuPlan and planlab alike), files stay small, writes are
        # faster, and the tables stay editable with plain SQLite (GDAL's R-tree triggers need SpatiaLite
        # functions that a bare sqlite3 connection lacks).
        layer_options={"SPATIAL_INDEX": "NO"},
    )


def _write_meta(path: Path, rows: dict[str, str]) -> None:
    import pyogrio.raw

    keys = np.array(list(rows), dtype=object)
    values = np.array(list(rows.values()), dtype=object)
    # No geometry: GDAL registers the table as 'attributes' in gpkg_contents (contract §1.2, P4).
    pyogrio.raw.write(str(path), None, [keys, values], ["key", "value"], layer=L.META, driver="GPKG")


def _verify_written(path: Path, tables: dict[str, list[Record]]) -> None:
    """Read back every table: ``fid`` must be the INTEGER PRIMARY KEY and hold the given fids."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        for table, records in tables.items():
            pk = [(row[1], row[2]) for row in con.execute(f'PRAGMA table_info("{table}")') if row[5] == 1]
            if pk != [("fid", "INTEGER")]:
                raise DataError(f"{path}: layer {table!r} has primary key {pk}, expected fid INTEGER")
            fids = [row[0] for row in con.execute(f'SELECT fid FROM "{table}" ORDER BY fid')]
            if fids != [int(r.fid) for r in records]:
                raise DataError(f"{path}: layer {table!r} was not written with the given fids as primary key")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


PINNED_GDAL_DATE = "2024-01-01T00:00:00Z"


@contextlib.contextmanager
def pinned_gdal_date(value: str = PINNED_GDAL_DATE) -> Iterator[None]:
    """Make GDAL write ``value`` wherever it would stamp the current time (``OGR_CURRENT_DATE``).

    Also turns off SQLite's per-transaction fsync while a map is written (``OGR_SQLITE_SYNCHRONOUS``):
    :func:`write_map` writes to a temporary file, fsyncs it once and renames it, so durability is
    unchanged and writing is about three times faster. Previous settings are restored on exit.
    """
    import pyogrio

    options = {"OGR_CURRENT_DATE": value, "OGR_SQLITE_SYNCHRONOUS": "OFF"}
    previous = {k: pyogrio.get_gdal_config_option(k) for k in options}
    old_env = os.environ.get("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options(options)
    os.environ["OGR_CURRENT_DATE"] = value
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(previous)
        if old_env is None:
            os.environ.pop("OGR_CURRENT_DATE", None)
        else:
            os.environ["OGR_CURRENT_DATE"] = old_env


def write_map(
    data: MapData,
    maps_root: str | os.PathLike,
    location: str,
    version: str | None = None,
    crs: str = "epsg:32617",
    *,
    empty_layers: Literal["placeholder", "empty"] = "placeholder",
    validate: bool = True,
    gdal_date: str = PINNED_GDAL_DATE,
) -> Path:
    """Write ``data`` to ``<maps_root>/<location>/<version>/map.gpkg`` atomically; return the path.

    GDAL stamps ``gdal_date`` where it would write the current time (``gpkg_contents.last_change``), so the
    same data always gives byte-identical files.

    All 16 real tables are written. Empty optional tables get one far-away placeholder feature
    (``empty_layers="placeholder"``, contract P9) or stay with 0 rows (``"empty"``). With ``validate``
    the map is checked by :func:`planlab.maps.validate.validate_map` first and any error-level issue
    aborts the write (DataError naming the first issues); nothing is written then.
    """
    version = version or DEFAULT_MAP_VERSIONS.get(location, "")
    _check_location_version(location, version)
    check_crs(crs)
    check_records(data)
    for table, records in data.tables().items():
        if table in NON_EMPTY_LAYERS and not records:
            raise DataError(f"map for {location}: table {table!r} must not be empty (contract P9)")
    if empty_layers == "placeholder":
        data = with_placeholders(data)
    elif empty_layers != "empty":
        raise ConfigError(f"empty_layers must be 'placeholder' or 'empty', got {empty_layers!r}")
    meta = {"projectedCoordSystem": crs, "geographicCoordSystem": "epsg:4326"}
    for key, value in data.meta.items():
        if key in meta and value != meta[key]:
            raise DataError(f"map meta {key!r} = {value!r} contradicts the CRS argument {meta[key]!r}")
        meta[str(key)] = str(value)
    if validate:
        from planlab.maps.validate import validate_map

        errors = [i for i in validate_map(data, crs=crs) if i.severity == "error"]
        if errors:
            shown = "; ".join(str(i) for i in errors[:3])
            raise DataError(f"map for {location} has {len(errors)} error(s), not written: {shown}")

    path = Path(maps_root) / location / version / MAP_FILE_NAME
    tables = data.tables()
    fills = derived_columns(data)
    with atomic_path(path) as tmp, pinned_gdal_date(gdal_date):
        tmp.unlink()  # GDAL must create the file itself (an empty file is not a GeoPackage)
        try:
            for table in L.GPKG_LAYERS:
                _write_layer(tmp, table, tables[table], crs, fills.get(table))
            _write_meta(tmp, meta)
            _verify_written(tmp, tables)
            _fsync(tmp)
        except DataError:
            raise
        except Exception as exc:  # GDAL errors surface as pyogrio exceptions
            raise DataError(f"cannot write map {path}: {exc}") from None
        finally:
            for suffix in ("-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(tmp) + suffix).unlink()
    return path


# ---------------------------------------------------------------------------------------------------------
# maps root: index JSON, .maplocks, one map file per location


def _versions_on_disk(root: Path) -> dict[str, str]:
    """{location: version} for locations with exactly one ``<version>/map.gpkg`` under the root."""
    out: dict[str, str] = {}
    for location in MAP_LOCATIONS:
        found = sorted(p.parent.name for p in (root / location).glob(f"*/{MAP_FILE_NAME}"))
        if len(found) == 1:
            out[location] = found[0]
    return out


def write_maps_index(maps_root: str | os.PathLike, versions: dict[str, str] | None = None) -> Path:
    """Write ``nuplan-maps-v1.0.json`` for all four locations and create ``.maplocks`` (P2, P3).

    Versions, later winning: the real nuPlan versions, the entries of an existing index, ``versions``.
    """
    root = Path(maps_root)
    root.mkdir(parents=True, exist_ok=True)
    merged = dict(DEFAULT_MAP_VERSIONS)
    if (root / MAP_INDEX_FILE).is_file():
        with contextlib.suppress(DataError):
            merged.update({k: v for k, v in read_maps_index(root).items() if k in MAP_LOCATIONS})
    for location, version in (versions or {}).items():
        _check_location_version(location, version)
        merged[location] = version
    index = {location: {"version": merged[location]} for location in MAP_LOCATIONS}
    path = root / MAP_INDEX_FILE
    atomic_write_text(path, json.dumps(index, indent=1) + "\n")
    (root / MAPLOCKS_DIR).mkdir(exist_ok=True)
    return path


def fill_missing_locations(maps_root: str | os.PathLike, source_location: str | None = None) -> list[Path]:
    """Give every location of the index a map file: a hard link (or copy) of ``source_location``'s map.

    contract §1.1 / P2: nuPlan's maps DB opens all four maps. Returns the paths created.
    """
    root = Path(maps_root)
    index = read_maps_index(root)
    paths = {loc: root / loc / index[loc] / MAP_FILE_NAME for loc in MAP_LOCATIONS if loc in index}
    existing = [loc for loc, p in paths.items() if p.is_file()]
    if source_location is None:
        if not existing:
            raise DataError(f"no location under {root} has a map to copy")
        source_location = existing[0]
    if source_location not in existing:
        raise DataError(f"no map for source location {source_location!r} under {root}")
    src = paths[source_location]
    created = []
    for dst in paths.values():
        if dst.is_file():
            continue
        with atomic_path(dst) as tmp:
            tmp.unlink()
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copy2(src, tmp)
        created.append(dst)
    return created


def finalize_maps_root(
    maps_root: str | os.PathLike, versions: dict[str, str] | None = None, source_location: str | None = None
) -> Path:
    """Index (versions found on disk, then ``versions``), ``.maplocks`` and a map at every location."""
    root = Path(maps_root)
    found = _versions_on_disk(root)
    found.update(versions or {})
    path = write_maps_index(root, found)
    fill_missing_locations(root, source_location)
    return path
