"""Builder contract (lessons V1–V3) and the trajectory-target origin (lesson C1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.errors import ContractError
from planlab.features.base import FeatureBuilder, TensorSpec, check_contract, compute_features
from planlab.features.ego import EgoStatusFeatureBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder, check_trajectory_target
from planlab.geometry.se2 import relative_to_absolute
from planlab.scene import (
    AgentInput,
    Annotations,
    Cameras,
    EgoStatus,
    Frame,
    Lidar,
    Scene,
    SceneMetadata,
)


def make_scene(speed: float = 8.0, yaw_rate: float = 0.1, n_hist: int = 4, n_fut: int = 8) -> Scene:
    """A scene whose ego drives an arc at ``speed`` m/s, starting from a non-trivial global pose."""
    frames = []
    origin = np.array([100.0, -50.0, 0.7])
    for i in range(n_hist + n_fut):
        t = (i - (n_hist - 1)) * 0.5
        heading = yaw_rate * t
        # integrate the arc in the frame of the current pose, then place it globally
        if abs(yaw_rate) > 1e-9:
            local = np.array(
                [speed / yaw_rate * np.sin(heading), speed / yaw_rate * (1 - np.cos(heading)), heading]
            )
        else:
            local = np.array([speed * t, 0.0, 0.0])
        pose = relative_to_absolute(origin, local[None])[0]
        status = EgoStatus(pose, [speed, 0.0], [0.0, 0.0], [0, 1, 0, 0], in_global_frame=True)
        frames.append(
            Frame(f"tok{i:02d}", i * 500_000, ["rb"], [], Annotations.empty(), status, Lidar(), Cameras())
        )
    meta = SceneMetadata(
        "log", "scene", "us-pa-pittsburgh-hazelwood", frames[n_hist - 1].token, n_hist, n_fut
    )
    return Scene(meta, None, frames)


class ListBuilder(FeatureBuilder):
    """The bug of lesson V1: a feature returned as a list of tensors."""

    def get_unique_name(self) -> str:
        return "hydra_features"

    def specs(self) -> dict[str, TensorSpec]:
        return {"camera": TensorSpec((3, 4, 4)), "status": TensorSpec((8,))}

    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]:
        return {"camera": [torch.zeros(3, 4, 4)], "status": torch.zeros(8)}  # type: ignore[dict-item]


def test_list_feature_is_refused_naming_builder_and_key():
    scene = make_scene()
    with pytest.raises(
        ContractError, match=r"builder 'hydra_features' key 'camera' returned list, expected torch.Tensor"
    ):
        compute_features([ListBuilder()], scene.get_agent_input())


def test_contract_checks_dtype_shape_finiteness_range_and_keys():
    spec = {"x": TensorSpec((2, "N")), "y": TensorSpec(("N",), "int64", (0, 5))}
    ok = {"x": torch.zeros(2, 3), "y": torch.tensor([0, 5, 1])}
    assert check_contract("b", ok, spec) is not None
    cases = [
        ({"x": torch.zeros(2, 3, dtype=torch.float64), "y": ok["y"]}, "dtype float64, declared float32"),
        ({"x": torch.zeros(3, 3), "y": ok["y"]}, r"shape \(3, 3\), declared \(2, N\)"),
        ({"x": torch.zeros(2, 4), "y": ok["y"]}, "N=3 but another key has N=4|N=4 but another key has N=3"),
        ({"x": torch.full((2, 3), float("nan")), "y": ok["y"]}, r"non-finite values \(6 NaN, 0 Inf\)"),
        ({"x": ok["x"], "y": torch.tensor([0, 6, 1])}, r"values in \[0, 6\], declared range \[0, 5\]"),
        ({"x": ok["x"]}, "did not return declared key"),
        ({**ok, "z": torch.zeros(1)}, "undeclared key"),
        ([ok["x"]], "returned list, expected Dict"),
    ]
    for out, msg in cases:
        with pytest.raises(ContractError, match=msg):
            check_contract("b", out, spec)
    # a collated batch: one extra leading dim
    check_contract(
        "b", {"x": torch.zeros(5, 2, 3), "y": torch.zeros(5, 3, dtype=torch.int64)}, spec, batched=True
    )


def test_ego_status_feature_order_and_history():
    scene = make_scene(speed=7.0)
    ai = scene.get_agent_input()
    out = EgoStatusFeatureBuilder(history_poses=2).compute_features(ai)
    check_contract(EgoStatusFeatureBuilder(2), out)
    assert out["ego_status"].tolist() == pytest.approx([7.0, 0.0, 0.0, 0.0, 0, 1, 0, 0])
    # past poses are behind the current rear axle (x < 0), oldest first
    hist = out["ego_history"]
    assert hist.shape == (2, 3) and hist[0, 0] < hist[1, 0] < 0
    with pytest.raises(ContractError, match="needs 5 past poses"):
        EgoStatusFeatureBuilder(5).compute_features(ai)


def test_trajectory_target_origin_is_current_pose():
    scene = make_scene(speed=8.0, yaw_rate=0.1)
    target = TrajectoryTargetBuilder(8).compute_targets(scene)["trajectory"]
    # first pose 0.5 s ahead at 8 m/s: ~4 m forward of the *current* rear axle, not (0, 0, 0)
    assert target[0, 0] == pytest.approx(4.0, abs=0.05) and target[0, 2] == pytest.approx(0.05, abs=1e-6)
    check_trajectory_target("trajectory", target, scene)


def test_target_relative_to_first_waypoint_is_detected():
    """Lesson C1: poses relative to the first future waypoint are caught when the dataset is built."""
    scene = make_scene(speed=8.0, yaw_rate=0.1)
    truth = scene.get_future_trajectory(8).poses
    from planlab.geometry.se2 import absolute_to_relative

    wrong = torch.from_numpy(absolute_to_relative(truth[0], truth).astype(np.float32))
    with pytest.raises(ContractError, match="relative to the first future waypoint"):
        check_trajectory_target("my_target", wrong, scene)
    shifted = torch.from_numpy((truth - truth[:1]).astype(np.float32))
    with pytest.raises(ContractError, match="my_target"):
        check_trajectory_target("my_target", shifted, scene)


def test_builder_hash_changes_with_settings():
    assert EgoStatusFeatureBuilder(0).config_hash() != EgoStatusFeatureBuilder(2).config_hash()
    assert EgoStatusFeatureBuilder(0).config_hash() == EgoStatusFeatureBuilder(0).config_hash()
    assert TrajectoryTargetBuilder(8).cache_key.startswith("trajectory-")
