"""Camera rig: NAVSIM conventions, projection of known points, inverse rays, scaling, the TransFuser stitch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planlab.data import SceneLoader
from planlab.scene import SceneFilter
from planlab.scene.enums import CAMERA_NAMES
from planlab.world.sensors import (
    REFERENCE_FOCAL,
    CameraRig,
    PinholeCamera,
    camera_rotation,
    default_rig,
    rig_from_calibration,
)
from planlab.world.sensors.rig import DEFAULT_MOUNTS, TRANSFUSER_SIDE_CROP


def _mount(name: str) -> tuple[np.ndarray, float]:
    for n, x, y, z, yaw in DEFAULT_MOUNTS:
        if n == name:
            return np.array([x, y, z]), math.radians(yaw)
    raise KeyError(name)


def test_rig_has_the_eight_navsim_cameras_at_1920x1080():
    rig = default_rig()
    assert rig.names == CAMERA_NAMES
    for cam in rig:
        assert (cam.width, cam.height) == (1920, 1080)
        np.testing.assert_allclose(
            cam.intrinsics, [[REFERENCE_FOCAL, 0, 960], [0, REFERENCE_FOCAL, 540], [0, 0, 1]]
        )
        assert cam.distortion.shape == (5,) and not cam.distortion.any()


def test_extrinsics_are_rotations_in_the_navsim_camera_convention():
    for cam in default_rig():
        r = cam.sensor2lidar_rotation
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        pos, yaw = _mount(cam.name)
        # Columns: camera x (right), y (down), z (forward) written in the ego frame (x fwd, y left, z up).
        np.testing.assert_allclose(r[:, 2], [math.cos(yaw), math.sin(yaw), 0.0], atol=1e-12)
        np.testing.assert_allclose(r[:, 0], [math.sin(yaw), -math.cos(yaw), 0.0], atol=1e-12)
        np.testing.assert_allclose(r[:, 1], [0.0, 0.0, -1.0], atol=1e-12)
        np.testing.assert_allclose(cam.sensor2lidar_translation, pos)
        # sensor2lidar maps camera coordinates to the ego frame: the camera origin lands at the mount point.
        np.testing.assert_allclose(cam.camera_to_ego(np.zeros(3)), pos)
        np.testing.assert_allclose(
            cam.ego_to_camera(cam.camera_to_ego(np.array([0.3, -0.2, 7.0]))), [0.3, -0.2, 7.0]
        )


def test_front_camera_matches_the_calibration_set_convention(calib_root):
    """The calibration set (made by an independent generator in NAVSIM's convention) stores this F0 rotation."""
    np.testing.assert_allclose(
        default_rig()["CAM_F0"].sensor2lidar_rotation, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]]
    )


@pytest.mark.parametrize("name", CAMERA_NAMES)
@pytest.mark.parametrize("size", [(1920, 1080), (480, 270), (640, 360)])
def test_known_points_project_to_the_expected_pixels(name, size):
    cam = default_rig(*size)[name]
    pos, yaw = _mount(name)
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    fx = REFERENCE_FOCAL * size[0] / 1920
    fy = REFERENCE_FOCAL * size[1] / 1080
    cx, cy = size[0] / 2, size[1] / 2
    # On the optical axis: the principal point.
    uv, depth = cam.project(pos + 12.0 * fwd)
    np.testing.assert_allclose(uv, [cx, cy], atol=1e-9)
    assert depth == pytest.approx(12.0)
    # Lateral / vertical offsets X, Y at depth Z: (cx + fx X/Z, cy + fy Y/Z).
    for x_off, y_off, z in [(1.5, 0.0, 10.0), (-2.0, 0.7, 8.0), (0.0, -1.2, 25.0)]:
        p = pos + z * fwd + x_off * right + y_off * down
        uv, depth = cam.project(p)
        np.testing.assert_allclose(uv, [cx + fx * x_off / z, cy + fy * y_off / z], atol=1e-9)
        assert depth == pytest.approx(z)
    # Behind the camera: NaN pixels, negative depth, not in the image.
    uv, depth = cam.project(pos - 5.0 * fwd)
    assert depth < 0 and np.isnan(uv).all() and not cam.in_image(uv, depth)


def test_pixel_rays_invert_the_projection():
    rng = np.random.default_rng(0)
    for cam in default_rig(640, 360):
        uv = rng.uniform([0, 0], [cam.width, cam.height], size=(50, 2))
        origin, dirs = cam.pixel_rays(uv)
        np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0)
        dist = rng.uniform(1.0, 80.0, size=(50, 1))
        back, depth = cam.project(origin + dist * dirs)
        np.testing.assert_allclose(back, uv, atol=1e-8)
        assert (depth > 0).all()


