"""LQR tracker + kinematic bicycle + resampling against closed-form cases and NAVSIM's literal formulation."""

from __future__ import annotations

import numpy as np
import pytest

from planlab.scene.enums import StateIndex
from planlab.sim.bicycle import SIMULATION_DT, propagate
from planlab.sim.linalg import apply_operator
from planlab.sim.lqr import fit_velocity_curvature_profiles, normalize_angle
from planlab.sim.resample import (
    agent_reference_poses,
    interpolate_poses,
    principal_value,
    resample_trajectory,
    sample_times_us,
)
from planlab.sim.simulator import simulate
from planlab.sim.vehicle import PACIFICA, initial_state_array

T = np.arange(41) * 0.1


def _init(v: float, pose=(0.0, 0.0, 0.0)) -> np.ndarray:
    return initial_state_array(np.array([pose]), np.array([[v, 0.0]]), np.zeros((1, 2)))


def test_straight_constant_speed_reference_is_tracked_within_10cm() -> None:
    ref = np.zeros((1, 41, 3))
    ref[0, :, 0] = 10.0 * T
    states = simulate(ref, _init(10.0))
    err = np.hypot(states[0, :, 0] - ref[0, :, 0], states[0, :, 1] - ref[0, :, 1])
    assert err.max() < 0.1
    assert np.allclose(states[0, :, StateIndex.VELOCITY_X], 10.0, atol=1e-6)


def test_curved_reference_is_followed() -> None:
    # 10 m/s on a circle of radius 60 m: an entry transient (the car starts with straight wheels), then
    # the lateral LQR settles on the arc
    radius, speed = 60.0, 10.0
    theta = speed * T / radius
    ref = np.stack([radius * np.sin(theta), radius * (1 - np.cos(theta)), theta], axis=-1)[None]
    states = simulate(ref, _init(speed))
    err = np.hypot(states[0, :, 0] - ref[0, :, 0], states[0, :, 1] - ref[0, :, 1])
    assert err.max() < 0.8
    assert err[-1] < 0.3
    assert abs(normalize_angle(states[0, -1, 2] - ref[0, -1, 2])) < 0.05


def test_stopping_reference_brings_the_car_to_rest_without_overshoot() -> None:
    # from 6 m/s, brake at 3 m/s² to a stop at x = 6 m (t = 2 s), then stand still. NAVSIM's tracker
    # follows the velocity profile 1 s ahead, so the car stops a little beyond the reference stop, but
    # its speed falls monotonically to rest: no oscillation, never backwards.
    x = np.where(T < 2.0, 6.0 * T - 1.5 * T**2, 6.0)
    ref = np.zeros((1, 41, 3))
    ref[0, :, 0] = x
    states = simulate(ref, _init(6.0))
    speed = states[0, :, StateIndex.VELOCITY_X]
    assert speed[-1] < 0.2  # at rest (the stopping controller holds it below 0.2 m/s)
    assert np.all(np.diff(speed) <= 1e-9)  # decelerates monotonically, no speed overshoot
    assert speed.min() >= 0.0  # never reverses
    assert np.all(np.diff(states[0, :, 0]) >= 0.0)  # never rolls back
    assert states[0, :, 0].max() < 6.0 + 0.5 * 6.0  # stop within the 1 s look-ahead lag


def test_standstill_reference_keeps_a_stopped_car_still() -> None:
    ref = np.zeros((1, 41, 3))
    states = simulate(ref, _init(0.0))
    assert np.abs(states[0, :, :3]).max() < 1e-9


