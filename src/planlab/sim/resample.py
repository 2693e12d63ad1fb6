"""Turning a submitted trajectory into the 41 reference states the tracker follows (fact sheet §1.3).

NAVSIM makes the agent's local poses global (SE(2) matrix product with the initial rear-axle pose),
stamps them at t0 + k·interval, prepends the initial state, and samples this piecewise-linear
trajectory at 0, 0.1, …, 4.0 s: x/y linearly in integer microseconds, heading linearly after
``np.unwrap`` and wrapped back with nuPlan's ``principal_value``. Sample times are ``int(t·1e6)`` of a
float-seconds clock and are clipped to the trajectory's span, so a short trajectory holds its last
pose. Everything here is batched over a leading scene axis.
"""

from __future__ import annotations

import numpy as np

from planlab.scene.enums import StateIndex
from planlab.sim.vehicle import PACIFICA, STATE_SIZE, VehicleParameters, rear_axle_roundtrip

PROPOSAL_INTERVAL = 0.1  # s, the evaluation rate (10 Hz)
PROPOSAL_HORIZON = 4.0  # s
NUM_PROPOSAL_STATES = 41  # t = 0 .. 4.0 s


def principal_value(angle: np.ndarray) -> np.ndarray:
    """nuPlan's angle wrap to [-pi, pi): ``(a + pi) mod 2pi - pi`` (not atan2; differs at ±pi)."""
    return (np.asarray(angle) - (-np.pi)) % (2 * np.pi) + (-np.pi)


def sample_times_us(
    t0_us: np.ndarray, horizon: float = PROPOSAL_HORIZON, interval: float = PROPOSAL_INTERVAL
) -> np.ndarray:
    """Query times ``(B, n)`` in µs exactly as NAVSIM's ``get_trajectory_as_array`` computes them.

    ``np.arange(0, horizon + interval, interval) + t0_s`` with ``t0_s = t0_us * 1e-6``, then ``int(·1e6)``;
    the float round trip can move a sample by 1 µs, and so does NAVSIM.
    """
    t0_us = np.atleast_1d(np.asarray(t0_us, dtype=np.int64))
    rel = np.arange(0.0, horizon + interval, interval)
    times_s = rel[None, :] + (t0_us.astype(np.float64) * 1e-6)[:, None]
    return np.trunc(times_s * 1e6).astype(np.int64)


def agent_pose_times_us(t0_us: np.ndarray, num_poses: int, interval: float) -> np.ndarray:
    """Time stamps ``(B, num_poses)`` [µs] nuPlan gives agent poses (``_get_fixed_timesteps``)."""
    t0_us = np.atleast_1d(np.asarray(t0_us, dtype=np.int64))
    horizon = num_poses * interval
    steps = (np.arange(0.0, horizon, interval) + interval)[:num_poses]
    times_s = steps[None, :] + (t0_us.astype(np.float64) * 1e-6)[:, None]
    return np.trunc(times_s * 1e6).astype(np.int64)


