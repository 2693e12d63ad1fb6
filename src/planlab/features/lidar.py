"""LiDAR bird's-eye-view histogram (fact sheet §2.1, TransFuser): points counted per BEV cell.

Defaults are NAVSIM's: ±32 m at 4 px/m (256 × 256), only points above 0.2 m (the ground channel is off
unless ``use_ground``), heights below 100 m, at most 5 points per cell, divided by 5 → values in [0, 1].
Orientation: row 0 is the farthest ahead (x = +range), column 0 the farthest left (y = +range), so the BEV
reads like a map with the ego driving up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ContractError
from planlab.features.base import FeatureBuilder, TensorSpec
from planlab.scene import AgentInput, LidarIndex, SensorConfig


class LidarBEVFeatureBuilder(FeatureBuilder):
    """``lidar_bev`` (C, S, S) float32 in [0, 1]; C = 2 with the ground channel (ground, above), else 1."""

    def __init__(
        self,
        range_m: float = 32.0,
        pixels_per_meter: float = 4.0,
        split_height: float = 0.2,
        max_height: float = 100.0,
        max_points_per_cell: int = 5,
        use_ground: bool = False,
        history_index: int = 3,
    ) -> None:
        self.range_m = float(range_m)
        self.pixels_per_meter = float(pixels_per_meter)
        self.split_height = float(split_height)
        self.max_height = float(max_height)
        self.max_points = int(max_points_per_cell)
        self.use_ground = bool(use_ground)
        self.history_index = int(history_index)
        size = 2 * self.range_m * self.pixels_per_meter
        if abs(size - round(size)) > 1e-6 or size < 1:
            raise ValueError("2·range_m·pixels_per_meter must be a positive integer")
        self.size = int(round(size))

    def get_unique_name(self) -> str:
        return "lidar_bev"

    def settings(self) -> dict[str, Any]:
        return {
            "range_m": self.range_m,
            "pixels_per_meter": self.pixels_per_meter,
            "split_height": self.split_height,
            "max_height": self.max_height,
            "max_points": self.max_points,
            "use_ground": self.use_ground,
            "history_index": self.history_index,
        }

    def specs(self) -> dict[str, TensorSpec]:
        c = 2 if self.use_ground else 1
        return {"lidar_bev": TensorSpec((c, self.size, self.size), "float32", (0.0, 1.0), "point histogram")}

    def sensor_config(self) -> SensorConfig:
        return SensorConfig(lidar_pc=[self.history_index])

    def histogram(self, points_xy: np.ndarray) -> np.ndarray:
        """Counts per cell (S, S), clipped and scaled to [0, 1]; rows from +x to −x, columns from +y to −y."""
        s = self.size
        rows = np.floor((self.range_m - points_xy[:, 0]) * self.pixels_per_meter).astype(np.int64)
        cols = np.floor((self.range_m - points_xy[:, 1]) * self.pixels_per_meter).astype(np.int64)
        keep = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
        counts = np.bincount(rows[keep] * s + cols[keep], minlength=s * s).reshape(s, s).astype(np.float32)
        return np.minimum(counts, self.max_points) / self.max_points

    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]:
        if self.history_index >= len(agent_input.lidars):
            raise ContractError(
                f"builder 'lidar_bev' reads history frame {self.history_index}, input has "
                f"{len(agent_input.lidars)}"
            )
        pc = agent_input.lidars[self.history_index].lidar_pc
        if pc is None:
            raise ContractError(
                f"builder 'lidar_bev': the point cloud of history frame {self.history_index} was not loaded"
            )
        pc = np.asarray(pc)
        if pc.ndim != 2 or pc.shape[0] < 3:
            raise ContractError(f"builder 'lidar_bev': point cloud has shape {pc.shape}, expected (6, N)")
        xyz = pc[[LidarIndex.X, LidarIndex.Y, LidarIndex.Z]].T.astype(np.float64)
        xyz = xyz[xyz[:, 2] < self.max_height]
        above = self.histogram(xyz[xyz[:, 2] > self.split_height, :2])
        channels = [above]
        if self.use_ground:
            channels.insert(0, self.histogram(xyz[xyz[:, 2] <= self.split_height, :2]))
        return {"lidar_bev": torch.from_numpy(np.stack(channels))}
