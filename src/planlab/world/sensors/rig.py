"""The 8-camera rig of NAVSIM/nuPlan: pinhole intrinsics, camera→LiDAR extrinsics, projection and rays.

Frames (format contract §2.7, P13):

- **ego / LiDAR frame**: rear axle on the ground, x forward, y left, z up, metres. ``lidar2ego`` is the
  identity, so "LiDAR frame" and "ego frame" are the same thing here.
- **camera frame**: x right, y down, z forward (the optical axis).

``sensor2lidar_rotation`` R and ``sensor2lidar_translation`` t map camera coordinates to the LiDAR (= ego)
frame: ``p_ego = R @ p_cam + t``. Its columns are the camera's x/y/z axes written in the ego frame.

Pixel convention: (0, 0) is the top-left *corner* of the top-left pixel, the centre of pixel (col, row) is
at (col + 0.5, row + 0.5), and the principal point of the default rig is (W/2, H/2). That is PIL's
coordinate system, and it makes a resolution change a pure scaling of fx, fy, cx, cy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planlab.errors import DataError
from planlab.scene.enums import CAMERA_NAMES

REFERENCE_WIDTH = 1920  # px, the real NAVSIM/OpenScene image size (contract §2.7)
REFERENCE_HEIGHT = 1080
REFERENCE_FOCAL = (
    1545.0  # px at 1920×1080: ≈ 63.7° horizontal, 38.5° vertical field of view, like nuPlan's rig
)

# TransFuser (fact sheet §2.1) keeps the middle 1920 − 2·416 = 1088 px of CAM_L0/CAM_R0 and puts them beside the
# full CAM_F0. The L0/R0 yaw below makes the right edge of L0's crop meet the left edge of F0 exactly, so the
# stitched L0|F0|R0 strip is a seamless panorama of about ±70°.
TRANSFUSER_SIDE_CROP = 416
STITCH_YAW_DEG = math.degrees(
    math.atan(0.5 * REFERENCE_WIDTH / REFERENCE_FOCAL)
    + math.atan((0.5 * REFERENCE_WIDTH - TRANSFUSER_SIDE_CROP) / REFERENCE_FOCAL)
)  # ≈ 51.25°

# Mounting around a roof rack, in the ego rear-axle frame (Pacifica: front bumper at x = 4.049 m, rear at
# x = −1.127 m, half width 1.149 m, roof 1.777 m; fact sheet §1.5). (name, x, y, z, yaw°): yaw is the optical
# axis direction, counter-clockwise from the ego's forward axis. Neighbouring fields of view overlap a little and
# together cover 360°: F0 ±31.9°, L0/R0 ±(19.4…83.1)°, L1/R1 ±(73.2…136.9)°, L2/R2 ±(118.2…181.9)°, B0 180 ± 31.9°.
DEFAULT_MOUNTS: tuple[tuple[str, float, float, float, float], ...] = (
    ("CAM_F0", 2.10, 0.00, 1.80, 0.0),
    ("CAM_L0", 1.95, 0.35, 1.80, STITCH_YAW_DEG),
    ("CAM_L1", 1.40, 0.55, 1.80, 105.0),
    ("CAM_L2", 0.35, 0.50, 1.80, 150.0),
    ("CAM_R0", 1.95, -0.35, 1.80, -STITCH_YAW_DEG),
    ("CAM_R1", 1.40, -0.55, 1.80, -105.0),
    ("CAM_R2", 0.35, -0.50, 1.80, -150.0),
    ("CAM_B0", 0.05, 0.00, 1.80, 180.0),
)


def camera_rotation(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """``sensor2lidar_rotation`` of a camera looking along ``yaw`` [rad], tilted down by ``pitch`` [rad].

    Columns: the camera's x (right), y (down) and z (forward) axes in the ego frame; no roll.
    """
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    forward = np.array([cp * cy, cp * sy, -sp])
    right = np.array([sy, -cy, 0.0])
    # y = z × x for a right-handed camera frame (written out: np.cross is slow for 3-vectors).
    down = np.array(
        [
            forward[1] * right[2] - forward[2] * right[1],
            forward[2] * right[0] - forward[0] * right[2],
            forward[0] * right[1] - forward[1] * right[0],
        ]
    )
    return np.stack([right, down, forward], axis=1)


@dataclass(frozen=True)
class PinholeCamera:
    """One camera: name, image size, intrinsics K, camera→ego extrinsics (R, t) and distortion (zeros here)."""

    name: str
    width: int
    height: int
    intrinsics: np.ndarray  # (3, 3) K
    sensor2lidar_rotation: np.ndarray  # (3, 3) camera → ego
    sensor2lidar_translation: np.ndarray  # (3,) camera centre in the ego frame [m]
    distortion: np.ndarray = field(default_factory=lambda: np.zeros(5))  # k1 k2 p1 p2 k3 (OpenCV order)

    def __post_init__(self) -> None:
        object.__setattr__(self, "intrinsics", np.asarray(self.intrinsics, dtype=np.float64).reshape(3, 3))
        object.__setattr__(
            self,
            "sensor2lidar_rotation",
            np.asarray(self.sensor2lidar_rotation, dtype=np.float64).reshape(3, 3),
        )
        object.__setattr__(
            self,
            "sensor2lidar_translation",
            np.asarray(self.sensor2lidar_translation, dtype=np.float64).reshape(3),
        )
        object.__setattr__(self, "distortion", np.asarray(self.distortion, dtype=np.float64).reshape(-1))
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.name}: image size must be positive, got {self.width}x{self.height}")

    # -- intrinsics -------------------------------------------------------------------------------------------
    @property
    def fx(self) -> float:
        return float(self.intrinsics[0, 0])

    @property
    def fy(self) -> float:
        return float(self.intrinsics[1, 1])

    @property
    def cx(self) -> float:
        return float(self.intrinsics[0, 2])

    @property
    def cy(self) -> float:
        return float(self.intrinsics[1, 2])

    @property
    def position(self) -> np.ndarray:
        """Optical centre in the ego frame [m]."""
        return self.sensor2lidar_translation

    @property
    def yaw(self) -> float:
        """Direction of the optical axis projected on the ground, counter-clockwise from ego +x [rad]."""
        f = self.sensor2lidar_rotation[:, 2]
        return math.atan2(f[1], f[0])

    @property
    def horizontal_fov(self) -> float:
        """Full horizontal field of view [rad] (for a centred principal point)."""
        return 2.0 * math.atan(0.5 * self.width / self.fx)

    @property
    def vertical_fov(self) -> float:
        return 2.0 * math.atan(0.5 * self.height / self.fy)

    def scaled(self, width: int, height: int) -> PinholeCamera:
        """The same camera at another resolution: fx, cx scale with width and fy, cy with height."""
        sx, sy = width / self.width, height / self.height
        k = self.intrinsics.copy()
        k[0, 0] *= sx
        k[0, 2] *= sx
        k[1, 1] *= sy
        k[1, 2] *= sy
        return PinholeCamera(
            self.name,
            width,
            height,
            k,
            self.sensor2lidar_rotation,
            self.sensor2lidar_translation,
            self.distortion,
        )

    # -- transforms -------------------------------------------------------------------------------------------
    def ego_to_camera(self, points: np.ndarray) -> np.ndarray:
        """Ego-frame points ``(..., 3)`` in camera coordinates: ``R^T (p − t)``."""
        p = np.asarray(points, dtype=np.float64)
        return (p - self.sensor2lidar_translation) @ self.sensor2lidar_rotation

    def camera_to_ego(self, points: np.ndarray) -> np.ndarray:
        """Camera-frame points ``(..., 3)`` in the ego frame: ``R p + t``."""
        p = np.asarray(points, dtype=np.float64)
        return p @ self.sensor2lidar_rotation.T + self.sensor2lidar_translation

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels ``(..., 2)`` (u right, v down) and depth ``(...,)`` [m] of ego-frame points ``(..., 3)``.

        Points at or behind the optical centre (depth ≤ 0) get NaN pixels; check ``depth > 0``.
        """
        pc = self.ego_to_camera(points)
        z = pc[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(z > 0, 1.0 / np.where(z > 0, z, 1.0), np.nan)
        u = self.fx * pc[..., 0] * inv + self.cx
        v = self.fy * pc[..., 1] * inv + self.cy
        return np.stack([u, v], axis=-1), z

    def in_image(self, uv: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Whether projected points lie in front of the camera and inside the image."""
        u, v = uv[..., 0], uv[..., 1]
        with np.errstate(invalid="ignore"):
            return (depth > 0) & (u >= 0) & (u < self.width) & (v >= 0) & (v < self.height)

    def pixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Inverse projection: (origin (3,), unit directions (..., 3)) in the ego frame of pixels ``(..., 2)``."""
        uv = np.asarray(uv, dtype=np.float64)
        d = np.stack(
            [(uv[..., 0] - self.cx) / self.fx, (uv[..., 1] - self.cy) / self.fy, np.ones(uv.shape[:-1])],
            axis=-1,
        )
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        return self.sensor2lidar_translation.copy(), d @ self.sensor2lidar_rotation.T

    # -- log entries ------------------------------------------------------------------------------------------
    def calibration(self) -> dict[str, np.ndarray]:
        """The OpenScene ``cams[<name>]`` entry without ``data_path`` (contract §2.3)."""
        return {
            "sensor2lidar_rotation": self.sensor2lidar_rotation.copy(),
            "sensor2lidar_translation": self.sensor2lidar_translation.copy(),
            "cam_intrinsic": self.intrinsics.copy(),
            "distortion": self.distortion.copy(),
        }

    @classmethod
    def from_calibration(cls, name: str, entry: Mapping[str, Any], width: int, height: int) -> PinholeCamera:
        """A camera from a log's ``cams[<name>]`` entry (or a ``planlab.scene.Camera``'s fields) and image size."""
        try:
            return cls(
                name,
                int(width),
                int(height),
                np.asarray(entry["cam_intrinsic"], dtype=np.float64),
                np.asarray(entry["sensor2lidar_rotation"], dtype=np.float64),
                np.asarray(entry["sensor2lidar_translation"], dtype=np.float64),
                np.asarray(entry.get("distortion", np.zeros(5)), dtype=np.float64),
            )
        except KeyError as exc:
            raise DataError(f"camera {name}: calibration entry lacks key {exc.args[0]!r}") from None
        except ValueError as exc:
            raise DataError(f"camera {name}: malformed calibration ({exc})") from None


@dataclass(frozen=True)
class CameraRig:
    """The eight NAVSIM cameras in log order (CAM_F0, CAM_L0, …, CAM_B0)."""

    cameras: tuple[PinholeCamera, ...]

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.cameras)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate camera names in rig: {names}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cameras)

    @property
    def width(self) -> int:
        return self.cameras[0].width

    @property
    def height(self) -> int:
        return self.cameras[0].height

    def __getitem__(self, name: str) -> PinholeCamera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"no camera {name!r} in rig (cameras: {', '.join(self.names)})")

    def __iter__(self) -> Iterator[PinholeCamera]:
        return iter(self.cameras)

    def __len__(self) -> int:
        return len(self.cameras)

    def scaled(self, width: int, height: int) -> CameraRig:
        return CameraRig(tuple(c.scaled(width, height) for c in self.cameras))

    def calibration(self) -> dict[str, dict[str, np.ndarray]]:
        """``{CAM_xx: {sensor2lidar_rotation, sensor2lidar_translation, cam_intrinsic, distortion}}``."""
        return {c.name: c.calibration() for c in self.cameras}