def _navsim_literal_fit(poses: np.ndarray, dt: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """NAVSIM's dense formulation with its pseudo-inverses, written out independently of planlab."""
    xy = np.diff(poses[..., :2], axis=1)
    hd = normalize_angle(np.diff(poses[..., 2], axis=1))
    b, m = xy.shape[:2]
    y = xy.reshape(b, -1)
    h = poses[:, :-1, 2]
    col = np.zeros(y.shape)
    col[:, 0::2] = np.cos(h)
    col[:, 1::2] = np.sin(h)
    a = np.repeat(col[..., None] * dt**2, m, axis=2)
    a[..., 0] = col * dt
    a[:, np.repeat(np.triu(np.ones((m, m), bool), k=1), 2, axis=0)] = 0
    n = m - 2
    band = np.zeros((n, n + 1))
    band[:, 1:] = np.eye(n)
    band[:, :-1] = -np.eye(n)  # NAVSIM's overwrite: only the last row is a true difference
    r = np.repeat(np.block([np.zeros((n, 1)), band])[None], b, 0)
    at, rt = a.transpose(0, 2, 1), r.transpose(0, 2, 1)
    x = np.einsum("bij,bj->bi", np.linalg.pinv(at @ a + 1e-4 * rt @ r) @ at, y)
    v = x[:, :1] + np.pad(np.cumsum(x[:, 1:] * dt, -1), [(0, 0), (1, 0)])
    a2 = np.repeat(np.tri(m)[None], b, 0)
    a2[:, :, 0] = v * dt
    a2[:, 1:, 1:] *= (v * dt**2)[:, None, 1:].transpose(0, 2, 1)
    q = 1e-2 * np.eye(m)
    q[0, 0] = 1e-10
    x2 = np.einsum("bij,bj->bi", np.linalg.pinv(a2.transpose(0, 2, 1) @ a2 + q) @ a2.transpose(0, 2, 1), hd)
    k = x2[:, :1] + np.pad(np.cumsum(x2[:, 1:] * dt, -1), [(0, 0), (1, 0)])
    return v, k


def test_profile_fit_equals_navsim_dense_least_squares() -> None:
    rng = np.random.default_rng(0)
    b = 20
    ref = np.zeros((b, 41, 3))
    speed = rng.uniform(0.5, 15, (b, 1))
    ref[:, :, 0] = speed * T + rng.normal(0, 0.05, (b, 41))
    ref[:, :, 1] = rng.uniform(-1, 1, (b, 1)) * T**2
    ref[:, :, 2] = np.arctan2(np.gradient(ref[:, :, 1], axis=1), np.gradient(ref[:, :, 0], axis=1))
    v, k = fit_velocity_curvature_profiles(ref)
    v_ref, k_ref = _navsim_literal_fit(ref)
    np.testing.assert_allclose(v, v_ref, atol=1e-9)
    np.testing.assert_allclose(k, k_ref, atol=1e-9)


def test_bicycle_uses_old_speed_and_steering_then_low_passes_commands() -> None:
    s = np.zeros((1, 11))
    s[0, StateIndex.VELOCITY_X] = 8.0
    s[0, StateIndex.STEERING_ANGLE] = 0.1
    s[0, StateIndex.ACCELERATION_X] = 0.5
    s[0, StateIndex.HEADING] = 0.3
    out = propagate(s, np.array([2.0]), np.array([1.0]))[0]
    dt = SIMULATION_DT
    assert dt == 100000 * 1e-6 and dt != 0.1  # nuPlan's TimePoint arithmetic
    a_new = dt / (dt + 0.2) * (2.0 - 0.5) + 0.5
    target = dt * 1.0 + 0.1
    steer_f = dt / (dt + 0.05) * (target - 0.1) + 0.1
    assert out[StateIndex.X] == pytest.approx(8.0 * np.cos(0.3) * dt)
    assert out[StateIndex.Y] == pytest.approx(8.0 * np.sin(0.3) * dt)
    assert out[StateIndex.HEADING] == pytest.approx(0.3 + 8.0 * np.tan(0.1) / PACIFICA.wheel_base * dt)
    assert out[StateIndex.VELOCITY_X] == pytest.approx(8.0 + a_new * dt)
    assert out[StateIndex.ACCELERATION_X] == pytest.approx(a_new)
    assert out[StateIndex.STEERING_ANGLE] == pytest.approx(steer_f)
    assert out[StateIndex.STEERING_RATE] == pytest.approx((steer_f - 0.1) / dt)
    assert out[StateIndex.VELOCITY_Y] == 0.0 and out[StateIndex.ACCELERATION_Y] == 0.0
    w_new = out[StateIndex.VELOCITY_X] * np.tan(out[StateIndex.STEERING_ANGLE]) / PACIFICA.wheel_base
    assert out[StateIndex.ANGULAR_VELOCITY] == pytest.approx(w_new)
    assert out[StateIndex.ANGULAR_ACCELERATION] == pytest.approx(w_new / dt)


def test_bicycle_clips_steering_and_wraps_heading() -> None:
    s = np.zeros((1, 11))
    s[0, StateIndex.STEERING_ANGLE] = np.pi / 3
    s[0, StateIndex.HEADING] = np.pi - 1e-3
    s[0, StateIndex.VELOCITY_X] = 10.0
    out = propagate(s, np.array([0.0]), np.array([50.0]))[0]
    assert out[StateIndex.STEERING_ANGLE] == pytest.approx(np.pi / 3)
    assert -np.pi <= out[StateIndex.HEADING] < -np.pi / 2  # wrapped past +pi


def test_principal_value_is_half_open_at_minus_pi() -> None:
    assert principal_value(np.pi) == pytest.approx(-np.pi)
    assert principal_value(-np.pi) == pytest.approx(-np.pi)
    assert principal_value(3 * np.pi / 2) == pytest.approx(-np.pi / 2)


def test_sample_times_follow_navsims_float_seconds_clock() -> None:
    t0 = 1630005401750000
    got = sample_times_us(np.array([t0]))[0]
    expected = [int(s * 1e6) for s in (np.arange(0.0, 4.1, 0.1) + t0 * 1e-6)]
    assert got.tolist() == expected
    assert len(got) == 41
    # the float round trip moves some samples by a microsecond, as in NAVSIM
    assert set(np.diff(got) - 100000) <= {-1, 0, 1}


def test_resampling_prepends_the_initial_state_and_holds_a_short_trajectory() -> None:
    t0 = 1_600_000_000_000_000
    pose0 = np.array([[100.0, 50.0, 0.0]])
    local = np.array([[[5.0, 0.0, 0.0], [10.0, 0.0, 0.0]]])  # 1 s at 0.5 s
    ref = agent_reference_poses(pose0, np.array([t0]), local, 0.5)[0]
    assert ref.shape == (41, 3)
    np.testing.assert_allclose(ref[0], pose0[0], atol=1e-9)  # initial state first
    np.testing.assert_allclose(ref[5, :2], [105.0, 50.0], atol=1e-3)  # 0.5 s
    np.testing.assert_allclose(ref[10:, :2], np.tile([110.0, 50.0], (31, 1)), atol=1e-9)  # held after 1 s


def test_heading_is_interpolated_after_unwrap() -> None:
    times = np.array([[0, 1_000_000]])
    poses = np.array([[[0.0, 0.0, np.pi - 0.1], [1.0, 0.0, -np.pi + 0.1]]])
    mid = interpolate_poses(times, poses, np.array([[500_000]]))[0, 0]
    assert abs(abs(mid[2]) - np.pi) < 1e-9  # through ±pi, not through 0


def test_resample_trajectory_samples_pdm_closed_style_trajectories() -> None:
    t0 = 1_000_000
    times = t0 + np.arange(51)[None] * 100_000
    poses = np.zeros((1, 51, 3))
    poses[0, :, 0] = np.arange(51) * 1.0
    ref = resample_trajectory(times, poses, np.array([t0]))[0]
    # within 1e-4 m: the float-seconds clock moves some samples by 1 µs (10 m/s → 1e-5 m), as NAVSIM's does
    np.testing.assert_allclose(ref[:, 0], np.arange(41) * 1.0, atol=1e-4)


def test_fixed_operators_round_the_same_for_any_batch() -> None:
    rng = np.random.default_rng(3)
    op = rng.normal(size=(40, 40))
    x = rng.normal(size=(33, 40)) * 10.0
    together = apply_operator(x, op)
    np.testing.assert_allclose(together, x @ op.T, rtol=1e-12, atol=1e-12)
    for k in (0, 7, 32):  # a row alone, or in another batch, gives the same bits
        assert np.array_equal(apply_operator(x[k : k + 1], op)[0], together[k])
        assert np.array_equal(apply_operator(x[k:][::-1], op)[-1], together[k])
    assert apply_operator(x.reshape(3, 11, 40), op).shape == (3, 11, 40)
    with pytest.raises(ValueError):
        apply_operator(x, op[:, :39])
