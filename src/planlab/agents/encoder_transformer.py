"""Frozen image encoder + transformer decoder head: one query per future pose attends to the patch tokens
and an ego-status token; L1 to the future poses in the current rear-axle frame."""

from __future__ import annotations

import torch
from torch import nn

from planlab.agents.frozen_encoder import FrozenEncoderAgent
from planlab.agents.learned_config import EncoderTransformerConfig
from planlab.models.heads import PoseQueryDecoder


class EncoderTransformerAgent(FrozenEncoderAgent):
    """Pose queries over ViT/I-JEPA patch tokens (the whole grid, not a pooled vector)."""

    config_class = EncoderTransformerConfig
    registry_name = "encoder_transformer"
    needs_patches = True

    def __init__(self, config=None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: EncoderTransformerConfig = self.config
        self.head = PoseQueryDecoder(
            self.encoder.embed_dim,
            self.ego_dim,
            cfg.trajectory.num_poses,
            cfg.d_model,
            cfg.num_layers,
            cfg.num_heads,
            cfg.ffn_dim,
            cfg.dropout,
        )

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"trajectory": self.head(self.image_tokens(features), self.ego_vector(features))}

    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        l1 = nn.functional.l1_loss(predictions["trajectory"], targets["trajectory"])
        return {"loss": l1, "trajectory_l1": l1.detach()}
