"""The BEV raster convention and its three coordinate systems: metres, pixels, ``grid_sample`` units.

A :class:`BEVGrid` covers ``x ∈ [x_min, x_max]`` (forward) by ``y ∈ [y_min, y_max]`` (left) of the rear-axle
frame with ``height × width`` cells. Row 0 is the farthest ahead, column 0 the farthest left — the layout of
``planlab.features.lidar`` (LiDAR histogram, ±32 m, ego at the centre) and of
``planlab.features.perception`` (BEV semantics, ``x_min`` 0 for TransFuser's forward half).

Where the ego sits: the rear axle is the metric origin (x = y = 0). On the square LiDAR grid (±range) it is
the centre point, the corner shared by cells (S/2 − 1, S/2 − 1) and (S/2, S/2); on TransFuser's forward half
(x ∈ [0, range]) it is the middle of the bottom edge. Rows run from +x (top) to −x, columns from +y (left)
to −y: x forward is "up", y left is "left".

- metres → continuous pixel position (edges at integers, cell centres at ``i + 0.5``):
  ``row = (x_max − x) / res_x``, ``col = (y_max − y) / res_y``; the integer cell is ``floor`` of that.
- metres → normalised ``grid_sample`` units with ``align_corners=False`` (−1 = outer edge of the first cell,
  +1 = outer edge of the last): ``u_w = 2·col / W − 1`` (width, the first grid coordinate) and
  ``u_h = 2·row / H − 1`` (height, the second). So ``u_w`` decreases with y and ``u_h`` decreases with x —
  the axis permutation *and* both sign flips live in :meth:`BEVGrid.metric_to_normalised`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BEVGrid:
    """Extents [m] and size [cells] of a BEV raster (see the module docstring for the axis convention)."""

    x_min: float
    x_max: float
    y_min: float
    y_max: float
    height: int
    width: int

    def __post_init__(self) -> None:
        if not (self.x_max > self.x_min and self.y_max > self.y_min):
            raise ValueError(
                f"empty BEV grid extents x [{self.x_min}, {self.x_max}], y [{self.y_min}, {self.y_max}]"
            )
        if self.height < 1 or self.width < 1:
            raise ValueError(f"BEV grid size must be positive, got {self.height}x{self.width}")

    @classmethod
    def square(cls, range_m: float, size: int) -> BEVGrid:
        """±``range_m`` around the ego in both axes, ``size × size`` cells (the LiDAR histogram's grid)."""
        return cls(-range_m, range_m, -range_m, range_m, size, size)

    @classmethod
    def forward(cls, length_m: float, half_width_m: float, height: int, width: int) -> BEVGrid:
        """``x ∈ [0, length_m]``, ``y ∈ ±half_width_m`` (TransFuser's BEV-semantic half plane)."""
        return cls(0.0, length_m, -half_width_m, half_width_m, height, width)

    @property
    def res_x(self) -> float:
        """Metres per row."""
        return (self.x_max - self.x_min) / self.height

    @property
    def res_y(self) -> float:
        """Metres per column."""
        return (self.y_max - self.y_min) / self.width

    def resized(self, height: int, width: int) -> BEVGrid:
        """The same extents with another number of cells (a feature map of a strided backbone)."""
        return BEVGrid(self.x_min, self.x_max, self.y_min, self.y_max, height, width)

    # ------------------------------------------------------------------ conversions (numpy, for targets/tests)
    def metric_to_pixel(self, xy: np.ndarray) -> np.ndarray:
        """``(..., 2)`` metres → ``(..., 2)`` continuous (row, col); the cell is ``floor`` of it."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(self.x_max - xy[..., 0]) / self.res_x, (self.y_max - xy[..., 1]) / self.res_y], -1)

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Integer (row, col) of the cells containing ``xy (..., 2)`` and a mask of the points inside the grid."""
        rc = np.floor(self.metric_to_pixel(xy)).astype(np.int64)
        inside = (
            (rc[..., 0] >= 0) & (rc[..., 0] < self.height) & (rc[..., 1] >= 0) & (rc[..., 1] < self.width)
        )
        return rc[..., 0], rc[..., 1], inside

    def cell_centres(self) -> np.ndarray:
        """``(H, W, 2)`` metric (x, y) of every cell centre."""
        x = self.x_max - (np.arange(self.height) + 0.5) * self.res_x
        y = self.y_max - (np.arange(self.width) + 0.5) * self.res_y
        return np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1)

    # ------------------------------------------------------------------ the affine map used by warping
    def metric_to_normalised(
        self, dtype: torch.dtype = torch.float64, device: torch.device | None = None
    ) -> torch.Tensor:
        """``S`` (3, 3): homogeneous metric (x, y, 1) → (u_w, u_h, 1) of ``grid_sample`` (align_corners=False)."""
        lx, ly = self.x_max - self.x_min, self.y_max - self.y_min
        return torch.tensor(
            [
                [0.0, -2.0 / ly, 2.0 * self.y_max / ly - 1.0],  # u_w: column axis, decreasing with y
                [-2.0 / lx, 0.0, 2.0 * self.x_max / lx - 1.0],  # u_h: row axis, decreasing with x
                [0.0, 0.0, 1.0],
            ],
            dtype=dtype,
            device=device,
        )
