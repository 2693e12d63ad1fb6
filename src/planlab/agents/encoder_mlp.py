"""Frozen image encoder + MLP head: pooled patch tokens (mean or attention; no CLS) concatenated with the
ego status → MLP → the future poses (L1 in the current rear-axle frame)."""

from __future__ import annotations

import torch
from torch import nn

from planlab.agents.frozen_encoder import FrozenEncoderAgent
from planlab.agents.learned_config import EncoderMLPConfig
from planlab.models.heads import MLP


class EncoderMLPAgent(FrozenEncoderAgent):
    """The label-efficiency workhorse: a frozen (SSL) encoder and a small trainable head."""

    config_class = EncoderMLPConfig
    registry_name = "encoder_mlp"

    def __init__(self, config=None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: EncoderMLPConfig = self.config
        in_dim = self.encoder.embed_dim + (self.ego_dim if cfg.use_ego_status else 0)
        self.head = MLP(
            in_dim, cfg.hidden_dim, cfg.trajectory.num_poses * 3, cfg.num_hidden_layers, cfg.dropout
        )

    def get_feature_builders(self) -> list:
        return (
            [self.camera_builder, self.ego_builder()] if self.config.use_ego_status else [self.camera_builder]
        )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.image_vector(features)
        if self.config.use_ego_status:
            x = torch.cat([x, self.ego_vector(features)], dim=1)
        out = self.head(x)
        return {"trajectory": out.view(x.shape[0], self.config.trajectory.num_poses, 3)}

    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        l1 = nn.functional.l1_loss(predictions["trajectory"], targets["trajectory"])
        return {"loss": l1, "trajectory_l1": l1.detach()}
