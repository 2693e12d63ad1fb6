"""NAVSIM's scene dataclasses (fact sheet §2.2), re-expressed for planlab.

Frames keep the ego pose in the global (map) frame; :meth:`Scene.get_agent_input` and the trajectory
getters express poses in the *current* frame's rear-axle frame (x forward, y left), whose index is
``num_history_frames - 1``. Building these objects from log dicts and sensor blobs is ``planlab.data``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from planlab.geometry.se2 import absolute_to_relative

NAVSIM_INTERVAL_LENGTH = 0.5  # s between logged frames (2 Hz)


@dataclass(frozen=True)
class TrajectorySampling:
    """Any two of ``num_poses`` (excluding the initial state), ``time_horizon`` [s], ``interval_length`` [s]."""

    num_poses: int | None = None
    time_horizon: float | None = None
    interval_length: float | None = None

    def __post_init__(self) -> None:
        n, t, dt = self.num_poses, self.time_horizon, self.interval_length
        given = sum(v is not None for v in (n, t, dt))
        if given < 2:
            raise ValueError("TrajectorySampling needs two of num_poses, time_horizon, interval_length")
        if n is None:
            ratio = t / dt  # type: ignore[operator]
            if abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(f"time_horizon {t} is not a multiple of interval_length {dt}")
            n = int(round(ratio))
        elif t is None:
            t = n * dt  # type: ignore[operator]
        elif dt is None:
            dt = t / n
        elif abs(n * dt - t) > 1e-6:
            raise ValueError(f"inconsistent sampling: {n} poses x {dt} s != {t} s")
        object.__setattr__(self, "num_poses", int(n))
        object.__setattr__(self, "time_horizon", float(t))
        object.__setattr__(self, "interval_length", float(dt))

    @property
    def step_times(self) -> np.ndarray:
        """Times [s] of the poses after t0: interval, 2·interval, …, horizon."""
        return self.interval_length * np.arange(1, self.num_poses + 1)  # type: ignore[operator]


DEFAULT_SAMPLING = TrajectorySampling(time_horizon=4.0, interval_length=NAVSIM_INTERVAL_LENGTH)


@dataclass
class Trajectory:
    """Poses ``(N, 3) = (x, y, heading)`` in the current rear-axle frame at ``trajectory_sampling`` times."""

    poses: np.ndarray
    trajectory_sampling: TrajectorySampling = DEFAULT_SAMPLING

    def __post_init__(self) -> None:
        poses = np.asarray(self.poses)
        if not np.issubdtype(poses.dtype, np.floating):
            poses = poses.astype(np.float64)
        if poses.ndim != 2 or poses.shape[1] != 3:
            raise ValueError(f"trajectory poses must have shape (N, 3), got {poses.shape}")
        if poses.shape[0] != self.trajectory_sampling.num_poses:
            raise ValueError(
                f"trajectory has {poses.shape[0]} poses but its sampling expects "
                f"{self.trajectory_sampling.num_poses}"
            )
        self.poses = poses


@dataclass
class EgoStatus:
    """Ego pose (x, y, heading), velocity and acceleration (ego frame), one-hot driving command."""

    ego_pose: np.ndarray
    ego_velocity: np.ndarray
    ego_acceleration: np.ndarray
    driving_command: np.ndarray
    in_global_frame: bool = False

    def __post_init__(self) -> None:
        self.ego_pose = np.asarray(self.ego_pose, dtype=np.float64).reshape(3)
        self.ego_velocity = np.asarray(self.ego_velocity, dtype=np.float64).reshape(2)
        self.ego_acceleration = np.asarray(self.ego_acceleration, dtype=np.float64).reshape(2)
        self.driving_command = np.asarray(self.driving_command).reshape(4).astype(np.int64)


@dataclass
class Camera:
    """One camera image (H, W, 3) uint8 with its calibration; an unrequested camera has ``image=None``."""

    image: np.ndarray | None = None
    sensor2lidar_rotation: np.ndarray | None = None
    sensor2lidar_translation: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    distortion: np.ndarray | None = None
    camera_path: Path | None = None

    @property
    def loaded(self) -> bool:
        return self.image is not None


@dataclass
class Cameras:
    """The eight NAVSIM cameras (lower-case field names of the log keys CAM_F0 …)."""

    cam_f0: Camera = field(default_factory=Camera)
    cam_l0: Camera = field(default_factory=Camera)
    cam_l1: Camera = field(default_factory=Camera)
    cam_l2: Camera = field(default_factory=Camera)
    cam_r0: Camera = field(default_factory=Camera)
    cam_r1: Camera = field(default_factory=Camera)
    cam_r2: Camera = field(default_factory=Camera)
    cam_b0: Camera = field(default_factory=Camera)

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(Cameras))

    def items(self) -> list[tuple[str, Camera]]:
        return [(n, getattr(self, n)) for n in self.names()]


@dataclass
class Lidar:
    """Merged point cloud ``(6, N)`` float32 (rows: x, y, z, intensity, ring, lidar id), ego frame."""

    lidar_pc: np.ndarray | None = None
    lidar_path: Path | None = None


@dataclass
class Annotations:
    """Boxes ``(N, 7)`` in the ego frame (x, y, z, length, width, height, heading − ego heading), etc."""

    boxes: np.ndarray
    names: list[str]
    velocity_3d: np.ndarray
    instance_tokens: list[str]
    track_tokens: list[str]

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 7)
        self.velocity_3d = np.asarray(self.velocity_3d, dtype=np.float64).reshape(-1, 3)
        self.names = [str(n) for n in self.names]
        self.instance_tokens = [str(t) for t in self.instance_tokens]
        self.track_tokens = [str(t) for t in self.track_tokens]
        n = len(self.boxes)
        lengths = {len(self.names), len(self.velocity_3d), len(self.instance_tokens), len(self.track_tokens)}
        if lengths != {n}:
            raise ValueError(
                f"annotation arrays differ in length: boxes {n}, names {len(self.names)}, "
                f"velocity_3d {len(self.velocity_3d)}, instance_tokens {len(self.instance_tokens)}, "
                f"track_tokens {len(self.track_tokens)}"
            )

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> Annotations:
        return cls(np.zeros((0, 7)), [], np.zeros((0, 3)), [], [])


@dataclass
class Frame:
    """One 2 Hz log frame; ``ego_status`` is in the global frame."""

    token: str
    timestamp: int
    roadblock_ids: list[str]
    traffic_lights: list[tuple[int, bool]]
    annotations: Annotations
    ego_status: EgoStatus
    lidar: Lidar
    cameras: Cameras


@dataclass
class SceneMetadata:
    log_name: str
    scene_token: str
    map_name: str
    initial_token: str
    num_history_frames: int
    num_future_frames: int


@dataclass
class AgentInput:
    """What a planner may see: ``num_history_frames`` ego statuses (current frame = identity pose),
    cameras and LiDARs, oldest first."""

    ego_statuses: list[EgoStatus]
    cameras: list[Cameras]
    lidars: list[Lidar]

    @property
    def current_ego_status(self) -> EgoStatus:
        return self.ego_statuses[-1]


@dataclass
class Scene:
    """A window of frames around a current frame, with the map (a ``planlab.maps.MapAPI`` or None)."""

    scene_metadata: SceneMetadata
    map_api: Any
    frames: list[Frame]

    @property
    def current_index(self) -> int:
        return self.scene_metadata.num_history_frames - 1

    @property
    def current_frame(self) -> Frame:
        return self.frames[self.current_index]

    @property
    def token(self) -> str:
        return self.scene_metadata.initial_token

    def _global_poses(self, indices: range) -> np.ndarray:
        return np.stack([self.frames[i].ego_status.ego_pose for i in indices])

    def get_future_trajectory(self, num_trajectory_frames: int | None = None) -> Trajectory:
        """Logged future poses (frames current+1 …) relative to the current rear axle, at 0.5 s."""
        if num_trajectory_frames is None:
            num_trajectory_frames = self.scene_metadata.num_future_frames
        start = self.current_index
        available = len(self.frames) - 1 - start
        if num_trajectory_frames > available:
            raise ValueError(f"scene has {available} future frames, {num_trajectory_frames} requested")
        poses = self._global_poses(range(start, start + num_trajectory_frames + 1))
        local = absolute_to_relative(poses[0], poses[1:])
        return Trajectory(
            local,
            TrajectorySampling(num_poses=len(local), interval_length=NAVSIM_INTERVAL_LENGTH),
        )

    def get_history_trajectory(self, num_trajectory_frames: int | None = None) -> Trajectory:
        """Logged history poses (oldest first, ending with the current pose = 0) in the current frame."""
        if num_trajectory_frames is None:
            num_trajectory_frames = self.scene_metadata.num_history_frames
        start = self.current_index
        first = start - num_trajectory_frames + 1
        if first < 0:
            raise ValueError(f"scene has {start + 1} history frames, {num_trajectory_frames} requested")
        poses = self._global_poses(range(first, start + 1))
        local = absolute_to_relative(self.frames[start].ego_status.ego_pose, poses)
        return Trajectory(
            local,
            TrajectorySampling(num_poses=len(local), interval_length=NAVSIM_INTERVAL_LENGTH),
        )

    def get_agent_input(self) -> AgentInput:
        """History frames only; ego poses relative to the current frame."""
        h = self.scene_metadata.num_history_frames
        origin = self.frames[h - 1].ego_status.ego_pose
        statuses, cameras, lidars = [], [], []
        for i in range(h):
            st = self.frames[i].ego_status
            # NAVSIM stores the relative history poses as float32; keep that rounding so agent inputs
            # from a Scene equal those built directly by the loader (train/eval parity).
            local = absolute_to_relative(origin, st.ego_pose).astype(np.float32).astype(np.float64)
            statuses.append(
                EgoStatus(
                    ego_pose=local,
                    ego_velocity=st.ego_velocity,
                    ego_acceleration=st.ego_acceleration,
                    driving_command=st.driving_command,
                    in_global_frame=False,
                )
            )
            cameras.append(self.frames[i].cameras)
            lidars.append(self.frames[i].lidar)
        return AgentInput(statuses, cameras, lidars)


_SENSOR_FIELDS = ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0", "lidar_pc")


@dataclass
class SensorConfig:
    """Which sensors to load: per sensor a bool (all history frames) or a list of history indices."""

    cam_f0: bool | list[int] = False
    cam_l0: bool | list[int] = False
    cam_l1: bool | list[int] = False
    cam_l2: bool | list[int] = False
    cam_r0: bool | list[int] = False
    cam_r1: bool | list[int] = False
    cam_r2: bool | list[int] = False
    cam_b0: bool | list[int] = False
    lidar_pc: bool | list[int] = False

    @classmethod
    def build_all_sensors(cls, include: bool | list[int] = True) -> SensorConfig:
        return cls(**{name: include for name in _SENSOR_FIELDS})

    @classmethod
    def build_no_sensors(cls) -> SensorConfig:
        return cls.build_all_sensors(include=False)

    def get_sensors_at_iteration(self, iteration: int) -> dict[str, bool]:
        """{sensor: load?} for history frame ``iteration``."""
        out = {}
        for name in _SENSOR_FIELDS:
            v = getattr(self, name)
            out[name] = bool(v) if isinstance(v, bool) else iteration in v
        return out

    def any(self) -> bool:
        return any(bool(getattr(self, n)) for n in _SENSOR_FIELDS)


@dataclass
class SceneFilter:
    """Which windows of which logs become scenes (fact sheet §2.2 ``filter_scenes``)."""

    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: int | None = None
    has_route: bool = True
    max_scenes: int | None = None
    log_names: list[str] | None = None
    tokens: list[str] | None = None

    def __post_init__(self) -> None:
        if self.num_history_frames < 1:
            raise ValueError("num_history_frames must be >= 1")
        if self.num_future_frames < 0:
            raise ValueError("num_future_frames must be >= 0")
        if self.frame_interval is not None and self.frame_interval < 1:
            raise ValueError("frame_interval must be >= 1 or None")

    @property
    def num_frames(self) -> int:
        return self.num_history_frames + self.num_future_frames

    @property
    def interval(self) -> int:
        """Window stride; ``None`` means non-overlapping windows."""
        return self.frame_interval if self.frame_interval is not None else self.num_frames
