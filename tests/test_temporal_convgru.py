"""The ConvGRU fuses a warped history: its memory follows the ego motion (an object seen only in the oldest
frame ends up in its current-frame cell), the single-frame ablation is one step of the same cell, and a tiny
model trained on moving objects uses the history (it forecasts far better than from one frame)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from planlab.geometry import se2
from planlab.models.temporal.convgru import ConvGRUCell, TemporalConvGRU
from planlab.models.temporal.grid import BEVGrid

GRID = BEVGrid.square(16.0, 32)  # 1 m cells


class AddMemory(nn.Module):
    """A stand-in cell that accumulates what it sees (mass-preserving): isolates TemporalConvGRU's warping."""

    hidden_dim = 1

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return h + x


def ego_path(n: int = 4) -> np.ndarray:
    """Poses of n frames (oldest first) in the frame of the last one: driving 4 m per step while turning."""
    poses = [np.zeros(3)]
    step = np.array([4.0, 0.0, math.radians(8)])
    for _ in range(n - 1):
        poses.append(se2.compose(poses[-1], step))
    last = poses[-1]
    return np.stack([se2.absolute_to_relative(last, p) for p in poses])


def raster_point(xy: np.ndarray) -> torch.Tensor:
    """Bilinear splat of a point mass: the raster's centroid is exactly ``xy``."""
    img = torch.zeros(1, GRID.height, GRID.width)
    row_f, col_f = GRID.metric_to_pixel(xy) - 0.5
    r0, c0 = int(math.floor(row_f)), int(math.floor(col_f))
    fr, fc = row_f - r0, col_f - c0
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            img[0, r0 + dr, c0 + dc] = float(wr * wc)
    return img


def centroid(img: torch.Tensor) -> np.ndarray:
    w = img.double().numpy()
    return (GRID.cell_centres() * w[..., None]).sum((0, 1)) / w.sum()


@pytest.mark.parametrize("use_true_motion", [True, False])
def test_memory_of_an_occluded_object_lands_in_its_current_cell(use_true_motion):
    poses = ego_path(4)
    obj_cur = GRID.cell_centres()[18, 12]  # a parked car now 2.5 m behind, 3.5 m to the left
    frames = []
    for t in range(4):
        if t == 0:  # seen only in the oldest frame, then occluded
            frames.append(raster_point(se2.transform_points(se2.invert(poses[t]), obj_cur)))
        else:
            frames.append(torch.zeros(1, GRID.height, GRID.width))
    x = torch.stack(frames)[None]  # (1, 4, 1, H, W)
    gru = TemporalConvGRU(1, 1, GRID)
    gru.cell = AddMemory()
    p = torch.from_numpy(poses).float()[None]
    fused = gru(x, p if use_true_motion else torch.zeros_like(p))
    got = np.unravel_index(int(fused[0, 0].argmax()), (GRID.height, GRID.width))
    err = np.linalg.norm(centroid(fused[0, 0]) - obj_cur)
    if use_true_motion:
        assert got == (18, 12) and err < 0.3  # three warps later, still on the car
        assert float(fused.sum()) == pytest.approx(1.0, abs=0.02)
    else:
        assert got != (18, 12) and err > 5.0  # ignoring the ego motion leaves it where the ego was 1.5 s ago


def test_single_frame_is_one_step_of_the_same_cell():
    torch.manual_seed(0)
    gru = TemporalConvGRU(4, 6, GRID)
    x = torch.randn(2, 1, 4, 32, 32)
    fused = gru(x, torch.zeros(2, 1, 3))
    direct = gru.cell(x[:, 0], torch.zeros(2, 6, 32, 32))
    assert torch.allclose(fused, direct, atol=1e-5)
    # and a sequence result depends on the history
    seq = torch.randn(2, 3, 4, 32, 32)
    seq[:, -1] = x[:, 0]
    assert not torch.allclose(gru(seq, torch.zeros(2, 3, 3)), fused, atol=1e-3)


def test_cell_gates_and_gradients():
    torch.manual_seed(0)
    cell = ConvGRUCell(3, 5)
    x, h = torch.randn(2, 3, 8, 8, requires_grad=True), torch.randn(2, 5, 8, 8, requires_grad=True)
    out = cell(x, h)
    assert out.shape == (2, 5, 8, 8) and torch.isfinite(out).all()
    out.square().mean().backward()
    assert x.grad is not None and h.grad is not None and torch.isfinite(x.grad).all()
    # update gate closed (z -> 0): the state passes through unchanged
    with torch.no_grad():
        cell.gates.weight.zero_()
        cell.gates.bias[:5] = -30.0
    assert torch.allclose(cell(x, h), h, atol=1e-6)


def test_bad_pose_shape_is_refused():
    gru = TemporalConvGRU(1, 1, GRID)
    with pytest.raises(ValueError, match="poses must be"):
        gru(torch.zeros(1, 3, 1, 32, 32), torch.zeros(1, 2, 3))


def _moving_object_batch(
    n: int, gen: torch.Generator, frames: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An object moving at a random constant velocity while the ego drives straight ahead: ``frames`` rasters
    (each in its own ego frame), the ego poses in the current frame and the object's position one step on."""
    grid = BEVGrid.square(16.0, 16)  # 2 m cells
    v = (
        torch.rand(n, 2, generator=gen) * 2 - 1
    ) * 4.0  # object, m per step in the world (current frame axes)
    ego_v = torch.rand(n, generator=gen) * 3.0  # ego, m per step along x
    start = (torch.rand(n, 2, generator=gen) * 2 - 1) * 6.0  # object now, current frame
    k = torch.arange(frames, dtype=torch.float32) - (frames - 1)  # ..., -1, 0 (0 = the current frame)
    poses = torch.zeros(n, frames, 3)
    poses[..., 0] = ego_v[:, None] * k  # no rotation: a frame's local = world - its ego position
    obj = start[:, None] + v[:, None] * k[None, :, None]  # (n, frames, 2) current-frame coordinates
    local = (obj - poses[..., :2]).numpy()
    r, c, inside = grid.cell_of(local)
    x = torch.zeros(n, frames, 1, 16, 16)
    idx = np.nonzero(inside)
    x[idx[0], idx[1], 0, r[idx], c[idx]] = 1.0
    return x, poses, start + v


class TinyForecaster(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fusion = TemporalConvGRU(1, 8, BEVGrid.square(16.0, 16))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 16 * 16, 2))

    def forward(self, x: torch.Tensor, poses: torch.Tensor) -> torch.Tensor:
        return self.head(self.fusion(x, poses))


@pytest.mark.slow
def test_history_lets_a_tiny_model_forecast_motion():
    """Trained for a few hundred steps, the 3-frame ConvGRU predicts the next position of a moving object
    much better than the same model given only the current frame (which cannot see the velocity)."""
    errors = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is faster than two fighting over a loaded machine
    try:
        _train_both(errors)
    finally:
        torch.set_num_threads(threads)
    assert errors[3] < 0.6 * errors[1], errors


def _train_both(errors: dict[int, float]) -> None:
    for frames in (3, 1):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = TinyForecaster()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(250):
            x, p, y = _moving_object_batch(32, gen, 3)
            loss = (model(x[:, -frames:], p[:, -frames:]) - y).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        x, p, y = _moving_object_batch(256, torch.Generator().manual_seed(99), 3)
        with torch.no_grad():
            errors[frames] = float((model(x[:, -frames:], p[:, -frames:]) - y).norm(dim=1).mean())
