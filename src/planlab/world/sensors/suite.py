"""One object per log that owns the rig, the camera renderer and the LiDAR caster: what the world calls per frame.

Usage (per log)::

    suite = SensorSuite(static_geometry, SuiteConfig(width=480, height=270), seed=log_seed)
    cams = suite.calibration()                       # -> the log's cams[...] entries (plus data_path)
    for frame in frames:                             # every logged 2 Hz frame
        images, cloud = suite.capture(ego_pose, objects, lights, seed=frame_seed)

The camera renderer and the LiDAR share one ground raster, so a moving ego rasterises each ground tile once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planlab.world.sensors.camera import CameraRenderer, RenderConfig, default_levels
from planlab.world.sensors.ground import GroundRaster, RasterLevel, StaticGeometry
from planlab.world.sensors.lidar import LidarCaster, LidarConfig
from planlab.world.sensors.lighting import Lighting
from planlab.world.sensors.objects import SceneObjects, TrafficLightHeads
from planlab.world.sensors.rig import CameraRig, default_rig

DEFAULT_WIDTH, DEFAULT_HEIGHT = 480, 270  # fast default; 1920×1080 is the real size (contract §2.7)


@dataclass(frozen=True)
class SuiteConfig:
    """Image size, camera pitch, renderer / LiDAR / lighting settings, and which sensors are on."""

    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    pitch_deg: float = 0.0
    render: RenderConfig = field(default_factory=RenderConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    lighting: Lighting = field(default_factory=Lighting)
    cameras_enabled: bool = True
    lidar_enabled: bool = True


class SensorSuite:
    """Rig + camera renderer + LiDAR caster over one :class:`StaticGeometry` (build once per log)."""

    def __init__(self, static: StaticGeometry, config: SuiteConfig | None = None, seed: int = 0):
        self.config = config or SuiteConfig()
        cfg = self.config
        self.rig: CameraRig = default_rig(cfg.width, cfg.height, cfg.pitch_deg)
        levels = list(cfg.render.levels or default_levels(self.rig))
        lidar_reach = max(s.max_range for s in cfg.lidar.sensors) + 5.0
        if cfg.lidar_enabled and max(lv.radius for lv in levels) < lidar_reach:
            levels.append(RasterLevel(resolution=0.8, radius=lidar_reach, tile_cells=128, texture=0.25))
        self.raster = GroundRaster(static, tuple(levels))  # one world-fixed ground texture for every log
        self.renderer = (
            CameraRenderer(self.rig, self.raster, cfg.lighting, cfg.render, seed=seed)
            if cfg.cameras_enabled
            else None
        )
        self.lidar = LidarCaster(self.raster, cfg.lidar, seed=seed + 1) if cfg.lidar_enabled else None

    def calibration(self) -> dict[str, dict[str, np.ndarray]]:
        """``{CAM_xx: {sensor2lidar_rotation, sensor2lidar_translation, cam_intrinsic, distortion}}`` for the log."""
        return self.rig.calibration()

    def render_cameras(
        self,
        ego_pose: np.ndarray,
        objects: SceneObjects | None = None,
        lights: TrafficLightHeads | None = None,
        seed: int | None = None,
    ) -> dict[str, np.ndarray]:
        """All 8 images ``{CAM_xx: (H, W, 3) uint8}``; objects and lights in the global frame."""
        if self.renderer is None:
            raise RuntimeError("cameras are disabled in this SensorSuite")
        return self.renderer.render(ego_pose, objects, lights, seed=seed)

    def cast_lidar(
        self,
        ego_pose: np.ndarray,
        objects: SceneObjects | None = None,
        lights: TrafficLightHeads | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """Merged point cloud ``(6, N)`` float32 in the ego frame (x, y, z, intensity, ring, lidar id)."""
        if self.lidar is None:
            raise RuntimeError("LiDAR is disabled in this SensorSuite")
        return self.lidar.cast(ego_pose, objects, lights, seed=seed)

    def capture(
        self,
        ego_pose: np.ndarray,
        objects: SceneObjects | None = None,
        lights: TrafficLightHeads | None = None,
        seed: int | None = None,
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Images (empty dict if cameras are off) and point cloud (None if LiDAR is off) for one frame.

        ``seed`` derives independent noise streams for the cameras and the LiDAR.
        """
        cam_seed = lidar_seed = None
        if seed is not None:
            cam_seed, lidar_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
        images = self.renderer.render(ego_pose, objects, lights, seed=cam_seed) if self.renderer else {}
        cloud = self.lidar.cast(ego_pose, objects, lights, seed=lidar_seed) if self.lidar else None
        return images, cloud
