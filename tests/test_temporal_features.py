"""Multi-frame inputs and forecasting targets on the tiny synthetic world: per-frame LiDAR BEV equal to the
single-frame builder, ego motion equal to the logged poses, real LiDAR of a past frame warped into the current
frame overlapping the current scan (and a wrong motion not), the agent futures aligned with the box target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.data.loader import SceneLoader
from planlab.errors import ConfigError, ContractError
from planlab.features.base import check_contract
from planlab.features.lidar import LidarBEVFeatureBuilder
from planlab.features.perception import AgentBoxTargetBuilder
from planlab.features.temporal import TemporalLidarBEVFeatureBuilder, resolve_slice_indices
from planlab.features.temporal_targets import AgentForecastTargetBuilder
from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.warp import warp_bev
from planlab.scene import SceneFilter, SensorConfig


@pytest.fixture(scope="module")
def loaders(tiny_dataset):
    b = TemporalLidarBEVFeatureBuilder()
    return {
        split: SceneLoader(tiny_dataset, split, SceneFilter(frame_interval=1), b.sensor_config())
        for split in ("train", "val", "test")
    }


def test_frames_equal_the_single_frame_builder_and_motion_the_logged_poses(loaders):
    loader = loaders["val"]
    token = loader.tokens[3]
    agent_input = loader.get_agent_input_from_token(token)
    b = TemporalLidarBEVFeatureBuilder(num_history_frames=4, slice_indices=[0, 2, 3])
    assert b.sensor_config().lidar_pc == [0, 2, 3]
    out = check_contract(b, b.compute_features(agent_input))
    assert out["lidar_bev_seq"].shape == (3, 1, 128, 128) and out["ego_motion"].shape == (3, 3)
    for k, i in enumerate([0, 2, 3]):
        single = LidarBEVFeatureBuilder(pixels_per_meter=2.0, history_index=i).compute_features(agent_input)
        assert torch.equal(out["lidar_bev_seq"][k], single["lidar_bev"])
        assert np.allclose(out["ego_motion"][k].numpy(), agent_input.ego_statuses[i].ego_pose, atol=1e-6)
    assert torch.equal(out["ego_motion"][-1], torch.zeros(3))  # the current frame is the origin
    # the past frames are behind the ego (it drives forward through the tiny world's scenes)
    assert float(out["ego_motion"][0, 0]) < -1.0


def test_past_lidar_warped_by_the_ego_motion_overlaps_the_current_scan(loaders):
    """Real ray-cast LiDAR: the oldest frame's histogram warped with its logged pose overlaps the current
    histogram (static world: buildings, parked cars, poles) better than unwarped and than with the wrong sign."""
    b = TemporalLidarBEVFeatureBuilder()
    grid = BEVGrid.square(32.0, 128)

    def iou(a, c, mask=None):
        if mask is not None:
            a, c = a & mask, c & mask
        return float((a & c).sum() / (a | c).sum())

    rows = []
    for loader in loaders.values():
        for token in loader.tokens:
            out = b.compute_features(loader.get_agent_input_from_token(token))
            seq, motion = out["lidar_bev_seq"], out["ego_motion"]
            cur, past = seq[-1, 0] > 0, seq[0]
            warped = warp_bev(past[None], motion[0][None], grid)[0, 0] > 0.3
            wrong = warp_bev(past[None], -motion[0][None], grid)[0, 0] > 0.3
            # cells of the current grid that the past raster covers at all (the ego moves 7-20 m in 1.5 s)
            seen = warp_bev(torch.ones_like(past)[None], motion[0][None], grid)[0, 0] > 0.999
            rows.append((iou(past[0] > 0, cur), iou(warped, cur), iou(wrong, cur), iou(warped, cur, seen)))
    raw, good, bad, good_seen = np.array(rows).T
    assert len(rows) >= 15
    assert (good >= raw - 0.02).all()
    assert good.mean() > raw.mean() + 0.15 and good.mean() > bad.mean() + 0.25
    # where both scans look, most occupied cells agree (moving actors and ray sampling account for the rest;
    # 0.69 on the tiny world, the wrong sign gives 0.26)
    assert good_seen.mean() > 0.6


def test_window_errors_name_the_setting(loaders):
    agent_input = loaders["train"].get_agent_input_from_token(loaders["train"].tokens[0])
    with pytest.raises(ContractError, match="needs 6 history frames, the input has 4"):
        TemporalLidarBEVFeatureBuilder(num_history_frames=6).compute_features(agent_input)
    with pytest.raises(ConfigError, match="strictly increasing"):
        resolve_slice_indices(4, [0, 2, 2])
    with pytest.raises(ConfigError, match=r"must lie in \[0, 3\]"):
        resolve_slice_indices(4, [1, 4])
    assert resolve_slice_indices(4, None) == [0, 1, 2, 3]


def test_missing_point_cloud_is_a_contract_error(tiny_dataset):
    loader = SceneLoader(tiny_dataset, "train", SceneFilter(frame_interval=1), SensorConfig(lidar_pc=[3]))
    agent_input = loader.get_agent_input_from_token(loader.tokens[0])
    with pytest.raises(ContractError, match="point cloud of history frame 0 was not loaded"):
        TemporalLidarBEVFeatureBuilder().compute_features(agent_input)


def test_agent_futures_follow_the_box_target_and_the_logged_velocity(tiny_dataset):
    checked = 0
    for split in ("train", "val", "test"):
        loader = SceneLoader(tiny_dataset, split, SceneFilter(frame_interval=1))
        for token in loader.tokens:
            scene = loader.get_scene_from_token(token, SensorConfig.build_no_sensors())
            fb = AgentForecastTargetBuilder(num_future=8)
            fut = check_contract(fb, fb.compute_targets(scene))
            boxes = AgentBoxTargetBuilder().compute_targets(scene)
            labels = boxes["agent_labels"].numpy() > 0.5
            valid = fut["agent_future_valid"].numpy() > 0.5
            assert not valid[~labels].any()  # padding rows have no future
            ann = scene.current_frame.annotations
            for n in np.flatnonzero(labels & valid[:, 0]):
                x, y = boxes["agent_states"][n, :2].numpy()
                i = int(np.argmin(np.hypot(ann.boxes[:, 0] - x, ann.boxes[:, 1] - y)))
                # the target is in the (fixed) current frame, so half a second on the agent has moved by 0.5 s
                # of its logged velocity (world motion expressed in the current ego axes, m/s)
                predicted = np.array([x, y]) + 0.5 * ann.velocity_3d[i, :2]
                got = fut["agent_future"][n, 0].numpy()
                assert np.linalg.norm(got - predicted) < 1.5, (token, n, got, predicted)
                checked += 1
    assert checked >= 5


def test_forecast_target_needs_enough_future_frames(tiny_dataset):
    loader = SceneLoader(tiny_dataset, "train", SceneFilter(num_future_frames=4, frame_interval=1))
    scene = loader.get_scene_from_token(loader.tokens[0], SensorConfig.build_no_sensors())
    with pytest.raises(ContractError, match="needs 8 future frames, scene .* has 4"):
        AgentForecastTargetBuilder(num_future=8).compute_targets(scene)
