"""LiDAR ray caster: ground at z = 0, hits at the expected range, shadows, angular culling equals brute force,
intensity by material, noise/dropout seeded, PCD files through the data room's writer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from planlab.data.sensors import check_pcd_file, read_pcd, write_pcd
from planlab.geometry.boxes import box_corners, points_in_boxes
from planlab.world.sensors import (
    GroundPolygon,
    LaneMarking,
    LidarCaster,
    LidarConfig,
    LidarSpec,
    SceneObjects,
    StaticGeometry,
    TrafficLightHeads,
    default_lidars,
)
from planlab.world.sensors.lidar import _slab
from planlab.world.sensors.objects import build_parts

ORIGIN = np.array([589300.0, 4473600.0])
EGO = np.array([ORIGIN[0], ORIGIN[1], 0.0])
CLEAN = LidarConfig(range_noise_std=0.0, dropout=0.0, intensity_noise=0.0)


def _objects(boxes_ego, names=None) -> SceneObjects:
    b = np.array(boxes_ego, dtype=np.float64).reshape(-1, 7)
    b[:, :2] += ORIGIN
    return SceneObjects(b, names or ["vehicle"] * len(b))


def test_empty_world_gives_a_ground_cloud_in_the_ego_frame():
    cloud = LidarCaster(config=CLEAN).cast(EGO)
    assert cloud.dtype == np.float32 and cloud.shape[0] == 6 and cloud.shape[1] > 10000
    np.testing.assert_allclose(cloud[2], 0.0, atol=1e-4)  # ground at z = 0
    assert set(np.unique(cloud[5]).astype(int)) == {0, 1, 2, 3, 4}
    for spec in default_lidars():
        mine = cloud[:, cloud[5] == spec.lidar_id]
        assert mine[4].min() >= 0 and mine[4].max() < len(spec.elevations_deg)
        r = np.linalg.norm(mine[:3] - np.array(spec.position, dtype=np.float32)[:, None], axis=0)
        assert (r <= spec.max_range + 1e-3).all() and (r >= spec.min_range - 1e-3).all()
    # No self-hits: nothing under the ego body.
    under = (cloud[0] > -1.1) & (cloud[0] < 4.0) & (np.abs(cloud[1]) < 1.1)
    assert not under.any()
    assert (cloud[3] >= 0).all() and (cloud[3] <= 255).all()


def test_a_box_ahead_is_hit_at_the_expected_range_and_shadows_the_ground():
    box = [20.0, 0.0, 0.8, 4.0, 2.0, 1.6, 0.0]  # rear face at x = 18 (one part: a generic object)
    cloud = LidarCaster(config=CLEAN).cast(EGO, _objects([box], ["generic_object"]))
    top = cloud[:, cloud[5] == 0]
    ahead = (np.abs(top[1]) < 0.5) & (top[2] > 0.2) & (top[0] > 10) & (top[0] < 25)
    assert ahead.sum() >= 5
    np.testing.assert_allclose(top[0, ahead], 18.0, atol=1e-4)
    # Range of the horizontal-ish beams from the roof sensor at x = 1.30: the hit points lie on the face.
    ranges = np.linalg.norm(top[:3, ahead] - np.array([[1.30], [0.0], [1.95]], dtype=np.float32), axis=0)
    assert ranges.min() == pytest.approx(18.0 - 1.30, abs=0.05)
    # Every non-ground point lies on the box surface.
    obj = cloud[:, cloud[2] > 1e-3]
    assert obj.shape[1] > 0
    corners = box_corners(20.0, 0.0, 0.0, 4.0 + 2e-3, 2.0 + 2e-3)
    assert points_in_boxes(obj[:2].T.astype(np.float64), corners, strict=False).all()
    assert (obj[2] <= 1.6 + 1e-3).all()
    # Shadow: no ground returns right behind it on its axis.
    shadow = (cloud[0] > 22.5) & (cloud[0] < 40) & (np.abs(cloud[1]) < 0.6)
    assert shadow.sum() == 0
    assert ((cloud[0] > 22.5) & (cloud[0] < 40) & (np.abs(cloud[1] - 6.0) < 0.6)).sum() > 0


def test_angular_culling_finds_exactly_the_brute_force_hits():
    rng = np.random.default_rng(3)
    n = 40
    boxes = np.column_stack(
        [
            rng.uniform(-45, 45, n),
            rng.uniform(-45, 45, n),
            np.zeros(n),
            rng.uniform(0.5, 9.0, n),
            rng.uniform(0.5, 3.0, n),
            rng.uniform(0.5, 4.0, n),
            rng.uniform(-math.pi, math.pi, n),
        ]
    )
    boxes[:, 2] = boxes[:, 5] / 2
    # Keep them off the ego body, but allow some right next to the short-range sensors.
    keep = np.hypot(boxes[:, 0] - 1.5, boxes[:, 1]) > 4.0
    boxes = boxes[keep]
    boxes = np.vstack(
        [
            boxes,
            [1.5, 3.6, 1.0, 6.0, 1.0, 2.0, 0.1],  # beside the left sensor
            [-4.0, 0.3, 0.8, 1.0, 4.0, 1.6, 0.0],  # behind the rear sensor
            [1.3, 0.0, 0.5, 1.0, 1.0, 1.0, 0.3],  # right under the roof sensor: every ray is a candidate
        ]
    )
    # A 270° sensor exercises the window wrap at ±180° of a limited field of view.
    specs = default_lidars(16, 512) + (
        LidarSpec(
            "WIDE", 5, (0.0, 0.0, 1.0), (-10.0, 0.0, 10.0), 270, yaw_deg=45.0, fov_deg=270.0, max_range=60.0
        ),
    )
    caster = LidarCaster(
        config=LidarConfig(sensors=specs, range_noise_std=0.0, dropout=0.0, intensity_noise=0.0)
    )
    objs = _objects(boxes, ["generic_object"] * len(boxes))
    parts = build_parts(objs, None)
    center = parts.center - np.array([ORIGIN[0], ORIGIN[1], 0.0])
    # Brute force: every ray against every part.
    r = np.repeat(np.arange(caster.n_rays), len(parts))
    p = np.tile(np.arange(len(parts)), caster.n_rays)
    t, _, ok = _slab(caster.origins[r], caster.dirs[r], center[p], parts.half[p], parts.yaw[p])
    brute = np.full(caster.n_rays, np.inf)
    np.minimum.at(brute, r[ok], t[ok])
    rays, pidx = caster._candidates(center, parts.half, parts.yaw)
    t2, _, ok2 = _slab(
        caster.origins[rays], caster.dirs[rays], center[pidx], parts.half[pidx], parts.yaw[pidx]
    )
    culled = np.full(caster.n_rays, np.inf)
    np.minimum.at(culled, rays[ok2], t2[ok2])
    # Beyond a sensor's range a hit does not count (the caster drops those pairs early).
    brute[brute > caster.max_range] = np.inf
    culled[culled > caster.max_range] = np.inf
    assert np.isfinite(brute).sum() > 1000
    np.testing.assert_array_equal(np.isfinite(culled), np.isfinite(brute))
    np.testing.assert_allclose(culled[np.isfinite(brute)], brute[np.isfinite(brute)])


def test_intensity_depends_on_material():
    road = GroundPolygon.from_shapely("road", shapely.box(-100, -20, 100, 20))
    static = StaticGeometry(
        [GroundPolygon(p.cls, p.exterior + ORIGIN) for p in road],
        [LaneMarking(np.array([[-100.0, 5.0], [100.0, 5.0]]) + ORIGIN, 0.5)],
        origin=ORIGIN,
    )
    cone = [10.0, -5.0, 0.35, 0.4, 0.4, 0.7, 0.0]
    cloud = LidarCaster(static, CLEAN).cast(EGO, _objects([cone], ["traffic_cone"]))
    ground = cloud[:, np.abs(cloud[2]) < 1e-3]
    paint = ground[3, np.abs(ground[1] - 5.0) < 0.2]
    asphalt = ground[3, (np.abs(ground[1] - 5.0) > 1.0) & (np.abs(ground[1]) < 15)]
    assert len(paint) > 10 and len(asphalt) > 100
    assert np.median(paint) > 3 * np.median(asphalt)
    cone_pts = cloud[3, (np.abs(cloud[0] - 10.0) < 0.3) & (np.abs(cloud[1] + 5.0) < 0.3) & (cloud[2] > 0.05)]
    assert len(cone_pts) > 3 and np.median(cone_pts) > 3 * np.median(asphalt)


def test_noise_and_dropout_are_seeded():
    caster = LidarCaster(config=LidarConfig(range_noise_std=0.05, dropout=0.2))
    clean = LidarCaster(config=CLEAN).cast(EGO)
    a = caster.cast(EGO, seed=1)
    b = caster.cast(EGO, seed=1)
    c = caster.cast(EGO, seed=2)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)
    assert a.shape[1] == pytest.approx(0.8 * clean.shape[1], rel=0.03)
    assert 0.005 < np.abs(a[2]).mean() < 0.1  # range noise moves ground points off z = 0 by a few cm


def test_traffic_lights_and_poles_are_solid_for_the_lidar():
    lights = TrafficLightHeads(
        np.array([[ORIGIN[0] + 6.0, ORIGIN[1] + 3.0, 4.0]]), np.array([math.pi]), ["red"]
    )
    cloud = LidarCaster(config=CLEAN).cast(EGO, lights=lights)
    near_pole = (np.abs(cloud[0] - 6.0) < 0.4) & (np.abs(cloud[1] - 3.0) < 0.4) & (cloud[2] > 0.05)
    assert near_pole.sum() > 3


def test_point_clouds_write_as_valid_pcd_files(tmp_path):
    cloud = LidarCaster().cast(EGO, _objects([[12.0, 2.0, 0.8, 4.5, 1.9, 1.6, 0.4]]), seed=0)
    path = tmp_path / "MergedPointCloud" / "0123456789abcdef.pcd"
    write_pcd(path, cloud)
    header = check_pcd_file(path)  # the data room's strict checker: the 10 keys, integer VIEWPOINT, binary
    assert header is not None
    text = path.read_bytes().split(b"DATA binary\n")[0].decode("ascii")
    keys = [line.split()[0] for line in text.splitlines() if line and not line.startswith("#")]
    assert keys == ["VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS"]
    assert "FIELDS x y z intensity ring lidar_info" in text
    np.testing.assert_array_equal(read_pcd(path), cloud)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="duplicate lidar ids"):
        LidarConfig(sensors=default_lidars()[:2] + default_lidars()[:1])
    with pytest.raises(ValueError, match="dropout"):
        LidarConfig(dropout=1.0)
    with pytest.raises(ValueError, match="fov"):
        LidarSpec("X", 0, (0, 0, 1), (0.0,), 10, fov_deg=400)


def test_buildings_return_points_on_their_facade_and_block_what_is_behind():
    building = shapely.affinity.translate(shapely.box(-10, 8, 50, 18), *ORIGIN)
    static = StaticGeometry([], [], origin=ORIGIN, buildings=[(building, 12.0)])
    cloud = LidarCaster(static, CLEAN).cast(EGO)
    facade = (np.abs(cloud[1] - 8.0) < 1e-3) & (cloud[0] > -10) & (cloud[0] < 50) & (cloud[2] > 0.05)
    assert facade.sum() > 200
    behind = (cloud[1] > 8.01) & (cloud[0] > 0) & (cloud[0] < 40)
    assert not behind.any()
