"""A frame without annotated objects (empty (0, 7)/(0, 3) arrays or plain []) converts to no objects."""

from __future__ import annotations

import numpy as np
import pytest

from planlab.evaluation.frames import frame_objects
from planlab.geometry import quaternion_from_yaw


@pytest.mark.parametrize("empty", ["arrays", "lists"])
def test_empty_frame_has_no_objects(empty):
    anns = (
        {"gt_boxes": np.zeros((0, 7)), "gt_velocity_3d": np.zeros((0, 3))}
        if empty == "arrays"
        else {"gt_boxes": [], "gt_velocity_3d": []}
    )
    anns.update({"gt_names": [], "track_tokens": [], "instance_tokens": []})
    frame = {
        "token": "0123456789abcdef",
        "ego2global_translation": [100.0, 200.0, 0.0],
        "ego2global_rotation": list(quaternion_from_yaw(0.3)),
        "anns": anns,
    }
    objs = frame_objects(frame)
    assert len(objs.tokens) == 0
