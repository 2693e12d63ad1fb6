"""Perception targets (TransFuser-style auxiliary supervision, methods_facts §4): agent boxes and a BEV
semantic raster of map and objects, both in the current rear-axle frame.

- ``agent_states`` (N, 5) = x, y, heading, length, width of the ``max_agents`` nearest vehicles inside the BEV
  range, zero-padded, with ``agent_labels`` (N,) = 1 for a real box (TransFuser: 30 boxes, vehicles only).
- ``bev_semantic_map`` (H, W) int64 classes: 0 background, 1 road (lanes, lane connectors, intersections),
  2 walkways, 3 centrelines, 4 static objects, 5 vehicles, 6 pedestrians (later classes paint over earlier).
  TransFuser's grid: 128 × 256 cells of 0.25 m covering x ∈ [0, 32] m ahead and y ∈ [−32, 32] m. Row 0 is
  the farthest ahead, column 0 the farthest left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ContractError
from planlab.features.base import TargetBuilder, TensorSpec
from planlab.geometry.boxes import box_corners, points_in_boxes
from planlab.geometry.se2 import relative_to_absolute
from planlab.scene import AGENT_TYPES, BoundingBoxIndex, Scene

BEV_CLASSES = ("background", "road", "walkway", "centreline", "static_object", "vehicle", "pedestrian")


class AgentBoxTargetBuilder(TargetBuilder):
    """Nearest vehicles of the current frame as regression targets with an existence label."""

    def __init__(
        self, max_agents: int = 30, range_m: float = 32.0, classes: tuple[str, ...] = ("vehicle",)
    ) -> None:
        self.max_agents = int(max_agents)
        self.range_m = float(range_m)
        self.classes = tuple(classes)

    def get_unique_name(self) -> str:
        return "agent_boxes"

    def settings(self) -> dict[str, Any]:
        return {"max_agents": self.max_agents, "range_m": self.range_m, "classes": list(self.classes)}

    def specs(self) -> dict[str, TensorSpec]:
        return {
            "agent_states": TensorSpec(
                (self.max_agents, 5), "float32", description="x, y, heading, length, width"
            ),
            "agent_labels": TensorSpec((self.max_agents,), "float32", (0.0, 1.0), "1 = real box"),
        }

    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]:
        ann = scene.current_frame.annotations
        boxes = np.asarray(ann.boxes, dtype=np.float64).reshape(-1, 7)
        keep = np.array([n in self.classes for n in ann.names], dtype=bool)
        boxes = boxes[keep] if len(boxes) else boxes
        x, y = boxes[:, BoundingBoxIndex.X], boxes[:, BoundingBoxIndex.Y]
        inside = (np.abs(x) <= self.range_m) & (np.abs(y) <= self.range_m)
        boxes = boxes[inside]
        order = np.argsort(np.hypot(boxes[:, 0], boxes[:, 1]), kind="stable")[: self.max_agents]
        boxes = boxes[order]
        states = np.zeros((self.max_agents, 5), np.float32)
        labels = np.zeros(self.max_agents, np.float32)
        cols = [
            BoundingBoxIndex.X,
            BoundingBoxIndex.Y,
            BoundingBoxIndex.HEADING,
            BoundingBoxIndex.LENGTH,
            BoundingBoxIndex.WIDTH,
        ]
        states[: len(boxes)] = boxes[:, cols]
        states[: len(boxes), 2] = np.arctan2(np.sin(states[: len(boxes), 2]), np.cos(states[: len(boxes), 2]))
        labels[: len(boxes)] = 1.0
        return {"agent_states": torch.from_numpy(states), "agent_labels": torch.from_numpy(labels)}


class BEVSemanticTargetBuilder(TargetBuilder):
    """Map layers and boxes rasterised around the current pose (needs the scene's map API)."""

    def __init__(
        self,
        height: int = 128,
        width: int = 256,
        pixel_size: float = 0.25,
        x_min: float = 0.0,
        centreline_width: float = 0.5,
    ) -> None:
        self.height, self.width = int(height), int(width)
        self.pixel_size = float(pixel_size)
        self.x_min = float(x_min)
        self.centreline_width = float(centreline_width)

    def get_unique_name(self) -> str:
        return "bev_semantic"

    def settings(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "width": self.width,
            "pixel_size": self.pixel_size,
            "x_min": self.x_min,
            "centreline_width": self.centreline_width,
            "classes": list(BEV_CLASSES),
        }

    def specs(self) -> dict[str, TensorSpec]:
        return {"bev_semantic_map": TensorSpec((self.height, self.width), "int64", (0, len(BEV_CLASSES) - 1))}

    def cell_centres(self) -> np.ndarray:
        """(H, W, 2) ego-frame (x, y) of the cell centres: row 0 farthest ahead, column 0 farthest left."""
        rows = np.arange(self.height)
        cols = np.arange(self.width)
        x = self.x_min + (self.height - rows - 0.5) * self.pixel_size
        y = (self.width / 2 - cols - 0.5) * self.pixel_size
        return np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1)

    def _cells_of_points(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        row = np.floor(self.height - (pts[:, 0] - self.x_min) / self.pixel_size).astype(np.int64)
        col = np.floor(self.width / 2 - pts[:, 1] / self.pixel_size).astype(np.int64)
        ok = (row >= 0) & (row < self.height) & (col >= 0) & (col < self.width)
        return row[ok], col[ok]

    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]:
        from planlab.maps.layers import SemanticMapLayer as L

        map_api = scene.map_api
        if map_api is None:
            raise ContractError(
                f"builder 'bev_semantic' needs the map of scene {scene.token} (no map loaded)"
            )
        ego = scene.current_frame.ego_status.ego_pose  # global rear-axle pose
        local = self.cell_centres()
        glob = relative_to_absolute(
            ego, np.concatenate([local, np.zeros(local.shape[:2] + (1,))], -1).reshape(-1, 3)
        )
        glob = glob[:, :2].reshape(self.height, self.width, 2)
        out = np.zeros((self.height, self.width), np.int64)
        road = np.zeros((self.height, self.width), bool)
        for layer in (L.LANE, L.LANE_CONNECTOR, L.INTERSECTION):
            road |= map_api.points_in_layer(glob, layer)
        out[road] = 1
        out[map_api.points_in_layer(glob, L.WALKWAYS)] = 2
        # centrelines: baseline paths of nearby lanes/connectors, densely sampled then splatted
        radius = (
            np.hypot(
                max(abs(self.x_min), abs(self.x_min + self.height * self.pixel_size)),
                self.width * self.pixel_size / 2,
            )
            + 5.0
        )
        near = map_api.get_proximal_map_objects(ego[:2], radius, [L.LANE, L.LANE_CONNECTOR])
        step = self.pixel_size / 2
        half = max(0, int(round(self.centreline_width / self.pixel_size / 2)))
        for objs in near.values():
            for obj in objs:
                coords = np.asarray(obj.baseline_path.linestring.coords)[:, :2]
                seg = np.diff(coords, axis=0)
                n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(int))
                pts = np.concatenate(
                    [coords[i] + seg[i] * (np.arange(n[i])[:, None] / n[i]) for i in range(len(seg))]
                    + [coords[-1:]]
                )
                rel = _to_local(ego, pts)
                r, c = self._cells_of_points(rel)
                for dr in range(-half, half + 1):
                    for dc in range(-half, half + 1):
                        rr, cc = np.clip(r + dr, 0, self.height - 1), np.clip(c + dc, 0, self.width - 1)
                        out[rr, cc] = 3
        ann = scene.current_frame.annotations
        if len(ann):
            b = np.asarray(ann.boxes, dtype=np.float64)
            corners = box_corners(b[:, 0], b[:, 1], b[:, 6], b[:, 3], b[:, 4])  # (N, 4, 2) ego frame
            names = np.asarray(ann.names)
            for cls, sel in (
                (4, ~np.isin(names, list(AGENT_TYPES))),
                (5, names == "vehicle"),
                (6, names == "pedestrian"),
            ):
                if sel.any():
                    inside = points_in_boxes(
                        local[:, :, None, :], corners[sel][None, None], strict=False
                    ).any(-1)
                    out[inside] = cls
        return {"bev_semantic_map": torch.from_numpy(out)}


def _to_local(ego: np.ndarray, pts: np.ndarray) -> np.ndarray:
    c, s = np.cos(ego[2]), np.sin(ego[2])
    d = pts - ego[:2]
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)
