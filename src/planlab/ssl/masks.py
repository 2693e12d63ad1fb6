"""I-JEPA multi-block masks over a patch grid: target blocks to predict and one context block to see.

methods_facts §1.2: 4 target blocks of scale U(0.15, 0.20) (fraction of all patches) and aspect ratio
U(0.75, 1.5) (rows/columns, in patch units); one context block of scale U(0.85, 1.0) from which every target
patch is removed (no overlap), keeping at least ``min_keep`` patches. Block *sizes* are drawn once per batch,
block *positions* per image, and the contexts of a batch are cut to the smallest one so they stack.

Two deliberate differences from the official collator, both for non-square driving images (4:1 grids):

- the context aspect ratio is relative to the grid's own aspect (1.0 = the image's shape). The official
  value 1.0 means "square" on a square image; on an 8×32 grid a square block of 85 % of the patches does not
  fit, and clipping it would leave a context of under half the image;
- contexts are cut to the batch minimum by a random subset (kept in raster order), not by dropping the last
  indices, which would always drop the bottom rows of the context block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskSpec:
    """Mask geometry (defaults: the released I-JEPA configs, methods_facts §1.2)."""

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.20)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)  # relative to the grid's aspect (see module docstring)
    min_keep: int = 10
    max_tries: int = 50


@dataclass
class MaskBatch:
    """Patch indices (row-major over the grid) for one batch.

    ``context``: ``[B, Nc]`` sorted, disjoint from every target of the same image.
    ``targets``: ``[T, B, Nt]``, one index tensor per target block (all blocks of a batch have one size).
    """

    context: torch.Tensor
    targets: torch.Tensor

    @property
    def num_targets(self) -> int:
        return int(self.targets.shape[0])


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


class MultiBlockMasks:
    """Draws :class:`MaskBatch` es for a ``grid = (rows, cols)`` patch grid."""

    def __init__(self, grid: tuple[int, int], spec: MaskSpec | None = None) -> None:
        self.rows, self.cols = int(grid[0]), int(grid[1])
        self.spec = spec or MaskSpec()
        s = self.spec
        n = self.rows * self.cols
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"mask grid must be at least 1x1, got {grid}")
        if s.num_targets < 1:
            raise ValueError("num_targets must be >= 1")
        for name, (lo, hi) in (
            ("target_scale", s.target_scale),
            ("context_scale", s.context_scale),
            ("target_aspect", s.target_aspect),
            ("context_aspect", s.context_aspect),
        ):
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got ({lo}, {hi})")
        if s.target_scale[1] > 1 or s.context_scale[1] > 1:
            raise ValueError("mask scales are fractions of the grid and must be <= 1")
        if not 1 <= s.min_keep <= n:
            raise ValueError(f"min_keep must be in 1..{n} (patches of the grid), got {s.min_keep}")

    @property
    def num_patches(self) -> int:
        return self.rows * self.cols

    def block_size(self, scale: float, aspect: float) -> tuple[int, int]:
        """(rows, cols) of a block covering ``scale`` of the grid with rows/cols ≈ ``aspect``, clipped to it."""
        area = scale * self.num_patches
        h = max(1, min(self.rows, int(round(math.sqrt(area * aspect)))))
        w = max(1, min(self.cols, int(round(math.sqrt(area / aspect)))))
        return h, w

    def sample_sizes(self, gen: torch.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
        """(target block size, context block size): drawn once per batch."""
        s = self.spec
        t_scale = _uniform(gen, *s.target_scale)
        t_aspect = _uniform(gen, *s.target_aspect)
        c_scale = _uniform(gen, *s.context_scale)
        c_aspect = _uniform(gen, *s.context_aspect) * (self.rows / self.cols)
        return self.block_size(t_scale, t_aspect), self.block_size(c_scale, c_aspect)

    def _place(self, gen: torch.Generator, size: tuple[int, int]) -> torch.Tensor:
        """A boolean ``[rows, cols]`` mask of one block of ``size`` at a uniformly random position."""
        h, w = size
        top = int(torch.randint(0, self.rows - h + 1, (), generator=gen))
        left = int(torch.randint(0, self.cols - w + 1, (), generator=gen))
        m = torch.zeros(self.rows, self.cols, dtype=torch.bool)
        m[top : top + h, left : left + w] = True
        return m

    def sample_image(
        self, gen: torch.Generator, target_size: tuple[int, int], context_size: tuple[int, int]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(context indices, [target indices] × T) of one image; the context avoids every target patch."""
        s = self.spec
        for _ in range(s.max_tries):
            targets = [self._place(gen, target_size) for _ in range(s.num_targets)]
            union = torch.stack(targets).any(dim=0)
            for _ in range(s.max_tries):
                context = self._place(gen, context_size) & ~union
                if int(context.sum()) >= s.min_keep:
                    flat = [t.flatten().nonzero().squeeze(1) for t in targets]
                    return context.flatten().nonzero().squeeze(1), flat
        raise ValueError(
            f"could not draw a context of >= {s.min_keep} patches outside {s.num_targets} targets of "
            f"{target_size[0]}x{target_size[1]} on a {self.rows}x{self.cols} grid; lower masks.min_keep or the "
            "target scale"
        )

    def __call__(self, batch_size: int, gen: torch.Generator) -> MaskBatch:
        target_size, context_size = self.sample_sizes(gen)
        contexts: list[torch.Tensor] = []
        targets: list[list[torch.Tensor]] = []
        for _ in range(batch_size):
            c, t = self.sample_image(gen, target_size, context_size)
            contexts.append(c)
            targets.append(t)
        keep = min(len(c) for c in contexts)
        cut = []
        for c in contexts:
            if len(c) > keep:  # random subset, kept in raster order (see the module docstring)
                pick = torch.randperm(len(c), generator=gen)[:keep].sort().values
                c = c[pick]
            cut.append(c)
        context = torch.stack(cut)
        target = torch.stack([torch.stack([t[k] for t in targets]) for k in range(self.spec.num_targets)])
        return MaskBatch(context, target)
