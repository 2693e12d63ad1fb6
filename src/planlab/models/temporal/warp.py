"""Ego-motion warping of BEV feature maps (methods_facts §3.3) with batched SE(2) algebra in torch.

``warp_bev(features, pose, grid)`` resamples a map rasterised in a *source* frame into a *target* frame, where
``pose = (x, y, heading)`` is the source frame's pose expressed in the target frame (for history frames: the
``AgentInput`` ego pose of that frame, which NAVSIM already gives in the current frame, fact sheet §2.2).

``F.affine_grid`` maps every **output** (target-frame) pixel to an **input** (source-frame) location, so the
affine matrix is the pull-back: a target-frame point q sits at ``p = R(θ)ᵀ(q − t)`` in the source frame,
``T = [[Rᵀ, −Rᵀt], [0, 1]]``, and with ``S`` the metric → ``grid_sample``-unit map of the raster
(:meth:`BEVGrid.metric_to_normalised`) ``theta = (S · T · S⁻¹)[:2]``. Going through metres keeps rotations
exact for non-square cells. Bilinear sampling for features, nearest for labels; cells that come from outside
the source raster are zero (nothing was seen there).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from planlab.models.temporal.grid import BEVGrid


def pose_matrix(pose: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` poses → ``(..., 3, 3)`` homogeneous matrices mapping points of the pose's frame to its parent."""
    c, s = torch.cos(pose[..., 2]), torch.sin(pose[..., 2])
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rows = [
        torch.stack([c, -s, pose[..., 0]], -1),
        torch.stack([s, c, pose[..., 1]], -1),
        torch.stack([zero, zero, one], -1),
    ]
    return torch.stack(rows, -2)


def matrix_pose(m: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pose_matrix`: ``(..., 3, 3)`` → ``(..., 3)``."""
    return torch.stack([m[..., 0, 2], m[..., 1, 2], torch.atan2(m[..., 1, 0], m[..., 0, 0])], -1)


def relative_pose(frame: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """``pose`` (given in the common parent frame) expressed in ``frame``: ``frame⁻¹ ∘ pose``, batched."""
    return matrix_pose(torch.linalg.inv(pose_matrix(frame)) @ pose_matrix(pose))


def warp_theta(pose: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """``(B, 2, 3)`` ``affine_grid`` matrices resampling a source-frame raster into the target frame.

    ``pose (B, 3)``: the source frame in the target frame. Computed in float64, returned in ``pose.dtype``.
    """
    p = pose.to(torch.float64)
    s = grid.metric_to_normalised(torch.float64, p.device)
    # T: target-frame metres -> source-frame metres, i.e. the inverse of the source pose's matrix.
    t = torch.linalg.inv(pose_matrix(p))
    theta = s @ t @ torch.linalg.inv(s)
    return theta[..., :2, :].to(pose.dtype if pose.is_floating_point() else torch.float32)


def warp_bev(
    features: torch.Tensor, pose: torch.Tensor, grid: BEVGrid, mode: str = "bilinear"
) -> torch.Tensor:
    """Resample ``features (B, C, H, W)`` from the frame at ``pose (B, 3)`` into the target frame.

    ``grid`` gives the raster's metric extents (its size may differ from H × W only by a scale: the extents
    are what matter). ``mode``: ``bilinear`` (features) or ``nearest`` (labels).
    """
    if features.dim() != 4:
        raise ValueError(f"warp_bev expects (B, C, H, W) features, got shape {tuple(features.shape)}")
    if pose.shape != (features.shape[0], 3):
        raise ValueError(f"warp_bev expects poses of shape ({features.shape[0]}, 3), got {tuple(pose.shape)}")
    theta = warp_theta(pose.to(features.device), grid).to(features.dtype)
    sample = F.affine_grid(theta, list(features.shape), align_corners=False)
    return F.grid_sample(features, sample, mode=mode, padding_mode="zeros", align_corners=False)


def warp_sequence(
    features: torch.Tensor, poses: torch.Tensor, grid: BEVGrid, mode: str = "bilinear"
) -> torch.Tensor:
    """Warp every frame of ``features (B, T, C, H, W)`` into the current frame; ``poses (B, T, 3)`` are the
    frames' poses in the current frame (the current frame's own pose is (0, 0, 0): unchanged)."""
    b, t = features.shape[:2]
    flat = warp_bev(features.flatten(0, 1), poses.reshape(b * t, 3), grid, mode)
    return flat.view(features.shape)
