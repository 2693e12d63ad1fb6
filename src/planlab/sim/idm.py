"""Batched Intelligent Driver Model along a path (fact sheet §1.9, NAVSIM ``BatchIDMPolicy``).

State per proposal: (progress [m], speed [m/s]); leader: (progress, speed, rear length). One explicit
Euler step of ``dv/dt = a·(1 − (v/v0)^10 − (s*/s)²)`` clipped to [−b, a], with
``s* = s0 + v·T + v·(v − v_lead)/(2·√(a·b))`` and ``s = max(x_lead − x − l_rear, s0)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACCELERATION_EXPONENT = 10


@dataclass(frozen=True)
class IDMParameters:
    """Per-policy parameters (arrays broadcast over proposals)."""

    target_velocity: np.ndarray
    min_gap: np.ndarray
    headway_time: np.ndarray
    accel_max: np.ndarray
    decel_max: np.ndarray


def idm_step(
    progress: np.ndarray,
    velocity: np.ndarray,
    lead_progress: np.ndarray,
    lead_velocity: np.ndarray,
    lead_rear_length: np.ndarray,
    params: IDMParameters,
    dt: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(next progress, next speed) after one step of ``dt`` seconds."""
    p = params
    s_star = (
        p.min_gap
        + velocity * p.headway_time
        + (velocity * (velocity - lead_velocity)) / (2 * np.sqrt(p.accel_max * p.decel_max))
    )
    s_alpha = np.maximum(lead_progress - progress - lead_rear_length, p.min_gap)  # avoids division by 0
    with np.errstate(divide="ignore", invalid="ignore"):
        accel = p.accel_max * (
            1 - (velocity / p.target_velocity) ** ACCELERATION_EXPONENT - (s_star / s_alpha) ** 2
        )
    accel = np.minimum(np.maximum(accel, -p.decel_max), p.accel_max)  # np.clip, without its overhead
    return progress + dt * velocity, velocity + dt * accel
