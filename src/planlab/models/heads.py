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
