"""BEV warping proofs: an object seen in a past frame lands in the predicted current-frame cell for pure
translation, pure rotation and both; identity motion changes nothing; warping agrees with rasterising the
object again at its current-frame position; the raster convention matches the LiDAR and semantic builders."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from planlab.features.lidar import LidarBEVFeatureBuilder
from planlab.geometry import se2
from planlab.geometry.boxes import box_corners, points_in_boxes
from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.warp import pose_matrix, relative_pose, warp_bev, warp_sequence, warp_theta

GRID = BEVGrid.square(32.0, 64)  # 1 m cells, ego at the centre


def one_hot_at(grid: BEVGrid, row: int, col: int) -> torch.Tensor:
    img = torch.zeros(1, 1, grid.height, grid.width, dtype=torch.float64)
    img[0, 0, row, col] = 1.0
    return img


def centroid(grid: BEVGrid, img: torch.Tensor) -> np.ndarray:
    """Metric (x, y) of the mass centre of a (1, 1, H, W) raster."""
    w = img[0, 0].numpy()
    return (grid.cell_centres() * w[..., None]).sum((0, 1)) / w.sum()


def current_position(past_pose_in_current: tuple[float, float, float], p: np.ndarray) -> np.ndarray:
    """Where a static point p of the past frame is in the current frame."""
    return se2.transform_points(np.asarray(past_pose_in_current), p)


@pytest.mark.parametrize(
    "pose",
    [
        (5.0, -3.0, 0.0),  # pure translation (integer cells)
        (-7.3, 2.6, 0.0),  # pure translation (sub-cell)
        (0.0, 0.0, math.pi / 2),  # pure rotation, cell centres onto cell centres
        (0.0, 0.0, math.radians(23.0)),  # pure rotation
        (-5.0, 1.0, math.radians(10.0)),  # both (methods_facts §3.3's example)
        (6.2, -1.7, math.radians(-35.0)),  # both
    ],
)
def test_object_lands_in_predicted_cell(pose):
    # choose the current-frame target q at a cell centre, then place the object at the matching past point
    q = GRID.cell_centres()[20, 41]
    p = se2.transform_points(se2.invert(np.asarray(pose)), q)
    r, c, inside = GRID.cell_of(p)
    assert inside
    # bilinear splat of a point mass at p in the past raster (its centroid is exactly p)
    row_f, col_f = GRID.metric_to_pixel(p) - 0.5
    img = torch.zeros(1, 1, GRID.height, GRID.width, dtype=torch.float64)
    r0, c0 = int(math.floor(row_f)), int(math.floor(col_f))
    fr, fc = row_f - r0, col_f - c0
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            img[0, 0, r0 + dr, c0 + dc] = wr * wc
    assert np.allclose(centroid(GRID, img), p)
    out = warp_bev(img, torch.tensor([pose], dtype=torch.float64), GRID)
    want_r, want_c, _ = GRID.cell_of(current_position(pose, p))
    got = np.unravel_index(int(out[0, 0].argmax()), (GRID.height, GRID.width))
    assert got == (want_r, want_c) == (20, 41)
    assert np.allclose(centroid(GRID, out), q, atol=0.35)  # bilinear blur stays sub-cell
    assert float(out.sum()) == pytest.approx(1.0, abs=0.05)  # nothing lost far from the border


@pytest.mark.parametrize("pose", [(4.0, -9.0, 0.0), (0.0, 0.0, math.pi / 2), (0.0, 0.0, math.pi)])
def test_exact_motions_move_a_single_cell_exactly(pose):
    """Integer-cell translations and quarter turns map cell centres onto cell centres: the object keeps its
    value and occupies exactly the predicted cell, with nearest and with bilinear sampling."""
    r, c = 10, 50
    p = GRID.cell_centres()[r, c]
    want_r, want_c, _ = GRID.cell_of(current_position(pose, p))
    for mode in ("nearest", "bilinear"):
        out = warp_bev(one_hot_at(GRID, r, c), torch.tensor([pose], dtype=torch.float64), GRID, mode)
        assert float(out[0, 0, want_r, want_c]) == pytest.approx(1.0, abs=1e-9)
        assert float(out.sum()) == pytest.approx(1.0, abs=1e-9)


def test_axis_convention_forward_is_up_left_is_left():
    """A frame that was 3 m behind (past pose x = −3): what was 3 m ahead of it is now at the ego, i.e. a
    forward-moving ego sees the world slide down the raster (towards higher rows), never sideways."""
    p = np.array([3.5, 0.5])
    r, c, _ = GRID.cell_of(p)
    out = warp_bev(one_hot_at(GRID, r, c), torch.tensor([[-3.0, 0.0, 0.0]], dtype=torch.float64), GRID)
    got = np.unravel_index(int(out[0, 0].argmax()), out.shape[2:])
    assert got == (r + 3, c)
    # a frame 2 m to the right (y = -2): objects shift to the right, i.e. to higher columns
    out = warp_bev(one_hot_at(GRID, r, c), torch.tensor([[0.0, -2.0, 0.0]], dtype=torch.float64), GRID)
    assert np.unravel_index(int(out[0, 0].argmax()), out.shape[2:]) == (r, c + 2)
    # a frame turned left by 90°: its forward axis is the current left axis
    out = warp_bev(one_hot_at(GRID, r, c), torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=torch.float64), GRID)
    want = GRID.cell_of(np.array([-0.5, 3.5]))
    assert np.unravel_index(int(out[0, 0].argmax()), out.shape[2:]) == (want[0], want[1])


def test_identity_motion_leaves_features_unchanged():
    torch.manual_seed(0)
    feats = torch.randn(3, 5, 32, 48)
    grid = BEVGrid(-16.0, 48.0, -24.0, 24.0, 32, 48)  # forward-shifted, non-square raster
    out = warp_bev(feats, torch.zeros(3, 3), grid)
    assert torch.allclose(out, feats, atol=1e-5)
    theta = warp_theta(torch.zeros(1, 3, dtype=torch.float64), grid)
    assert torch.allclose(theta, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]], dtype=torch.float64), atol=1e-12)
    seq = torch.randn(2, 4, 3, 16, 16)
    assert torch.allclose(warp_sequence(seq, torch.zeros(2, 4, 3), GRID), seq, atol=1e-5)


def test_round_trip_and_composition():
    """Warping A→B then B→A returns the interior; two consecutive warps equal one warp by the composition."""
    torch.manual_seed(1)
    feats = torch.rand(1, 2, 64, 64, dtype=torch.float64)
    a = torch.tensor([[1.0, 2.0, 0.0]], dtype=torch.float64)
    back = warp_bev(
        warp_bev(feats, a, GRID, "nearest"),
        relative_pose(a, torch.zeros(1, 3, dtype=torch.float64)),
        GRID,
        "nearest",
    )
    assert torch.equal(back[..., 10:-10, 10:-10], feats[..., 10:-10, 10:-10])
    p1 = torch.tensor([[-2.0, 1.0, 0.3]], dtype=torch.float64)
    p2 = torch.tensor([[-1.0, -0.5, -0.1]], dtype=torch.float64)
    m = pose_matrix(p2) @ pose_matrix(p1)  # frame 1 -> frame 2 -> frame 3
    assert torch.allclose(
        warp_theta(torch.stack([m[0, 0, 2], m[0, 1, 2], torch.atan2(m[0, 1, 0], m[0, 0, 0])])[None], GRID),
        _compose_thetas(warp_theta(p1, GRID), warp_theta(p2, GRID)),
        atol=1e-12,
    )


def _compose_thetas(t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
    """Sampling with t2 then t1: output coords u -> t2 u (in frame 2) -> t1 (t2 u) (in frame 1)."""

    def h(t):
        return torch.cat([t, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=t.dtype)], 1)

    return (h(t1) @ h(t2))[:, :2]


def test_relative_pose_matches_numpy_geometry():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = relative_pose(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    want = np.stack([se2.absolute_to_relative(a[i], b[i]) for i in range(5)])
    assert np.allclose(got[:, :2], want[:, :2]) and np.allclose(se2.wrap_angle(got[:, 2] - want[:, 2]), 0)
    assert np.allclose(pose_matrix(torch.from_numpy(a)).numpy(), se2.pose_matrix(a))


def _raster_box(grid: BEVGrid, box: np.ndarray) -> np.ndarray:
    corners = box_corners(*box)
    return points_in_boxes(grid.cell_centres()[:, :, None, :], corners[None, None, None], strict=False)[
        ..., 0
    ]


@pytest.mark.parametrize(
    "past_pose", [(-4.5, 0.0, 0.0), (0.0, 0.0, math.radians(30)), (-6.0, 1.5, math.radians(12))]
)
def test_warping_agrees_with_rerasterising_at_the_current_position(past_pose):
    """A parked car rasterised in the past frame and warped equals the car rasterised where it now is."""
    grid = BEVGrid.square(32.0, 128)  # 0.5 m cells
    car_past = np.array([9.0, 4.0, 0.4, 4.8, 2.0])  # x, y, heading, length, width in the past frame
    past = _raster_box(grid, car_past).astype(np.float64)
    cur_pose = se2.compose(np.asarray(past_pose), car_past[:3])
    current = _raster_box(grid, np.concatenate([cur_pose, car_past[3:]]))
    warped = warp_bev(
        torch.from_numpy(past)[None, None], torch.tensor([past_pose], dtype=torch.float64), grid
    )
    warped = warped[0, 0].numpy() > 0.5
    iou = (warped & current).sum() / (warped | current).sum()
    assert iou > 0.85, iou
    # and the mass centre sits on the car's new centre
    assert np.allclose(
        centroid(grid, torch.from_numpy(warped.astype(float))[None, None]), cur_pose[:2], atol=0.3
    )


def test_lidar_histogram_of_a_moved_ego_matches_the_warp():
    """LiDAR-style: points on a wall seen from the past pose, histogrammed with the LiDAR builder's own raster,
    then warped — equal to the histogram of the same points expressed in the current frame."""
    builder = LidarBEVFeatureBuilder(range_m=32.0, pixels_per_meter=2.0)
    grid = BEVGrid.square(32.0, builder.size)
    past_pose = np.array([-5.0, 1.0, math.radians(10)])
    rng = np.random.default_rng(0)
    # a 3 m deep, 16 m wide building front, densely hit (every cell saturates at 5 points)
    wall_cur = np.stack([rng.uniform(12.0, 15.0, 4000), rng.uniform(-8, 8, 4000)], 1)
    wall_past = se2.transform_points(se2.invert(past_pose), wall_cur)
    past = torch.from_numpy(builder.histogram(wall_past).astype(np.float64))[None, None]
    cur = builder.histogram(wall_cur) > 0
    warped = warp_bev(past, torch.from_numpy(past_pose)[None], grid)[0, 0].numpy() > 0.5
    iou = (warped & cur).sum() / (warped | cur).sum()
    assert iou > 0.85, iou
    # the grid's cell_of is the builder's own binning
    r, c, _ = grid.cell_of(wall_cur)
    hist = builder.histogram(wall_cur)
    assert (hist[r, c] > 0).all()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="expects poses of shape"):
        warp_bev(torch.zeros(2, 1, 8, 8), torch.zeros(3, 3), GRID)
    with pytest.raises(ValueError, match="expects \\(B, C, H, W\\)"):
        warp_bev(torch.zeros(1, 8, 8), torch.zeros(1, 3), GRID)
