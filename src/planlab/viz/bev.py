"""Bird's-eye view of a scene in the current ego frame: map layers, agents, ego, trajectories, traffic lights.

Plot axes: the ego's forward axis (x) points **up** and its left (y) points **left**, so a plot point is
(−y, x). Map geometry comes from the scene's ``MapAPI`` (global coordinates, moved into the ego frame), agents
from the current frame's annotations (already in the ego frame, contract §2.6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from planlab.geometry.boxes import box_corners
from planlab.scene.dataclasses import Scene, Trajectory

# Pacifica (fact sheet §1.5): rear axle → centre 1.461 m, half length 2.588 m, half width 1.1485 m.
EGO_REAR_TO_CENTER, EGO_HALF_LENGTH, EGO_HALF_WIDTH = 1.461, 2.588, 1.1485

AGENT_COLORS: dict[str, str] = {
    "vehicle": "#1f77b4",
    "pedestrian": "#d62728",
    "bicycle": "#9467bd",
    "traffic_cone": "#ff7f0e",
    "barrier": "#8c564b",
    "czone_sign": "#e377c2",
    "generic_object": "#7f7f7f",
}
EGO_COLOR = "#2ca02c"
MAP_STYLE: dict[str, dict[str, Any]] = {
    "ROADBLOCK": {"facecolor": "#d9d9d9", "edgecolor": "#bdbdbd", "zorder": 1},
    "ROADBLOCK_CONNECTOR": {"facecolor": "#d9d9d9", "edgecolor": "none", "zorder": 1},
    "INTERSECTION": {"facecolor": "#cfcfcf", "edgecolor": "#b0b0b0", "zorder": 1.1},
    "CARPARK_AREA": {"facecolor": "#e8d9b5", "edgecolor": "#c9b88f", "zorder": 1.2},
    "WALKWAYS": {"facecolor": "#f2e6d0", "edgecolor": "none", "zorder": 1.3},
    "CROSSWALK": {"facecolor": "#ffffff", "edgecolor": "#9e9e9e", "hatch": "////", "zorder": 1.4},
    "LANE": {"facecolor": "none", "edgecolor": "#a8a8a8", "zorder": 1.5},
}


def to_plot(xy: np.ndarray) -> np.ndarray:
    """Ego-frame points ``(..., 2)`` to plot coordinates ``(−y, x)`` (forward up, left left)."""
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([-xy[..., 1], xy[..., 0]], axis=-1)


def _global_to_ego(points: np.ndarray, ego: np.ndarray) -> np.ndarray:
    d = np.asarray(points, dtype=np.float64)[:, :2] - ego[:2]
    c, s = np.cos(ego[2]), np.sin(ego[2])
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=-1)


def _polygon_rings(geom) -> list[np.ndarray]:
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [np.asarray(geom.exterior.coords)]
    return [r for g in getattr(geom, "geoms", []) for r in _polygon_rings(g)]


def plot_map(
    ax: Axes, map_api: Any, ego: np.ndarray, radius: float, route_ids: set[str] | None = None
) -> None:
    """Map layers within ``radius`` of the global ego pose ``ego = (x, y, heading)``, plus lane centrelines."""
    from planlab.maps.layers import SemanticMapLayer as L

    layers = [getattr(L, name) for name in MAP_STYLE] + [L.LANE_CONNECTOR]
    objects = map_api.get_proximal_map_objects(ego[:2], radius * 1.45, layers)
    for name, style in MAP_STYLE.items():
        polys = []
        route = []
        for obj in objects.get(getattr(L, name), []):
            for ring in _polygon_rings(obj.polygon):
                polys.append(to_plot(_global_to_ego(ring, ego)))
                if route_ids and obj.id in route_ids:
                    route.append(polys[-1])
        if polys:
            style = dict(style)
            hatch = style.pop("hatch", None)
            coll = PolyCollection(polys, linewidths=0.5, **style)
            if hatch:
                coll.set_hatch(hatch)
            ax.add_collection(coll)
        if route:
            ax.add_collection(
                PolyCollection(route, facecolor="#c6dbef", edgecolor="none", alpha=0.6, zorder=1.45)
            )
    lines = []
    for layer in (L.LANE, L.LANE_CONNECTOR):
        for obj in objects.get(layer, []):
            coords = np.asarray(obj.baseline_path.linestring.coords)
            lines.append(to_plot(_global_to_ego(coords, ego)))
    if lines:
        ax.add_collection(
            LineCollection(lines, colors="#8c8c8c", linewidths=0.6, linestyles=(0, (4, 4)), zorder=1.6)
        )


def plot_traffic_lights(
    ax: Axes, map_api: Any, ego: np.ndarray, lights: list[tuple[int, bool]], radius: float
) -> None:
    """Each logged (lane-connector id, is_red) as its connector's centreline in red or green (contract §2.5)."""
    from planlab.maps.layers import SemanticMapLayer as L

    red, green = [], []
    for connector_id, is_red in lights:
        obj = map_api.get_map_object(str(int(connector_id)), L.LANE_CONNECTOR)
        if obj is None:
            continue
        pts = _global_to_ego(np.asarray(obj.baseline_path.linestring.coords), ego)
        if np.min(np.abs(pts).max(axis=1)) > radius * 1.45:
            continue
        (red if is_red else green).append(to_plot(pts))
    if red:
        ax.add_collection(LineCollection(red, colors="#e41a1c", linewidths=2.2, zorder=2.5))
    if green:
        ax.add_collection(LineCollection(green, colors="#4daf4a", linewidths=2.2, zorder=2.5))