def test_scaling_keeps_the_field_of_view():
    big, small = default_rig()["CAM_L1"], default_rig(480, 270)["CAM_L1"]
    assert small.horizontal_fov == pytest.approx(big.horizontal_fov)
    assert small.vertical_fov == pytest.approx(big.vertical_fov)
    assert small.fx == pytest.approx(big.fx / 4) and small.cy == pytest.approx(135.0)
    np.testing.assert_array_equal(small.sensor2lidar_rotation, big.sensor2lidar_rotation)
    assert big.horizontal_fov == pytest.approx(2 * math.atan(960 / REFERENCE_FOCAL))


def test_transfuser_stitch_of_l0_f0_r0_is_seamless():
    """TransFuser keeps L0/R0 columns [416, 1504) beside the full F0 (fact sheet §2.1): edges must meet."""
    rig = default_rig()
    f0, l0, r0 = rig["CAM_F0"], rig["CAM_L0"], rig["CAM_R0"]

    def azimuth(cam: PinholeCamera, u: float) -> float:
        _, d = cam.pixel_rays(np.array([u, cam.cy]))
        return math.degrees(math.atan2(d[1], d[0]))

    assert azimuth(l0, 1920 - TRANSFUSER_SIDE_CROP) == pytest.approx(azimuth(f0, 0.0), abs=1e-6)
    assert azimuth(r0, TRANSFUSER_SIDE_CROP) == pytest.approx(azimuth(f0, 1920.0), abs=1e-6)
    # The stitched strip spans about ±70°.
    assert azimuth(l0, TRANSFUSER_SIDE_CROP) == pytest.approx(70.6, abs=0.5)


def test_cameras_cover_all_directions_and_sit_on_the_roof():
    rig = default_rig(480, 270)
    for az in np.radians(np.arange(0, 360, 1.0)):
        p = np.array([1.0 + 30 * math.cos(az), 30 * math.sin(az), 1.8])
        assert any(cam.in_image(*cam.project(p)) for cam in rig), f"azimuth {math.degrees(az):.0f}° unseen"
    for cam in rig:
        x, y, z = cam.position
        assert -1.127 < x < 4.049 and abs(y) < 1.15 and 1.6 < z < 2.2


def test_pitch_tilts_the_optical_axis_down():
    r = camera_rotation(0.0, math.radians(5.0))
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert r[2, 2] == pytest.approx(-math.sin(math.radians(5.0)))
    cam = default_rig(480, 270, pitch_deg=5.0)["CAM_F0"]
    # The horizon (a far point at camera height) is now above the image centre.
    uv, _ = cam.project(cam.position + np.array([1000.0, 0.0, 0.0]))
    assert uv[1] < cam.cy - 10


def test_calibration_round_trip_and_log_entries():
    rig = default_rig(640, 360)
    calib = rig.calibration()
    assert set(calib) == set(CAMERA_NAMES)
    assert set(calib["CAM_B0"]) == {
        "sensor2lidar_rotation",
        "sensor2lidar_translation",
        "cam_intrinsic",
        "distortion",
    }
    rebuilt = rig_from_calibration(calib, {n: (640, 360) for n in CAMERA_NAMES})
    assert isinstance(rebuilt, CameraRig) and rebuilt.names == CAMERA_NAMES
    p = np.array([7.0, 3.0, 0.5])
    for name in CAMERA_NAMES:
        np.testing.assert_allclose(rebuilt[name].project(p)[0], rig[name].project(p)[0], equal_nan=True)


def test_calibration_set_boxes_project_into_its_front_camera(calib_root):
    """Real-format data: the lead car 21 m ahead in calib_02 lands near the centre of its (48×27) CAM_F0."""
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1), load_maps=False)
    frame = loader.get_frame_dicts("f04ee12b6b32d799")[3]
    rig = rig_from_calibration(frame["cams"], {n: (48, 27) for n in CAMERA_NAMES})
    box = np.asarray(frame["anns"]["gt_boxes"][0])
    assert box[0] == pytest.approx(21.13, abs=0.01)
    uv, depth = rig["CAM_F0"].project(box[:3])
    assert rig["CAM_F0"].in_image(uv, depth)
    assert abs(uv[0] - 24.0) < 1.0  # straight ahead
    assert not rig["CAM_B0"].in_image(*rig["CAM_B0"].project(box[:3]))


def test_bad_calibration_entry_is_a_one_line_error():
    from planlab.errors import DataError

    with pytest.raises(DataError, match="CAM_F0.*cam_intrinsic"):
        PinholeCamera.from_calibration("CAM_F0", {"sensor2lidar_rotation": np.eye(3)}, 10, 10)
