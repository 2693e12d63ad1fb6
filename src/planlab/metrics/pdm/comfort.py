"""Comfort (v1.1 C) from simulated states: six Savitzky–Golay filtered signals inside strict bounds.

Fact sheet §1.6 / checklist item 7, as NAVSIM v1.1 computes them on the 41 simulated states:
longitudinal and lateral acceleration use a window of all states (one global quadratic fit); the two
jerks smooth the acceleration with window 8 first (the requested window is ignored there) and then
differentiate with a window of all states; yaw rate and yaw acceleration always use window 5 (the
helper ignores the requested window). Every signal is rounded to 8 decimals before the strict test.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from planlab.scene.enums import StateIndex
from planlab.sim.linalg import apply_operator

MAX_ABS_MAG_JERK = 8.37  # m/s^3
MAX_ABS_LAT_ACCEL = 4.89  # m/s^2
MAX_LON_ACCEL = 2.40  # m/s^2
MIN_LON_ACCEL = -4.05  # m/s^2
MAX_ABS_YAW_ACCEL = 1.93  # rad/s^2
MAX_ABS_LON_JERK = 4.13  # m/s^3
MAX_ABS_YAW_RATE = 0.95  # rad/s

COMFORT_CHECKS = ("lon_acceleration", "lat_acceleration", "jerk", "lon_jerk", "yaw_acceleration", "yaw_rate")


def phase_unwrap(headings: np.ndarray) -> np.ndarray:
    """nuPlan's unwrap: successive differences brought into [-pi, pi] by whole turns (round, not sign)."""
    two_pi = 2.0 * np.pi
    adjustments = np.zeros_like(headings)
    adjustments[..., 1:] = np.cumsum(np.round(np.diff(headings, axis=-1) / two_pi), axis=-1)
    return headings - two_pi * adjustments


@lru_cache(maxsize=64)
def _savgol_operator(n: int, window: int, order: int, deriv: int, delta: float) -> np.ndarray:
    """The (n, n) matrix of ``savgol_filter`` (mode 'interp' is linear in the signal): out = y @ M.T."""
    return savgol_filter(np.eye(n), window_length=window, polyorder=order, deriv=deriv, delta=delta, axis=0)


def _savgol(y: np.ndarray, window: int, order: int, deriv: int = 0, delta: float = 1.0) -> np.ndarray:
    """scipy ``savgol_filter`` along the last axis, applied as a cached linear operator (batch-invariant)."""
    return apply_operator(y, _savgol_operator(y.shape[-1], window, order, deriv, float(delta)))


def _acceleration(states: np.ndarray, coordinate: str, window: int) -> np.ndarray:
    if coordinate == "x":
        acc = states[..., StateIndex.ACCELERATION_X]
    elif coordinate == "y":
        acc = states[..., StateIndex.ACCELERATION_Y]
    else:
        acc = np.hypot(states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y])
    n = states.shape[-2]
    return np.round(_savgol(acc, min(window, n), 2), 8)


def _derivative(y: np.ndarray, dt: float, window: int, order: int, deriv: int) -> np.ndarray:
    window = min(window, y.shape[-1])
    if not order < window:
        raise ValueError(f"{order} < {window} does not hold")
    return _savgol(y, window, order, deriv=deriv, delta=dt)