def plot_agents(ax: Axes, boxes: np.ndarray, names: list[str]) -> None:
    """Annotated boxes ``(N, 7)`` (ego frame) as oriented rectangles with a heading tick, coloured by class."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    if not len(boxes):
        return
    corners = box_corners(boxes[:, 0], boxes[:, 1], boxes[:, 6], boxes[:, 3], boxes[:, 4])  # FL, RL, RR, FR
    colors = [AGENT_COLORS.get(n, AGENT_COLORS["generic_object"]) for n in names]
    ax.add_collection(
        PolyCollection(
            [to_plot(c) for c in corners],
            facecolors=colors,
            edgecolors="black",
            linewidths=0.6,
            alpha=0.85,
            zorder=3,
        )
    )
    front = 0.5 * (corners[:, 0] + corners[:, 3])
    ticks = [to_plot(np.stack([b[:2], f])) for b, f in zip(boxes, front, strict=True)]
    ax.add_collection(LineCollection(ticks, colors="black", linewidths=0.8, zorder=3.1))


def plot_ego(ax: Axes) -> None:
    """The ego Pacifica at the origin (rear axle), heading up."""
    corners = box_corners(EGO_REAR_TO_CENTER, 0.0, 0.0, 2 * EGO_HALF_LENGTH, 2 * EGO_HALF_WIDTH)
    ax.add_collection(
        PolyCollection([to_plot(corners)], facecolors=EGO_COLOR, edgecolors="black", linewidths=0.8, zorder=4)
    )
    ax.plot(
        *to_plot(np.array([[EGO_REAR_TO_CENTER, 0.0], [EGO_REAR_TO_CENTER + EGO_HALF_LENGTH, 0.0]])).T,
        color="black",
        lw=0.9,
        zorder=4.1,
    )


def _poses(traj: Trajectory | np.ndarray | None) -> np.ndarray | None:
    if traj is None:
        return None
    poses = traj.poses if isinstance(traj, Trajectory) else np.asarray(traj, dtype=np.float64)
    return poses.reshape(-1, poses.shape[-1])


def plot_trajectory(
    ax: Axes,
    traj: Trajectory | np.ndarray | None,
    color: str,
    label: str,
    start_at_ego: bool = True,
    marker: str = "o",
    zorder: float = 5.0,
) -> None:
    """An ego-frame trajectory ``(N, 2|3)`` as a polyline with markers (from the ego origin if asked)."""
    poses = _poses(traj)
    if poses is None or not len(poses):
        return
    xy = poses[:, :2]
    if start_at_ego:
        xy = np.vstack([[0.0, 0.0], xy])
    p = to_plot(xy)
    ax.plot(p[:, 0], p[:, 1], color=color, lw=1.8, marker=marker, ms=3.0, label=label, zorder=zorder)


def plot_bev(
    ax: Axes,
    scene: Scene,
    radius: float = 40.0,
    planned: Trajectory | np.ndarray | None = None,
    show_map: bool = True,
    title: str | None = None,
) -> Axes:
    """Draw the current frame of ``scene``: map (if attached), route, lights, agents, ego, history, future, plan."""
    frame = scene.current_frame
    ego = frame.ego_status.ego_pose
    if show_map and scene.map_api is not None:
        plot_map(ax, scene.map_api, ego, radius, set(frame.roadblock_ids))
        plot_traffic_lights(ax, scene.map_api, ego, frame.traffic_lights, radius)
    plot_agents(ax, frame.annotations.boxes, frame.annotations.names)
    plot_ego(ax)
    if scene.current_index > 0:
        hist = scene.get_history_trajectory().poses[:-1]
        plot_trajectory(ax, hist, "#636363", "history", start_at_ego=False, marker=".", zorder=4.5)
    n_future = len(scene.frames) - 1 - scene.current_index
    if n_future > 0:
        plot_trajectory(
            ax, scene.get_future_trajectory(n_future), EGO_COLOR, f"logged future ({n_future * 0.5:g} s)"
        )
    if planned is not None:
        plot_trajectory(ax, planned, "#e6550d", "planned", zorder=5.5)
    ax.set_xlim(-radius, radius)
    ax.set_ylim(-radius, radius)
    ax.set_aspect("equal")
    ax.set_xlabel("← left   lateral [m]   right →", fontsize=8)
    ax.set_ylabel("longitudinal [m] (forward ↑)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_facecolor("#f7f7f7")
    handles = [
        Patch(facecolor=c, edgecolor="black", label=n)
        for n, c in AGENT_COLORS.items()
        if n in set(frame.annotations.names)
    ]
    if frame.traffic_lights and scene.map_api is not None:
        handles += [
            Line2D([], [], color="#e41a1c", lw=2, label="red light"),
            Line2D([], [], color="#4daf4a", lw=2, label="green light"),
        ]
    traj_handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=traj_handles + handles, loc="upper right", fontsize=6.5, framealpha=0.85)
    ax.set_title(
        title if title is not None else f"{scene.token}  ({scene.scene_metadata.log_name})", fontsize=9
    )
    return ax
