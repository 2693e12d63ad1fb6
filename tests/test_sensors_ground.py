"""Ground paint: crosswalk stripes, dashed markings, the tiled multi-level raster and its lookups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from planlab.world.sensors import (
    GroundClass,
    GroundPolygon,
    GroundRaster,
    LaneMarking,
    RasterLevel,
    StaticGeometry,
    crosswalk_stripes,
)

UTM = np.array([589312.5, 4473687.25])  # calibration-map-sized coordinates: float32 would lose them


def test_crosswalk_stripes_are_inside_and_parallel_to_the_traffic():
    # A crossing 4 m wide (along the road, x) and 14 m long (walking direction, y), rotated by 0.5 rad.
    rect = np.array([[-2.0, -7.0], [2.0, -7.0], [2.0, 7.0], [-2.0, 7.0]])
    rot = np.array([[math.cos(0.5), -math.sin(0.5)], [math.sin(0.5), math.cos(0.5)]])
    poly = rect @ rot.T + UTM
    stripes = crosswalk_stripes(poly, stripe_width=0.6, gap=0.6, margin=0.3)
    area = shapely.Polygon(poly)
    assert len(stripes) == int((14 - 0.6 + 0.6) // 1.2)  # (long side − 2·margin + gap) / period
    for s in stripes:
        assert s.cls == GroundClass.CROSSWALK
        p = shapely.Polygon(s.exterior)
        assert area.buffer(1e-6).contains(p)
        # Long side of each bar runs along the road (the crossing's short side, local x).
        local = (s.exterior - UTM) @ rot
        assert np.ptp(local[:, 0]) == pytest.approx(4.0 - 0.6, abs=1e-4)
        assert np.ptp(local[:, 1]) == pytest.approx(0.6, abs=1e-4)


def test_dashed_marking_pieces():
    m = LaneMarking(
        np.array([[0.0, 0.0], [30.0, 0.0], [30.0, 30.0]]), dashed=True, dash_length=3.0, gap_length=9.0
    )
    pieces = m.pieces()
    assert len(pieces) == 5  # dashes start at 0, 12, 24, 36, 48 m of a 60 m line
    lengths = [np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1)) for p in pieces]
    np.testing.assert_allclose(lengths, 3.0)
    # The dash from 24 m to 27 m turns the corner at 30 m? No: it ends at 27 m; the one at 36 m is on the 2nd leg.
    np.testing.assert_allclose(pieces[3][0], [30.0, 6.0])
    assert len(LaneMarking(np.array([[0, 0], [5, 0]])).pieces()) == 1


def _geometry() -> StaticGeometry:
    road = GroundPolygon.from_shapely("road", shapely.box(-200, -7, 200, 7))
    walk = GroundPolygon.from_shapely("walkway", shapely.box(-200, 7, 200, 10))
    park = GroundPolygon.from_shapely(
        "carpark", shapely.box(20, 10, 40, 30).difference(shapely.box(28, 18, 32, 22))
    )
    shift = lambda ps: [GroundPolygon(p.cls, p.exterior + UTM, tuple(h + UTM for h in p.holes)) for p in ps]  # noqa: E731
    line = LaneMarking(np.array([[-200.0, 0.0], [200.0, 0.0]]) + UTM, 0.3, "marking_yellow")
    return StaticGeometry(shift(road) + shift(walk) + shift(park), [line])


@pytest.mark.parametrize("heading", [0.0, 0.7, -2.5])
def test_raster_lookup_returns_the_painted_class(heading):
    raster = GroundRaster(_geometry(), (RasterLevel(0.05, 40.0), RasterLevel(0.2, 130.0)))
    ego = np.array([UTM[0] + 25.0, UTM[1] - 3.0, heading])
    raster.prepare(ego[:2])
    probes_global = np.array(
        [
            [25.0, -3.0, GroundClass.ROAD],
            [25.0, 0.0, GroundClass.MARKING_YELLOW],
            [25.0, 8.5, GroundClass.WALKWAY],
            [24.0, 15.0, GroundClass.CARPARK],
            [30.0, 20.0, GroundClass.GROUND],  # the car park's hole
            [0.0, 50.0, GroundClass.GROUND],
            [-60.0, -5.0, GroundClass.ROAD],  # level 1 only
        ]
    )
    # Global → ego frame.
    d = probes_global[:, :2] + UTM - ego[:2]
    c, s = math.cos(heading), math.sin(heading)
    x, y = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
    got = raster.classes_local(ego, x, y)
    np.testing.assert_array_equal(got, probes_global[:, 2].astype(np.uint8))
    # Far beyond every window: plain ground.
    assert raster.classes_local(ego, np.array([500.0]), np.array([0.0]))[0] == GroundClass.GROUND


def test_raster_tiles_follow_a_moving_ego():
    """The toroidal buffer reuses slots: after a long drive the lookups must still be right (no stale tiles)."""
    geom = _geometry()
    raster = GroundRaster(geom, (RasterLevel(0.1, 20.0, tile_cells=64),))
    for step in range(0, 301, 15):
        ego = np.array([UTM[0] - 150.0 + step, UTM[1] - 3.0, 0.0])
        raster.prepare(ego[:2])
        x = np.array([0.0, 0.0, 0.0, 5.37])
        y = np.array([0.0, 3.0, 11.5, 14.0])  # road, yellow line, walkway, ground or car park
        park = shapely.box(20, 10, 40, 30).difference(shapely.box(28, 18, 32, 22))
        probe = shapely.Point(ego[0] - UTM[0] + 5.37, 11.0)
        last = GroundClass.CARPARK if park.contains(probe) else GroundClass.GROUND
        got = raster.classes_local(ego, x, y)
        expected = [GroundClass.ROAD, GroundClass.MARKING_YELLOW, GroundClass.WALKWAY, last]
        np.testing.assert_array_equal(got, np.array(expected, dtype=np.uint8), err_msg=f"step {step}")
    assert raster.tiles_rasterised > 20


def test_thin_markings_are_dropped_on_coarse_levels_only():
    geom = StaticGeometry([], [LaneMarking(np.array([[-50.0, 0.0], [50.0, 0.0]]), 0.15)])
    raster = GroundRaster(geom, (RasterLevel(0.05, 10.0), RasterLevel(0.8, 60.0, tile_cells=64)))
    ego = np.array([0.0, 0.0, 0.0])
    raster.prepare(ego[:2])
    assert raster.lookup_local(0, ego, np.array([2.0], np.float32), np.array([0.01], np.float32))[0] >> 4 == 5
    assert (
        raster.lookup_local(1, ego, np.array([30.0], np.float32), np.array([0.01], np.float32))[0] >> 4 == 0
    )


def test_from_layers_accepts_shapely_and_arrays_and_rejects_unknown_classes():
    geom = StaticGeometry.from_layers(
        {
            "road": [shapely.box(0, 0, 10, 10)],
            GroundClass.WALKWAY: [np.array([[0, 10], [10, 10], [10, 12]])],
            "crosswalk": [shapely.box(0, 0, 3, 10)],
        }
    )
    classes = {p.cls for p in geom.polygons}
    assert classes == {GroundClass.ROAD, GroundClass.WALKWAY, GroundClass.CROSSWALK}
    with pytest.raises(ValueError, match="unknown ground class 'lava'"):
        StaticGeometry.from_layers({"lava": []})


def test_row_lookup_equals_point_lookup():
    raster = GroundRaster(_geometry(), (RasterLevel(0.05, 40.0), RasterLevel(0.2, 130.0)))
    ego = np.array([UTM[0] + 13.3, UTM[1] - 2.2, 0.4])
    raster.prepare(ego[:2])
    rng = np.random.default_rng(0)
    x0, y0 = rng.uniform(-20, 20, 30), rng.uniform(-20, 20, 30)
    dx, dy = rng.uniform(-0.05, 0.05, 30), rng.uniform(-0.05, 0.05, 30)
    k = np.arange(200)
    x = (x0[:, None] + dx[:, None] * k).astype(np.float32)
    y = (y0[:, None] + dy[:, None] * k).astype(np.float32)
    for level in (0, 1):
        rows = raster.lookup_rows(level, ego, np.stack([x0, y0, dx, dy], axis=1), 200)
        points = raster.lookup_local(level, ego, x, y)
        # Equal up to float32 rounding of points within a few µm of a cell edge.
        assert (rows == points).mean() > 0.99
        assert ((rows >> 4) == (points >> 4)).mean() > 0.999
