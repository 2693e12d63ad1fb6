"""The calibration map read through planlab's map API: ids, lane graph, polygons and spatial queries.

Facts checked here come from tests/data/navsim_calibration/README.md ("The map").
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import shapely
from shapely.geometry import Point

from planlab.errors import DataError
from planlab.maps import (
    GPKGMap,
    Lane,
    LaneConnector,
    MapAPI,
    RoadBlock,
    SemanticMapLayer,
    StopLineType,
    clear_map_cache,
    load_map,
    read_maps_index,
)
from planlab.maps import layers as L

LOCATION = "us-pa-pittsburgh-hazelwood"
CENTRE = (589312.5, 4473687.25)  # junction centre (README)
S = SemanticMapLayer


@pytest.fixture(scope="module")
def cmap(calib_root) -> GPKGMap:
    return load_map(calib_root / "maps", LOCATION)


def test_index_and_identity(calib_root, cmap):
    index = read_maps_index(calib_root / "maps")
    assert index == {
        "sg-one-north": "9.17.1964",
        "us-ma-boston": "9.12.1817",
        "us-nv-las-vegas-strip": "9.15.1915",
        "us-pa-pittsburgh-hazelwood": "9.17.1937",
    }
    assert isinstance(cmap, MapAPI)
    assert cmap.location == cmap.map_name == LOCATION
    assert cmap.version == "9.17.1937"
    assert cmap.crs == "epsg:32617"
    assert cmap.meta["geographicCoordSystem"] == "epsg:4326"


def test_load_map_is_cached_and_honours_env(calib_root, cmap, monkeypatch):
    assert load_map(calib_root / "maps", LOCATION) is cmap
    monkeypatch.setenv("NUPLAN_MAPS_ROOT", str(calib_root / "maps"))
    assert load_map(None, LOCATION) is cmap
    clear_map_cache()
    fresh = load_map(None, LOCATION)
    assert fresh is not cmap and fresh.version == cmap.version


def test_roadblocks_and_lanes(cmap):
    assert cmap.layer_ids(S.ROADBLOCK) == [str(f) for f in range(41001, 41007)]
    for rb_id in ("41001", "41002", "41003", "41004"):
        rb = cmap.get_map_object(rb_id, S.ROADBLOCK)
        assert isinstance(rb, RoadBlock)
        lanes = rb.interior_edges
        assert len(lanes) == 2
        assert [lane.lane_index for lane in lanes] == [0, 1]
        assert all(lane.get_roadblock_id() == rb_id and lane.parent is rb for lane in lanes)
    side = [cmap.get_map_object(i, S.ROADBLOCK).interior_edges for i in ("41005", "41006")]
    assert [[lane.id for lane in lanes] for lanes in side] == [["42009"], ["42010"]]


def test_ids_are_decimal_strings_and_absent_is_none(cmap):
    lane = cmap.get_map_object("42001", S.LANE)
    assert isinstance(lane, Lane) and lane.id == "42001" and lane.fid == 42001
    assert cmap.get_map_object("42001", S.LANE) is lane  # one object per id
    assert cmap.get_map_object("99999", S.LANE) is None
    assert cmap.get_map_object("042001", S.LANE) is None  # not canonical text
    assert cmap.get_map_object("42001.0", S.LANE) is None
    assert cmap.get_map_object("abc", S.ROADBLOCK) is None
    # A lane id is not a roadblock id (fids are globally unique in this map).
    assert cmap.get_map_object("42001", S.ROADBLOCK) is None
    with pytest.raises(ValueError):
        cmap.get_map_object("1", S.DRIVABLE_AREA)


def test_speed_limits(cmap):
    assert cmap.get_map_object("42010", S.LANE).speed_limit_mps is None  # NULL -> NaN -> None
    assert cmap.get_map_object("42009", S.LANE).speed_limit_mps == pytest.approx(11.1)
    assert cmap.get_map_object("42001", S.LANE).speed_limit_mps == pytest.approx(13.9)
    assert cmap.get_map_object("44003", S.LANE_CONNECTOR).speed_limit_mps == pytest.approx(6.0)
    assert cmap.get_map_object("44008", S.LANE_CONNECTOR).speed_limit_mps == pytest.approx(8.0)


def test_connector_44003_leaves_42002_enters_42010(cmap):
    c = cmap.get_map_object("44003", S.LANE_CONNECTOR)
    assert isinstance(c, LaneConnector)
    assert [e.id for e in c.incoming_edges] == ["42002"]
    assert [e.id for e in c.outgoing_edges] == ["42010"]
    assert c.get_roadblock_id() == "43002"
    assert c.parent.id == "43002"
    assert c in cmap.get_map_object("42002", S.LANE).outgoing_edges
    assert c in cmap.get_map_object("42010", S.LANE).incoming_edges
    # 42010 is entered by the two turns into the side road (EB right, WB left).
    assert [e.id for e in cmap.get_map_object("42010", S.LANE).incoming_edges] == ["44003", "44006"]
    assert c.has_traffic_lights()
    assert [s.stop_line_type for s in c.stop_lines] == [StopLineType.TRAFFIC_LIGHT]
    poly = c.polygon
    gen = cmap.table(L.LANE_CONNECTOR_POLYGONS)
    row = gen.rows_with("lane_connector_fid", 44003)
    assert len(row) == 1 and poly.equals(gen.geometries[row[0]])


def test_roadblock_connector_links(cmap):
    expected = {  # README (and the logs' routes): EB straight, EB right, WB straight, WB left, NB right, NB left
        "43001": ("41001", "41004"),
        "43002": ("41001", "41006"),
        "43003": ("41003", "41002"),
        "43004": ("41003", "41006"),
        "43005": ("41005", "41004"),
        "43006": ("41005", "41002"),
    }
    for rbc_id, (frm, to) in expected.items():
        rbc = cmap.get_map_object(rbc_id, S.ROADBLOCK_CONNECTOR)
        assert [b.id for b in rbc.incoming_edges] == [frm]
        assert [b.id for b in rbc.outgoing_edges] == [to]
        assert rbc.intersection.id == "48001"
        assert rbc in cmap.get_map_object(frm, S.ROADBLOCK).outgoing_edges
        assert rbc in cmap.get_map_object(to, S.ROADBLOCK).incoming_edges
        for conn in rbc.interior_edges:
            assert conn.get_roadblock_id() == rbc_id
            assert conn.incoming_edges[0].get_roadblock_id() == frm
            assert conn.outgoing_edges[0].get_roadblock_id() == to
    assert [c.id for c in cmap.get_map_object("43004", S.ROADBLOCK_CONNECTOR).interior_edges] == ["44006"]
    assert cmap.get_route_block("41003").id == "41003"
    assert cmap.get_route_block("43003").id == "43003"
    assert cmap.get_route_block("42001") is None


def test_lane_graph_matches_object_api(cmap):
    g = cmap.lane_graph
    assert set(g.lane_ids) == {str(f) for f in range(42001, 42011)}
    for lid in g.lane_ids + g.connector_ids:
        layer = S.LANE if g.is_lane(lid) else S.LANE_CONNECTOR
        obj = cmap.get_map_object(lid, layer)
        assert g.successors[lid] == tuple(e.id for e in obj.outgoing_edges)
        assert g.predecessors[lid] == tuple(e.id for e in obj.incoming_edges)
        assert g.parent[lid] == obj.get_roadblock_id()
        assert g.length[lid] == pytest.approx(obj.baseline_path.length)
    for bid in g.roadblock_ids + g.roadblock_connector_ids:
        layer = S.ROADBLOCK if g.is_roadblock(bid) else S.ROADBLOCK_CONNECTOR
        obj = cmap.get_map_object(bid, layer)
        assert g.block_successors[bid] == tuple(e.id for e in obj.outgoing_edges)
        assert g.interior[bid] == tuple(e.id for e in obj.interior_edges)


def test_baseline_continuity_and_discrete_path(cmap):
    for conn_id in cmap.layer_ids(S.LANE_CONNECTOR):
        c = cmap.get_map_object(conn_id, S.LANE_CONNECTOR)
        path = c.baseline_path.discrete_path
        exit_end = c.incoming_edges[0].baseline_path.discrete_path[-1, :2]
        entry_start = c.outgoing_edges[0].baseline_path.discrete_path[0, :2]
        # README: a lane's end vertex equals its connectors' start vertex exactly.
        np.testing.assert_array_equal(path[0, :2], exit_end)
        np.testing.assert_array_equal(path[-1, :2], entry_start)
    lane = cmap.get_map_object("42010", S.LANE)
    dp = lane.baseline_path.discrete_path
    d = np.diff(dp[:, :2], axis=0)
    np.testing.assert_allclose(dp[:-1, 2], np.arctan2(d[:, 1], d[:, 0]))
    assert dp[-1, 2] == dp[-2, 2]  # last vertex repeats the previous heading
    assert np.hypot(d[:, 0], d[:, 1]).max() <= 1.0 + 1e-9
    assert lane.length == pytest.approx(360.0, abs=0.01)
    assert lane.baseline_path.polyline.length == pytest.approx(lane.length)


def _brute_force(cmap, point, radius, table_name):
    t = cmap.table(table_name)
    patch = shapely.box(point[0] - radius, point[1] - radius, point[0] + radius, point[1] + radius)
    return [t.ids[i] for i in range(len(t)) if t.geometries[i].intersects(patch)]


@pytest.mark.parametrize("radius", [1.0, 10.0, 30.0, 100.0])
def test_proximal_queries_equal_brute_force(cmap, radius):
    rng = np.random.default_rng(0)
    layers = [
        S.LANE,
        S.LANE_CONNECTOR,
        S.ROADBLOCK,
        S.ROADBLOCK_CONNECTOR,
        S.INTERSECTION,
        S.CARPARK_AREA,
        S.CROSSWALK,
        S.WALKWAYS,
        S.STOP_LINE,
    ]
    points = np.array(CENTRE) + rng.uniform(-250, 250, size=(40, 2))
    for p in points:
        got = cmap.get_proximal_map_objects(p, radius, layers)
        for layer in layers:
            assert [o.id for o in got[layer]] == _brute_force(cmap, p, radius, L.table_of(layer)), (layer, p)
    # LANE_CONNECTOR uses the stored lane_connectors lines (contract §1.6), not the polygons.
    assert cmap.get_proximal_map_objects(CENTRE, 100.0, [S.LANE_CONNECTOR])[S.LANE_CONNECTOR][0].id == "44001"


def test_proximal_square_not_circle(cmap):
    # The carpark is 30 x 25 m north of the east arm; find a point whose square touches a corner of it but
    # whose circle of the same radius does not.
    cp = cmap.get_map_object("48401", S.CARPARK_AREA).polygon
    xmin, ymin, _, _ = cp.bounds
    p = (xmin - 7.0, ymin - 7.0)
    assert cp.distance(Point(p)) > 7.5
    got = cmap.get_proximal_map_objects(p, 7.5, [S.CARPARK_AREA])[S.CARPARK_AREA]
    assert [o.id for o in got] == ["48401"]


def test_is_in_layer_boundary_semantics(cmap):
    inter = cmap.get_map_object("48001", S.INTERSECTION).polygon
    assert cmap.is_in_layer(CENTRE, S.INTERSECTION)
    vertex = inter.exterior.coords[0]
    assert not cmap.is_in_layer(vertex, S.INTERSECTION)  # a boundary point is not contained
    mid = inter.exterior.interpolate(0.37, normalized=True)
    assert not cmap.is_in_layer((mid.x, mid.y), S.INTERSECTION)
    assert not cmap.is_in_layer((CENTRE[0], CENTRE[1] + 1000.0), S.INTERSECTION)
    assert cmap.is_in_layer(CENTRE, S.DRIVABLE_AREA)
    assert not cmap.is_in_layer(CENTRE, S.TURN_STOP)  # every stop polygon here is a traffic-light one
    pts = np.array([CENTRE, vertex, (CENTRE[0], CENTRE[1] + 1000.0)])
    np.testing.assert_array_equal(cmap.points_in_layer(pts, S.INTERSECTION), [True, False, False])
    # The object view agrees.
    assert cmap.get_map_object("48001", S.INTERSECTION).contains_point(CENTRE)
    assert not cmap.get_map_object("48001", S.INTERSECTION).contains_point(vertex)


def test_points_in_layer_matches_shapely(cmap):
    rng = np.random.default_rng(1)
    pts = np.array(CENTRE) + rng.uniform(-120, 120, size=(2000, 2))
    for layer in (S.ROADBLOCK, S.INTERSECTION, S.LANE, S.LANE_CONNECTOR, S.CARPARK_AREA):
        _, polys = cmap.layer_polygons(layer)
        union = shapely.union_all(polys)
        expected = shapely.contains_xy(union, pts[:, 0], pts[:, 1])
        np.testing.assert_array_equal(cmap.points_in_layer(pts, layer), expected)
        assert all(cmap.is_in_layer(p, layer) == e for p, e in zip(pts[:50], expected[:50], strict=True))


def test_get_all_and_one_map_objects(cmap):
    lane = cmap.get_map_object("42001", S.LANE)
    inside = lane.polygon.representative_point()
    assert [o.id for o in cmap.get_all_map_objects(inside, S.LANE)] == ["42001"]
    assert cmap.get_one_map_object(inside, S.ROADBLOCK).id == "41001"
    assert cmap.get_one_map_object((0.0, 0.0), S.ROADBLOCK) is None
    conn = cmap.get_map_object("44003", S.LANE_CONNECTOR)
    p = conn.baseline_path.linestring.interpolate(0.5, normalized=True)
    hits = [o.id for o in cmap.get_all_map_objects(p, S.LANE_CONNECTOR)]
    assert "44003" in hits and all(
        isinstance(cmap.get_map_object(h, S.LANE_CONNECTOR), LaneConnector) for h in hits
    )


def test_get_one_map_object_raises_on_overlap(cmap):
    # Connector polygons overlap inside the junction: find a point inside two of them.
    ids, polys = cmap.layer_polygons(S.LANE_CONNECTOR)
    pairs = [(polys[i].intersection(polys[j]), i, j) for i in range(len(polys)) for j in range(i)]
    inter = max(pairs, key=lambda t: t[0].area)[0]
    assert inter.area > 1.0
    with pytest.raises(DataError, match="LANE_CONNECTOR objects contain"):
        cmap.get_one_map_object(inter.representative_point(), S.LANE_CONNECTOR)


def test_distance_to_nearest(cmap):
    rng = np.random.default_rng(2)
    for p in np.array(CENTRE) + rng.uniform(-400, 400, size=(30, 2)):
        for layer in (S.ROADBLOCK, S.ROADBLOCK_CONNECTOR, S.INTERSECTION, S.LANE_CONNECTOR):
            t = cmap.table(L.table_of(layer))
            d = shapely.distance(t.geometries, Point(p))
            got_id, got_d = cmap.get_distance_to_nearest_map_object(p, layer)
            assert got_d == pytest.approx(float(d.min()), abs=1e-9)
            assert got_id == t.ids[int(np.argmin(d))]
    assert cmap.get_distance_to_nearest_map_object(CENTRE, S.INTERSECTION) == ("48001", 0.0)


def test_layer_polygons_are_aligned(cmap):
    ids, polys = cmap.layer_polygons(S.LANE_CONNECTOR)
    assert ids == [str(f) for f in range(44001, 44009)]
    for i, p in zip(ids, polys, strict=True):
        assert cmap.get_map_object(i, S.LANE_CONNECTOR).polygon.equals(p)
    ids, polys = cmap.layer_polygons(S.ROADBLOCK)
    assert len(ids) == len(polys) == 6
    ids, _ = cmap.layer_polygons(S.DRIVABLE_AREA)
    assert set(ids) == {"48601", "48602", "48603", "48001", "48501", "48401"}
    assert cmap.layer_polygons(S.ROADBLOCK) is cmap.layer_polygons(S.ROADBLOCK)  # cached


def test_lane_neighbours_and_boundaries(cmap):
    a = cmap.get_map_object("42001", S.LANE)
    b = cmap.get_map_object("42002", S.LANE)
    assert a.adjacent_edges == (None, b)
    assert b.adjacent_edges == (a, None)
    assert a.is_left_of(b) and not b.is_left_of(a)
    assert a.left_boundary is not None and a.left_boundary.length > 0
    c = cmap.get_map_object("44003", S.LANE_CONNECTOR)
    assert c.left_boundary is not None


def test_pickle_roundtrip_reopens(cmap):
    clone = pickle.loads(pickle.dumps(cmap))
    # Same process: unpickling re-opens through the cache and hands back the shared instance.
    assert clone is load_map(cmap.path.parents[2], LOCATION)
    assert len(pickle.dumps(cmap)) < 1000  # the path travels, not the tables
    assert clone.get_map_object("42010", S.LANE).speed_limit_mps is None