def local_to_global(origin: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Local poses ``(B, N, 3)`` in the frame of ``origin (B, 3)`` to global, via 3×3 matrix products.

    nuPlan's ``relative_to_absolute_poses``: heading = atan2 of the product's rotation block.
    """
    ox, oy, oh = origin[:, 0:1], origin[:, 1:2], origin[:, 2:3]
    co, so = np.cos(oh), np.sin(oh)
    rx, ry, rh = local[..., 0], local[..., 1], local[..., 2]
    cr, sr = np.cos(rh), np.sin(rh)
    x = co * rx + (-so) * ry + ox
    y = so * rx + co * ry + oy
    m00 = co * cr + (-so) * sr
    m10 = so * cr + co * sr
    return np.stack([x, y, np.arctan2(m10, m00)], axis=-1)


def _interp_linear(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """scipy ``interp1d(kind='linear')`` per batch row: times ``(B, N)``, values ``(B, N, D)``, query ``(B, Q)``."""
    n = times.shape[1]
    idx = np.empty(query.shape, dtype=np.int64)
    for b in range(times.shape[0]):  # searchsorted is per row; B is small per call or the loop is cheap
        idx[b] = np.searchsorted(times[b], query[b], side="left")
    idx = np.clip(idx, 1, n - 1)
    lo = idx - 1
    x_lo = np.take_along_axis(times, lo, axis=1)
    x_hi = np.take_along_axis(times, idx, axis=1)
    y_lo = np.take_along_axis(values, lo[..., None], axis=1)
    y_hi = np.take_along_axis(values, idx[..., None], axis=1)
    slope = (y_hi - y_lo) / (x_hi - x_lo)[..., None]
    return slope * (query - x_lo)[..., None] + y_lo


def interpolate_poses(times_us: np.ndarray, poses: np.ndarray, query_us: np.ndarray) -> np.ndarray:
    """nuPlan ``InterpolatedTrajectory`` sampling of rear-axle poses; query times must lie in the span.

    ``times_us (B, N)`` strictly increasing, ``poses (B, N, 3)``; returns ``(B, Q, 3)``.
    """
    t = np.asarray(times_us, dtype=np.float64)
    q = np.asarray(query_us, dtype=np.float64)
    xy = _interp_linear(t, poses[..., :2], q)
    heading = _interp_linear(t, np.unwrap(poses[..., 2], axis=1)[..., None], q)[..., 0]
    return np.concatenate([xy, principal_value(heading)[..., None]], axis=-1)


def states_from_poses(poses: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Reference states ``(..., 11)`` with only x, y, heading set (the tracker ignores the rest, §1.3).

    Positions go through nuPlan's rear-axle round trip like every EgoState NAVSIM builds.
    """
    out = np.zeros(poses.shape[:-1] + (STATE_SIZE,), dtype=np.float64)
    rx, ry = rear_axle_roundtrip(poses[..., 0], poses[..., 1], poses[..., 2], vehicle)
    out[..., StateIndex.X] = rx
    out[..., StateIndex.Y] = ry
    out[..., StateIndex.HEADING] = poses[..., 2]
    return out


def resample_trajectory(
    times_us: np.ndarray, poses: np.ndarray, t0_us: np.ndarray, vehicle: VehicleParameters = PACIFICA
) -> np.ndarray:
    """The 41 reference poses ``(B, 41, 3)`` NAVSIM's scorer samples from a timed global trajectory.

    ``times_us (B, N)`` / ``poses (B, N, 3)`` include the initial state at index 0.
    """
    times_us = np.asarray(times_us, dtype=np.int64)
    query = sample_times_us(t0_us)
    query = np.clip(query, times_us[:, :1], times_us[:, -1:])  # fact sheet §1.3: hold the last pose
    # Every stored state went through an EgoState (rear-axle round trip) before interpolation.
    rx, ry = rear_axle_roundtrip(poses[..., 0], poses[..., 1], poses[..., 2], vehicle)
    stored = np.stack([rx, ry, poses[..., 2]], axis=-1)
    sampled = interpolate_poses(times_us, stored, query)
    rx, ry = rear_axle_roundtrip(sampled[..., 0], sampled[..., 1], sampled[..., 2], vehicle)
    return np.stack([rx, ry, sampled[..., 2]], axis=-1)


def agent_reference_poses(
    initial_pose: np.ndarray,
    t0_us: np.ndarray,
    local_poses: np.ndarray,
    interval: float,
    vehicle: VehicleParameters = PACIFICA,
) -> np.ndarray:
    """41 reference poses ``(B, 41, 3)`` for agent trajectories ``(B, N, 3)`` in the rear-axle frame.

    ``initial_pose (B, 3)`` is the logged global rear-axle pose (before nuPlan's round trip).
    """
    initial_pose = np.asarray(initial_pose, dtype=np.float64).reshape(-1, 3)
    local_poses = np.asarray(local_poses, dtype=np.float64)
    if local_poses.ndim == 2:
        local_poses = local_poses[None]
    t0_us = np.atleast_1d(np.asarray(t0_us, dtype=np.int64))
    rx, ry = rear_axle_roundtrip(initial_pose[:, 0], initial_pose[:, 1], initial_pose[:, 2], vehicle)
    origin = np.stack([rx, ry, initial_pose[:, 2]], axis=-1)
    pose_times = agent_pose_times_us(t0_us, local_poses.shape[1], interval)
    # nuPlan zips poses with time stamps: a float-rounded arange one short drops the last pose.
    global_poses = local_to_global(origin, local_poses[:, : pose_times.shape[1]])
    poses = np.concatenate([initial_pose[:, None, :], global_poses], axis=1)
    times = np.concatenate([t0_us[:, None], pose_times], axis=1)
    return resample_trajectory(times, poses, t0_us, vehicle)
