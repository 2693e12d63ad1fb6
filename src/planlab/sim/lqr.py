"""The batched LQR trajectory tracker of NAVSIM's PDM simulator (fact sheet §1.4), vectorised over proposals.

Two decoupled one-step problems per simulation step: a longitudinal one on speed (acceleration input)
and a lateral one on [lateral error, heading error, steering angle] (steering-rate input), linearised
along velocity and curvature profiles that are least-squares fits of the 41 reference poses. A
near-standstill reference switches to a proportional stopping controller.

The profile fits solve NAVSIM's regularised least-squares problems exactly, in a cheaper form: the
velocity fit's normal matrix does not depend on the headings (cos² + sin² = 1), so its inverse is
computed once; the curvature fit, rewritten in the curvatures themselves, is a tridiagonal system
(NAVSIM forms dense normal equations and applies a pseudo-inverse: same minimiser, different rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from planlab.scene.enums import StateIndex
from planlab.sim.linalg import apply_operator
from planlab.sim.vehicle import PACIFICA, VehicleParameters


@dataclass(frozen=True)
class TrackerConfig:
    """NAVSIM's ``BatchLQRTracker`` defaults (fact sheet §1.4)."""

    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    discretization_time: float = 0.1  # s
    tracking_horizon: int = 10  # steps
    jerk_penalty: float = 1e-4
    curvature_rate_penalty: float = 1e-2
    initial_curvature_penalty: float = 1e-10
    stopping_proportional_gain: float = 0.5
    stopping_velocity: float = 0.2  # m/s


def normalize_angle(angle: np.ndarray) -> np.ndarray:
    """atan2(sin, cos) wrap, NAVSIM's ``normalize_angle``."""
    return np.arctan2(np.sin(angle), np.cos(angle))


@lru_cache(maxsize=8)
def _velocity_fit_operator(num_displacements: int, dt: float, jerk_penalty: float) -> np.ndarray:
    """``(CᵀC + λRᵀR)⁻¹ Cᵀ`` of the initial-velocity + acceleration fit, shape (M, M).

    Row i of the model maps [v0, a_0 .. a_{M-2}] to the displacement along heading i:
    dt·v0 + dt²·Σ_{j<i} a_j. R is NAVSIM's (quirky) "jerk" matrix, see below.
    """
    m = num_displacements
    c = np.zeros((m, m))
    c[:, 0] = dt
    lower = np.tri(m, m, 0, dtype=bool)
    lower[:, 0] = False
    c[lower] = dt**2
    # NAVSIM quirk: its "banded difference matrix" writes +I into columns 1.. and then *overwrites*
    # columns ..-1 with -I, so only the last row is a difference; the rest penalises a_r itself.
    banded = np.zeros((m - 2, m - 1))
    eye = np.eye(m - 2)
    banded[:, 1:] = eye
    banded[:, :-1] = -eye
    r = np.concatenate([np.zeros((m - 2, 1)), banded], axis=1)
    normal = c.T @ c + jerk_penalty * (r.T @ r)
    return np.linalg.pinv(normal) @ c.T


def _shift(x: np.ndarray) -> np.ndarray:
    """``x`` delayed by one step along axis 1 (zero first): the value *before* step j."""
    out = np.zeros_like(x)
    out[:, 1:] = x[:, :-1]
    return out


def _profile(initial: np.ndarray, derivatives: np.ndarray, dt: float) -> np.ndarray:
    """Integrate ``initial (B,)`` with ``derivatives (B, K)`` → ``(B, K+1)`` (NAVSIM's cumsum form)."""
    cumsum = np.cumsum(derivatives * dt, axis=-1)
    return initial[..., None] + np.pad(cumsum, [(0, 0), (1, 0)], mode="constant")


