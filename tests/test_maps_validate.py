"""``validate_map``: clean maps pass; each planted defect is reported under its contract rule and fid."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
import shapely

from planlab.errors import DataError
from planlab.maps import SemanticMapLayer, clear_map_cache, open_map
from planlab.maps import layers as L
from planlab.maps.examples import small_junction
from planlab.maps.records import BaselinePathRecord, MapData
from planlab.maps.validate import MapIssue, check_map, errors_of, validate_map
from planlab.maps.writer import write_map

LOCATION = "us-pa-pittsburgh-hazelwood"
ORIGIN = (587000.0, 4474000.0)


def _replace(records: list, key: int, /, **changes) -> None:
    i = next(i for i, r in enumerate(records) if r.fid == key)
    records[i] = dataclasses.replace(records[i], **changes)


def _box(x0, y0, x1, y1):
    return shapely.box(ORIGIN[0] + x0, ORIGIN[1] + y0, ORIGIN[0] + x1, ORIGIN[1] + y1)


def _has(issues: list[MapIssue], rule: str, layer: str, fid: int | None, text: str = "") -> bool:
    return any(
        i.severity == "error" and i.rule == rule and i.layer == layer and i.fid == fid and text in i.message
        for i in issues
    )


@pytest.fixture(scope="module")
def clean_path(tmp_path_factory) -> Path:
    clear_map_cache()
    return write_map(small_junction(ORIGIN), tmp_path_factory.mktemp("clean"), LOCATION)


def _copy(path: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "map.gpkg"
    dst.write_bytes(path.read_bytes())
    return dst


def test_calibration_map_has_no_errors(calib_root):
    issues = validate_map(calib_root / "maps" / LOCATION / "9.17.1937" / "map.gpkg")
    assert errors_of(issues) == []
    # Only the two layers the calibration file leaves out are mentioned.
    assert {(i.layer, i.rule) for i in issues} == {(L.TRAFFIC_LIGHTS, "P9"), (L.DUBINS_NODES, "P9")}


def test_example_map_is_clean_in_memory_and_on_disk(clean_path):
    assert validate_map(small_junction(ORIGIN)) == []
    assert validate_map(clean_path) == []
    assert validate_map(open_map(clean_path)) == []
    assert check_map(clean_path) == []


def test_swapped_exit_and_entry():
    data = small_junction(ORIGIN)
    _replace(data.lane_connectors, 4001, exit_lane_fid=2003, entry_lane_fid=2001)
    issues = validate_map(data)
    assert _has(issues, "P8", L.LANE_CONNECTORS, 4001, "exit lane 2003 is in lane group 1002")
    assert _has(issues, "P8", L.LANE_CONNECTORS, 4001, "baseline starts")
    assert {i.fid for i in errors_of(issues)} == {4001}


def test_swapped_from_and_to_of_a_roadblock_connector():
    data = small_junction(ORIGIN)
    _replace(data.lane_group_connectors, 3002, from_lane_group_fid=1003, to_lane_group_fid=1001)
    issues = validate_map(data)
    assert _has(issues, "P8", L.LANE_CONNECTORS, 4003, "comes from 1003")
    assert _has(issues, "P8", L.LANE_CONNECTORS, 4003, "goes to 1001")


def test_null_foreign_key(clean_path, tmp_path):
    path = _copy(clean_path, tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE lane_connectors SET exit_lane_fid = NULL WHERE fid = 4002")
        con.execute("UPDATE lanes_polygons SET lane_group_fid = NULL WHERE fid = 2003")
    issues = validate_map(path)
    assert _has(issues, "P6", L.LANE_CONNECTORS, 4002, "exit_lane_fid is null")
    assert _has(issues, "P6", L.LANES, 2003, "lane_group_fid is null")
    # The reader names the broken row instead of returning a wrong lane.
    m = open_map(path)
    with pytest.raises(DataError, match="exit_lane_fid"):
        _ = m.get_map_object("4002", SemanticMapLayer.LANE_CONNECTOR).incoming_edges
    with pytest.raises(DataError, match="lane_group_fid"):
        m.get_map_object("2003", SemanticMapLayer.LANE).get_roadblock_id()


def test_lane_fid_differs_from_fid(clean_path, tmp_path):
    path = _copy(clean_path, tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE lanes_polygons SET lane_fid = 9999 WHERE fid = 2004")
    issues = validate_map(path)
    assert _has(issues, "P6", L.LANES, 2004, "lane_fid differs from fid")
    assert open_map(path).get_map_object("2004", SemanticMapLayer.LANE) is None  # nuPlan's lane_fid check


def test_duplicate_fid_across_lanes_and_connectors():
    data = small_junction(ORIGIN)
    # Renumber connector 4001 as 2001 (a lane fid) consistently everywhere it is referenced.
    _replace(data.lane_connectors, 4001, fid=2001)
    _replace(data.lane_connector_polygons, 4101, lane_connector_fid=2001)
    _replace(data.baseline_paths, 4201, lane_connector_fid=2001)
    issues = validate_map(data)
    assert [(i.rule, i.fid) for i in errors_of(issues)] == [("P5", 2001)]
    assert "must be disjoint" in errors_of(issues)[0].message


def test_duplicate_fid_across_roadblocks_and_their_connectors():
    data = small_junction(ORIGIN)
    _replace(data.lane_group_connectors, 3002, fid=1003)
    _replace(data.lane_connectors, 4003, lane_group_connector_fid=1003)
    issues = validate_map(data)
    assert _has(issues, "P5", L.LANE_GROUP_CONNECTORS, 1003, "must be disjoint")


def test_connector_poking_out_of_its_intersection():
    data = small_junction(ORIGIN)
    _replace(data.intersections, 5001, geometry=_box(-10, -15, 10, 0))  # the right turn now ends 5 m outside
    issues = validate_map(data)
    assert _has(issues, "P11", L.LANE_CONNECTOR_POLYGONS, 4103, "pokes")
    assert _has(issues, "P11", L.LANE_CONNECTOR_POLYGONS, 4103, "outside lane groups")
    assert not _has(issues, "P11", L.LANE_CONNECTOR_POLYGONS, 4101, "pokes")


def test_duplicate_baseline_vertex():
    data = small_junction(ORIGIN)
    rec = next(r for r in data.baseline_paths if r.lane_fid == 2001)
    coords = list(rec.geometry.coords)
    _replace(data.baseline_paths, rec.fid, geometry=shapely.LineString([*coords[:5], coords[4], *coords[5:]]))
    issues = validate_map(data)
    assert _has(issues, "P10", L.BASELINE_PATHS, rec.fid, "duplicate consecutive vertices")


def test_sparse_baseline_is_a_warning():
    data = small_junction(ORIGIN)
    rec = next(r for r in data.baseline_paths if r.lane_fid == 2005)
    coords = list(rec.geometry.coords)
    _replace(data.baseline_paths, rec.fid, geometry=shapely.LineString([coords[0], coords[-1]]))
    issues = validate_map(data)
    assert errors_of(issues) == []
    assert [(i.rule, i.fid, i.severity) for i in issues] == [("P10", rec.fid, "warning")]


def test_missing_and_extra_baseline_and_polygon():
    data = small_junction(ORIGIN)
    data.lane_connector_polygons = [r for r in data.lane_connector_polygons if r.lane_connector_fid != 4002]
    data.baseline_paths = [r for r in data.baseline_paths if r.lane_connector_fid != 4003]
    extra = next(r for r in data.baseline_paths if r.lane_fid == 2001)
    data.baseline_paths.append(BaselinePathRecord(fid=9001, geometry=extra.geometry, lane_fid=2001))
    issues = validate_map(data)
    assert _has(issues, "P7", L.LANE_CONNECTORS, 4002, "0 rows in gen_lane_connectors_scaled_width_polygons")
    assert _has(issues, "P7", L.LANE_CONNECTORS, 4003, "0 baseline paths")
    assert _has(issues, "P7", L.LANES, 2001, "2 baseline paths")


def test_dangling_references():
    data = small_junction(ORIGIN)
    _replace(data.lane_connectors, 4002, entry_lane_fid=2999, lane_group_connector_fid=3999)
    _replace(data.lane_group_connectors, 3001, to_lane_group_fid=1999)
    issues = validate_map(data)
    assert _has(issues, "P6", L.LANE_CONNECTORS, 4002, "entry_lane_fid 2999 is not a lanes_polygons fid")
    assert _has(issues, "P6", L.LANE_CONNECTORS, 4002, "lane_group_connector_fid 3999")
    assert _has(issues, "P6", L.LANE_GROUP_CONNECTORS, 3001, "to_lane_group_fid 1999")


def test_overlapping_lane_groups_and_lanes():
    data = small_junction(ORIGIN)
    _replace(data.lane_groups, 1002, geometry=_box(-20, -7, 100, 0))
    _replace(data.lanes, 2002, geometry=_box(-100, -7, -10, -3))
    issues = validate_map(data)
    assert _has(issues, "P11", L.LANE_GROUPS, 1002, "overlaps lane group 1001 by 70.000")
    assert _has(issues, "P11", L.LANES, 2002, "overlaps lane 2001 of the same group by 45.000")
    assert any(i.rule == "P11" and i.severity == "warning" and i.fid == 1002 for i in issues)  # lanes gap


def test_lane_outside_drivable_area():
    data = small_junction(ORIGIN)
    _replace(data.lanes, 2005, geometry=_box(-5.25, -125, -1.75, -20))
    issues = validate_map(data)
    assert _has(issues, "P11", L.LANES, 2005, "17.500 m² lies outside")


def test_stop_line_fid_strings(clean_path, tmp_path):
    data = small_junction(ORIGIN)
    _replace(data.lane_connectors, 4001, traffic_light_stop_line_fids="6001,abc")
    _replace(data.lane_connectors, 4002, traffic_light_stop_line_fids="9999")
    issues = validate_map(data)
    assert _has(issues, "P12", L.LANE_CONNECTORS, 4001, "'abc' is not an integer fid")
    assert _has(issues, "P12", L.LANE_CONNECTORS, 4002, "9999 is not a stop_polygons fid")
    path = _copy(clean_path, tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE lane_connectors SET traffic_light_stop_line_fids = NULL WHERE fid = 4003")
    assert _has(validate_map(path), "P12", L.LANE_CONNECTORS, 4003, "not a string")


def test_invalid_and_multi_polygons():
    data = small_junction(ORIGIN)
    x, y = ORIGIN
    bowtie = shapely.Polygon([(x + 30, y - 40), (x + 60, y - 10), (x + 60, y - 40), (x + 30, y - 10)])
    data.carpark_areas[0] = dataclasses.replace(data.carpark_areas[0], geometry=bowtie)
    issues = validate_map(data)
    assert _has(issues, "P10", L.CARPARK_AREAS, 8201, "invalid polygon")
    with pytest.raises(DataError, match="not written"):
        write_map(data, Path("/nonexistent-never-created"), LOCATION)


def test_missing_required_layer_and_empty_required_table(clean_path, tmp_path):
    path = _copy(clean_path, tmp_path)
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE stop_polygons")
        con.execute("DELETE FROM gpkg_contents WHERE table_name = 'stop_polygons'")
        con.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = 'stop_polygons'")
        con.execute("DELETE FROM lane_group_connectors")
    issues = validate_map(path)
    assert _has(issues, "P9", L.STOP_POLYGONS, None, "required layer is missing")
    # The lane graph is not checked without its tables, but the report is still produced.
    assert all(i.rule in ("P9",) for i in errors_of(issues))


def test_unreadable_file_is_one_issue(tmp_path):
    bad = tmp_path / "map.gpkg"
    bad.write_bytes(b"not sqlite")
    issues = validate_map(bad)
    assert len(issues) == 1 and issues[0].rule == "open" and str(bad) in issues[0].message
    with pytest.raises(DataError, match="1 error"):
        check_map(bad)


def test_issue_is_one_line():
    issue = MapIssue("error", L.LANES, 2001, "lane_fid differs from fid", "P6")
    assert str(issue) == "error: lanes_polygons fid 2001: lane_fid differs from fid [P6]"


def test_validation_of_mapdata_equals_validation_of_the_written_file(tmp_path):
    data: MapData = small_junction(ORIGIN)
    _replace(data.lanes, 2002, geometry=_box(-100, -7, -10, -3))
    _replace(data.lane_connectors, 4001, exit_lane_fid=2003, entry_lane_fid=2001)
    path = write_map(data, tmp_path, LOCATION, validate=False, empty_layers="empty")
    assert validate_map(data) == validate_map(path)
