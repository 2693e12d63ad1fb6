"""Ground paint read from a real-format map (the calibration GeoPackage) and the per-log SensorSuite."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from planlab.maps import SemanticMapLayer, load_map
from planlab.scene.enums import CAMERA_NAMES
from planlab.world.sensors import GroundClass, SceneObjects, SensorSuite, SuiteConfig
from planlab.world.sensors.from_map import static_geometry_from_map

LOCATION = "us-pa-pittsburgh-hazelwood"


@pytest.fixture(scope="module")
def calib_map(calib_root):
    return load_map(calib_root / "maps", LOCATION)


@pytest.fixture(scope="module")
def static(calib_map):
    return static_geometry_from_map(calib_map)


def test_map_paint_has_every_layer_and_the_expected_markings(static):
    kinds = Counter(p.cls for p in static.polygons)
    # 6 roadblocks + 6 roadblock connectors + 1 intersection + 1 generic drivable area (README table).
    assert kinds[GroundClass.ROAD] == 14
    assert kinds[GroundClass.CARPARK] == 1 and kinds[GroundClass.WALKWAY] == 7
    assert kinds[GroundClass.CROSSWALK] >= 3 * 5  # three crosswalks, several stripes each
    marks = Counter((m.cls, m.dashed) for m in static.markings)
    # 4 two-lane main-road groups: one dashed divider each; 6 groups: a yellow left edge and a white right edge.
    assert marks[(GroundClass.MARKING_WHITE, True)] == 4
    assert marks[(GroundClass.MARKING_YELLOW, False)] == 6
    assert marks[(GroundClass.MARKING_WHITE, False)] == 6
    # Stop lines where connectors carry traffic-light stop lines: the 5 incoming lanes.
    assert marks[(GroundClass.STOP_LINE, False)] == 5


def test_map_paint_lands_in_the_raster_where_the_map_says(static, calib_map):
    from planlab.world.sensors import GroundRaster

    raster = GroundRaster(static)
    probes = {
        GroundClass.CARPARK: calib_map.layer_polygons(SemanticMapLayer.CARPARK_AREA)[1][0].centroid,
        GroundClass.WALKWAY: calib_map.layer_polygons(SemanticMapLayer.WALKWAYS)[1][0].representative_point(),
        GroundClass.ROAD: calib_map.get_map_object(
            "42001", SemanticMapLayer.LANE
        ).baseline_path.linestring.interpolate(50),
    }
    ego = np.array([589312.5, 4473687.25, 0.3])
    raster.prepare(ego[:2])
    for klass, pt in probes.items():
        d = np.array([pt.x, pt.y]) - ego[:2]
        c, s = np.cos(ego[2]), np.sin(ego[2])
        got = raster.classes_local(ego, np.array([c * d[0] + s * d[1]]), np.array([-s * d[0] + c * d[1]]))
        assert got[0] == klass, (klass, pt)


def test_suite_capture_is_complete_and_seeded(static):
    suite = SensorSuite(static, SuiteConfig(width=320, height=180), seed=3)
    calib = suite.calibration()
    assert tuple(calib) == CAMERA_NAMES
    np.testing.assert_allclose(calib["CAM_F0"]["cam_intrinsic"][0, 2], 160.0)
    pose = np.array([589290.0, 4473685.5, 0.0])
    objs = SceneObjects(np.array([[589305.0, 4473685.5, 0.8, 4.5, 1.9, 1.6, 0.0]]), ["vehicle"])
    images, cloud = suite.capture(pose, objs, None, seed=11)
    assert set(images) == set(CAMERA_NAMES)
    assert all(im.shape == (180, 320, 3) and im.dtype == np.uint8 for im in images.values())
    assert cloud.dtype == np.float32 and cloud.shape[0] == 6 and cloud.shape[1] > 10000
    again_images, again_cloud = SensorSuite(static, SuiteConfig(width=320, height=180), seed=3).capture(
        pose, objs, None, seed=11
    )
    np.testing.assert_array_equal(again_cloud, cloud)
    for name in CAMERA_NAMES:
        np.testing.assert_array_equal(again_images[name], images[name])
    only_lidar = SensorSuite(static, SuiteConfig(cameras_enabled=False), seed=3)
    imgs, cloud2 = only_lidar.capture(pose, objs, None, seed=11)
    assert imgs == {} and cloud2.shape[0] == 6
    with pytest.raises(RuntimeError, match="cameras are disabled"):
        only_lidar.render_cameras(pose)


def test_images_do_not_depend_on_the_path_driven_before(static):
    """The toroidal tile buffers are reused while driving: a frame must not show stale tiles from earlier."""
    from planlab.world.sensors import LidarConfig, RenderConfig

    cfg = SuiteConfig(
        width=240,
        height=135,
        render=RenderConfig(noise_std=0.0),
        lidar=LidarConfig(range_noise_std=0.0, dropout=0.0, intensity_noise=0.0),
    )
    driven = SensorSuite(static, cfg)
    start = np.array([589100.0, 4473685.5, 0.0])
    for step in range(0, 260, 13):  # 260 m east through the junction, 13 m per frame
        driven.capture(start + np.array([step, 0.0, 0.02 * step]))
    pose = np.array([589390.0, 4473720.0, 2.0])
    a_imgs, a_cloud = driven.capture(pose)
    b_imgs, b_cloud = SensorSuite(static, cfg).capture(pose)
    for name in CAMERA_NAMES:
        np.testing.assert_array_equal(a_imgs[name], b_imgs[name], err_msg=name)
    np.testing.assert_array_equal(a_cloud, b_cloud)
