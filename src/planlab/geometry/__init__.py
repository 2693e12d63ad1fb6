"""Math of the plane: SE(2) poses, oriented boxes and polylines, all vectorised over leading axes."""

from planlab.geometry.boxes import (
    box_corners,
    boxes_overlap,
    points_in_boxes,
    segment_intersects_boxes,
)
from planlab.geometry.polyline import Polyline
from planlab.geometry.se2 import (
    absolute_to_relative,
    compose,
    invert,
    pose_matrix,
    quaternion_from_yaw,
    relative_to_absolute,
    transform_points,
    wrap_angle,
    yaw_from_quaternion,
)

__all__ = [
    "Polyline",
    "absolute_to_relative",
    "box_corners",
    "boxes_overlap",
    "compose",
    "invert",
    "points_in_boxes",
    "pose_matrix",
    "quaternion_from_yaw",
    "relative_to_absolute",
    "segment_intersects_boxes",
    "transform_points",
    "wrap_angle",
    "yaw_from_quaternion",
]
