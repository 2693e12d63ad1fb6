"""The eight cameras in their natural arrangement, optionally with the annotated 3-D boxes projected into them.

Layout (as seen from the driver's seat)::

    CAM_L0  CAM_F0  CAM_R0
    CAM_L1  (info)  CAM_R1
    CAM_L2  CAM_B0  CAM_R2
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure, SubFigure

from planlab.scene.dataclasses import Annotations, Camera, Cameras
from planlab.viz.bev import AGENT_COLORS

GRID_LAYOUT: tuple[tuple[str | None, ...], ...] = (
    ("CAM_L0", "CAM_F0", "CAM_R0"),
    ("CAM_L1", None, "CAM_R1"),
    ("CAM_L2", "CAM_B0", "CAM_R2"),
)
# Edges of a box by corner index (corner i: bit 0 → +x, bit 1 → +y, bit 2 → +z).
_EDGES = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]


def box_corners_3d(boxes: np.ndarray) -> np.ndarray:
    """Corners ``(N, 8, 3)`` of ego-frame boxes ``(N, 7)`` = x, y, z (centre), length, width, height, heading."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    signs = np.array(
        [[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)], float
    )
    local = signs[None] * (0.5 * boxes[:, None, 3:6])
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = c * local[..., 0] - s * local[..., 1] + boxes[:, None, 0]
    y = s * local[..., 0] + c * local[..., 1] + boxes[:, None, 1]
    return np.stack([x, y, local[..., 2] + boxes[:, None, 2]], axis=-1)


def project_boxes(camera: Camera, boxes: np.ndarray, near: float = 0.2) -> list[np.ndarray]:
    """Wire-frame segments ``(12, 2, 2)`` in pixels of each box fully in front of ``camera`` and in its view.

    Uses the camera's own calibration (``sensor2lidar_*``, intrinsics): ego frame = LiDAR frame (contract P13).
    """
    if camera.image is None or camera.intrinsics is None or camera.sensor2lidar_rotation is None:
        return []
    h, w = camera.image.shape[:2]
    rot = np.asarray(camera.sensor2lidar_rotation, dtype=np.float64).reshape(3, 3)
    t = np.asarray(camera.sensor2lidar_translation, dtype=np.float64).reshape(3)
    k = np.asarray(camera.intrinsics, dtype=np.float64).reshape(3, 3)
    out = []
    for corners in box_corners_3d(boxes):
        pc = (corners - t) @ rot
        if (pc[:, 2] <= near).any():
            continue
        uv = (pc @ k.T)[:, :2] / pc[:, 2:3]
        if uv[:, 0].max() < 0 or uv[:, 0].min() > w or uv[:, 1].max() < 0 or uv[:, 1].min() > h:
            continue
        out.append(np.array([[uv[a], uv[b]] for a, b in _EDGES]))
    return out


def _camera_dict(cameras: Cameras | dict[str, Camera | np.ndarray]) -> dict[str, Camera]:
    if isinstance(cameras, Cameras):
        return {name.upper(): cam for name, cam in cameras.items()}
    return {
        k.upper(): (v if isinstance(v, Camera) else Camera(image=np.asarray(v))) for k, v in cameras.items()
    }


def plot_camera_grid(
    fig: Figure | SubFigure,
    cameras: Cameras | dict[str, Camera | np.ndarray],
    annotations: Annotations | None = None,
    info: str | None = None,
) -> dict[str, Axes]:
    """Fill ``fig`` with a 3×3 grid of the cameras (missing images shown as empty panels); returns the axes."""
    cams = _camera_dict(cameras)
    axes = fig.subplots(3, 3, gridspec_kw={"wspace": 0.03, "hspace": 0.12})
    out: dict[str, Axes] = {}
    for r, row in enumerate(GRID_LAYOUT):
        for c, name in enumerate(row):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if name is None:
                ax.axis("off")
                if info:
                    ax.text(
                        0.5,
                        0.5,
                        info,
                        ha="center",
                        va="center",
                        fontsize=7,
                        family="monospace",
                        transform=ax.transAxes,
                    )
                continue
            cam = cams.get(name)
            ax.set_title(name, fontsize=8, pad=2)
            if cam is None or cam.image is None:
                ax.set_facecolor("#eeeeee")
                ax.text(
                    0.5,
                    0.5,
                    "not loaded",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="#777777",
                    transform=ax.transAxes,
                )
                out[name] = ax
                continue
            img = np.asarray(cam.image)
            ax.imshow(img, interpolation="bilinear" if img.shape[1] >= 320 else "nearest")
            if annotations is not None and len(annotations):
                segs, colors = [], []
                for segments, name_ in zip(
                    (project_boxes(cam, annotations.boxes[i : i + 1]) for i in range(len(annotations))),
                    annotations.names,
                    strict=True,
                ):
                    for s in segments:
                        segs.extend(s)
                        colors.extend([AGENT_COLORS.get(name_, "#7f7f7f")] * len(s))
                if segs:
                    ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.9))
                ax.set_xlim(0, img.shape[1])
                ax.set_ylim(img.shape[0], 0)
            out[name] = ax
    return out
