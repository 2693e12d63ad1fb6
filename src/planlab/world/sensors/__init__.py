"""Sensors of the synthetic world: the 8-camera NAVSIM rig, a fast camera renderer and a merged-LiDAR ray caster.

Frames: everything per frame is given in the **global** map frame (object boxes, traffic-light heads, the ego
rear-axle pose); outputs are in the sensor conventions of OpenScene/NAVSIM (format contract §2.7): images
``(H, W, 3)`` uint8 RGB, point clouds ``(6, N)`` float32 in the ego rear-axle frame with z = 0 on the ground.
Start from :class:`SensorSuite`.
"""

from planlab.world.sensors.camera import CameraRenderer, RenderConfig, clip_polygon_near, default_levels
from planlab.world.sensors.ground import (
    GroundClass,
    GroundPolygon,
    GroundRaster,
    LaneMarking,
    RasterLevel,
    StaticGeometry,
    crosswalk_stripes,
)
from planlab.world.sensors.lidar import LidarCaster, LidarConfig, LidarSpec, default_lidars
from planlab.world.sensors.lighting import Lighting
from planlab.world.sensors.objects import (
    CLASS_COLORS,
    LIGHT_STATES,
    Material,
    SceneObjects,
    TrafficLightHeads,
    build_parts,
    color_for_token,
)
from planlab.world.sensors.rig import (
    REFERENCE_FOCAL,
    REFERENCE_HEIGHT,
    REFERENCE_WIDTH,
    STITCH_YAW_DEG,
    CameraRig,
    PinholeCamera,
    camera_rotation,
    default_rig,
    rig_from_calibration,
)
from planlab.world.sensors.suite import DEFAULT_HEIGHT, DEFAULT_WIDTH, SensorSuite, SuiteConfig

__all__ = [
    "CLASS_COLORS",
    "DEFAULT_HEIGHT",
    "DEFAULT_WIDTH",
    "LIGHT_STATES",
    "REFERENCE_FOCAL",
    "REFERENCE_HEIGHT",
    "REFERENCE_WIDTH",
    "STITCH_YAW_DEG",
    "CameraRenderer",
    "CameraRig",
    "GroundClass",
    "GroundPolygon",
    "GroundRaster",
    "LaneMarking",
    "LidarCaster",
    "LidarConfig",
    "LidarSpec",
    "Lighting",
    "Material",
    "PinholeCamera",
    "RasterLevel",
    "RenderConfig",
    "SceneObjects",
    "SensorSuite",
    "StaticGeometry",
    "SuiteConfig",
    "TrafficLightHeads",
    "build_parts",
    "camera_rotation",
    "clip_polygon_near",
    "color_for_token",
    "crosswalk_stripes",
    "default_levels",
    "default_lidars",
    "default_rig",
    "rig_from_calibration",
]
