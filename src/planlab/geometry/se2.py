"""SE(2) poses as arrays ``(..., 3) = (x, y, heading)``; angles in radians, counter-clockwise from +x.

Conventions follow NAVSIM: a *local* pose is expressed in the frame of an *origin* pose (x forward,
y left). ``absolute_to_relative(origin, poses)`` is NAVSIM's ``convert_absolute_to_relative_se2_array``.
"""

from __future__ import annotations

import numpy as np


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Principal value in (-pi, pi], computed as atan2(sin, cos) like nuPlan's ``normalize_angle``."""
    out = np.arctan2(np.sin(angle), np.cos(angle))
    return float(out) if np.ndim(out) == 0 else out


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a ∘ b: the pose ``b`` (given in frame ``a``) expressed in ``a``'s parent frame."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    c, s = np.cos(a[..., 2]), np.sin(a[..., 2])
    x = a[..., 0] + c * b[..., 0] - s * b[..., 1]
    y = a[..., 1] + s * b[..., 0] + c * b[..., 1]
    h = wrap_angle(a[..., 2] + b[..., 2])
    return np.stack([x, y, h], axis=-1)


def invert(p: np.ndarray) -> np.ndarray:
    """The inverse pose: ``compose(p, invert(p)) == identity``."""
    p = np.asarray(p, dtype=np.float64)
    c, s = np.cos(p[..., 2]), np.sin(p[..., 2])
    x = -c * p[..., 0] - s * p[..., 1]
    y = s * p[..., 0] - c * p[..., 1]
    return np.stack([x, y, wrap_angle(-p[..., 2])], axis=-1)


def absolute_to_relative(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Express global ``poses (..., 3)`` in the frame of ``origin (3,)`` (or broadcastable)."""
    origin = np.asarray(origin, dtype=np.float64)
    poses = np.asarray(poses, dtype=np.float64)
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    dx = poses[..., 0] - origin[..., 0]
    dy = poses[..., 1] - origin[..., 1]
    x = c * dx + s * dy
    y = -s * dx + c * dy
    h = wrap_angle(poses[..., 2] - origin[..., 2])
    return np.stack([x, y, h], axis=-1)


def relative_to_absolute(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Inverse of :func:`absolute_to_relative`: local ``poses`` in ``origin``'s frame to global."""
    return compose(np.asarray(origin, dtype=np.float64), poses)


def transform_points(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map local points ``(..., 2)`` of the frame ``pose`` to the parent frame."""
    pose = np.asarray(pose, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    c, s = np.cos(pose[..., 2]), np.sin(pose[..., 2])
    c = np.asarray(c)[..., None] if np.ndim(c) else c
    s = np.asarray(s)[..., None] if np.ndim(s) else s
    x = pose[..., 0:1] if pose.ndim > 1 else pose[0]
    y = pose[..., 1:2] if pose.ndim > 1 else pose[1]
    out_x = x + c * pts[..., 0] - s * pts[..., 1]
    out_y = y + s * pts[..., 0] + c * pts[..., 1]
    return np.stack([out_x, out_y], axis=-1)


def pose_matrix(pose: np.ndarray) -> np.ndarray:
    """Homogeneous 3×3 matrix (or ``(..., 3, 3)``) of a pose."""
    pose = np.asarray(pose, dtype=np.float64)
    c, s = np.cos(pose[..., 2]), np.sin(pose[..., 2])
    m = np.zeros(pose.shape[:-1] + (3, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = c, -s, pose[..., 0]
    m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = s, c, pose[..., 1]
    m[..., 2, 2] = 1.0
    return m


def yaw_from_quaternion(q: np.ndarray) -> np.ndarray | float:
    """Yaw of (w, x, y, z) quaternions exactly as NAVSIM reads it: pyquaternion's ``yaw_pitch_roll[0]``.

    That is atan2(2(wz − xy), 1 − 2(y² + z²)), normalising only a quaternion that is not unit within
    1e-14. (The textbook z-y-x yaw has +xy; the two differ once pitch or roll are non-zero, as in real
    OpenScene poses.)
    """
    q = np.asarray(q, dtype=np.float64)
    sum_sq = np.sum(q * q, axis=-1, keepdims=True)
    norm = np.sqrt(sum_sq)
    rescale = (np.abs(1.0 - sum_sq) >= 1e-14) & (norm > 0)
    q = np.where(rescale, q / np.where(norm > 0, norm, 1.0), q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    yaw = np.arctan2(2.0 * (w * z - x * y), 1.0 - 2.0 * (y * y + z * z))
    return float(yaw) if np.ndim(yaw) == 0 else yaw


def quaternion_from_yaw(yaw: float | np.ndarray) -> np.ndarray:
    """A pure-yaw (w, x, y, z) unit quaternion."""
    yaw = np.asarray(yaw, dtype=np.float64)
    half = 0.5 * yaw
    return np.stack([np.cos(half), np.zeros_like(half), np.zeros_like(half), np.sin(half)], axis=-1)
