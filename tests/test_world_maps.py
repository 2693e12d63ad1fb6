"""The synthetic towns: nuPlan-conformant maps (validate_map, reader), exact geometry, reproducible GeoPackages."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import shapely

from planlab.maps import MAP_LOCATIONS, SemanticMapLayer, open_map, validate_map
from planlab.world.curves import connect_poses, curvature, fillet_path
from planlab.world.mapdata import network_to_map_data, write_network
from planlab.world.network import MERGE, SIGNAL
from planlab.world.towns import LOCATIONS, build_town


@pytest.fixture(scope="module")
def towns():
    return {loc: build_town(loc, 0) for loc in LOCATIONS}


def test_every_location_has_its_own_town(towns):
    assert set(towns) == set(MAP_LOCATIONS)
    kinds = {net.name for net in towns.values()}
    assert kinds == {"grid", "suburban", "highway", "compact"}
    for net in towns.values():
        e, n = net.origin
        assert 1e5 < e < 9e5 and 1e5 < n < 1e7, "UTM-like eastings/northings"
        assert net.crs.startswith("epsg:326")


@pytest.mark.parametrize("location", sorted(LOCATIONS))
def test_map_validates_without_errors(towns, location):
    net = towns[location]
    issues = validate_map(network_to_map_data(net), crs=net.crs)
    assert [str(i) for i in issues if i.severity == "error"] == []


def test_fids_are_globally_unique(towns):
    for net in towns.values():
        data = network_to_map_data(net)
        fids = [r.fid for recs in data.unsorted_tables().values() for r in recs]
        assert len(fids) == len(set(fids))
        assert min(fids) >= 1


def test_lanes_tile_roadblocks_and_drivable_layers_do_not_overlap(towns):
    for net in towns.values():
        for blk in net.blocks.values():
            if blk.kind != "roadblock":
                continue
            union = shapely.union_all([net.lanes[i].polygon for i in blk.lanes])
            assert union.symmetric_difference(blk.polygon).area < 1e-3, f"roadblock {blk.fid} not tiled"
        polys = net.drivable_polygons
        total = sum(p.area for p in polys)
        assert abs(net.drivable.area - total) < 0.05, f"{net.name}: drivable polygons overlap"


def test_connectors_inside_their_junction_and_continuous(towns):
    for net in towns.values():
        for lane in net.lanes.values():
            if not lane.is_connector:
                continue
            junction = net.junctions[lane.node].polygon
            assert junction.buffer(1e-3).covers(lane.polygon), f"connector {lane.fid} leaves its junction"
            before = net.lanes[lane.predecessors[0]]
            after = net.lanes[lane.successors[0]]
            assert np.array_equal(before.center[-1], lane.center[0]), "lane end must be the connector start"
            assert np.array_equal(lane.center[-1], after.center[0]), "connector end must be the lane start"
            spacing = np.hypot(*np.diff(lane.center, axis=0).T)
            assert spacing.max() <= 1.0 + 1e-9
            # smooth turns: no kink sharper than a 5 m radius anywhere
            assert np.abs(curvature(lane.center)).max() < 0.2


def test_towns_have_the_promised_features(towns):
    grid = towns["us-nv-las-vegas-strip"]
    assert sum(j.control == SIGNAL for j in grid.junctions.values()) >= 6
    assert max(len(b.lanes) for b in grid.blocks.values() if b.kind == "roadblock") >= 2
    suburb = towns["us-ma-boston"]
    arms = [len({suburb.lanes[c].predecessors[0] for c in j.connectors}) for j in suburb.junctions.values()]
    assert any(a == 3 for a in arms), "T-junctions"
    assert suburb.carparks and suburb.parking
    highway = towns["us-pa-pittsburgh-hazelwood"]
    assert any(j.control == MERGE for j in highway.junctions.values())
    assert any(ln.turn == "merge" for ln in highway.lanes.values())
    assert any(ln.speed_limit >= 20.0 for ln in highway.lanes.values())
    for net in towns.values():
        assert net.walkways and net.road_segments and net.boundaries
        if any(j.control == SIGNAL for j in net.junctions.values()):
            assert net.signal_heads and net.crosswalks and net.stop_polygons


def test_written_map_reads_back_with_the_maps_reader(towns, tmp_path):
    net = towns["us-ma-boston"]
    path = write_network(net, tmp_path)
    gmap = open_map(path)
    some_lane = next(lid for lid, ln in net.lanes.items() if not ln.is_connector)
    lane = gmap.get_map_object(str(some_lane), SemanticMapLayer.LANE)
    assert lane is not None and lane.get_roadblock_id() == str(net.lanes[some_lane].block)
    conn = next(lid for lid, ln in net.lanes.items() if ln.is_connector)
    lc = gmap.get_map_object(str(conn), SemanticMapLayer.LANE_CONNECTOR)
    assert [e.id for e in lc.incoming_edges] == [str(net.lanes[conn].predecessors[0])]
    assert [e.id for e in lc.outgoing_edges] == [str(net.lanes[conn].successors[0])]
    assert [i for i in validate_map(path) if i.severity == "error"] == []


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_geopackages_are_byte_identical_for_a_seed(tmp_path):
    loc = "us-pa-pittsburgh-hazelwood"
    a = write_network(build_town(loc, 3), tmp_path / "a")
    b = write_network(build_town(loc, 3), tmp_path / "b")
    c = write_network(build_town(loc, 4), tmp_path / "c")
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_different_seeds_give_different_towns():
    a = build_town("us-nv-las-vegas-strip", 0)
    b = build_town("us-nv-las-vegas-strip", 1)
    assert a.drivable.symmetric_difference(b.drivable).area > 100.0


def test_curves_hit_their_end_poses_exactly():
    p0, p1 = np.array([10.0, -5.25]), np.array([-5.25, 10.0])
    pts = connect_poses(p0, np.pi, p1, np.pi / 2 + np.pi, 0.25)
    assert np.array_equal(pts[0], p0) and np.array_equal(pts[-1], p1)
    road = fillet_path(np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0]]), 30.0, 0.5)
    assert 1.0 / np.abs(curvature(road)).max() == pytest.approx(30.0, rel=0.02)
