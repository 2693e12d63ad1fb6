"""Camera renderer: objects land where their geometry says (checked against an independent per-pixel ray cast),
near-plane clipping, occlusion order, ground paint, traffic-light states, lighting and seeded noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from scipy.ndimage import binary_dilation, binary_erosion

from planlab.scene.enums import CAMERA_NAMES
from planlab.world.sensors import (
    CameraRenderer,
    GroundPolygon,
    Lighting,
    PinholeCamera,
    RenderConfig,
    SceneObjects,
    StaticGeometry,
    TrafficLightHeads,
    default_rig,
)
from planlab.world.sensors.rig import CameraRig

W, H = 240, 135
ORIGIN = np.array([589300.0, 4473600.0])  # UTM-sized global coordinates
EGO = np.array([ORIGIN[0], ORIGIN[1], 0.0])  # ego at the origin, heading +x: ego frame = global − ORIGIN


def _renderer(static: StaticGeometry | None = None, **cfg) -> CameraRenderer:
    cfg.setdefault("noise_std", 0.0)
    cfg.setdefault("shadows", False)
    static = static or StaticGeometry([], [], origin=ORIGIN)
    return CameraRenderer(default_rig(W, H), static, Lighting(hour=12.0), RenderConfig(**cfg), seed=0)


def _objects(
    boxes_ego: list[list[float]], names: list[str], colors: list[tuple[int, int, int]]
) -> SceneObjects:
    b = np.array(boxes_ego, dtype=np.float64)
    b[:, 0] += ORIGIN[0]
    b[:, 1] += ORIGIN[1]
    return SceneObjects(b, names, np.array(colors, dtype=np.uint8))


def _raycast_depth(cam: PinholeCamera, box: np.ndarray) -> np.ndarray:
    """Reference: depth along each pixel-centre ray to an (ego-frame) box (x, y, z, l, w, h, yaw); inf = miss."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    origin, d = cam.pixel_rays(np.stack([u, v], axis=-1))
    x, y, z, length, width, height, yaw = box
    c, s = math.cos(yaw), math.sin(yaw)
    o = origin - np.array([x, y, z])
    ol = np.array([c * o[0] + s * o[1], -s * o[0] + c * o[1], o[2]])
    dl = np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1], d[..., 2]], axis=-1)
    half = np.array([length, width, height]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - ol) / dl
        t2 = (half - ol) / dl
    t_in = np.nanmax(np.fmin(t1, t2), axis=-1)
    t_out = np.nanmin(np.fmax(t1, t2), axis=-1)
    hit = (t_out >= t_in) & (t_out > 0)
    return np.where(hit, np.maximum(t_in, 0.0), np.inf)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 2


def _assert_mask_matches(got: np.ndarray, ref: np.ndarray, what: str, tol_px: int = 1) -> None:
    """Equal up to a ``tol_px`` band at the edges: ref eroded ⊆ got ⊆ ref dilated."""
    inner = binary_erosion(ref, iterations=tol_px)
    outer = binary_dilation(ref, iterations=tol_px + 1)
    missing = inner & ~got
    extra = got & ~outer
    assert ref.sum() > 20, f"{what}: the reference mask is (nearly) empty"
    assert missing.sum() == 0, f"{what}: {missing.sum()} pixels of the object not drawn"
    assert extra.sum() == 0, f"{what}: {extra.sum()} pixels drawn outside the object"


