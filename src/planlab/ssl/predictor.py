"""The I-JEPA predictor: a narrow transformer that predicts target-patch features from the context.

methods_facts §1.1: project the context tokens from the encoder width to the predictor width, add the
predictor's own (fixed sin-cos) position codes of the context positions, append one learned mask token per
target patch plus the position code of that patch, run the blocks, LayerNorm, project back to the encoder
width and keep only the target outputs. Each target block is predicted in its own pass (the context is
repeated per block), so the blocks never see each other's mask tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from planlab.models.vit import Block
from planlab.ssl.encoder import gather_tokens, sincos_2d


class Predictor(nn.Module):
    """``(context tokens [B, Nc, D], context idx [B, Nc], target idx [T, B, Nt]) -> [T, B, Nt, D]``."""

    def __init__(
        self,
        embed_dim: int,
        grid: tuple[int, int],
        pred_dim: int = 96,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if pred_dim % num_heads:
            raise ValueError(f"predictor width {pred_dim} is not divisible by its {num_heads} heads")
        self.grid = (int(grid[0]), int(grid[1]))
        self.embed = nn.Linear(embed_dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        # Fixed, not trained (methods_facts §1.1): a buffer, so it is never optimised nor decayed.
        self.register_buffer("pos_embed", sincos_2d(pred_dim, *self.grid)[None], persistent=True)
        self.blocks = nn.ModuleList(Block(pred_dim, num_heads, mlp_ratio, True, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(pred_dim, eps=eps)
        self.proj = nn.Linear(pred_dim, embed_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(
        self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor
    ) -> torch.Tensor:
        num_t, b, n_t = target_idx.shape
        n_c = context.shape[1]
        pos = self.pos_embed.expand(b, -1, -1)
        x = self.embed(context) + gather_tokens(pos, context_idx)  # [B, Nc, P]
        x = x.repeat(num_t, 1, 1)  # [T·B, Nc, P]: one pass per target block
        tgt = target_idx.reshape(num_t * b, n_t)
        queries = self.mask_token + gather_tokens(pos.repeat(num_t, 1, 1), tgt)  # [T·B, Nt, P]
        x = torch.cat([x, queries], dim=1)
        for block in self.blocks:
            x = block(x)
        out = self.proj(self.norm(x[:, n_c:]))
        return out.reshape(num_t, b, n_t, -1)
