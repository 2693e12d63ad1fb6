"""Closed-loop rollout of reference trajectories: LQR tracker + kinematic bicycle, 10 Hz, 4 s.

NAVSIM's ``PDMSimulator`` (fact sheet §1.4): state 0 is the logged initial ego state; state k comes
from the tracker command computed on state k-1 against reference index k-1, propagated by the bicycle.
Batched over any number of (scene × proposal) rows.
"""

from __future__ import annotations

import numpy as np

from planlab.sim.bicycle import SIMULATION_DT, propagate
from planlab.sim.lqr import BatchLQRTracker, TrackerConfig
from planlab.sim.vehicle import PACIFICA, STATE_SIZE, VehicleParameters


def simulate(
    reference_poses: np.ndarray,
    initial_states: np.ndarray,
    num_steps: int | None = None,
    tracker_config: TrackerConfig = TrackerConfig(),
    vehicle: VehicleParameters = PACIFICA,
) -> np.ndarray:
    """Simulated states ``(B, T, 11)`` tracking ``reference_poses (B, T, 3)`` from ``initial_states (B, 11)``.

    ``T`` is the number of reference poses (41 for NAVSIM); ``num_steps`` defaults to ``T - 1``.
    """
    reference_poses = np.asarray(reference_poses, dtype=np.float64)
    initial_states = np.asarray(initial_states, dtype=np.float64)
    if reference_poses.ndim != 3 or reference_poses.shape[-1] != 3:
        raise ValueError(f"reference poses must be (B, T, 3), got {reference_poses.shape}")
    if initial_states.shape != (len(reference_poses), STATE_SIZE):
        raise ValueError(
            f"initial states must be ({len(reference_poses)}, {STATE_SIZE}), got {initial_states.shape}"
        )
    steps = reference_poses.shape[1] - 1 if num_steps is None else num_steps
    tracker = BatchLQRTracker(reference_poses, tracker_config, vehicle)
    out = np.empty((len(reference_poses), steps + 1, STATE_SIZE), dtype=np.float64)
    out[:, 0] = initial_states
    for k in range(1, steps + 1):
        accel, steering_rate = tracker.command(k - 1, out[:, k - 1])
        out[:, k] = propagate(out[:, k - 1], accel, steering_rate, SIMULATION_DT, vehicle)
    return out