@pytest.mark.parametrize("name", CAMERA_NAMES)
def test_a_box_in_front_of_each_camera_lands_where_its_geometry_says(name):
    r = _renderer()
    cam = r.rig[name]
    fwd = cam.sensor2lidar_rotation[:, 2]
    yaw = cam.yaw + 0.5  # oblique, so two or three faces are visible
    centre = cam.position[:2] + 9.0 * fwd[:2]
    box = [centre[0], centre[1], 1.0, 4.0, 2.0, 2.0, yaw]
    objs = _objects([box], ["generic_object"], [(230, 30, 200)])
    empty = r.render(EGO, cameras=(name,))[name]
    img = r.render(EGO, objs, cameras=(name,))[name]
    ref = np.isfinite(_raycast_depth(cam, np.array(box)))
    _assert_mask_matches(_changed(img, empty), ref, name)
    # The box is magenta-ish (shaded): red and blue well above green where it is drawn.
    inner = binary_erosion(ref, iterations=2)
    px = img[inner].astype(int)
    assert (px[:, 0] > px[:, 1] + 40).all() and (px[:, 2] > px[:, 1] + 40).all()


def test_near_plane_clipping_of_a_long_box_beside_the_ego():
    """A 20 m trailer 1.5 m left of the ego's side: corners on both sides of the side cameras' near plane."""
    r = _renderer()
    box = [0.0, 3.0, 1.5, 20.0, 2.5, 3.0, 0.0]
    objs = _objects([box], ["generic_object"], [(40, 200, 220)])
    empty = r.render(EGO, cameras=("CAM_L1", "CAM_L0", "CAM_L2"))
    imgs = r.render(EGO, objs, cameras=("CAM_L1", "CAM_L0", "CAM_L2"))
    for name, img in imgs.items():
        ref = np.isfinite(_raycast_depth(r.rig[name], np.array(box)))
        _assert_mask_matches(_changed(img, empty[name]), ref, name)
    # L1 looks straight at it from 2.4 m: most of its image is trailer.
    assert _changed(imgs["CAM_L1"], empty["CAM_L1"]).mean() > 0.4


def test_a_near_box_hides_a_far_one_whatever_the_input_order():
    r = _renderer()
    near = [10.0, 0.0, 0.8, 2.0, 2.0, 1.6, 0.2]
    far = [20.0, 0.5, 1.5, 3.0, 5.0, 3.0, -0.3]
    red, blue = (220, 20, 20), (20, 20, 220)
    a = r.render(EGO, _objects([near, far], ["generic_object"] * 2, [red, blue]), cameras=("CAM_F0",))[
        "CAM_F0"
    ]
    b = r.render(EGO, _objects([far, near], ["generic_object"] * 2, [blue, red]), cameras=("CAM_F0",))[
        "CAM_F0"
    ]
    np.testing.assert_array_equal(a, b)
    cam = r.rig["CAM_F0"]
    d_near, d_far = _raycast_depth(cam, np.array(near)), _raycast_depth(cam, np.array(far))
    near_wins = binary_erosion(np.isfinite(d_near), iterations=2)
    far_visible = binary_erosion(np.isfinite(d_far) & ~np.isfinite(d_near), iterations=2)
    overlap = np.isfinite(d_near) & np.isfinite(d_far)
    assert overlap.sum() > 100, "the test needs the far box behind the near one"
    px = a.astype(int)
    assert (px[near_wins][:, 0] > px[near_wins][:, 2] + 60).all()  # red where the near box is
    assert (px[far_visible][:, 2] > px[far_visible][:, 0] + 60).all()  # blue only where the far one shows


def test_vehicles_stay_inside_their_box_and_cast_a_contact_shadow():
    r = _renderer(shadows=True)
    box = [12.0, -1.0, 0.8, 4.6, 1.9, 1.6, 0.3]
    objs = _objects([box], ["vehicle"], [(200, 40, 40)])
    cam = r.rig["CAM_F0"]
    empty = r.render(EGO, cameras=("CAM_F0",))["CAM_F0"]
    img = r.render(EGO, objs, cameras=("CAM_F0",))["CAM_F0"]
    ref = np.isfinite(_raycast_depth(cam, np.array(box)))
    changed = _changed(img, empty)
    body = changed & ref
    assert body.sum() > 0.7 * ref.sum()  # body + glass cabin fill most of the bounding box's silhouette
    # Outside the box only the (darker) contact shadow on the ground, below the box.
    outside = changed & ~binary_dilation(ref, iterations=2)
    assert outside.sum() > 0
    assert (img[outside].astype(int).sum(-1) < empty[outside].astype(int).sum(-1)).all()