def default_rig(
    width: int = REFERENCE_WIDTH,
    height: int = REFERENCE_HEIGHT,
    pitch_deg: float = 0.0,
    focal_px: float = REFERENCE_FOCAL,
) -> CameraRig:
    """The default rig at ``width``×``height``, with the field of view of ``focal_px`` at 1920×1080.

    Any resolution keeps the fields of view (fx, cx scale with width, fy, cy with height); an aspect ratio other
    than 16:9 gives non-square pixels, as a resize of the real images would. ``pitch_deg`` tilts all cameras down.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    k = np.array(
        [[focal_px, 0.0, REFERENCE_WIDTH / 2], [0.0, focal_px, REFERENCE_HEIGHT / 2], [0.0, 0.0, 1.0]]
    )
    pitch = math.radians(pitch_deg)
    cams = tuple(
        PinholeCamera(
            name, REFERENCE_WIDTH, REFERENCE_HEIGHT, k, camera_rotation(math.radians(yaw), pitch), (x, y, z)
        )
        for name, x, y, z, yaw in DEFAULT_MOUNTS
    )
    assert tuple(c.name for c in cams) == CAMERA_NAMES
    rig = CameraRig(cams)
    return rig if (width, height) == (REFERENCE_WIDTH, REFERENCE_HEIGHT) else rig.scaled(width, height)


def rig_from_calibration(
    cams: Mapping[str, Mapping[str, Any]], sizes: Mapping[str, tuple[int, int]]
) -> CameraRig:
    """A rig from a log frame's ``cams`` dict and each camera's image size ``(width, height)``."""
    return CameraRig(
        tuple(
            PinholeCamera.from_calibration(n, cams[n], *sizes[n])
            for n in CAMERA_NAMES
            if n in cams and n in sizes
        )
    )
