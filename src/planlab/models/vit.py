"""A plain-torch Vision Transformer without a CLS token, and its on-disk format.

Patch embedding (conv, stride = patch), learned position embeddings for a native patch grid (bicubically
interpolated to other grids, so 4:1 driving images need no squashing — lesson C4), pre-norm blocks with
``scaled_dot_product_attention``, a final LayerNorm. Output: patch tokens ``[B, N, D]`` (row-major grid).

On-disk format (what the SSL room exports and ``load_vit`` reads)::

    <dir>/config.json        {"format": "planlab-vit/1", "patch_size": 16, "embed_dim": 192, "depth": 4,
                              "num_heads": 3, "mlp_ratio": 4.0, "grid_height": 8, "grid_width": 32,
                              "qkv_bias": true, "layer_norm_eps": 1e-6}
    <dir>/model.safetensors  the state dict of :class:`ViT` (keys as in ``ViT().state_dict()``)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from planlab.errors import CheckpointError

VIT_FORMAT = "planlab-vit/1"


@dataclass
class ViTConfig:
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    grid_height: int = 8  # native patch grid of the position embeddings (rows)
    grid_width: int = 32  # (columns)
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), x + mlp(norm(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch tokens of an image batch ``[B, 3, H, W]`` (H, W multiples of the patch size)."""

    def __init__(self, config: ViTConfig | None = None) -> None:
        super().__init__()
        self.config = config or ViTConfig()
        c = self.config
        self.patch_embed = nn.Conv2d(3, c.embed_dim, kernel_size=c.patch_size, stride=c.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, c.grid_height * c.grid_width, c.embed_dim))
        self.blocks = nn.ModuleList(
            Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.layer_norm_eps) for _ in range(c.depth)
        )
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.layer_norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def patch_size(self) -> int:
        return self.config.patch_size

    def grid(self, height: int, width: int) -> tuple[int, int]:
        p = self.config.patch_size
        if height % p or width % p:
            raise ValueError(f"image {height}x{width} is not a multiple of the patch size {p}")
        return height // p, width // p

    def position_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """Position embeddings for a ``gh × gw`` grid (bicubic interpolation of the native grid)."""
        c = self.config
        if (gh, gw) == (c.grid_height, c.grid_width):
            return self.pos_embed
        grid = self.pos_embed.reshape(1, c.grid_height, c.grid_width, c.embed_dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, gh * gw, c.embed_dim)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        gh, gw = self.grid(images.shape[-2], images.shape[-1])
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        return x + self.position_embedding(gh, gw)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embed(images)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def save_vit(model: ViT, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (the SSL export format)."""
    from safetensors.torch import save_file

    from planlab.atomic import atomic_path, atomic_write_text

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / "model.safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    atomic_write_text(
        d / "config.json", json.dumps({"format": VIT_FORMAT, **asdict(model.config)}, indent=1) + "\n"
    )
    return d


def read_vit_config(directory: str | os.PathLike) -> ViTConfig:
    d = Path(directory)
    path = d / "config.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: ViT config not found (expected a planlab-vit directory)") from None
    except ValueError:
        raise CheckpointError(f"{path}: not valid JSON") from None
    if data.get("format") != VIT_FORMAT:
        raise CheckpointError(f"{path}: format {data.get('format')!r}, expected {VIT_FORMAT!r}")
    known = {f.name for f in fields(ViTConfig)}
    unknown = sorted(set(data) - known - {"format"})
    if unknown:
        raise CheckpointError(f"{path}: unknown ViT config key(s) {', '.join(unknown)}")
    return ViTConfig(**{k: v for k, v in data.items() if k in known})


def load_vit(directory: str | os.PathLike) -> ViT:
    """Build the ViT described by ``config.json`` and load ``model.safetensors`` (strict)."""
    from safetensors.torch import load_file

    d = Path(directory)
    model = ViT(read_vit_config(d))
    weights = d / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights not found")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{weights}: cannot read safetensors ({str(exc)[:120]})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match its config.json: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{weights}: non-finite values in {bad[0]}")
    return model
