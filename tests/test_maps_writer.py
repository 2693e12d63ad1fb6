"""Writer round trip: a hand-built map written with ``write_map`` and read back by planlab and by plain pyogrio."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely

from planlab.errors import ConfigError, DataError
from planlab.maps import (
    GPKG_LAYERS,
    MAP_LOCATIONS,
    GPKGMap,
    SemanticMapLayer,
    clear_map_cache,
    load_map,
    open_map,
    read_maps_index,
)
from planlab.maps import layers as L
from planlab.maps import writer as W
from planlab.maps.examples import small_junction
from planlab.maps.records import (
    LaneConnectorRecord,
    LaneGroupRecord,
    LaneRecord,
    MapData,
    StopPolygonRecord,
    column_kinds,
)
from planlab.maps.validate import validate_map

S = SemanticMapLayer
LOCATION = "us-pa-pittsburgh-hazelwood"
VERSION = "9.17.1937"
ORIGIN = (587000.0, 4474000.0)

# Column dtypes pyogrio reports from the layer schema (read_info), per table, for the example map.
EXPECTED_COLUMNS = {
    L.LANE_GROUPS: {"left_boundary_fid": "int64", "right_boundary_fid": "int64"},
    L.LANES: {
        "lane_fid": "int64", "lane_group_fid": "int64", "lane_index": "int64", "speed_limit_mps": "float64",
        "left_boundary_fid": "int64", "right_boundary_fid": "int64", "lane_type_fid": "int64", "width": "float64",
    },
    L.LANE_GROUP_CONNECTORS: {"from_lane_group_fid": "int64", "to_lane_group_fid": "int64", "intersection_fid": "int64"},
    L.LANE_CONNECTORS: {
        "exit_lane_fid": "int64", "entry_lane_fid": "int64", "lane_group_connector_fid": "int64",
        "exit_lane_group_fid": "int64", "entry_lane_group_fid": "int64", "intersection_fid": "int64",
        "speed_limit_mps": "float64", "traffic_light_stop_line_fids": "object",
    },
    L.LANE_CONNECTOR_POLYGONS: {
        "lane_connector_fid": "int64", "left_boundary_fid": "int64", "right_boundary_fid": "int64",
        "baseline_path_fid": "int64",
    },
    L.BASELINE_PATHS: {"lane_fid": "int64", "lane_connector_fid": "int64", "path_type_fid": "int64"},
    L.BOUNDARIES: {"boundary_type_fid": "int64"},
    L.INTERSECTIONS: {"intersection_type_fid": "int64"},
    L.STOP_POLYGONS: {"stop_polygon_type_fid": "int64", "lane_fid": "int64", "lane_connector_fid": "int64"},
    L.CROSSWALKS: {"intersection_fids": "object"},
    L.WALKWAYS: {},
    L.CARPARK_AREAS: {},
    L.GENERIC_DRIVABLE_AREAS: {},
    L.ROAD_SEGMENTS: {"lane_group_fids": "object"},
    L.TRAFFIC_LIGHTS: {"lane_connector_fid": "int64"},
    L.DUBINS_NODES: {},
}  # fmt: skip


@pytest.fixture
def written(tmp_path) -> tuple[Path, MapData]:
    clear_map_cache()
    data = small_junction(ORIGIN)
    path = W.write_map(data, tmp_path / "maps", LOCATION, VERSION)
    return path, data


def test_layers_columns_fids_crs_with_plain_pyogrio(written):
    path, data = written
    assert path == path.parents[2] / LOCATION / VERSION / "map.gpkg"
    listed = dict(pyogrio.list_layers(str(path)))
    assert set(listed) == set(GPKG_LAYERS) | {"meta"}
    assert listed["meta"] is None
    assert listed[L.LANE_CONNECTORS] == "LineString" and listed[L.LANES] == "Polygon"
    tables = data.tables()
    for name in GPKG_LAYERS:
        info = pyogrio.read_info(str(path), layer=name)
        assert info["fid_column"] == "fid"
        assert info["crs"] == "EPSG:32617"
        assert dict(zip(info["fields"], info["dtypes"], strict=True)) == EXPECTED_COLUMNS[name], name
        meta, fids, wkb, _ = pyogrio.raw.read(str(path), layer=name, return_fids=True)
        if tables[name]:
            assert fids.tolist() == sorted(r.fid for r in tables[name])
            geoms = shapely.from_wkb(wkb)
            for r, g in zip(tables[name], geoms, strict=True):
                assert shapely.equals_exact(g, r.geometry, tolerance=0.0), (name, r.fid)
    # FK columns: int64 with no null where the contract needs it.
    _, fids, _, fields = pyogrio.raw.read(
        str(path), layer=L.LANE_CONNECTORS, read_geometry=False, return_fids=True
    )
    cols = dict(zip(pyogrio.read_info(str(path), layer=L.LANE_CONNECTORS)["fields"], fields, strict=True))
    for col in ("exit_lane_fid", "entry_lane_fid", "lane_group_connector_fid"):
        assert cols[col].dtype == np.int64
    assert cols["exit_lane_fid"].tolist() == [2001, 2002, 2002]
    assert cols["entry_lane_fid"].tolist() == [2003, 2004, 2005]
    assert cols["exit_lane_group_fid"].tolist() == [1001, 1001, 1001]  # derived from the lanes
    assert cols["intersection_fid"].tolist() == [5001, 5001, 5001]  # derived from the parent
    assert list(cols["traffic_light_stop_line_fids"]) == ["6001", "6002", "6002"]
    _, _, _, lane_fields = pyogrio.raw.read(str(path), layer=L.LANES, read_geometry=False, return_fids=True)
    lanes = dict(zip(pyogrio.read_info(str(path), layer=L.LANES)["fields"], lane_fields, strict=True))
    assert lanes["lane_fid"].tolist() == [2001, 2002, 2003, 2004, 2005]  # == fid (P6)
    assert np.isnan(lanes["speed_limit_mps"][4])


def test_meta_table_and_gpkg_bookkeeping(written):
    path, _ = written
    _, _, _, (keys, values) = pyogrio.raw.read(str(path), layer="meta")
    meta = dict(zip(keys, values, strict=True))
    assert meta["projectedCoordSystem"] == "epsg:32617"
    assert meta["geographicCoordSystem"] == "epsg:4326"
    assert meta["version"] == "planlab-example-1"
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        kinds = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        assert kinds["meta"] == "attributes"
        assert all(kinds[n] == "features" for n in GPKG_LAYERS)
        srs = dict(con.execute("SELECT table_name, srs_id FROM gpkg_geometry_columns").fetchall())
        assert set(srs.values()) == {32617}
        pk = [r for r in con.execute("PRAGMA table_info(lane_connectors)").fetchall() if r[5] == 1]
        assert [(r[1], r[2]) for r in pk] == [("fid", "INTEGER")]


def test_round_trip_through_reader(written):
    path, data = written
    W.finalize_maps_root(path.parents[2])
    m = load_map(path.parents[2], LOCATION)
    assert m.crs == "epsg:32617" and m.version == VERSION
    assert [lane.id for lane in m.get_map_object("1001", S.ROADBLOCK).interior_edges] == ["2001", "2002"]
    turn = m.get_map_object("4003", S.LANE_CONNECTOR)
    assert [e.id for e in turn.incoming_edges] == ["2002"] and [e.id for e in turn.outgoing_edges] == ["2005"]
    assert turn.parent.id == "3002" and turn.parent.intersection.id == "5001"
    assert turn.speed_limit_mps == 6.0 and turn.has_traffic_lights()
    assert m.get_map_object("2005", S.LANE).speed_limit_mps is None
    assert m.get_map_object("2005", S.LANE).baseline_path.length == pytest.approx(100.0)
    assert [b.id for b in m.get_map_object("1001", S.ROADBLOCK).outgoing_edges] == ["3001", "3002"]
    g = m.lane_graph
    assert g.successors["2002"] == ("4002", "4003") and g.successors["4003"] == ("2005",)
    # The same map in memory gives the same answers as the file.
    mem = GPKGMap.from_map_data(data, "epsg:32617")
    assert mem.lane_graph.successors == g.successors and mem.lane_graph.interior == g.interior
    for layer in (S.ROADBLOCK, S.LANE, S.LANE_CONNECTOR, S.INTERSECTION):
        ids_mem, polys_mem = mem.layer_polygons(layer)
        ids_disk, polys_disk = m.layer_polygons(layer)
        assert ids_mem == ids_disk
        assert all(a.equals_exact(b, 0.0) for a, b in zip(polys_mem, polys_disk, strict=True))
    assert validate_map(path) == []


def test_placeholders_are_far_from_the_road(written):
    path, data = written
    m = open_map(path)
    x0, y0, x1, y1 = m.bounds
    for name in (L.TRAFFIC_LIGHTS, L.DUBINS_NODES):
        t = m.table(name)
        assert len(t) == 1 and t.fids[0] > data.max_fid()
        bx0, by0, bx1, by1 = t.bounds[0]
        # Outside every 100 m square around any point of the drivable area (L-inf distance > 100 m).
        assert bx1 < x0 - 100 and by1 < y0 - 100
    assert m.get_proximal_map_objects((x0, y0), 100.0, [S.ROADBLOCK])[S.ROADBLOCK]


def test_zero_row_layers_load(tmp_path):
    data = small_junction(ORIGIN)
    data.crosswalks.clear()
    data.carpark_areas.clear()
    path = W.write_map(data, tmp_path, LOCATION, VERSION, empty_layers="empty")
    info = pyogrio.read_info(str(path), layer=L.CARPARK_AREAS)
    assert info["features"] == 0 and info["crs"] == "EPSG:32617" and info["geometry_type"] == "Polygon"
    m = open_map(path)
    assert len(m.table(L.TRAFFIC_LIGHTS)) == 0
    assert m.get_proximal_map_objects(m.bounds[:2], 100.0, [S.CARPARK_AREA, S.CROSSWALK]) == {
        S.CARPARK_AREA: [],
        S.CROSSWALK: [],
    }
    assert m.get_distance_to_nearest_map_object(m.bounds[:2], S.CARPARK_AREA) == (None, float("inf"))
    assert not m.is_in_layer(m.bounds[:2], S.CARPARK_AREA)
    assert validate_map(path) == []


def test_maps_index_and_all_four_locations(tmp_path):
    root = tmp_path / "maps"
    data = small_junction(ORIGIN)
    W.write_map(data, root, LOCATION, "planlab-1")
    index_path = W.finalize_maps_root(root)
    assert index_path == root / "nuplan-maps-v1.0.json"
    index = json.loads(index_path.read_text())
    assert set(index) == set(MAP_LOCATIONS)
    assert index[LOCATION] == {"version": "planlab-1"}  # found on disk
    assert index["us-ma-boston"] == {"version": "9.12.1817"}
    assert (root / ".maplocks").is_dir()
    for location, version in read_maps_index(root).items():
        p = root / location / version / "map.gpkg"
        assert p.is_file()
        assert p.stat().st_ino == (root / LOCATION / "planlab-1" / "map.gpkg").stat().st_ino  # hard link
        assert load_map(root, location).get_map_object("4003", S.LANE_CONNECTOR) is not None
    # Explicit versions win; finalising twice is idempotent.
    W.write_maps_index(root, {"sg-one-north": "9.17.1964"})
    assert read_maps_index(root)[LOCATION] == "planlab-1"
    assert W.fill_missing_locations(root) == []


def test_failed_write_keeps_the_old_map(written, monkeypatch):
    path, _ = written
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(W, "_write_meta", boom)
    data = small_junction((ORIGIN[0] + 500.0, ORIGIN[1]))
    with pytest.raises(DataError, match="cannot write map"):
        W.write_map(data, path.parents[2], LOCATION, VERSION)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["map.gpkg"]  # no temp file left


def test_record_schema_is_typed():
    kinds = dict(column_kinds(LaneRecord))
    assert kinds["fid"] == "int" and kinds["lane_group_fid"] == "int"
    assert kinds["speed_limit_mps"] == "float?" and kinds["left_boundary_fid"] == "int?"
    assert dict(column_kinds(LaneConnectorRecord))["traffic_light_stop_line_fids"] == "str"


def _replace(records: list, key: int, /, **changes) -> None:
    i = next(i for i, r in enumerate(records) if r.fid == key)
    records[i] = dataclasses.replace(records[i], **changes)


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda d: _replace(d.lanes, 2001, fid=0), DataError, "positive integer"),
        (lambda d: _replace(d.lanes, 2002, fid=2001), DataError, "duplicate fid 2001"),
        (lambda d: _replace(d.lanes, 2001, lane_group_fid=1001.0), DataError, "lane_group_fid must be an integer"),
        (lambda d: _replace(d.lanes, 2001, lane_group_fid=None), DataError, "lane_group_fid must be an integer"),
        (lambda d: _replace(d.lane_connectors, 4001, traffic_light_stop_line_fids=None), DataError, "must be a string"),
        (
            lambda d: _replace(d.lanes, 2001, geometry=shapely.MultiPolygon([d.lanes[0].geometry])),
            DataError,
            "must be a Polygon",
        ),
        (lambda d: _replace(d.lanes, 2001, geometry=shapely.Polygon()), DataError, "missing or empty"),
        (lambda d: d.lane_groups.append(LaneRecord(fid=9, geometry=shapely.box(0, 0, 1, 1), lane_group_fid=1, lane_index=0)),
         DataError, "expected LaneGroupRecord"),
        (lambda d: d.lane_group_connectors.clear(), DataError, "must not be empty"),
        (lambda d: _replace(d.lane_connectors, 4003, exit_lane_fid=2001), DataError, "not written"),
    ],
)  # fmt: skip
def test_bad_records_are_refused(tmp_path, mutate, error, match):
    data = small_junction(ORIGIN)
    mutate(data)
    with pytest.raises(error, match=match):
        W.write_map(data, tmp_path, LOCATION, VERSION)
    assert not (tmp_path / LOCATION).exists() or not any((tmp_path / LOCATION).rglob("*.gpkg"))


def test_bad_location_version_crs(tmp_path):
    data = small_junction(ORIGIN)
    with pytest.raises(ConfigError, match="not one of nuPlan's"):
        W.write_map(data, tmp_path, "springfield")
    with pytest.raises(ConfigError, match="safe directory name"):
        W.write_map(data, tmp_path, LOCATION, "../escape")
    with pytest.raises(ConfigError, match="not projected"):
        W.write_map(data, tmp_path, LOCATION, crs="epsg:4326")
    with pytest.raises(ConfigError, match="not a valid CRS"):
        W.write_map(data, tmp_path, LOCATION, crs="no-such-crs")
    data.meta["projectedCoordSystem"] = "epsg:32619"
    with pytest.raises(DataError, match="contradicts"):
        W.write_map(data, tmp_path, LOCATION)


def test_unvalidated_write_of_a_bad_map_is_possible(tmp_path):
    data = small_junction(ORIGIN)
    _replace(data.lane_connectors, 4003, exit_lane_fid=2001)
    path = W.write_map(data, tmp_path, LOCATION, VERSION, validate=False)
    assert any(i.rule == "P8" for i in validate_map(path))


def test_stop_polygon_placeholder_type(tmp_path):
    data = small_junction(ORIGIN)
    data.stop_polygons.clear()
    for conn in list(data.lane_connectors):
        _replace(data.lane_connectors, conn.fid, traffic_light_stop_line_fids="")
    full = W.with_placeholders(data)
    (stop,) = full.stop_polygons
    assert isinstance(stop, StopPolygonRecord) and stop.stop_polygon_type_fid == 5
    assert len(full.lane_groups) == len(data.lane_groups)  # required tables never get placeholders
    assert isinstance(full.lane_groups[0], LaneGroupRecord)


def test_reader_reprojects_a_layer_stored_in_another_crs(written, tmp_path):
    import pyproj

    path, data = written
    copy = tmp_path / "reproj" / LOCATION / VERSION / "map.gpkg"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(path.read_bytes())
    # Rewrite lane_groups_polygons in WGS84 lon/lat (as third-party notes say some real maps store them).
    to_ll = pyproj.Transformer.from_crs("EPSG:32617", "EPSG:4326", always_xy=True)
    meta, fids, wkb, fields = pyogrio.raw.read(str(copy), layer=L.LANE_GROUPS, return_fids=True)
    ll = shapely.transform(
        shapely.from_wkb(wkb), lambda c: np.column_stack(to_ll.transform(c[:, 0], c[:, 1]))
    )
    pyogrio.raw.write(
        str(copy), shapely.to_wkb(ll), [fids, *fields], ["fid", *meta["fields"]], layer=L.LANE_GROUPS,
        driver="GPKG", geometry_type="Polygon", crs="EPSG:4326", layer_options={"OVERWRITE": "YES"},
    )  # fmt: skip
    assert pyogrio.read_info(str(copy), layer=L.LANE_GROUPS)["crs"] == "EPSG:4326"
    m = open_map(copy)
    for rec in data.lane_groups:
        got = m.get_map_object(str(rec.fid), S.ROADBLOCK).polygon
        assert shapely.hausdorff_distance(got, rec.geometry) < 1e-3  # metres, after the UTM round trip
    issues = validate_map(m)
    assert [i.rule for i in issues] == ["P4"] and issues[0].severity == "warning"


def test_tiling_towns_into_one_map(tmp_path):
    base = small_junction(ORIGIN)
    tiled = base.merged(base.shifted(500.0, 0.0, 10000))
    assert validate_map(tiled) == []
    conn = next(r for r in tiled.lane_connectors if r.fid == 14003)
    assert (conn.exit_lane_fid, conn.entry_lane_fid, conn.lane_group_connector_fid) == (
        12002,
        12005,
        3002 + 10000,
    )
    assert conn.traffic_light_stop_line_fids == "16002"
    assert conn.geometry.bounds[0] == pytest.approx(base.lane_connectors[2].geometry.bounds[0] + 500.0)
    stop = next(r for r in tiled.stop_polygons if r.fid == 16002)
    assert stop.stop_polygon_type_fid == 2  # a type code, not an id
    assert next(r for r in tiled.lanes if r.fid == 12002).lane_index == 1
    assert next(r for r in tiled.road_segments if r.fid == 18401).lane_group_fids == "11001"
    with pytest.raises(DataError, match="fid 1001 of lane_groups_polygons"):
        base.merged(base)
    path = W.write_map(tiled, tmp_path, LOCATION, VERSION)
    m = open_map(path)
    assert len(m.lane_graph.lane_ids) == 10
    assert m.get_map_object("14003", S.LANE_CONNECTOR).outgoing_edges[0].id == "12005"
