"""Per-step schedules of I-JEPA pre-training (methods_facts §1.4–1.5), as plain functions of the step.

- learning rate: linear warm-up ``start_lr → lr`` over ``warmup`` steps, then cosine ``lr → final_lr``
  over the remaining steps;
- weight decay: cosine from ``weight_decay`` to ``final_weight_decay`` over all steps (it *rises*,
  0.04 → 0.4 in the released configs);
- EMA momentum: linear ``m0 → m1`` over all steps.

Functions of the step alone, so a resumed run continues on exactly the same curves.
"""

from __future__ import annotations

import math


def lr_at(step: int, total: int, warmup: int, start_lr: float, lr: float, final_lr: float) -> float:
    if warmup > 0 and step < warmup:
        return start_lr + (lr - start_lr) * step / warmup
    span = max(total - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    return final_lr + (lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def weight_decay_at(step: int, total: int, start: float, final: float) -> float:
    progress = min(max(step, 0) / max(total, 1), 1.0)
    return final + (start - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def momentum_at(step: int, total: int, start: float, final: float) -> float:
    progress = min(max(step, 0) / max(total, 1), 1.0)
    return start + (final - start) * progress
