"""Multi-frame inputs for temporal BEV fusion: LiDAR BEV histograms of several history frames and the ego
motion that relates each of them to the current frame.

``slice_indices`` pick history frames counted in the agent's own ``num_history_frames`` window (0 = oldest,
``num_history_frames − 1`` = current), seed 003's ``num_history_frames=4, slice_indices=[0,1,2,3]``. The
window is aligned to the *end* of the AgentInput, so an input with more frames than the agent uses still
gives the current frame at index ``num_history_frames − 1``.

Each histogram is rasterised in the rear-axle frame of its own time step (the world's LiDAR frame is the
ego frame, ``lidar2ego`` = identity), with :class:`~planlab.features.lidar.LidarBEVFeatureBuilder`'s grid:
row 0 farthest ahead, column 0 farthest left, ego at the centre. ``ego_motion[t] = (x, y, heading)`` of frame
t in the current frame — exactly ``AgentInput.ego_statuses[i].ego_pose``, which NAVSIM already expresses in
the current frame (fact sheet §2.2, methods_facts §3.2); the warping in ``planlab.models.temporal`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from planlab.errors import ConfigError, ContractError
from planlab.features.base import FeatureBuilder, TensorSpec
from planlab.features.lidar import LidarBEVFeatureBuilder
from planlab.scene import AgentInput, LidarIndex, SensorConfig


def resolve_slice_indices(num_history_frames: int, slice_indices: Sequence[int] | None) -> list[int]:
    """The history frames to use (None: all of them); ConfigError unless strictly increasing and in range."""
    if num_history_frames < 1:
        raise ConfigError(f"num_history_frames must be >= 1, got {num_history_frames}")
    if slice_indices is None:
        return list(range(num_history_frames))
    idx = [int(i) for i in slice_indices]
    if not idx:
        raise ConfigError("slice_indices must name at least one history frame")
    if any(i < 0 or i >= num_history_frames for i in idx):
        raise ConfigError(
            f"slice_indices {idx} must lie in [0, {num_history_frames - 1}] (num_history_frames={num_history_frames})"
        )
    if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
        raise ConfigError(f"slice_indices {idx} must be strictly increasing (oldest first)")
    return idx


class TemporalLidarBEVFeatureBuilder(FeatureBuilder):
    """``lidar_bev_seq`` (T, C, S, S) in [0, 1], oldest first, each in its own frame; ``ego_motion`` (T, 3)."""

    def __init__(
        self,
        num_history_frames: int = 4,
        slice_indices: Sequence[int] | None = None,
        range_m: float = 32.0,
        pixels_per_meter: float = 2.0,
        split_height: float = 0.2,
        max_height: float = 100.0,
        max_points_per_cell: int = 5,
        use_ground: bool = False,
    ) -> None:
        self.num_history_frames = int(num_history_frames)
        self.slice_indices = resolve_slice_indices(self.num_history_frames, slice_indices)
        # the per-frame raster is exactly the single-frame LiDAR feature (same defaults as TransFuser's)
        self.single = LidarBEVFeatureBuilder(
            range_m, pixels_per_meter, split_height, max_height, max_points_per_cell, use_ground
        )

    def get_unique_name(self) -> str:
        return "lidar_bev_seq"

    def settings(self) -> dict[str, Any]:
        base = self.single.settings()
        base.pop("history_index", None)
        return {**base, "num_history_frames": self.num_history_frames, "slice_indices": self.slice_indices}

    @property
    def num_frames(self) -> int:
        return len(self.slice_indices)

    def specs(self) -> dict[str, TensorSpec]:
        c, s = (2 if self.single.use_ground else 1), self.single.size
        return {
            "lidar_bev_seq": TensorSpec(
                (self.num_frames, c, s, s), "float32", (0.0, 1.0), "point histograms"
            ),
            "ego_motion": TensorSpec(
                (self.num_frames, 3), "float32", description="frame pose in current frame"
            ),
        }

    def sensor_config(self) -> SensorConfig:
        """LiDAR at the used frames (indices of the loader's window; the window ends at the current frame)."""
        return SensorConfig(lidar_pc=list(self.slice_indices))

    def input_indices(self, agent_input: AgentInput) -> list[int]:
        """Positions in ``agent_input``'s lists of the used frames (window aligned to the current frame)."""
        n = len(agent_input.ego_statuses)
        if n < self.num_history_frames:
            raise ContractError(
                f"builder 'lidar_bev_seq' needs {self.num_history_frames} history frames, the input has {n} "
                "(set data.num_history_frames to at least agent.num_history_frames)"
            )
        offset = n - self.num_history_frames
        return [offset + i for i in self.slice_indices]

    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]:
        frames, poses = [], []
        for i in self.input_indices(agent_input):
            lidar = agent_input.lidars[i] if i < len(agent_input.lidars) else None
            pc = None if lidar is None else lidar.lidar_pc
            if pc is None:
                raise ContractError(
                    f"builder 'lidar_bev_seq': the point cloud of history frame {i} was not loaded "
                    "(the loader's sensor config must include lidar_pc at the agent's slice_indices; "
                    "data.num_history_frames should equal agent.num_history_frames)"
                )
            pc = np.asarray(pc)
            if pc.ndim != 2 or pc.shape[0] < 3:
                raise ContractError(
                    f"builder 'lidar_bev_seq': point cloud of frame {i} has shape {pc.shape}, expected (6, N)"
                )
            xyz = pc[[LidarIndex.X, LidarIndex.Y, LidarIndex.Z]].T.astype(np.float64)
            xyz = xyz[xyz[:, 2] < self.single.max_height]
            channels = [self.single.histogram(xyz[xyz[:, 2] > self.single.split_height, :2])]
            if self.single.use_ground:
                channels.insert(0, self.single.histogram(xyz[xyz[:, 2] <= self.single.split_height, :2]))
            frames.append(np.stack(channels))
            poses.append(np.asarray(agent_input.ego_statuses[i].ego_pose, dtype=np.float64))
        return {
            "lidar_bev_seq": torch.from_numpy(np.stack(frames).astype(np.float32)),
            "ego_motion": torch.from_numpy(np.stack(poses).astype(np.float32)),
        }
