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
    """scipy ``savgol_filter`` along the last axis, applied as a cached linear operator (batch-friendly)."""
    return y @ _savgol_operator(y.shape[-1], window, order, deriv, float(delta)).T


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