def _solve_tridiagonal(lower: np.ndarray, diag: np.ndarray, upper: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Thomas algorithm, batched over rows: ``lower/upper (B, n-1)``, ``diag/rhs (B, n)``."""
    n = diag.shape[1]
    c = np.empty_like(upper)
    d = np.empty_like(rhs)
    c[:, 0] = upper[:, 0] / diag[:, 0]
    d[:, 0] = rhs[:, 0] / diag[:, 0]
    for i in range(1, n):
        denom = diag[:, i] - lower[:, i - 1] * c[:, i - 1]
        if i < n - 1:
            c[:, i] = upper[:, i] / denom
        d[:, i] = (rhs[:, i] - lower[:, i - 1] * d[:, i - 1]) / denom
    x = np.empty_like(rhs)
    x[:, -1] = d[:, -1]
    for i in range(n - 2, -1, -1):
        x[:, i] = d[:, i] - c[:, i] * x[:, i + 1]
    return x


def fit_velocity_curvature_profiles(
    poses: np.ndarray, config: TrackerConfig = TrackerConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """Velocity and curvature profiles ``(B, N-1)`` fitted to reference poses ``(B, N, 3)``."""
    dt = config.discretization_time
    diffs = np.diff(poses, axis=1)
    headings = poses[:, :-1, 2]
    heading_displacements = normalize_angle(diffs[..., 2])
    m = diffs.shape[1]

    # velocity: least squares of displacements projected on the reference headings
    longitudinal = np.cos(headings) * diffs[..., 0] + np.sin(headings) * diffs[..., 1]
    solution = apply_operator(longitudinal, _velocity_fit_operator(m, dt, config.jerk_penalty))
    velocity = _profile(solution[:, 0], solution[:, 1:], dt)

    # curvature: Δθ_i = dt·v_i·κ_i with κ_i = κ0 + dt·Σ_{j<i} κ̇_j, penalties 1e-10·κ0² + 1e-2·Σ κ̇_j².
    # Written in the curvatures κ themselves the normal equations are tridiagonal:
    # (dt²·v_i² + D) κ = dt·v_i·Δθ_i, D = 1e-10·e0e0ᵀ + (1e-2/dt²)·(first-difference Laplacian).
    lam = config.curvature_rate_penalty / dt**2
    vdt = velocity * dt
    diag = vdt * vdt
    diag[:, :-1] += lam
    diag[:, 1:] += lam
    diag[:, 0] += config.initial_curvature_penalty
    off = np.full((len(poses), m - 1), -lam)
    curvature = _solve_tridiagonal(off, diag, off, vdt * heading_displacements)
    return velocity, curvature


class BatchLQRTracker:
    """Tracks a batch of 41-pose references; ``command(k, states)`` gives (acceleration, steering rate)."""

    def __init__(
        self,
        reference_poses: np.ndarray,
        config: TrackerConfig = TrackerConfig(),
        vehicle: VehicleParameters = PACIFICA,
    ) -> None:
        self.reference = np.asarray(reference_poses, dtype=np.float64)
        self.config = config
        self.wheel_base = vehicle.wheel_base
        self.velocity_profile, self.curvature_profile = fit_velocity_curvature_profiles(
            self.reference, config
        )
        last = self.curvature_profile[:, -1:]
        self._curvature_padded = np.concatenate(
            [self.curvature_profile, np.repeat(last, config.tracking_horizon, axis=1)], axis=1
        )

    def command(self, index: int, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Commands for simulated ``states (B, 11)`` at reference index ``index``."""
        cfg = self.config
        dt, horizon = cfg.discretization_time, cfg.tracking_horizon
        ref = self.reference[:, index]
        x_err = states[:, StateIndex.X] - ref[:, 0]
        y_err = states[:, StateIndex.Y] - ref[:, 1]
        href = ref[:, 2]
        lateral_error = -x_err * np.sin(href) + y_err * np.cos(href)
        heading_error = normalize_angle(states[:, StateIndex.HEADING] - href)
        steering = states[:, StateIndex.STEERING_ANGLE]
        v0 = states[:, StateIndex.VELOCITY_X]

        num = self.velocity_profile.shape[1]
        ref_idx = min(index + horizon, num - 1)  # fact sheet §1.4: min(k + 10, 39)
        v_ref = self.velocity_profile[:, ref_idx]
        # curvature[k : ref_idx] padded with curvature[ref_idx] == a window of the end-padded profile
        curvature = self._curvature_padded[:, index : index + horizon]

        stop = (v_ref <= cfg.stopping_velocity) & (v0 <= cfg.stopping_velocity)

        # longitudinal one-step LQR: v_N = v0 + (N·dt)·a
        b_long = horizon * dt
        inverse = -1 / (b_long * cfg.q_longitudinal * b_long + cfg.r_longitudinal)
        accel_lqr = inverse * b_long * cfg.q_longitudinal * ((1.0 * v0 + 0.0) - v_ref)
        accel_stop = -cfg.stopping_proportional_gain * (v0 - v_ref)
        accel = np.where(stop, accel_stop, accel_lqr)

        # lateral: compose the N per-step linear models along v_j = v0 + j·a·dt and κ_j. Each step
        # left-multiplies by [[1, α_j, 0], [0, 1, β_j], [0, 0, 1]] and adds [0, −v_j·κ_j·dt, 0]; the
        # products are unipotent, so every entry is a running sum. np.cumsum adds sequentially, which
        # reproduces NAVSIM's step-by-step einsum bit for bit.
        velocities = _profile(v0, np.repeat(accel[:, None], horizon, axis=1), dt)[:, :horizon]
        alpha = velocities * dt
        beta = velocities * dt / self.wheel_base
        affine = -velocities * curvature * dt
        a01 = np.cumsum(alpha, axis=1)
        a12 = np.cumsum(beta, axis=1)
        a02 = np.cumsum(alpha * _shift(a12), axis=1)
        b2 = np.cumsum(np.full((len(states), horizon), dt), axis=1)
        b1 = np.cumsum(beta * _shift(b2), axis=1)
        b0 = np.cumsum(alpha * _shift(b1), axis=1)
        g1 = np.cumsum(affine, axis=1)
        g0 = np.cumsum(alpha * _shift(g1), axis=1)
        a01, a02, a12 = a01[:, -1], a02[:, -1], a12[:, -1]
        b0, b1, b2 = b0[:, -1], b1[:, -1], b2[:, -1]
        g0, g1, g2 = g0[:, -1], g1[:, -1], 0.0
        e0 = lateral_error + a01 * heading_error + a02 * steering + g0
        e1 = heading_error + a12 * steering + g1
        e2 = steering + g2
        e1 = normalize_angle(e1)
        e2 = normalize_angle(e2)
        q0, q1, q2 = cfg.q_lateral
        bq0, bq1, bq2 = b0 * q0, b1 * q1, b2 * q2
        inv = -1 / ((bq0 * b0 + bq1 * b1 + bq2 * b2) + cfg.r_lateral)
        steering_rate = inv * (bq0 * e0 + bq1 * e1 + bq2 * e2)
        steering_rate = np.where(stop, 0.0, steering_rate)
        return accel, steering_rate
