"""Turn a simulated episode into OpenScene/NAVSIM frame dicts (format contract §2.3, §2.6; fact sheet §3.1).

Every key NAVSIM v1.1 reads is written with its real type and frame, plus the OpenScene keys it does not read
(``can_bus``, 4×4 transforms, prev/next tokens, …). Boxes and velocities are in the ego rear-axle frame, box
heading relative to the ego yaw; ``lidar2ego`` is the identity (pitfall P13).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from planlab.geometry.se2 import quaternion_from_yaw, wrap_angle
from planlab.scene.enums import CAMERA_NAMES
from planlab.world.episode import Episode, StepState

FRAME_INTERVAL_US = 500_000  # 2 Hz (contract §2.3 timestamp)
VEHICLE_NAME = "planlab-pacifica"


def hex_token(*parts: object) -> str:
    """A 16-hex-character token (like nuPlan's lidar_pc tokens) derived from ``parts`` (stable, path-safe)."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()[:16]


def _pose4(x: float, y: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    c, s = math.cos(yaw), math.sin(yaw)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
    m[0, 3], m[1, 3] = x, y
    return m


def annotations(st: StepState, radius: float, frame_token: str) -> dict[str, Any]:
    """Boxes within ``radius`` of the ego, in its rear-axle frame (contract §2.6)."""
    x, y, h = st.ego[0], st.ego[1], st.ego[2]
    if len(st.boxes):
        d = np.hypot(st.boxes[:, 0] - x, st.boxes[:, 1] - y)
        keep = np.nonzero(d <= radius)[0]
    else:
        keep = np.zeros(0, dtype=int)
    c, s = math.cos(h), math.sin(h)
    b = st.boxes[keep]
    dx, dy = b[:, 0] - x, b[:, 1] - y
    boxes = np.zeros((len(keep), 7), dtype=np.float64)
    boxes[:, 0] = c * dx + s * dy
    boxes[:, 1] = -s * dx + c * dy
    boxes[:, 2] = b[:, 2]  # box centre height above the ground (ego origin on the ground)
    boxes[:, 3:6] = b[:, 3:6]
    boxes[:, 6] = wrap_angle(b[:, 6] - h) if len(keep) else np.zeros(0)
    v = st.vel[keep]
    vel = np.zeros((len(keep), 3), dtype=np.float64)
    vel[:, 0] = c * v[:, 0] + s * v[:, 1]
    vel[:, 1] = -s * v[:, 0] + c * v[:, 1]
    tracks = [st.ids[i] for i in keep]
    return {
        "gt_boxes": boxes,
        "gt_names": np.array([st.names[i] for i in keep], dtype="<U14")
        if len(keep)
        else np.zeros(0, dtype="<U14"),
        "gt_velocity_3d": vel,
        "instance_tokens": [hex_token("instance", frame_token, t) for t in tracks],
        "track_tokens": tracks,
    }


def build_frames(
    ep: Episode,
    *,
    log_name: str,
    map_location: str,
    tokens: Sequence[str],
    log_token: str,
    scene_token: str,
    calibration: dict[str, dict[str, np.ndarray]],
    timestamp0: int,
    annotation_radius: float = 100.0,
) -> list[dict[str, Any]]:
    """The log's frame dicts, one per 2 Hz frame of ``ep``; ``tokens[k]`` is frame k's token."""
    steps = ep.frame_steps()
    if len(tokens) != len(steps):
        raise ValueError(f"{len(tokens)} tokens for {len(steps)} frames")
    frames = []
    route = list(ep.route)
    for k, st in enumerate(steps):
        token = tokens[k]
        x, y, yaw, v, a, yaw_rate = (float(u) for u in st.ego)
        q = quaternion_from_yaw(yaw)
        ego2global = _pose4(x, y, yaw)
        command = np.zeros(4, dtype=np.int64)
        command[st.command] = 1
        cams = {}
        for cam in CAMERA_NAMES:
            cal = calibration[cam]
            cams[cam] = {
                "data_path": f"{log_name}/{cam}/{token}.jpg",
                "sensor2lidar_rotation": np.asarray(cal["sensor2lidar_rotation"], dtype=np.float64),
                "sensor2lidar_translation": np.asarray(cal["sensor2lidar_translation"], dtype=np.float64),
                "cam_intrinsic": np.asarray(cal["cam_intrinsic"], dtype=np.float64),
                "distortion": np.asarray(cal["distortion"], dtype=np.float64),
            }
        a_lat = v * yaw_rate
        frames.append(
            {
                "token": token,
                "frame_idx": k,
                "timestamp": int(timestamp0 + k * FRAME_INTERVAL_US),
                "log_name": log_name,
                "log_token": log_token,
                "scene_name": log_name,
                "scene_token": scene_token,
                "map_location": map_location,
                "vehicle_name": VEHICLE_NAME,
                "roadblock_ids": list(route),
                # fact sheet §3.1: is_red only for RED; yellow/unknown are logged as False (P12: int fid, bool)
                "traffic_lights": [
                    (int(c), bool(r)) for c, r in ep.signals.logged(ep.t0 + k * 0.5, st.ego[:2])
                ],
                "ego2global_translation": np.array([x, y, 0.0]),
                "ego2global_rotation": np.asarray(q, dtype=np.float64),
                # [vx, vy, ax, ay] in the ego (rear-axle) frame
                "ego_dynamic_state": np.array([v, 0.0, a, a_lat]),
                "driving_command": command,
                # OpenScene can_bus: x y z, qw qx qy qz, ax ay az, vx vy vz, wx wy wz, 0 0
                "can_bus": np.array(
                    [x, y, 0.0, *q, a, a_lat, 0.0, v, 0.0, 0.0, 0.0, 0.0, yaw_rate, 0.0, 0.0]
                ),
                "lidar_path": f"{log_name}/MergedPointCloud/{token}.pcd",
                "lidar2ego_translation": np.zeros(3),
                "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
                "ego2global": ego2global,
                "lidar2ego": np.eye(4),
                "lidar2global": ego2global.copy(),
                "cams": cams,
                "sample_prev": tokens[k - 1] if k > 0 else None,
                "sample_next": tokens[k + 1] if k + 1 < len(tokens) else None,
                "anns": annotations(st, annotation_radius, token),
            }
        )
    return frames
