"""NAVSIM's EgoStatusMLP baseline (fact sheet §2.1): ego status (8 numbers) → MLP → the future poses.

No sensors. Input velocity, acceleration and command of the current frame (optionally past poses);
hidden layers of 512 with ReLU; output reshaped to [B, num_poses, 3]; L1 loss to the logged future in the
current rear-axle frame. With ``normalize`` (the default) the network sees inputs and predicts poses in fixed
physical units (:mod:`planlab.models.scaling`) and the L1 is taken in those units; ``normalize: false`` is
NAVSIM's raw-unit version.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from planlab.agents.learned_config import EgoStatusMLPConfig
from planlab.agents.torch_agent import TorchAgent
from planlab.features.base import FeatureBuilder, TargetBuilder
from planlab.features.ego import EGO_STATUS_DIM, EgoStatusFeatureBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.models.heads import MLP
from planlab.models.scaling import ego_status_scale, trajectory_scale


class EgoStatusMLPAgent(TorchAgent):
    """Ego-status MLP planner."""

    config_class = EgoStatusMLPConfig
    registry_name = "ego_status_mlp"
    # Checkpoints recorded before ``normalize`` existed were trained in raw units.
    legacy_settings: ClassVar[dict[str, Any]] = {"normalize": False}

    def __init__(self, config=None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: EgoStatusMLPConfig = self.config
        t = cfg.trajectory
        in_dim = EGO_STATUS_DIM + 3 * cfg.ego.history_poses
        self.mlp = MLP(in_dim, cfg.hidden_dim, t.num_poses * 3, cfg.num_hidden_layers)
        # Constants derived from the config (not stored in the state dict, so checkpoints keep their keys).
        if cfg.normalize:
            in_scale = ego_status_scale(cfg.ego.history_poses)
            out_scale = trajectory_scale(t.num_poses, t.interval_length)
        else:
            in_scale, out_scale = torch.ones(in_dim), torch.ones(t.num_poses, 3)
        self.register_buffer("input_scale", in_scale, persistent=False)
        self.register_buffer("output_scale", out_scale, persistent=False)

    def get_feature_builders(self) -> list[FeatureBuilder]:
        return [EgoStatusFeatureBuilder(self.config.ego.history_poses)]

    def get_target_builders(self) -> list[TargetBuilder]:
        t = self.config.trajectory
        return [TrajectoryTargetBuilder(t.num_poses, t.interval_length)]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = features["ego_status"]
        if self.config.ego.history_poses:
            x = torch.cat([x, features["ego_history"].flatten(1)], dim=1)
        out = self.mlp(x / self.input_scale).view(x.shape[0], self.config.trajectory.num_poses, 3)
        return {"trajectory": out * self.output_scale}

    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        # Both in the current rear-axle frame: no offset by a waypoint (lesson C1).
        error = predictions["trajectory"] - targets["trajectory"]
        loss = (error.abs() / self.output_scale).mean()
        # trajectory_l1 stays in raw units (m, rad) so runs with and without normalize compare.
        return {"loss": loss, "trajectory_l1": error.detach().abs().mean()}
