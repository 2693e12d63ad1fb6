"""A convolutional GRU that fuses a history of BEV feature maps, warping its state with the ego motion.

The cell follows FIERY's ``SpatialGRU`` (methods_facts §3.2): 3×3 convolutions on ``[x, h]`` give the update
gate ``z`` and the reset gate ``r``; the candidate is conv → norm → ReLU on ``[x, r·h]``; ``h' = (1 − z)·h +
z·candidate``. (FIERY writes ``(1 − r)·h``; the two differ only by the sign of the learned reset gate.) The
norm is a GroupNorm instead of FIERY's BatchNorm so that small CPU batches and a batch of one at inference
behave the same.

:class:`TemporalConvGRU` runs the cell over the frames oldest first. Each input stays in its own frame; before
step t the state (in frame t−1) is warped into frame t with the relative ego motion, and after the last step
into the current frame — so the fused map is always in the current rear-axle frame, whatever the slices.
"""

from __future__ import annotations

import torch
from torch import nn

from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.warp import relative_pose, warp_bev


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


class ConvGRUCell(nn.Module):
    """One ConvGRU step on maps of equal size: ``(x (B, C_in, H, W), h (B, C_h, H, W)) → h'``."""

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.hidden_dim = hidden_dim
        self.gates = nn.Conv2d(input_dim + hidden_dim, 2 * hidden_dim, kernel_size, padding=pad)
        self.candidate = nn.Sequential(
            nn.Conv2d(input_dim + hidden_dim, hidden_dim, kernel_size, padding=pad, bias=False),
            nn.GroupNorm(_groups(hidden_dim), hidden_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        cand = self.candidate(torch.cat([x, r * h], 1))
        return (1 - z) * h + z * cand


class TemporalConvGRU(nn.Module):
    """Fuses ``x (B, T, C, H, W)`` given ``poses (B, T, 3)`` (frame t's pose in the current frame) on ``grid``.

    Returns the fused map ``(B, hidden_dim, H, W)`` in the current frame. With T = 1 and the current frame this
    is one GRU step from a zero state: the single-frame ablation with the very same parameters.
    """

    def __init__(self, input_dim: int, hidden_dim: int, grid: BEVGrid, kernel_size: int = 3) -> None:
        super().__init__()
        self.cell = ConvGRUCell(input_dim, hidden_dim, kernel_size)
        self.grid = grid
        self.hidden_dim = hidden_dim

    def forward(self, x: torch.Tensor, poses: torch.Tensor, return_states: bool = False):  # type: ignore[override]
        b, t, _, h, w = x.shape
        if poses.shape != (b, t, 3):
            raise ValueError(f"TemporalConvGRU: poses must be ({b}, {t}, 3), got {tuple(poses.shape)}")
        state = x.new_zeros(b, self.hidden_dim, h, w)
        states = []
        for k in range(t):
            if k > 0:
                # frame k-1 expressed in frame k: bring the memory into the frame of the new input
                state = warp_bev(state, relative_pose(poses[:, k], poses[:, k - 1]), self.grid)
            state = self.cell(x[:, k], state)
            states.append(state)
        fused = warp_bev(state, poses[:, -1], self.grid)  # last frame -> current frame (identity if current)
        if return_states:
            return fused, states
        return fused
