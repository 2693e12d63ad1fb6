"""The I-JEPA encoder: :class:`planlab.models.vit.ViT` that can run on a subset of its patches.

``JepaViT`` subclasses the training room's ViT (same modules, same state dict, same ``planlab-vit/1`` files via
:func:`planlab.models.vit.save_vit`) and adds what I-JEPA needs: ``forward(images, keep)`` drops every patch
not in ``keep`` after the patch and position embedding, so the context encoder never sees masked patches and
no mask token stands in for them (methods_facts §1.1). Position embeddings are fixed 2-D sin-cos and not
trained (methods_facts §1.1); they are stored as the ViT's ``pos_embed`` so any ViT loader reads them.
"""

from __future__ import annotations

import torch

from planlab.models.vit import ViT, ViTConfig


def sincos_2d(dim: int, rows: int, cols: int) -> torch.Tensor:
    """``[rows·cols, dim]`` fixed 2-D sine-cosine position codes, row-major over the grid.

    The first half of the channels encodes the column, the second half the row; each half is
    ``[sin(p·ω_k), cos(p·ω_k)]`` with ``ω_k = 10000^(-k / (dim/4))``.
    """
    if dim % 4:
        raise ValueError(f"sin-cos position embeddings need a dimension divisible by 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / (10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    r, c = torch.meshgrid(
        torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64), indexing="ij"
    )

    def codes(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([codes(c), codes(r)], dim=1).float()


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b, j]]``: ``[B, N, D]`` tokens, ``[B, K]`` indices → ``[B, K, D]``."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class JepaViT(ViT):
    """A ViT with fixed sin-cos position embeddings whose forward can keep only some patches."""

    def __init__(self, config: ViTConfig | None = None) -> None:
        super().__init__(config)
        c = self.config
        with torch.no_grad():
            self.pos_embed.copy_(sincos_2d(c.embed_dim, c.grid_height, c.grid_width)[None])
        self.pos_embed.requires_grad_(False)

    def forward(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """Patch tokens ``[B, N, D]``, or ``[B, K, D]`` of the patches ``keep`` (``[B, K]`` row-major indices)."""
        x = self.embed(images)
        if keep is not None:
            x = gather_tokens(x, keep)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def plain(self) -> ViT:
        """A plain :class:`ViT` with the same weights (what agents and exports load)."""
        vit = ViT(self.config)
        vit.load_state_dict(self.state_dict())
        return vit
