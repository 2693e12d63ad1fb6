"""Pooling patch tokens into one vector: mean (I-JEPA's intended global feature, methods_facts §1.7) or a
learned attention pool (one query attending over the patches). There is no CLS token to pick (lesson C2)."""

from __future__ import annotations

import torch
from torch import nn


class MeanPool(nn.Module):
    """``[B, N, D] -> [B, D]``: the average patch token."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens.mean(dim=1)


class AttentionPool(nn.Module):
    """``[B, N, D] -> [B, D]``: a learned query attends over layer-normed patch tokens."""

    def __init__(self, dim: int, num_heads: int = 4) -> None:
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm(tokens)
        out, _ = self.attn(self.query.expand(tokens.shape[0], -1, -1), kv, kv, need_weights=False)
        return out[:, 0]


def build_pool(kind: str, dim: int) -> nn.Module:
    if kind == "mean":
        return MeanPool()
    if kind == "attention":
        return AttentionPool(dim)
    raise ValueError(f"unknown pooling {kind!r}")