def test_ground_paint_follows_the_road_polygon():
    road = GroundPolygon.from_shapely("road", shapely.box(-100, -1.5, 100, 1.5))
    static = StaticGeometry([GroundPolygon(p.cls, p.exterior + ORIGIN) for p in road], [], origin=ORIGIN)
    r = _renderer(static)
    cam = r.rig["CAM_F0"]
    img = r.render(EGO, cameras=("CAM_F0",))["CAM_F0"].astype(int)
    row = H - 3
    u = np.arange(W) + 0.5
    origin, d = cam.pixel_rays(np.stack([u, np.full(W, row + 0.5)], axis=-1))
    t = -origin[2] / d[:, 2]
    y = origin[1] + t * d[:, 1]
    on_road, off_road = np.abs(y) < 1.3, np.abs(y) > 1.7
    assert on_road.sum() > 10 and off_road.sum() > 10
    px = img[row]
    grey = np.abs(px[:, 1] - px[:, 0]) < 12
    green = px[:, 1] > px[:, 0] + 8
    assert grey[on_road].all() and green[off_road].all()
    # The sky is above the horizon (camera height 1.8 m, no pitch): bluish top row.
    assert (img[0, :, 2] > img[0, :, 0]).all()


@pytest.mark.parametrize(("state", "lit"), [("red", 0), ("green", 1), ("yellow", None), ("off", None)])
def test_traffic_light_heads_show_their_state(state, lit):
    r = _renderer()
    pos = np.array([[ORIGIN[0] + 15.0, ORIGIN[1] - 2.0, 4.5]])
    facing = TrafficLightHeads(pos, np.array([math.pi]), [state])  # lamps face the ego
    img = r.render(EGO, lights=facing, cameras=("CAM_F0",))["CAM_F0"].astype(int)
    red = (img[..., 0] > 200) & (img[..., 1] < 90)
    green = (img[..., 1] > 200) & (img[..., 0] < 90)
    yellow = (img[..., 0] > 200) & (img[..., 1] > 150) & (img[..., 2] < 80)
    assert red.any() == (lit == 0) and green.any() == (lit == 1)
    assert yellow.any() == (state == "yellow")
    # Seen from behind, no lamp is visible.
    away = TrafficLightHeads(pos, np.array([0.0]), [state])
    img = r.render(EGO, lights=away, cameras=("CAM_F0",))["CAM_F0"].astype(int)
    assert not ((img[..., 0] > 200) & (img[..., 1] < 90)).any()
    assert not ((img[..., 1] > 200) & (img[..., 0] < 90)).any()


def test_noise_is_seeded_and_lighting_changes_brightness():
    a = _renderer(noise_std=3.0)
    b = _renderer(noise_std=3.0)
    objs = _objects([[8.0, 0.0, 0.8, 4.5, 1.9, 1.6, 0.0]], ["vehicle"], [(100, 100, 100)])
    x = a.render(EGO, objs, seed=7)
    y = b.render(EGO, objs, seed=7)
    z = a.render(EGO, objs, seed=8)
    for name in CAMERA_NAMES:
        assert x[name].shape == (H, W, 3) and x[name].dtype == np.uint8
        np.testing.assert_array_equal(x[name], y[name])
    assert any(not np.array_equal(x[n], z[n]) for n in CAMERA_NAMES)
    clean = _renderer()
    np.testing.assert_array_equal(
        clean.render(EGO, objs, seed=1)["CAM_F0"], clean.render(EGO, objs, seed=2)["CAM_F0"]
    )
    noon = CameraRenderer(default_rig(W, H), StaticGeometry([], [], origin=ORIGIN), Lighting.preset("noon"))
    night = CameraRenderer(default_rig(W, H), StaticGeometry([], [], origin=ORIGIN), Lighting.preset("night"))
    assert night.render(EGO, seed=0)["CAM_F0"].mean() < 0.5 * noon.render(EGO, seed=0)["CAM_F0"].mean()


