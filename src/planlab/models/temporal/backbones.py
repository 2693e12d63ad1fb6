"""Small CPU-trainable backbones for BEV planning: a LiDAR-BEV encoder, a tokenizer that turns a BEV map into
a few transformer tokens, and a TransFuser-style two-branch (image + LiDAR BEV) backbone fused by
GPT-style transformers at several scales (methods_facts §4, scaled down: plain strided conv stages instead
of two ResNet-34s, one transformer layer per fusion instead of two).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from planlab.models.temporal.perception import conv_block


class BEVEncoder(nn.Module):
    """``(B, C_in, S, S)`` → ``(B, out_dim, S / 2^len(channels), …)``: strided conv stages, then one more block."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (16, 32), out_dim: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for ch in channels:
            layers.append(conv_block(c, ch, stride=2))
            c = ch
        layers.append(conv_block(c, out_dim))
        self.net = nn.Sequential(*layers)
        self.stride = 2 ** len(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BEVTokenizer(nn.Module):
    """A BEV map ``(B, C, S, S)`` → ``(B, side², d_model)`` tokens with a learned positional embedding."""

    def __init__(self, in_channels: int, in_size: int, d_model: int, side: int = 8) -> None:
        super().__init__()
        if in_size % side or (in_size // side) & (in_size // side - 1):
            raise ValueError(f"BEV map size {in_size} must be {side} times a power of two")
        layers: list[nn.Module] = []
        size = in_size
        while size > side:
            layers.append(conv_block(in_channels, in_channels, stride=2))
            size //= 2
        layers.append(nn.Conv2d(in_channels, d_model, 1))
        self.net = nn.Sequential(*layers)
        self.pos = nn.Parameter(torch.zeros(side * side, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(2).transpose(1, 2) + self.pos


class FusionTransformer(nn.Module):
    """GPT-style fusion (TransFuser): pool both maps to anchor grids, run self-attention over the joint token
    set with learned positional embeddings, upsample the outputs and add them back to each branch."""

    def __init__(
        self,
        channels: int,
        image_anchor: tuple[int, int],
        lidar_anchor: tuple[int, int],
        layers: int = 1,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.image_anchor, self.lidar_anchor = tuple(image_anchor), tuple(lidar_anchor)
        n = image_anchor[0] * image_anchor[1] + lidar_anchor[0] * lidar_anchor[1]
        self.pos = nn.Parameter(torch.zeros(n, channels))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            channels, heads, 4 * channels, 0.0, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(
            layer, layers, norm=nn.LayerNorm(channels), enable_nested_tensor=False
        )

    def forward(self, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c = image.shape[:2]
        ti = F.adaptive_avg_pool2d(image, self.image_anchor).flatten(2).transpose(1, 2)
        tl = F.adaptive_avg_pool2d(lidar, self.lidar_anchor).flatten(2).transpose(1, 2)
        out = self.encoder(torch.cat([ti, tl], 1) + self.pos)
        ni = ti.shape[1]
        oi = out[:, :ni].transpose(1, 2).reshape(b, c, *self.image_anchor)
        ol = out[:, ni:].transpose(1, 2).reshape(b, c, *self.lidar_anchor)
        image = image + F.interpolate(oi, size=image.shape[2:], mode="bilinear", align_corners=False)
        lidar = lidar + F.interpolate(ol, size=lidar.shape[2:], mode="bilinear", align_corners=False)
        return image, lidar


class TransFuserLiteBackbone(nn.Module):
    """Image ``(B, 3, H, W)`` + LiDAR BEV ``(B, C, S, S)`` → BEV feature ``(B, C_last, S/16, S/16)`` and a
    top-down map ``(B, top_down_dim, S/4, S/4)`` (FPN over the LiDAR branch) for the BEV-semantic head."""

    def __init__(
        self,
        lidar_channels_in: int,
        channels: Sequence[int] = (16, 32, 64, 64),
        image_anchor: tuple[int, int] = (2, 8),
        lidar_anchor: tuple[int, int] = (4, 4),
        fusion_layers: int = 1,
        fusion_heads: int = 4,
        top_down_dim: int = 32,
    ) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(
                "TransFuserLiteBackbone needs 4 stage widths (fusion at 4 scales, as TransFuser)"
            )
        self.image_stages = nn.ModuleList()
        self.lidar_stages = nn.ModuleList()
        self.fusions = nn.ModuleList()
        ci, cl = 3, lidar_channels_in
        for ch in channels:
            self.image_stages.append(nn.Sequential(conv_block(ci, ch, 2), conv_block(ch, ch)))
            self.lidar_stages.append(nn.Sequential(conv_block(cl, ch, 2), conv_block(ch, ch)))
            self.fusions.append(
                FusionTransformer(ch, image_anchor, lidar_anchor, fusion_layers, fusion_heads)
            )
            ci = cl = ch
        self.out_channels = channels[-1]
        self.lateral_fine = nn.Conv2d(channels[1], top_down_dim, 1)
        self.lateral_coarse = nn.Conv2d(channels[3], top_down_dim, 1)
        self.top_down = conv_block(top_down_dim, top_down_dim)

    def forward(self, image: torch.Tensor, lidar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = []
        for img_stage, lid_stage, fuse in zip(
            self.image_stages, self.lidar_stages, self.fusions, strict=True
        ):
            image, lidar = fuse(img_stage(image), lid_stage(lidar))
            feats.append(lidar)
        fine = self.lateral_fine(feats[1])
        coarse = F.interpolate(
            self.lateral_coarse(feats[3]), size=fine.shape[2:], mode="bilinear", align_corners=False
        )
        return lidar, self.top_down(fine + coarse)
