"""BEV and camera-grid figures: geometry in the right place, map/agents/lights drawn, PNG size, atomic saving."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from planlab.data import SceneLoader
from planlab.scene import Annotations, Camera, SceneFilter, SensorConfig
from planlab.viz.bev import AGENT_COLORS, plot_agents, plot_bev, to_plot
from planlab.viz.cameras import GRID_LAYOUT, plot_camera_grid, project_boxes
from planlab.viz.figures import new_figure, save_figure
from planlab.viz.scene import save_scene_figure, scene_figure
from planlab.world.sensors import default_rig

TOKEN = "529c1618f3bb4f16"  # calib_03: right turn on green, a car and a pedestrian in view


@pytest.fixture(scope="module")
def scene(calib_root):
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1))
    cams = SensorConfig(**{f"cam_{n}": [3] for n in ("f0", "l0", "l1", "l2", "r0", "r1", "r2", "b0")})
    return loader.get_scene_from_token(TOKEN, cams)


def _hex_rgb(h: str) -> np.ndarray:
    return np.array([int(h[i : i + 2], 16) for i in (1, 3, 5)])


def _has_color(img: np.ndarray, hex_color: str, tol: int = 12, min_pixels: int = 20) -> bool:
    return int((np.abs(img[..., :3].astype(int) - _hex_rgb(hex_color)).max(-1) <= tol).sum()) >= min_pixels


def test_plot_coordinates_put_forward_up_and_left_left():
    np.testing.assert_allclose(to_plot(np.array([[10.0, 0.0], [0.0, 3.0]])), [[0.0, 10.0], [-3.0, 0.0]])


def test_agent_boxes_are_drawn_where_their_annotation_says():
    fig = new_figure(4, 4)
    ax = fig.add_subplot(1, 1, 1)
    boxes = np.array([[10.0, 2.0, 0.8, 4.0, 2.0, 1.6, 0.0], [-5.0, -3.0, 0.9, 0.6, 0.6, 1.8, np.pi / 2]])
    plot_agents(ax, boxes, ["vehicle", "pedestrian"])
    polys = ax.collections[0].get_paths()
    first = polys[0].vertices[:4]
    # Vehicle 10 m ahead and 2 m left, 4 m long, 2 m wide, heading forward: plot x ∈ [−3, −1], y ∈ [8, 12].
    np.testing.assert_allclose(np.sort(np.unique(first[:, 0].round(6))), [-3.0, -1.0])
    np.testing.assert_allclose(np.sort(np.unique(first[:, 1].round(6))), [8.0, 12.0])
    face = ax.collections[0].get_facecolors()
    np.testing.assert_allclose(face[0][:3], _hex_rgb(AGENT_COLORS["vehicle"]) / 255, atol=1e-6)
    np.testing.assert_allclose(face[1][:3], _hex_rgb(AGENT_COLORS["pedestrian"]) / 255, atol=1e-6)


def test_bev_png_has_the_right_size_and_shows_map_agents_lights_and_plan(scene, tmp_path):
    fig = new_figure(7.0, 7.0, dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    planned = np.array([[2.0 * k, -0.3 * k, 0.0] for k in range(1, 9)])
    plot_bev(ax, scene, radius=40.0, planned=planned)
    path = save_figure(fig, tmp_path / "bev.png")
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (700, 700, 3)
    assert _has_color(img, "#d9d9d9", tol=3, min_pixels=2000)  # roadblocks
    assert _has_color(img, AGENT_COLORS["vehicle"], tol=25)  # the annotated car (alpha-blended)
    assert _has_color(img, "#2ca02c", tol=3)  # ego
    assert _has_color(img, "#e41a1c", tol=20) and _has_color(
        img, "#4daf4a", tol=20
    )  # red and green connectors
    labels = [line.get_label() for line in ax.get_lines()]
    assert "planned" in labels and "logged future (5 s)" in labels and "history" in labels
    plan = ax.get_lines()[labels.index("planned")].get_xydata()
    np.testing.assert_allclose(plan, to_plot(np.vstack([[0.0, 0.0], planned[:, :2]])))


def test_bev_without_a_map_still_draws(scene, tmp_path):
    from dataclasses import replace

    bare = replace(scene, map_api=None)
    fig = scene_figure(bare, cameras=False)
    img = np.asarray(Image.open(save_figure(fig, tmp_path / "bare.png")).convert("RGB"))
    assert not _has_color(img, "#d9d9d9", tol=3, min_pixels=1000)  # only anti-aliasing greys
    assert _has_color(img, "#2ca02c", tol=3)


def test_scene_figure_with_camera_grid(scene, tmp_path):
    path = save_scene_figure(scene, tmp_path / "scene.png", dpi=80)
    assert Image.open(path).size == (16 * 80, 6 * 80)
    fig = scene_figure(scene)
    titles = {ax.get_title() for ax in fig.axes}
    assert {n for row in GRID_LAYOUT for n in row if n} <= titles
    assert sum(bool(ax.images) for ax in fig.axes) == 8


def test_camera_grid_marks_missing_images_and_projects_boxes():
    rig = default_rig(480, 270)
    f0 = rig["CAM_F0"]
    cam = Camera(
        np.zeros((270, 480, 3), np.uint8),
        f0.sensor2lidar_rotation,
        f0.sensor2lidar_translation,
        f0.intrinsics,
    )
    box = np.array([[15.0, 0.0, 0.8, 4.0, 2.0, 1.6, 0.0]])
    segments = project_boxes(cam, box)
    assert len(segments) == 1 and segments[0].shape == (12, 2, 2)
    # The edges join the projected corners.
    from planlab.viz.cameras import box_corners_3d

    uv, _ = f0.project(box_corners_3d(box)[0])
    np.testing.assert_allclose(
        np.unique(segments[0].reshape(-1, 2).round(6), axis=0), np.unique(uv.round(6), axis=0)
    )
    assert project_boxes(cam, np.array([[-15.0, 0.0, 0.8, 4.0, 2.0, 1.6, 0.0]])) == []  # behind
    fig = new_figure(10, 6)
    ann = Annotations(box, ["vehicle"], np.zeros((1, 3)), ["a"], ["b"])
    axes = plot_camera_grid(fig, {"CAM_F0": cam}, ann, info="hello")
    assert axes["CAM_F0"].images and len(axes["CAM_F0"].collections) == 1
    assert not axes["CAM_B0"].images  # not loaded: an empty panel


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "keep.png"
    path.write_bytes(b"old")
    fig = new_figure(2, 2)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    fig.savefig = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        save_figure(fig, path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
