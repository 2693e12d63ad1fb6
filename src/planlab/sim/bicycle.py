"""Batched kinematic bicycle about the rear axle, with first-order lags on acceleration and steering.

Fact sheet §1.4, in NAVSIM's order of operations: low-pass the commands, take the derivatives from the
*old* speed and *old* steering angle, Euler-integrate, wrap the heading with ``principal_value``, clip
the steering to ±π/3, and recompute yaw rate / yaw acceleration from the new state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planlab.scene.enums import StateIndex
from planlab.sim.resample import principal_value
from planlab.sim.vehicle import PACIFICA, VehicleParameters

# nuPlan's simulation clock: consecutive TimePoints 100 000 µs apart give a step of
# 100000 * 1e-6 = 0.09999999999999999 s (not 0.1) to the motion model.
SIMULATION_DT = 100000 * 1e-6


@dataclass(frozen=True)
class BicycleConfig:
    max_steering_angle: float = np.pi / 3
    accel_time_constant: float = 0.2  # s
    steering_angle_time_constant: float = 0.05  # s


def propagate(
    states: np.ndarray,
    accel_cmd: np.ndarray,
    steering_rate_cmd: np.ndarray,
    dt: float = SIMULATION_DT,
    vehicle: VehicleParameters = PACIFICA,
    config: BicycleConfig = BicycleConfig(),
) -> np.ndarray:
    """One step of the motion model for states ``(B, 11)``; returns the new states."""
    accel = states[:, StateIndex.ACCELERATION_X]
    steering = states[:, StateIndex.STEERING_ANGLE]
    speed = states[:, StateIndex.VELOCITY_X]
    heading = states[:, StateIndex.HEADING]

    ideal_steering = dt * steering_rate_cmd + steering
    new_accel = dt / (dt + config.accel_time_constant) * (accel_cmd - accel) + accel
    filtered_steering = (
        dt / (dt + config.steering_angle_time_constant) * (ideal_steering - steering) + steering
    )
    new_steering_rate = (filtered_steering - steering) / dt

    # derivatives from the old speed and old steering angle
    x_dot = speed * np.cos(heading)
    y_dot = speed * np.sin(heading)
    heading_dot = speed * np.tan(steering) / vehicle.wheel_base

    out = states.copy()
    out[:, StateIndex.X] = states[:, StateIndex.X] + x_dot * dt
    out[:, StateIndex.Y] = states[:, StateIndex.Y] + y_dot * dt
    out[:, StateIndex.HEADING] = principal_value(heading + heading_dot * dt)
    out[:, StateIndex.VELOCITY_X] = speed + new_accel * dt
    out[:, StateIndex.VELOCITY_Y] = 0.0
    out[:, StateIndex.STEERING_ANGLE] = np.clip(
        steering + new_steering_rate * dt, -config.max_steering_angle, config.max_steering_angle
    )
    out[:, StateIndex.ANGULAR_VELOCITY] = (
        out[:, StateIndex.VELOCITY_X] * np.tan(out[:, StateIndex.STEERING_ANGLE]) / vehicle.wheel_base
    )
    out[:, StateIndex.ACCELERATION_X] = new_accel
    out[:, StateIndex.ACCELERATION_Y] = 0.0
    out[:, StateIndex.ANGULAR_ACCELERATION] = (
        out[:, StateIndex.ANGULAR_VELOCITY] - states[:, StateIndex.ANGULAR_VELOCITY]
    ) / dt
    out[:, StateIndex.STEERING_RATE] = new_steering_rate
    return out
