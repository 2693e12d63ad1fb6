"""NAVSIM's EgoStatusMLP baseline (fact sheet §2.1): ego status (8 numbers) → MLP → the future poses.

No sensors. Input velocity, acceleration and command of the current frame (optionally past poses);
hidden layers of 512 with ReLU; output reshaped to [B, num_poses, 3]; L1 loss to the logged future in the
current rear-axle frame.
"""

from __future__ import annotations

import torch
from torch import nn

from planlab.agents.learned_config import EgoStatusMLPConfig
from planlab.agents.torch_agent import TorchAgent
from planlab.features.base import FeatureBuilder, TargetBuilder
from planlab.features.ego import EGO_STATUS_DIM, EgoStatusFeatureBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.models.heads import MLP


class EgoStatusMLPAgent(TorchAgent):
    """Ego-status MLP planner."""

    config_class = EgoStatusMLPConfig
    registry_name = "ego_status_mlp"

    def __init__(self, config=None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: EgoStatusMLPConfig = self.config
        in_dim = EGO_STATUS_DIM + 3 * cfg.ego.history_poses
        self.mlp = MLP(in_dim, cfg.hidden_dim, cfg.trajectory.num_poses * 3, cfg.num_hidden_layers)

    def get_feature_builders(self) -> list[FeatureBuilder]:
        return [EgoStatusFeatureBuilder(self.config.ego.history_poses)]

    def get_target_builders(self) -> list[TargetBuilder]:
        t = self.config.trajectory
        return [TrajectoryTargetBuilder(t.num_poses, t.interval_length)]

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = features["ego_status"]
        if self.config.ego.history_poses:
            x = torch.cat([x, features["ego_history"].flatten(1)], dim=1)
        out = self.mlp(x)
        return {"trajectory": out.view(x.shape[0], self.config.trajectory.num_poses, 3)}

    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        # Both in the current rear-axle frame: no offset by a waypoint (lesson C1).
        l1 = nn.functional.l1_loss(predictions["trajectory"], targets["trajectory"])
        return {"loss": l1, "trajectory_l1": l1.detach()}