def _within(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.all((values > low) & (values < high), axis=-1)


def comfort_checks_v11(states: np.ndarray, interval: float = 0.1) -> np.ndarray:
    """Boolean ``(R, 6)`` results of the six v1.1 checks (order ``COMFORT_CHECKS``) for ``states (R, S, 11)``."""
    n = states.shape[-2]
    time_s = np.arange(n, dtype=np.float64) * interval
    dt = np.diff(time_s).mean()
    lon = _acceleration(states, "x", n)
    lat = _acceleration(states, "y", n)
    jerk = np.round(_derivative(_acceleration(states, "magnitude", 8), dt, n, 2, 1), 8)
    lon_jerk = np.round(_derivative(_acceleration(states, "x", 8), dt, n, 2, 1), 8)
    headings = phase_unwrap(states[..., StateIndex.HEADING])
    yaw_accel = np.round(_derivative(headings, dt, 5, 3, 2), 8)
    yaw_rate = np.round(_derivative(headings, dt, 5, 2, 1), 8)
    return np.stack(
        [
            _within(lon, MIN_LON_ACCEL, MAX_LON_ACCEL),
            _within(lat, -MAX_ABS_LAT_ACCEL, MAX_ABS_LAT_ACCEL),
            _within(jerk, -MAX_ABS_MAG_JERK, MAX_ABS_MAG_JERK),
            _within(lon_jerk, -MAX_ABS_LON_JERK, MAX_ABS_LON_JERK),
            _within(yaw_accel, -MAX_ABS_YAW_ACCEL, MAX_ABS_YAW_ACCEL),
            _within(yaw_rate, -MAX_ABS_YAW_RATE, MAX_ABS_YAW_RATE),
        ],
        axis=-1,
    )


def comfort_v11(states: np.ndarray, interval: float = 0.1) -> np.ndarray:
    """v1.1 comfort per row: 1.0 if all six checks pass, else 0.0."""
    return comfort_checks_v11(states, interval).all(axis=-1).astype(np.float64)


# ------------------------------------------------------------------------------------------------ v2 (main)
EC_ACCELERATION_THRESHOLD = 0.7  # m/s², RMS of differences
EC_JERK_THRESHOLD = 0.5  # m/s³
EC_YAW_RATE_THRESHOLD = 0.1  # rad/s
EC_YAW_ACCEL_THRESHOLD = 0.1  # rad/s²


def center_accelerations(states: np.ndarray, rear_axle_to_center: float) -> tuple[np.ndarray, np.ndarray]:
    """Rear-axle accelerations moved to the box centre (nuPlan ``get_acceleration_shifted``).

    With displacement (d, 0): ax_c = ax + d·ω² + d·α, ay_c = ay (fact sheet §1.6, HC).
    """
    d = rear_axle_to_center
    w = states[..., StateIndex.ANGULAR_VELOCITY]
    alpha = states[..., StateIndex.ANGULAR_ACCELERATION]
    ax = states[..., StateIndex.ACCELERATION_X] + d * w**2 + d * alpha
    ay = states[..., StateIndex.ACCELERATION_Y] + 0.0 * w**2 + 0.0 * alpha
    return ax, ay


def _smoothed(signal: np.ndarray, window: int = 8) -> np.ndarray:
    return np.round(_savgol(signal, min(window, signal.shape[-1]), 2), 8)


def comfort_checks_v2(states: np.ndarray, rear_axle_to_center: float, interval: float = 0.1) -> np.ndarray:
    """Boolean ``(R, 6)`` of the six checks with NAVSIM v2 (HC) settings on ``states (R, n, 11)``.

    Accelerations: window 8 on centre-shifted ax / ay; jerks: window-8 acceleration then a window-15
    derivative (the magnitude uses the un-shifted rear-axle hypot); yaw as in v1.1.
    """
    n = states.shape[-2]
    dt = np.diff(np.arange(n, dtype=np.float64) * interval).mean()
    ax_c, ay_c = center_accelerations(states, rear_axle_to_center)
    magnitude = np.hypot(states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y])
    lon = _smoothed(ax_c)
    lat = _smoothed(ay_c)
    jerk = np.round(_derivative(_smoothed(magnitude), dt, 15, 2, 1), 8)
    lon_jerk = np.round(_derivative(_smoothed(ax_c), dt, 15, 2, 1), 8)
    headings = phase_unwrap(states[..., StateIndex.HEADING])
    yaw_accel = np.round(_derivative(headings, dt, 5, 3, 2), 8)
    yaw_rate = np.round(_derivative(headings, dt, 5, 2, 1), 8)
    return np.stack(
        [
            _within(lon, MIN_LON_ACCEL, MAX_LON_ACCEL),
            _within(lat, -MAX_ABS_LAT_ACCEL, MAX_ABS_LAT_ACCEL),
            _within(jerk, -MAX_ABS_MAG_JERK, MAX_ABS_MAG_JERK),
            _within(lon_jerk, -MAX_ABS_LON_JERK, MAX_ABS_LON_JERK),
            _within(yaw_accel, -MAX_ABS_YAW_ACCEL, MAX_ABS_YAW_ACCEL),
            _within(yaw_rate, -MAX_ABS_YAW_RATE, MAX_ABS_YAW_RATE),
        ],
        axis=-1,
    )


def history_comfort_v2(
    states: np.ndarray, history: np.ndarray | None, rear_axle_to_center: float, interval: float = 0.1
) -> np.ndarray:
    """HC per row: the simulated states with the logged history states prepended (same for all rows).

    NAVSIM treats the padded sequence as uniformly spaced at 0.1 s (checklist 9). No history → HC 1.
    """
    if history is None or len(history) == 0:
        return np.ones(len(states))
    padded = np.concatenate([np.broadcast_to(history, (len(states),) + history.shape), states], axis=1)
    return comfort_checks_v2(padded, rear_axle_to_center, interval).all(axis=-1).astype(np.float64)


def _ec_features(states: np.ndarray, interval: float) -> list[np.ndarray]:
    n = states.shape[-2]
    dt = np.diff(np.arange(n, dtype=np.float64) * interval).mean()
    magnitude = np.hypot(states[..., StateIndex.ACCELERATION_X], states[..., StateIndex.ACCELERATION_Y])
    accel = _smoothed(magnitude)
    jerk = np.round(_derivative(accel, dt, 15, 2, 1), 8)
    headings = phase_unwrap(states[..., StateIndex.HEADING])
    yaw_rate = np.round(_derivative(headings, dt, 5, 2, 1), 8)
    yaw_accel = np.round(_derivative(headings, dt, 5, 2, 2), 8)  # poly 2 here (NAVSIM passes no order)
    return [accel, jerk, yaw_rate, yaw_accel]


def two_frame_extended_comfort(
    current: np.ndarray, previous: np.ndarray, gap_s: float = 0.5, interval: float = 0.1
) -> np.ndarray:
    """EC per row: the current plan vs the plan made ``gap_s`` earlier, over their common time span.

    ``current (R, n, 11)`` starts ``gap_s`` after ``previous (R, n, 11)``; compared are current[:-k] and
    previous[k:], k = round(gap / interval). RMS of the feature differences within the thresholds → 1.
    """
    k = int(round(gap_s / interval))
    if not 1 <= k < current.shape[-2]:
        raise ValueError(f"two-frame comfort needs 0 < gap < horizon, got {gap_s} s")
    a = _ec_features(current[:, :-k], interval)
    b = _ec_features(previous[:, k:], interval)
    thresholds = (EC_ACCELERATION_THRESHOLD, EC_JERK_THRESHOLD, EC_YAW_RATE_THRESHOLD, EC_YAW_ACCEL_THRESHOLD)
    ok = np.ones(len(current), dtype=bool)
    for fa, fb, thr in zip(a, b, thresholds, strict=True):
        ok &= np.sqrt(np.mean((fa - fb) ** 2, axis=1)) <= thr
    return ok.astype(np.float64)
