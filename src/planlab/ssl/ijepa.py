"""I-JEPA: a context encoder, a predictor and an EMA target encoder, and the loss that joins them.

One training step (methods_facts §1.1–1.4): the target encoder (a copy of the context encoder, never
trained by gradients) encodes the **full** image; its tokens are layer-normed over the channels (no affine)
and the target blocks are picked from them. The context encoder sees only the context patches; the
predictor predicts every target block from them; the loss is smooth-L1 between predictions and targets,
averaged over all target tokens of all blocks. After each optimiser step the target encoder follows the
context encoder by an exponential moving average (:meth:`IJepa.update_target`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from planlab.models.optim import split_decay
from planlab.models.vit import ViTConfig
from planlab.ssl.encoder import JepaViT, gather_tokens
from planlab.ssl.masks import MaskBatch
from planlab.ssl.predictor import Predictor


@dataclass
class StepStats:
    """What one step reports besides the loss (collapse monitors: a collapsed target encoder gives ~0 std)."""

    loss: torch.Tensor
    target_std: float  # mean over channels of the per-channel std over all patch tokens of the batch
    pooled_std: float  # mean over channels of the std over images of the mean-pooled target feature
    pred_std: float  # the same per-channel std for the predictions (layer-normed scale)
    reg: float = 0.0  # the variance-covariance term included in ``loss`` (0 when switched off)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``θ_target ← m·θ_target + (1 − m)·θ_online`` for every trainable parameter (and floating buffer) pair.

    The modules must have identical structure (``zip(strict=True)`` refuses anything else).
    """
    pairs = list(zip(target.parameters(), online.parameters(), strict=True))
    # Fixed parameters (the sin-cos position codes) are equal in both and stay untouched.
    t_params = [t for t, o in pairs if o.requires_grad]
    o_params = [o for t, o in pairs if o.requires_grad]
    if not t_params:
        return
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, [p.detach() for p in o_params], alpha=1.0 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        if tb.is_floating_point():
            tb.mul_(momentum).add_(ob.detach(), alpha=1.0 - momentum)


def variance_covariance(z: torch.Tensor, target_std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's anti-collapse terms of ``z`` (``[B, D]``): (mean hinge of the per-channel std below
    ``target_std``, sum of squared off-diagonal covariances / D). Both 0 for decorrelated, spread features."""
    z = z.float()
    z = z - z.mean(dim=0)
    std = torch.sqrt(z.var(dim=0) + 1e-4)
    variance = F.relu(target_std - std).mean()
    cov = (z.T @ z) / max(z.shape[0] - 1, 1)
    off = cov - torch.diag(torch.diag(cov))
    return variance, off.pow(2).sum() / z.shape[1]


def _channel_std(x: torch.Tensor) -> float:
    flat = x.reshape(-1, x.shape[-1]).float()
    return float(flat.std(dim=0).mean()) if flat.shape[0] > 1 else 0.0


class IJepa(nn.Module):
    """Context encoder + predictor (trained) and target encoder (EMA)."""

    def __init__(
        self,
        encoder: ViTConfig,
        pred_dim: int = 96,
        pred_depth: int = 4,
        pred_heads: int = 3,
        pred_mlp_ratio: float = 4.0,
        reg: tuple[float, float, float] = (0.0, 0.0, 1.0),
    ) -> None:
        super().__init__()
        self.reg = tuple(float(v) for v in reg)  # (variance weight, covariance weight, target std); off at 0
        self.context_encoder = JepaViT(encoder)
        self.target_encoder = copy.deepcopy(self.context_encoder)
        self.target_encoder.requires_grad_(False)
        grid = (encoder.grid_height, encoder.grid_width)
        self.predictor = Predictor(
            encoder.embed_dim, grid, pred_dim, pred_depth, pred_heads, pred_mlp_ratio, encoder.layer_norm_eps
        )

    @property
    def grid(self) -> tuple[int, int]:
        c = self.context_encoder.config
        return c.grid_height, c.grid_width

    def train(self, mode: bool = True) -> IJepa:
        super().train(mode)
        self.target_encoder.eval()  # never trained by gradients
        return self

    def param_groups(self) -> list[dict]:
        """AdamW groups: matrices decayed (the schedule sets their decay), biases and norms never."""
        params = [
            p for m in (self.context_encoder, self.predictor) for p in m.parameters() if p.requires_grad
        ]
        decay, no_decay = split_decay(params)
        return [
            {"params": decay, "name": "decay", "wd_schedule": True},
            {"params": no_decay, "name": "no_decay", "weight_decay": 0.0, "wd_schedule": False},
        ]

    @torch.no_grad()
    def targets(self, images: torch.Tensor, masks: MaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(layer-normed target-block features ``[T, B, Nt, D]``, raw full-image tokens ``[B, N, D]``)."""
        h = self.target_encoder(images)
        normed = F.layer_norm(h, (h.shape[-1],))
        return torch.stack([gather_tokens(normed, t) for t in masks.targets]), h

    def forward(self, images: torch.Tensor, masks: MaskBatch) -> StepStats:
        targets, full = self.targets(images, masks)
        context = self.context_encoder(images, masks.context)
        pred = self.predictor(context, masks.context, masks.targets)
        loss = F.smooth_l1_loss(pred.float(), targets.float())
        reg = 0.0
        w_var, w_cov, target_std = self.reg
        if w_var > 0 or w_cov > 0:  # optional, not the recipe (see RegularizerSettings)
            variance, covariance = variance_covariance(context.mean(dim=1), target_std)
            extra = w_var * variance + w_cov * covariance
            loss = loss + extra
            reg = float(extra.detach())
        with torch.no_grad():
            stats = (_channel_std(full), _channel_std(full.mean(dim=1)), _channel_std(pred))
        return StepStats(loss, *stats, reg=reg)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        ema_update(self.target_encoder, self.context_encoder, momentum)
