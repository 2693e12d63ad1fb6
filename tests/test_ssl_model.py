"""I-JEPA model pieces: the subset encoder, the predictor's shapes and independence, the EMA update, the loss
and the schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from planlab.models.vit import ViT, ViTConfig, load_vit, save_vit
from planlab.ssl.encoder import JepaViT, gather_tokens, sincos_2d
from planlab.ssl.ijepa import IJepa, ema_update
from planlab.ssl.masks import MultiBlockMasks
from planlab.ssl.predictor import Predictor
from planlab.ssl.schedules import lr_at, momentum_at, weight_decay_at

CFG = ViTConfig(patch_size=8, embed_dim=32, depth=2, num_heads=2, grid_height=4, grid_width=8)


def _images(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, 3, 32, 64, generator=torch.Generator().manual_seed(seed))


def test_sincos_codes_are_distinct_and_bounded():
    pe = sincos_2d(32, 4, 8)
    assert pe.shape == (32, 32) and pe.abs().max() <= 1.0
    assert len({tuple(r.tolist()) for r in pe.round(decimals=5)}) == 32  # every grid cell has its own code
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(30, 2, 2)


def test_encoder_on_a_subset_equals_gathered_full_embedding():
    torch.manual_seed(0)
    enc = JepaViT(CFG).eval()
    x = _images()
    full = enc(x)
    assert full.shape == (3, 32, 32)
    keep_all = torch.arange(32).expand(3, -1)
    assert torch.allclose(enc(x, keep_all), full, atol=1e-6)
    keep = torch.stack([torch.randperm(32, generator=torch.Generator().manual_seed(i))[:10].sort().values
                        for i in range(3)])  # fmt: skip
    # tokens are dropped before the blocks: the same as running the blocks on the gathered embeddings
    manual = gather_tokens(enc.embed(x), keep)
    for blk in enc.blocks:
        manual = blk(manual)
    assert torch.allclose(enc(x, keep), enc.norm(manual), atol=1e-6)
    assert not torch.allclose(
        enc(x, keep), gather_tokens(full, keep), atol=1e-3
    )  # context never saw the rest


def test_encoder_position_codes_are_fixed_and_the_format_is_a_plain_vit(tmp_path):
    torch.manual_seed(0)
    enc = JepaViT(CFG)
    assert not enc.pos_embed.requires_grad
    assert torch.equal(enc.pos_embed[0], sincos_2d(32, 4, 8))
    save_vit(enc, tmp_path / "enc")
    plain = load_vit(tmp_path / "enc")
    assert type(plain) is ViT
    x = _images()
    assert torch.equal(plain.eval()(x), enc.eval()(x))
    assert torch.equal(enc.plain()(x), enc(x))


def test_predictor_shapes_and_block_independence():
    torch.manual_seed(0)
    pred = Predictor(32, (4, 8), pred_dim=16, depth=2, num_heads=2)
    masks = MultiBlockMasks((4, 8))(3, torch.Generator().manual_seed(0))
    ctx = torch.randn(3, masks.context.shape[1], 32, requires_grad=True)
    out = pred(ctx, masks.context, masks.targets)
    assert out.shape == (4, 3, masks.targets.shape[2], 32)
    out.sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    # moving target block 1 changes nothing about block 0 (each block is predicted in its own pass)
    moved = masks.targets.clone()
    moved[1] = (moved[1] + 1) % 32
    out2 = pred(ctx, masks.context, moved)
    assert torch.allclose(out2[0], out[0], atol=1e-6)
    assert not torch.allclose(out2[1], out[1], atol=1e-4)  # a mask token's output depends on its position
    assert not pred.pos_embed.requires_grad and "pos_embed" not in dict(pred.named_parameters())
    with pytest.raises(ValueError, match="divisible"):
        Predictor(32, (4, 8), pred_dim=18, num_heads=4)


def test_ema_update_formula_and_fixed_parameters():
    torch.manual_seed(0)
    online, target = JepaViT(CFG), JepaViT(CFG)
    t0 = {k: v.clone() for k, v in target.state_dict().items()}
    o0 = {k: v.clone() for k, v in online.state_dict().items()}
    ema_update(target, online, 0.9)
    for k, v in target.state_dict().items():
        if k == "pos_embed":
            assert torch.equal(v, t0[k])  # fixed codes are not averaged
        else:
            assert torch.allclose(v, 0.9 * t0[k] + 0.1 * o0[k], atol=1e-7), k
    before = {k: v.clone() for k, v in target.state_dict().items()}
    ema_update(target, online, 1.0)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    with pytest.raises(ValueError):
        ema_update(JepaViT(CFG), Predictor(32, (4, 8), 16, 1, 2), 0.5)


def test_ijepa_loss_is_smooth_l1_on_layer_normed_full_image_targets():
    torch.manual_seed(0)
    model = IJepa(CFG, pred_dim=16, pred_depth=1, pred_heads=2)
    assert not any(p.requires_grad for p in model.target_encoder.parameters())
    x = _images(2)
    masks = MultiBlockMasks((4, 8))(2, torch.Generator().manual_seed(1))
    stats = model(x, masks)
    with torch.no_grad():
        h = model.target_encoder(x)  # the FULL image, then the target blocks are picked
        tgt = torch.stack([gather_tokens(F.layer_norm(h, (32,)), t) for t in masks.targets])
        pred = model.predictor(model.context_encoder(x, masks.context), masks.context, masks.targets)
    assert torch.allclose(stats.loss, F.smooth_l1_loss(pred, tgt), atol=1e-6)
    stats.loss.backward()
    assert model.context_encoder.blocks[0].attn.qkv.weight.grad is not None
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert stats.target_std > 0 and stats.pooled_std > 0
    groups = model.param_groups()
    assert all(p.ndim >= 2 for p in groups[0]["params"]) and all(p.ndim < 2 for p in groups[1]["params"])
    ids = {id(p) for g in groups for p in g["params"]}
    assert id(model.context_encoder.pos_embed) not in ids and not ids & {
        id(p) for p in model.target_encoder.parameters()
    }


def test_schedules():
    total, warm = 100, 10
    assert lr_at(0, total, warm, 2e-4, 1e-3, 1e-6) == pytest.approx(2e-4)
    assert lr_at(10, total, warm, 2e-4, 1e-3, 1e-6) == pytest.approx(1e-3)
    assert lr_at(100, total, warm, 2e-4, 1e-3, 1e-6) == pytest.approx(1e-6)
    assert lr_at(55, total, warm, 2e-4, 1e-3, 1e-6) == pytest.approx((1e-3 + 1e-6) / 2)
    # the weight decay rises 0.04 -> 0.4 on a cosine; the momentum ramps linearly 0.996 -> 1
    wds = [weight_decay_at(s, total, 0.04, 0.4) for s in range(total + 1)]
    assert wds[0] == pytest.approx(0.04) and wds[-1] == pytest.approx(0.4)
    assert all(b >= a for a, b in zip(wds, wds[1:], strict=False))
    assert momentum_at(0, total, 0.996, 1.0) == pytest.approx(0.996)
    assert momentum_at(50, total, 0.996, 1.0) == pytest.approx(0.998)
    assert momentum_at(total, total, 0.996, 1.0) == 1.0
    assert math.isclose(momentum_at(200, total, 0.996, 1.0), 1.0)


def test_probe_pooling():
    from planlab.ssl.probe import log_split, pool_tokens

    tokens = torch.arange(2 * 4 * 8 * 3, dtype=torch.float32).reshape(2, 32, 3)  # grid 4 x 8, 3 channels
    assert torch.equal(pool_tokens(tokens, (4, 8), "mean"), tokens.mean(dim=1))
    grid = pool_tokens(tokens, (4, 8), "grid")  # 2 x 4 regions of 2 x 2 patches each
    assert grid.shape == (2, 8 * 3)
    cell = tokens[0].reshape(4, 8, 3)[:2, :2].reshape(-1, 3).mean(dim=0)  # top-left region of image 0
    assert torch.allclose(grid[0, :3], cell)
    last = tokens[1].reshape(4, 8, 3)[2:, 6:].reshape(-1, 3).mean(dim=0)  # bottom-right region of image 1
    assert torch.allclose(grid[1, -3:], last)
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_tokens(tokens, (4, 8), "max")
    logs = ["a"] * 5 + ["b"] * 5 + ["c"] * 5 + ["d"] * 5
    test = log_split(logs, 0.3)
    assert test.sum() in (5, 10) and all(
        len({t for t, g in zip(test, logs, strict=True) if g == x}) == 1 for x in "abcd"
    )


def test_probe_on_a_single_log_splits_in_time():
    """A probe set of one log (a tiny val split) must still fit and score, not raise on an empty train set."""
    from planlab.ssl.probe import log_split, run_probes

    test = log_split(["only"] * 10, 0.3)
    assert test.tolist() == [False] * 7 + [True] * 3
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4))
    labels = {"speed": x[:, 0] * 2.0, "command": np.array([0, 1] * 5), "lead": np.array([0, 1] * 5)}
    out = run_probes(x, labels, test, logs=["only"] * 10)
    assert out["n_train"] == 7 and out["n_test"] == 3 and math.isfinite(out["speed_r2"])
    empty = run_probes(x, labels, np.ones(10, dtype=bool))
    assert empty["n_train"] == 0 and math.isnan(empty["speed_r2"]) and empty["command_bacc"] is None


def test_probe_classifiers_weight_rare_classes():
    """Scored by balanced accuracy, a probe must not answer "absent" everywhere for a rare class (5 %)."""
    from planlab.ssl.probe import logistic_balanced_accuracy

    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.05).astype(int)
    x = rng.normal(size=(2000, 8))
    x[:, 0] += 1.5 * y  # a weak but real signal
    train = np.arange(2000) < 1500
    assert logistic_balanced_accuracy(x, y, train, [1.0]) > 0.7


def test_probe_set_and_paired_bootstrap():
    """Fit on one split, score on another; the paired CI brackets the difference and excludes 0 only for a
    real one."""
    from types import SimpleNamespace

    from planlab.ssl.probe import ProbeSet, paired_bootstrap, probe_predictions, run_probes

    def frames(split, n, logs):
        labels = {"speed": np.arange(n, dtype=float), "command": np.arange(n) % 3, "lead": np.arange(n) % 2}
        return SimpleNamespace(info={"split": split}, logs=[f"{split}{i % logs}" for i in range(n)],
                               labels=labels, images=None)  # fmt: skip

    ps = ProbeSet(frames("val", 40, 4), frames("train", 100, 10), max_train_frames=50)
    assert ps.is_test.sum() == 40 and (~ps.is_test).sum() == 50 and ps.protocol.startswith("fit on train")
    assert len(ps.logs) == 90 and ps.test_logs[0] == "val0" and len(ps.test_labels["speed"]) == 40
    same = ProbeSet(frames("val", 40, 4), frames("val", 40, 4))
    assert same.protocol.startswith("log split") and 0 < same.is_test.sum() < 40

    rng = np.random.default_rng(1)
    n = 400
    labels = {"speed": rng.normal(size=n), "command": rng.integers(0, 3, n), "lead": rng.integers(0, 2, n)}
    good = np.c_[labels["speed"], labels["command"] == 1, labels["command"] == 2, labels["lead"]].astype(
        float
    )
    good += 0.3 * rng.normal(size=good.shape)
    noise = rng.normal(size=(n, 4))
    is_test = np.arange(n) >= 300
    logs = [f"log{i // 20}" for i in range(n)]
    pa = probe_predictions(good, labels, is_test, logs=logs)
    pb = probe_predictions(noise, labels, is_test, logs=logs)
    test_labels = {k: v[is_test] for k, v in labels.items()}
    test_logs = [g for g, t in zip(logs, is_test, strict=True) if t]
    out = paired_bootstrap(pa, [pb], test_labels, test_logs, n_boot=300)
    for key in ("speed_r2", "command_bacc", "lead_bacc"):
        d = out[key]
        assert d["n_logs"] == 5 and d["ci"][0] <= d["diff"] <= d["ci"][1] and d["ci"][0] > 0, key
    assert out["speed_r2"]["diff"] == pytest.approx(
        run_probes(good, labels, is_test, logs=logs)["speed_r2"]
        - run_probes(noise, labels, is_test, logs=logs)["speed_r2"]
    )
    self_cmp = paired_bootstrap(pa, [pa], test_labels, test_logs, n_boot=50)
    assert self_cmp["lead_bacc"]["ci"] == [0.0, 0.0]


def test_grid_pixels_reference():
    """The raw-pixel reference averages each channel over the patch-grid cells, in row-major cell order."""
    from types import SimpleNamespace

    from planlab.ssl.probe import ProbeSet, grid_pixels

    images = np.arange(2 * 3 * 4 * 8, dtype=np.float32).reshape(2, 3, 4, 8)
    px = grid_pixels(images, (2, 4), batch_size=1)
    assert px.shape == (2, 3 * 2 * 4)
    assert px[1, 0] == images[1, 0, :2, :2].mean()  # channel 0, top-left 2 x 2 cell
    assert px[0, 3 * 8 - 1] == images[0, 2, 2:, 6:].mean()  # channel 2, bottom-right cell
    assert np.allclose(grid_pixels(images, (2, 4), indices=[1]), px[1:])
    labels = {"speed": np.zeros(2), "command": np.zeros(2, dtype=int), "lead": np.zeros(2, dtype=int)}
    frames = SimpleNamespace(info={"split": "val"}, logs=["a", "b"], labels=labels, images=images)
    train = SimpleNamespace(info={"split": "train"}, logs=["c", "d"], labels=labels, images=images[::-1])
    ps = ProbeSet(frames, train)
    assert np.allclose(ps.pixels((2, 4)), np.r_[px[::-1], px])  # probe-train rows first, then test rows


def test_variance_covariance_terms():
    from planlab.ssl.ijepa import variance_covariance

    torch.manual_seed(0)
    spread = torch.randn(4096, 8) * 2.0  # std 2 > target 1, independent channels
    v, c = variance_covariance(spread)
    assert float(v) == 0.0 and float(c) < 0.05
    collapsed = torch.ones(64, 8) + 1e-3 * torch.randn(64, 8)
    v, _ = variance_covariance(collapsed)
    assert float(v) == pytest.approx(1.0 - 1e-2, abs=2e-2)  # every channel's std is ~0: hinge ~1
    x = torch.randn(256, 1)
    correlated = torch.cat([x, x, -x], dim=1)
    _, c = variance_covariance(correlated)
    assert float(c) == pytest.approx(6 * 1.0 / 3, rel=0.2)  # 6 off-diagonal entries of |cov| 1, over D=3


def test_regulariser_is_off_by_default_and_adds_to_the_loss_when_on():
    from planlab.ssl.masks import MaskSpec

    cfg = ViTConfig(patch_size=16, embed_dim=32, depth=1, num_heads=2, grid_height=2, grid_width=4)
    images = torch.randn(4, 3, 32, 64)
    masks = MultiBlockMasks((2, 4), MaskSpec(num_targets=2, min_keep=1))(4, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    plain = IJepa(cfg, 16, 1, 2)
    torch.manual_seed(0)
    reg = IJepa(cfg, 16, 1, 2, reg=(1.0, 0.04, 1.0))
    a, b = plain(images, masks), reg(images, masks)
    assert a.reg == 0.0 and b.reg > 0
    assert float(b.loss.detach()) == pytest.approx(float(a.loss.detach()) + b.reg, rel=1e-5)
    b.loss.backward()
    assert reg.context_encoder.blocks[0].attn.qkv.weight.grad is not None
