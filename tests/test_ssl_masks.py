"""I-JEPA multi-block mask geometry: counts, scales, aspect ratios, per-batch sizes, disjoint contexts."""

from __future__ import annotations

import math

import pytest
import torch

from planlab.ssl.masks import MaskSpec, MultiBlockMasks


def _rect(indices: torch.Tensor, cols: int) -> tuple[int, int]:
    """(rows, cols) of the rectangle the indices fill; fails if they are not exactly one rectangle."""
    r, c = indices // cols, indices % cols
    h, w = int(r.max() - r.min() + 1), int(c.max() - c.min() + 1)
    assert h * w == len(indices) == len(set(indices.tolist())), "a target block is not a full rectangle"
    return h, w


@pytest.mark.parametrize("grid", [(14, 14), (8, 32), (4, 16)])
def test_counts_and_disjoint_contexts(grid):
    rows, cols = grid
    masker = MultiBlockMasks(grid)
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        mb = masker(8, gen)
        assert mb.targets.shape[:2] == (4, 8) and mb.context.shape[0] == 8
        assert mb.context.shape[1] >= masker.spec.min_keep
        for b in range(8):
            ctx = mb.context[b]
            assert torch.equal(ctx, ctx.sort().values) and len(set(ctx.tolist())) == len(ctx)
            assert int(ctx.min()) >= 0 and int(ctx.max()) < rows * cols
            for t in range(4):
                assert not set(ctx.tolist()) & set(mb.targets[t, b].tolist()), "context overlaps a target"


def test_block_sizes_are_per_batch_and_positions_per_image():
    masker = MultiBlockMasks((16, 16))
    gen = torch.Generator().manual_seed(1)
    sizes = set()
    for _ in range(10):
        mb = masker(16, gen)
        shapes = {_rect(mb.targets[t, b], 16) for t in range(4) for b in range(16)}
        assert len(shapes) == 1  # one block size for the whole batch
        sizes |= shapes
        starts = {int(mb.targets[0, b, 0]) for b in range(16)}
        assert len(starts) > 4  # positions differ between images
    assert len(sizes) > 2  # and sizes differ between batches


def test_target_scale_and_aspect_ranges():
    rows = cols = 64  # a large grid keeps the rounding of block sides small
    masker = MultiBlockMasks((rows, cols))
    gen = torch.Generator().manual_seed(2)
    scales, aspects = [], []
    for _ in range(200):
        (h, w), _ = masker.sample_sizes(gen)
        scales.append(h * w / (rows * cols))
        aspects.append(h / w)
    # side rounding (±0.5 patch on ~27 patches) moves scale by < 4 % and aspect by < 4 %
    assert 0.15 * 0.96 <= min(scales) and max(scales) <= 0.20 * 1.04
    assert 0.75 * 0.96 <= min(aspects) and max(aspects) <= 1.5 * 1.04
    assert max(scales) - min(scales) > 0.03 and max(aspects) - min(aspects) > 0.5  # the ranges are used


def test_context_block_covers_most_of_a_wide_grid():
    """On a 4:1 grid the context block keeps the image's shape: 85–100 % of the patches before targets go."""
    masker = MultiBlockMasks((8, 32))
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        _, (h, w) = masker.sample_sizes(gen)
        assert h * w >= 0.8 * 8 * 32, (h, w)


def test_block_size_rounding():
    masker = MultiBlockMasks((10, 10))
    assert masker.block_size(0.16, 1.0) == (4, 4)
    assert masker.block_size(1.0, 1.0) == (10, 10)
    assert masker.block_size(0.5, 100.0) == (10, 1)  # clipped to the grid


def test_same_generator_same_masks():
    masker = MultiBlockMasks((8, 32))
    a = masker(4, torch.Generator().manual_seed(7))
    b = masker(4, torch.Generator().manual_seed(7))
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)


def test_impossible_min_keep_is_a_clear_error():
    spec = MaskSpec(target_scale=(0.6, 0.6), target_aspect=(1.0, 1.0), context_scale=(0.5, 0.5), min_keep=40)
    masker = MultiBlockMasks((8, 8), spec)
    with pytest.raises(ValueError, match="min_keep"):
        masker(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="min_keep"):
        MultiBlockMasks((4, 4), MaskSpec(min_keep=17))
    with pytest.raises(ValueError, match="target_scale"):
        MultiBlockMasks((4, 4), MaskSpec(target_scale=(0.3, 0.2)))


def test_mean_target_coverage_matches_the_recipe():
    masker = MultiBlockMasks((14, 14))
    gen = torch.Generator().manual_seed(4)
    cover = []
    for _ in range(100):
        mb = masker(4, gen)
        cover.append(mb.targets.shape[2] / 196)
    assert math.isclose(sum(cover) / len(cover), 0.175, abs_tol=0.02)
