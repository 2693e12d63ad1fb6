"""Planning heads: MLP regression head, transformer-decoder head with pose queries."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """``in → hidden × num_hidden_layers (ReLU) → out`` (NAVSIM EgoStatusMLP: 8 → 512 ×3 → 24)."""

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_hidden_layers: int = 3, dropout: float = 0.0
    ):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(d, hidden_dim), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PoseQueryDecoder(nn.Module):
    """Transformer decoder head: one learned query per future pose attends to the image tokens plus an
    ego-status token (TransFuser-style planning decoder); each query regresses (x, y, heading).

    Heading is bounded with ``tanh · π`` as in TransFuser's trajectory head (methods_facts §4).
    """

    def __init__(
        self,
        token_dim: int,
        ego_dim: int,
        num_poses: int,
        d_model: int = 256,
        num_layers: int = 3,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.token_proj = nn.Linear(token_dim, d_model)
        self.ego_proj = nn.Linear(ego_dim, d_model)
        self.type_embed = nn.Parameter(torch.zeros(2, d_model))  # 0: image token, 1: ego token
        self.queries = nn.Parameter(torch.zeros(num_poses, d_model))
        nn.init.trunc_normal_(self.queries, std=0.02)
        nn.init.trunc_normal_(self.type_embed, std=0.02)
        layer = nn.TransformerDecoderLayer(
            d_model, num_heads, ffn_dim, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.out = MLP(d_model, d_model, 3, 1)

    def forward(self, tokens: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        memory = torch.cat(
            [
                self.token_proj(tokens) + self.type_embed[0],
                (self.ego_proj(ego) + self.type_embed[1]).unsqueeze(1),
            ],
            dim=1,
        )
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        out = self.out(self.decoder(q, memory))
        return torch.cat([out[..., :2], torch.tanh(out[..., 2:]) * torch.pi], dim=-1)