def test_renderer_rejects_rolled_cameras():
    cam = default_rig(W, H)["CAM_F0"]
    roll = np.array(
        [[math.cos(0.2), -math.sin(0.2), 0], [math.sin(0.2), math.cos(0.2), 0], [0, 0, 1]]
    )  # about the optical axis
    rolled = PinholeCamera("CAM_F0", W, H, cam.intrinsics, cam.sensor2lidar_rotation @ roll, cam.position)
    with pytest.raises(ValueError, match="roll"):
        CameraRenderer(CameraRig((rolled,)), StaticGeometry([], []))


def test_buildings_occlude_and_are_occluded_in_the_right_order():
    """A long building beside the road: a car parked in front of its far end stays visible (centre distances
    would put the building in front), a car behind it is hidden; checked against a per-pixel z-buffer."""
    building = shapely.box(-10, 8, 50, 18)
    static = StaticGeometry(
        [], [], origin=ORIGIN, buildings=[(shapely.affinity.translate(building, *ORIGIN), 12.0)]
    )
    r = _renderer(static)
    front = [40.0, 6.0, 0.8, 4.5, 1.9, 1.6, 0.0]
    hidden = [25.0, 22.0, 0.8, 4.5, 1.9, 1.6, 0.0]
    objs = _objects([front, hidden], ["generic_object"] * 2, [(230, 20, 20), (20, 20, 230)])
    imgs = r.render(EGO, objs)
    bbox = np.array([20.0, 13.0, 6.0, 60.0, 10.0, 12.0, 0.0])
    for name in ("CAM_F0", "CAM_L0", "CAM_L1"):
        cam, img = r.rig[name], imgs[name].astype(int)
        depth = np.stack([_raycast_depth(cam, np.array(b)) for b in (front, hidden, bbox)])
        nearest = np.where(np.isfinite(depth).any(0), np.argmin(depth, axis=0), -1)
        red = (img[..., 0] > img[..., 1] + 60) & (img[..., 0] > img[..., 2] + 60)
        blue = (img[..., 2] > img[..., 0] + 60) & (img[..., 2] > img[..., 1] + 60)
        assert not blue.any(), f"{name}: the car behind the building shows through"
        car = binary_erosion(nearest == 0, iterations=1)
        wall = binary_erosion(nearest == 2, iterations=1)
        assert red[car].all(), name
        assert not red[wall].any(), name
        if name == "CAM_F0":
            assert car.sum() > 20 and wall.sum() > 200


def test_building_footprints_become_boxes():
    rect = shapely.affinity.rotate(shapely.box(0, 0, 20, 10), 30, origin=(0, 0))
    ell = shapely.Polygon([(0, 0), (20, 0), (20, 5), (5, 5), (5, 20), (0, 20)])
    boxes, colors = StaticGeometry(
        buildings=[(rect, 9.0), (np.asarray(ell.exterior.coords), 6.0)]
    ).building_boxes()
    assert len(boxes) == 1 + 6 and colors.shape == (7, 3)
    x, y, z, length, width, height, yaw = boxes[0]
    assert {round(length, 6), round(width, 6)} == {20.0, 10.0} and height == 9.0 and z == 4.5
    np.testing.assert_allclose([x, y], np.asarray(rect.centroid.coords)[0])
    walls = boxes[1:]
    np.testing.assert_allclose(sorted(walls[:, 3]), sorted([20, 5, 15, 15, 5, 20]))
    assert (walls[:, 4] == 0.3).all()
    # Wall boxes lie inside the footprint.
    from planlab.geometry.boxes import box_corners

    for w in walls:
        corners = box_corners(w[0], w[1], w[6], w[3], w[4])
        assert ell.buffer(1e-6).contains(shapely.Polygon(corners))
