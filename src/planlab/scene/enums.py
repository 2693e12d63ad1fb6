"""Index conventions and name lists shared with NAVSIM/OpenScene (fact sheet §2.2, §3.1)."""

from __future__ import annotations

from enum import IntEnum

# Log camera keys (upper case in OpenScene frame dicts; NAVSIM's dataclass fields are the lower-case names).
CAMERA_NAMES: tuple[str, ...] = (
    "CAM_F0",
    "CAM_L0",
    "CAM_L1",
    "CAM_L2",
    "CAM_R0",
    "CAM_R1",
    "CAM_R2",
    "CAM_B0",
)

# Box class names allowed in `anns.gt_names` (never "ego": format contract P14).
BOX_NAMES: tuple[str, ...] = (
    "vehicle",
    "pedestrian",
    "bicycle",
    "traffic_cone",
    "barrier",
    "czone_sign",
    "generic_object",
)
# nuPlan AGENT_TYPES (minus ego): their velocity is used; all other classes are static objects.
AGENT_TYPES: frozenset[str] = frozenset({"vehicle", "pedestrian", "bicycle"})


class BoundingBoxIndex(IntEnum):
    """Columns of `gt_boxes` / `Annotations.boxes`: ego-frame centre, size, heading relative to ego."""

    X = 0
    Y = 1
    Z = 2
    LENGTH = 3
    WIDTH = 4
    HEIGHT = 5
    HEADING = 6


class LidarIndex(IntEnum):
    """Rows of a merged point cloud ``(6, N)``; the PCD field of row 5 is named ``lidar_info``."""

    X = 0
    Y = 1
    Z = 2
    INTENSITY = 3
    RING = 4
    ID = 5


class DrivingCommand(IntEnum):
    """Positions in the one-hot `driving_command` (OpenScene: left, straight, right, unknown)."""

    LEFT = 0
    STRAIGHT = 1
    RIGHT = 2
    UNKNOWN = 3


class StateIndex(IntEnum):
    """The 11-dim rear-axle ego state of the PDM simulator (fact sheet §1.4)."""

    X = 0
    Y = 1
    HEADING = 2
    VELOCITY_X = 3
    VELOCITY_Y = 4
    ACCELERATION_X = 5
    ACCELERATION_Y = 6
    STEERING_ANGLE = 7
    STEERING_RATE = 8
    ANGULAR_VELOCITY = 9
    ANGULAR_ACCELERATION = 10
