"""Log frame dicts → ``planlab.scene`` objects (Frame, AgentInput, Scene) with NAVSIM v1.1 semantics.

Facts reproduced (fact sheet §2.2, format contract §2.3-2.7):
- global ego pose = (ego2global_translation[0], [1], pyquaternion's yaw of the (w, x, y, z)
  ego2global_rotation) — see :func:`navsim_yaw`;
- velocity / acceleration = ego_dynamic_state[0:2] / [2:4] in the ego frame, cast through float32 as
  NAVSIM does; AgentInput poses are relative to the current frame and also float32-rounded;
- a sensor is loaded for window index ``i`` only if ``SensorConfig.get_sensors_at_iteration(i)`` asks for
  it; an unrequested camera is an empty ``Camera()`` and an unrequested LiDAR an empty ``Lidar()``;
- blob paths are ``<sensor_blobs>/<data_path>`` and ``<sensor_blobs>/<lidar_path>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import numpy as np

from planlab.data.sensors import read_jpeg, read_pcd
from planlab.errors import DataError
from planlab.geometry.se2 import absolute_to_relative
from planlab.scene import (
    CAMERA_NAMES,
    AgentInput,
    Annotations,
    Camera,
    Cameras,
    EgoStatus,
    Frame,
    Lidar,
    Scene,
    SceneMetadata,
    SensorConfig,
)

_CAMERA_FIELDS = tuple(name.lower() for name in CAMERA_NAMES)  # "CAM_F0" -> "cam_f0"


def navsim_yaw(quats: np.ndarray) -> np.ndarray:
    """Yaw of (w, x, y, z) quaternions ``(N, 4)`` exactly as NAVSIM reads it: pyquaternion's
    ``yaw_pitch_roll[0]`` = atan2(2(wz − xy), 1 − 2(y² + z²)), normalising only a quaternion that is not
    unit within 1e-14. (The textbook z-y-x yaw has + xy; the two differ once pitch/roll are non-zero, as
    in real OpenScene poses.)"""
    q = np.asarray(quats, dtype=np.float64).reshape(-1, 4)
    sum_sq = np.einsum("ij,ij->i", q, q)
    norm = np.sqrt(sum_sq)
    rescale = ~(np.abs(1.0 - sum_sq) < 1e-14) & (norm > 0)
    q = np.where(rescale[:, None], q / np.where(norm > 0, norm, 1.0)[:, None], q)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.arctan2(2 * (w * z - x * y), 1 - 2 * (y**2 + z**2))


def global_ego_poses(frames: Sequence[dict[str, Any]]) -> np.ndarray:
    """(N, 3) float64 rear-axle poses (x, y, yaw) in the map frame."""
    xy = np.array([f["ego2global_translation"][:2] for f in frames], dtype=np.float64).reshape(-1, 2)
    quats = np.array([f["ego2global_rotation"] for f in frames], dtype=np.float64).reshape(-1, 4)
    return np.column_stack([xy, navsim_yaw(quats)])


def _dynamic_state(frame: dict[str, Any]) -> np.ndarray:
    # NAVSIM builds velocity and acceleration as float32 arrays; keep that rounding.
    return np.asarray(frame["ego_dynamic_state"], dtype=np.float32).astype(np.float64)


def ego_status_from_dict(frame: dict[str, Any], pose: np.ndarray, in_global_frame: bool) -> EgoStatus:
    dyn = _dynamic_state(frame)
    return EgoStatus(
        ego_pose=pose,
        ego_velocity=dyn[:2],
        ego_acceleration=dyn[2:4],
        driving_command=np.asarray(frame["driving_command"]),
        in_global_frame=in_global_frame,
    )


def annotations_from_dict(frame: dict[str, Any], source: str = "") -> Annotations:
    """Boxes (N, 7), names, velocities (N, 3), instance/track tokens; empty lists become (0, 7)/(0, 3)."""
    anns = frame.get("anns")
    if anns is None:
        raise DataError(
            f"{source}token {frame.get('token')}: the frame has no 'anns' (a private test split?)"
        )
    try:
        return Annotations(
            boxes=np.asarray(anns["gt_boxes"], dtype=np.float64).reshape(-1, 7),
            names=[str(n) for n in anns["gt_names"]],
            velocity_3d=np.asarray(anns["gt_velocity_3d"], dtype=np.float64).reshape(-1, 3),
            instance_tokens=list(anns["instance_tokens"]),
            track_tokens=list(anns["track_tokens"]),
        )
    except (KeyError, ValueError) as exc:
        raise DataError(f"{source}token {frame.get('token')}: bad annotations ({exc})") from None


def traffic_lights_from_dict(frame: dict[str, Any]) -> list[tuple[int, bool]]:
    return [(int(lane_connector), bool(is_red)) for lane_connector, is_red in frame["traffic_lights"]]


class SensorJobs:
    """Collects sensor blobs to read for one request and reads them (optionally on a thread pool).

    JPEG decoding releases the GIL, so the three front cameras of one AgentInput decode in parallel.
    """

    def __init__(self, blob_root: Path | None, executor: Executor | None = None):
        self.blob_root = blob_root
        self.executor = executor
        self._jobs: list[tuple[Callable[[Path], np.ndarray], Path, str, Callable[[np.ndarray], None]]] = []

    def _path(self, relative: str, token: str, what: str) -> Path:
        if self.blob_root is None:
            raise DataError(f"token {token}: {what} requested but no sensor-blob directory is configured")
        return self.blob_root / relative

    def camera(self, cam_key: str, entry: dict[str, Any], token: str) -> Camera:
        """A Camera with calibration whose image is filled in by :meth:`run`."""
        try:
            cam = Camera(
                image=None,
                sensor2lidar_rotation=np.asarray(entry["sensor2lidar_rotation"], dtype=np.float64),
                sensor2lidar_translation=np.asarray(entry["sensor2lidar_translation"], dtype=np.float64),
                intrinsics=np.asarray(entry["cam_intrinsic"], dtype=np.float64),
                distortion=np.asarray(entry["distortion"], dtype=np.float64),
                camera_path=self._path(entry["data_path"], token, cam_key),
            )
        except (KeyError, TypeError) as exc:
            raise DataError(f"token {token}: cams[{cam_key}] lacks {exc}") from None

        def fill(image: np.ndarray) -> None:
            cam.image = image

        self._jobs.append((read_jpeg, cam.camera_path, f"{token} {cam_key}", fill))  # type: ignore[arg-type]
        return cam

    def lidar(self, relative: str, token: str) -> Lidar:
        lidar = Lidar(lidar_pc=None, lidar_path=self._path(relative, token, "lidar_pc"))

        def fill(points: np.ndarray) -> None:
            lidar.lidar_pc = points

        self._jobs.append((read_pcd, lidar.lidar_path, f"{token} MergedPointCloud", fill))  # type: ignore[arg-type]
        return lidar

    def run(self) -> None:
        """Read every collected blob; a missing or bad file is a DataError naming the file and token."""
        jobs, self._jobs = self._jobs, []

        def one(job: tuple[Callable[[Path], np.ndarray], Path, str, Callable[[np.ndarray], None]]) -> None:
            reader, path, label, fill = job
            try:
                fill(reader(path))
            except DataError as exc:
                raise DataError(f"{exc} (token {label})") from None

        if self.executor is None or len(jobs) < 2:
            for job in jobs:
                one(job)
        else:
            for fut in [self.executor.submit(one, job) for job in jobs]:
                fut.result()


def cameras_from_dict(frame: dict[str, Any], requested: dict[str, bool], jobs: SensorJobs) -> Cameras:
    """Requested cameras get calibration + a pending image; the others stay empty ``Camera()``."""
    cams = frame["cams"]
    out = {}
    for key, fieldname in zip(CAMERA_NAMES, _CAMERA_FIELDS, strict=True):
        if requested.get(fieldname, False):
            out[fieldname] = jobs.camera(key, cams[key], frame["token"])
    return Cameras(**out)


def lidar_from_dict(frame: dict[str, Any], requested: dict[str, bool], jobs: SensorJobs) -> Lidar:
    if requested.get("lidar_pc", False):
        return jobs.lidar(frame["lidar_path"], frame["token"])
    return Lidar()


def agent_input_from_dicts(
    history: Sequence[dict[str, Any]],
    sensor_config: SensorConfig,
    blob_root: Path | None,
    executor: Executor | None = None,
) -> AgentInput:
    """AgentInput from the history frames only (oldest first; the last is the current frame)."""
    poses = global_ego_poses(history)
    # NAVSIM stores the relative history poses as float32.
    local = absolute_to_relative(poses[-1], poses).astype(np.float32).astype(np.float64)
    jobs = SensorJobs(blob_root, executor)
    statuses, cameras, lidars = [], [], []
    for i, frame in enumerate(history):
        statuses.append(ego_status_from_dict(frame, local[i], in_global_frame=False))
        requested = sensor_config.get_sensors_at_iteration(i)
        cameras.append(cameras_from_dict(frame, requested, jobs))
        lidars.append(lidar_from_dict(frame, requested, jobs))
    jobs.run()
    return AgentInput(statuses, cameras, lidars)


def scene_from_dicts(
    window: Sequence[dict[str, Any]],
    num_history_frames: int,
    sensor_config: SensorConfig,
    blob_root: Path | None,
    map_api: Any = None,
    executor: Executor | None = None,
    source: str = "",
) -> Scene:
    """Scene of a window; metadata comes from the current frame (index ``num_history_frames - 1``).

    Like NAVSIM, sensors follow ``get_sensors_at_iteration(i)`` for every window index ``i`` (a ``True``
    entry therefore also loads future frames' blobs; pass history indices to avoid that).
    """
    current = window[num_history_frames - 1]
    metadata = SceneMetadata(
        log_name=current["log_name"],
        scene_token=current["scene_token"],
        map_name=current["map_location"],
        initial_token=current["token"],
        num_history_frames=num_history_frames,
        num_future_frames=len(window) - num_history_frames,
    )
    poses = global_ego_poses(window)
    jobs = SensorJobs(blob_root, executor)
    frames = []
    for i, frame in enumerate(window):
        requested = sensor_config.get_sensors_at_iteration(i)
        frames.append(
            Frame(
                token=frame["token"],
                timestamp=int(frame["timestamp"]),
                roadblock_ids=[str(r) for r in frame["roadblock_ids"]],
                traffic_lights=traffic_lights_from_dict(frame),
                annotations=annotations_from_dict(frame, source),
                ego_status=ego_status_from_dict(frame, poses[i], in_global_frame=True),
                lidar=lidar_from_dict(frame, requested, jobs),
                cameras=cameras_from_dict(frame, requested, jobs),
            )
        )
    jobs.run()
    return Scene(scene_metadata=metadata, map_api=map_api, frames=frames)
