"""Optimisers and learning-rate schedules for agents: named parameter groups, AdamW/Adam, linear warm-up
then cosine decay (or constant), each group with its own peak learning rate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


def split_decay(params: Sequence[nn.Parameter]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, not decayed): biases, norm scales and other 1-D parameters get no weight decay."""
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return decay, no_decay


def build_optimizer(
    groups: Mapping[str, Sequence[nn.Parameter]],
    optimizer: str = "adamw",
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    lr_scale: Mapping[str, float] | None = None,
) -> torch.optim.Optimizer:
    """One optimiser over named groups; group ``g`` gets peak lr ``lr * lr_scale.get(g, 1)``.

    Groups keep their name (``param_group["name"]``) so schedules and logs can tell them apart. Parameters
    that are frozen now but may be unfrozen later (selective fine-tuning) belong in a group from the start:
    AdamW skips parameters without gradients, and the optimiser state keeps one layout across resume.
    """
    lr_scale = dict(lr_scale or {})
    unknown = sorted(set(lr_scale) - set(groups))
    if unknown:
        from planlab.errors import ConfigError

        raise ConfigError(
            f"optim.group_lr_scale names unknown parameter group(s) {', '.join(unknown)}; "
            f"this agent has: {', '.join(groups)}"
        )
    param_groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for name, params in groups.items():
        params = [p for p in params if id(p) not in seen]
        seen.update(id(p) for p in params)
        decay, no_decay = split_decay(params)
        peak = lr * float(lr_scale.get(name, 1.0))
        for suffix, ps, wd in (("", decay, weight_decay), ("/no_decay", no_decay, 0.0)):
            if ps:
                param_groups.append(
                    {"params": ps, "lr": peak, "initial_lr": peak, "weight_decay": wd, "name": name + suffix}
                )
    if not param_groups:
        raise ValueError("no parameters to optimise")
    if optimizer == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(param_groups, lr=lr, betas=tuple(betas), eps=eps)
    raise ValueError(f"unknown optimizer {optimizer!r}")


class WarmupCosine:
    """lr factor at optimizer step ``s``: linear warm-up from ~0 to 1 over ``warmup_steps``, then cosine down to
    ``min_ratio`` at ``total_steps`` (constant 1 after warm-up when ``cosine`` is False).

    A plain class (not a lambda) so ``LambdaLR.state_dict()`` stores its numbers and checkpoints stay plain data.
    """

    def __init__(
        self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0, cosine: bool = True
    ) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = max(int(total_steps), 1)
        self.min_ratio = float(min_ratio)
        self.cosine = bool(cosine)

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if not self.cosine:
            return 1.0
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min(max(step - self.warmup_steps, 0) / span, 1.0)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    min_ratio: float = 0.0,
    kind: str = "cosine",
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR applying :class:`WarmupCosine` to every group's own peak lr."""
    factor = WarmupCosine(warmup_steps, total_steps, min_ratio, cosine=(kind == "cosine"))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
