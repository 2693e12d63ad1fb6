"""Build OpenScene frame dicts with every key of format contract §2.3, for writers (the synthetic world).

Semantics follow OpenScene (fact sheet §3.1): ``ego2global_translation``/``rotation`` = ``can_bus[0:7]``
(rear-axle position, (w, x, y, z) pure-yaw quaternion), ``can_bus[7:10]`` acceleration, ``[10:13]``
velocity, ``[13:16]`` angular rate, ``[16:18]`` zeros; ``lidar2ego`` is the identity so that ego-frame box
velocities and LiDAR points agree with NAVSIM's reading (pitfall P13); sensor paths are relative,
``<log_name>/<CAM_xx>/<id>.jpg`` and ``<log_name>/MergedPointCloud/<id>.pcd``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from planlab.data.logs import CAMERA_KEYS
from planlab.errors import DataError
from planlab.geometry.se2 import quaternion_from_yaw
from planlab.scene import CAMERA_NAMES

LIDAR_DIR = "MergedPointCloud"


def camera_path(log_name: str, camera: str, blob_id: str) -> str:
    return f"{log_name}/{camera}/{blob_id}.jpg"


def lidar_path(log_name: str, blob_id: str) -> str:
    return f"{log_name}/{LIDAR_DIR}/{blob_id}.pcd"


def pose_to_matrix(x: float, y: float, yaw: float, z: float = 0.0) -> np.ndarray:
    """4×4 homogeneous ego→global transform of a pure-yaw pose."""
    c, s = np.cos(yaw), np.sin(yaw)
    m = np.eye(4)
    m[0, 0], m[0, 1], m[1, 0], m[1, 1] = c, -s, s, c
    m[:3, 3] = (x, y, z)
    return m


def empty_annotations() -> dict[str, Any]:
    """``anns`` of a frame without objects: (0, 7) and (0, 3) arrays (pitfall P14)."""
    return {
        "gt_boxes": np.zeros((0, 7)),
        "gt_names": [],
        "gt_velocity_3d": np.zeros((0, 3)),
        "instance_tokens": [],
        "track_tokens": [],
    }


def make_frame_dict(
    *,
    token: str,
    timestamp: int,
    log_name: str,
    map_location: str,
    ego_pose: Sequence[float],
    ego_velocity: Sequence[float],
    ego_acceleration: Sequence[float],
    driving_command: Sequence[int],
    roadblock_ids: Sequence[str],
    traffic_lights: Sequence[tuple[int, bool]],
    cameras: Mapping[str, Mapping[str, Any]],
    annotations: Mapping[str, Any] | None = None,
    scene_token: str | None = None,
    scene_name: str | None = None,
    log_token: str | None = None,
    frame_idx: int = 0,
    vehicle_name: str = "planlab",
    yaw_rate: float = 0.0,
    z: float = 0.0,
    blob_id: str | None = None,
    sample_prev: str | None = None,
    sample_next: str | None = None,
) -> dict[str, Any]:
    """One frame dict in the OpenScene layout.

    ``ego_pose`` = (x, y, yaw) of the rear axle in the map frame; velocity/acceleration in the ego frame;
    ``cameras[CAM_xx]`` holds ``sensor2lidar_rotation``, ``sensor2lidar_translation``, ``cam_intrinsic``,
    ``distortion`` (and optionally ``data_path``) for all 8 cameras; ``blob_id`` names the sensor files
    (default: the token).
    """
    x, y, yaw = (float(v) for v in ego_pose)
    vx, vy = (float(v) for v in ego_velocity)
    ax, ay = (float(v) for v in ego_acceleration)
    quat = quaternion_from_yaw(yaw)
    blob = blob_id if blob_id is not None else token
    missing = [c for c in CAMERA_NAMES if c not in cameras]
    if missing:
        raise DataError(f"frame {token}: calibration missing for {', '.join(missing)} (all 8 cameras needed)")
    cams = {}
    for cam in CAMERA_NAMES:
        calib = cameras[cam]
        entry = {"data_path": str(calib.get("data_path", camera_path(log_name, cam, blob)))}
        for key in CAMERA_KEYS[1:]:
            if key not in calib:
                raise DataError(f"frame {token}: cameras[{cam}] lacks {key}")
            entry[key] = np.asarray(calib[key], dtype=np.float64)
        cams[cam] = entry
    ego2global = pose_to_matrix(x, y, yaw, z)
    can_bus = np.concatenate(
        [[x, y, z], quat, [ax, ay, 0.0], [vx, vy, 0.0], [0.0, 0.0, yaw_rate], [0.0, 0.0]]
    )
    return {
        "token": token,
        "frame_idx": int(frame_idx),
        "timestamp": int(timestamp),
        "log_name": log_name,
        "log_token": log_token if log_token is not None else log_name,
        "scene_name": scene_name if scene_name is not None else log_name,
        "scene_token": scene_token if scene_token is not None else token,
        "map_location": map_location,
        "roadblock_ids": [str(r) for r in roadblock_ids],
        "vehicle_name": vehicle_name,
        "can_bus": can_bus,
        "lidar_path": lidar_path(log_name, blob),
        "lidar2ego_translation": np.zeros(3),
        "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
        "ego2global_translation": np.array([x, y, z]),
        "ego2global_rotation": quat,
        "ego_dynamic_state": np.array([vx, vy, ax, ay]),
        "traffic_lights": [(int(i), bool(red)) for i, red in traffic_lights],
        "driving_command": np.asarray(driving_command, dtype=np.int64).reshape(4),
        "cams": cams,
        "sample_prev": sample_prev,
        "sample_next": sample_next,
        "ego2global": ego2global,
        "lidar2ego": np.eye(4),
        "lidar2global": ego2global.copy(),
        "anns": dict(annotations) if annotations is not None else empty_annotations(),
    }


def link_samples(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``sample_prev``/``sample_next`` (neighbour tokens or None) and ``frame_idx`` in place."""
    for i, frame in enumerate(frames):
        frame["frame_idx"] = i
        frame["sample_prev"] = frames[i - 1]["token"] if i > 0 else None
        frame["sample_next"] = frames[i + 1]["token"] if i + 1 < len(frames) else None
    return frames
