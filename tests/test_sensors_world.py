"""End to end on the world's ``tiny`` dataset: logged calibration = the rig, LiDAR returns inside the annotated
boxes (same ego frame, ground at z = 0), camera images of the logged size, and a ``data viz`` figure."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from planlab.data import SceneLoader
from planlab.geometry.boxes import box_corners, points_in_boxes
from planlab.scene import SceneFilter, SensorConfig
from planlab.scene.enums import CAMERA_NAMES
from planlab.world.sensors import default_rig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def loader(tiny_dataset):
    return SceneLoader(tiny_dataset, "train", SceneFilter(frame_interval=1, has_route=False))


def test_logged_calibration_is_the_rig_at_the_image_size(loader, tiny_dataset):
    frame = loader.get_frame_dicts(loader.tokens[0])[3]
    first = tiny_dataset / "sensor_blobs" / "train" / frame["cams"]["CAM_F0"]["data_path"]
    width, height = Image.open(first).size
    rig = default_rig(width, height)
    for name in CAMERA_NAMES:
        entry = frame["cams"][name]
        expected = rig[name].calibration()
        for key in ("sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion"):
            np.testing.assert_allclose(
                np.asarray(entry[key], dtype=np.float64), expected[key], err_msg=f"{name} {key}"
            )
        assert Image.open(tiny_dataset / "sensor_blobs" / "train" / entry["data_path"]).size == (
            width,
            height,
        )


def test_lidar_returns_lie_in_the_annotated_boxes(loader):
    sensors = SensorConfig(lidar_pc=[3])
    checked = 0
    for token in loader.tokens[:: max(1, len(loader.tokens) // 4)]:
        frame = loader.get_scene_from_token(token, sensors).current_frame
        cloud = frame.lidar.lidar_pc
        assert cloud.dtype == np.float32 and cloud.shape[0] == 6
        ground = np.abs(cloud[2]) < 0.15
        assert ground.mean() > 0.3  # most returns are road and verge at z ≈ 0
        boxes = frame.annotations.boxes
        near = [i for i in range(len(boxes)) if np.hypot(*boxes[i, :2]) < 30.0]
        for i in near:
            x, y, z, length, width, height, heading = boxes[i]
            grown = box_corners(x, y, heading, length + 0.4, width + 0.4)
            above_ground = points_in_boxes(cloud[:2].T.astype(np.float64), grown) & (cloud[2] > 0.15)
            if above_ground.sum() >= 3:  # visible (another object may hide it entirely)
                checked += 1
                # The returns over its footprint come from the box itself: none float above its top.
                assert (cloud[2, above_ground] <= z + height / 2 + 0.2).mean() > 0.95
    assert checked >= 1, "no annotated object near the ego was hit by the LiDAR"


def test_data_viz_on_a_generated_scene(loader, tiny_dataset, tmp_path):
    from planlab.viz.scene import visualize_token

    out = visualize_token(
        tiny_dataset, loader.tokens[len(loader.tokens) // 2], tmp_path / "gen.png", split="train"
    )
    assert Image.open(out).size == (1600, 600)
