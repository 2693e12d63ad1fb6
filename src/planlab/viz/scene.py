"""One scene as one picture: the BEV on the left, the eight cameras on the right; and the ``data viz`` job."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from planlab.scene.dataclasses import Scene, Trajectory
from planlab.viz.bev import plot_bev
from planlab.viz.cameras import plot_camera_grid
from planlab.viz.figures import new_figure, save_figure


def _info(scene: Scene) -> str:
    frame = scene.current_frame
    st = frame.ego_status
    cmd = (
        ["left", "straight", "right", "unknown"][int(np.argmax(st.driving_command))]
        if st.driving_command.any()
        else "–"
    )
    lines = [
        f"token {scene.token}",
        f"log   {scene.scene_metadata.log_name[:28]}",
        f"map   {scene.scene_metadata.map_name}",
        f"t     {frame.timestamp / 1e6:.1f} s",
        f"speed {float(np.hypot(*st.ego_velocity)):.1f} m/s",
        f"cmd   {cmd}",
        f"objs  {len(frame.annotations)}",
    ]
    return "\n".join(lines)


def scene_figure(
    scene: Scene,
    planned: Trajectory | np.ndarray | None = None,
    radius: float = 40.0,
    cameras: bool = True,
    dpi: int = 100,
) -> Figure:
    """BEV (+ planned trajectory overlay) and, if ``cameras``, the 3×3 camera grid of the current frame."""
    if not cameras:
        fig = new_figure(7.0, 7.0, dpi)
        plot_bev(fig.add_subplot(1, 1, 1), scene, radius, planned)
        return fig
    fig = new_figure(16.0, 6.0, dpi)
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, 1.72], wspace=0.0)
    plot_bev(left.add_subplot(1, 1, 1), scene, radius, planned)
    left.subplots_adjust(left=0.12, right=0.98, top=0.93, bottom=0.09)
    frame = scene.current_frame
    plot_camera_grid(right, frame.cameras, frame.annotations, info=_info(scene))
    right.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.02)
    return fig


def save_scene_figure(
    scene: Scene,
    out: str | os.PathLike,
    planned: Trajectory | np.ndarray | None = None,
    radius: float = 40.0,
    cameras: bool = True,
    dpi: int = 100,
) -> Path:
    """Render :func:`scene_figure` and write it as PNG atomically."""
    fig = scene_figure(scene, planned, radius, cameras, dpi)
    return save_figure(fig, out)


def visualize_token(
    root: str | os.PathLike,
    token: str,
    out: str | os.PathLike,
    split: str | None = None,
    history: int = 4,
    future: int = 10,
    radius: float = 40.0,
    cameras: bool = True,
    trajectories: str | os.PathLike | None = None,
) -> Path:
    """Load scene ``token`` of ``split`` (cameras of its current frame only) and save its figure to ``out``.

    ``trajectories``: a JSON file ``{token: [[x, y, heading], …]}`` (current rear-axle frame, the calibration
    set's family format); the token's poses are drawn as the planned trajectory. A token that is no scene's
    current frame under the ``history``/``future`` window, or missing from that file, is a one-line DataError.
    """
    from planlab.data.loader import SceneLoader
    from planlab.errors import DataError
    from planlab.scene.dataclasses import SceneFilter, SensorConfig

    planned = load_planned(trajectories, token) if trajectories is not None else None

    scene_filter = SceneFilter(
        num_history_frames=history,
        num_future_frames=future,
        frame_interval=1,
        has_route=False,
        tokens=[token],
    )
    loader = SceneLoader(root, split, scene_filter)
    if token not in loader:
        raise DataError(
            f"token {token!r} is not the current frame of any {history}+{future}-frame scene in split "
            f"{loader.split} ({loader.layout.log_dir}); check the token, --split, or --history/--future"
        )
    current = [history - 1] if cameras else False
    sensors = SensorConfig(
        cam_f0=current,
        cam_l0=current,
        cam_l1=current,
        cam_l2=current,
        cam_r0=current,
        cam_r1=current,
        cam_r2=current,
        cam_b0=current,
    )
    blob_dir = loader.layout.blob_dir
    if cameras and (blob_dir is None or not blob_dir.is_dir()):
        raise DataError(
            f"{blob_dir}: sensor-blob directory not found for split {loader.split}; use --no-cameras"
        )
    scene = loader.get_scene_from_token(token, sensors)
    return save_scene_figure(scene, out, planned=planned, radius=radius, cameras=cameras)


def load_planned(path: str | os.PathLike, token: str) -> np.ndarray:
    """The ``(N, 3)`` poses of ``token`` in a trajectory JSON ``{token: [[x, y, heading], …]}``."""
    import json

    from planlab.errors import DataError

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: trajectory file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON trajectory file ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object {{token: poses}}")
    if token not in data:
        raise DataError(f"{path}: no trajectory for token {token!r}")
    try:
        poses = np.asarray(data[token], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: token {token!r}: poses are not numbers") from None
    if poses.ndim != 2 or poses.shape[1] not in (2, 3) or not len(poses) or not np.isfinite(poses).all():
        raise DataError(f"{path}: token {token!r}: expected finite poses of shape (N, 3), got {poses.shape}")
    return poses
