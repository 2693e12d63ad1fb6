"""Scene vocabulary: sampling derivation, trajectory getters and agent inputs in the current frame."""

from __future__ import annotations

import numpy as np
import pytest

from planlab.scene import (
    Annotations,
    Cameras,
    EgoStatus,
    Frame,
    Lidar,
    Scene,
    SceneFilter,
    SceneMetadata,
    SensorConfig,
    Trajectory,
    TrajectorySampling,
)


def test_sampling_derivation():
    assert TrajectorySampling(time_horizon=4, interval_length=0.5).num_poses == 8
    assert TrajectorySampling(num_poses=40, interval_length=0.1).time_horizon == pytest.approx(4.0)
    assert TrajectorySampling(num_poses=8, time_horizon=4).interval_length == pytest.approx(0.5)
    with pytest.raises(ValueError):
        TrajectorySampling(num_poses=8)
    with pytest.raises(ValueError):
        TrajectorySampling(num_poses=8, time_horizon=4, interval_length=0.1)


def test_trajectory_shape_checks():
    Trajectory(np.zeros((8, 3), dtype=np.float32))
    with pytest.raises(ValueError):
        Trajectory(np.zeros((7, 3)))
    with pytest.raises(ValueError):
        Trajectory(np.zeros((8, 2)))


def _frame(i: int, pose) -> Frame:
    return Frame(
        token=f"{i:016x}",
        timestamp=i * 500_000,
        roadblock_ids=["1"],
        traffic_lights=[],
        annotations=Annotations.empty(),
        ego_status=EgoStatus(np.array(pose), [5.0, 0.0], [0.0, 0.0], [0, 1, 0, 0], in_global_frame=True),
        lidar=Lidar(),
        cameras=Cameras(),
    )


def _scene() -> Scene:
    # Ego drives along +y (heading pi/2) at 5 m/s from (100, 200): 2.5 m per frame.
    frames = [_frame(i, [100.0, 200.0 + 2.5 * i, np.pi / 2]) for i in range(14)]
    meta = SceneMetadata("log", "scene", "us-ma-boston", frames[3].token, 4, 10)
    return Scene(meta, None, frames)


def test_future_and_history_are_relative_to_current_rear_axle():
    scene = _scene()
    fut = scene.get_future_trajectory()
    assert fut.poses.shape == (10, 3)
    np.testing.assert_allclose(fut.poses[:, 0], 2.5 * np.arange(1, 11), atol=1e-9)
    np.testing.assert_allclose(fut.poses[:, 1:], 0.0, atol=1e-9)
    assert scene.get_future_trajectory(8).trajectory_sampling.time_horizon == pytest.approx(4.0)
    hist = scene.get_history_trajectory()
    np.testing.assert_allclose(hist.poses[:, 0], [-7.5, -5.0, -2.5, 0.0], atol=1e-9)


def test_agent_input_history_only_and_local():
    ai = _scene().get_agent_input()
    assert len(ai.ego_statuses) == 4
    np.testing.assert_allclose(ai.ego_statuses[-1].ego_pose, 0.0, atol=1e-12)
    np.testing.assert_allclose(ai.ego_statuses[0].ego_pose, [-7.5, 0, 0], atol=1e-9)
    assert not ai.ego_statuses[0].in_global_frame


def test_sensor_config_and_filter():
    sc = SensorConfig(cam_f0=[3], lidar_pc=True)
    assert sc.get_sensors_at_iteration(3)["cam_f0"] and not sc.get_sensors_at_iteration(2)["cam_f0"]
    assert SensorConfig.build_no_sensors().any() is False
    assert SceneFilter().num_frames == 14 and SceneFilter().interval == 14
    assert SceneFilter(frame_interval=1).interval == 1


def test_annotations_length_check():
    with pytest.raises(ValueError, match="differ in length"):
        Annotations(np.zeros((2, 7)), ["vehicle"], np.zeros((2, 3)), ["a", "b"], ["a", "b"])
