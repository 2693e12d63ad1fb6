"""Training benchmarks: the frozen-embedding cache against running the frozen encoder every step, and the
training throughput of the main agents.

1. Embedding cache. The calibration scenes (real formats) feed ``encoder_mlp`` with a ViT-S/16-sized frozen
   encoder (384-d, 12 blocks) at 64×256 (64 patch tokens, 4:1). One epoch of head training reads either the
   cached camera images and runs the encoder every step, or the cached pooled vectors. Same seed, same
   order: the per-step losses must be equal; the figure is the per-epoch speed-up (target ≥ 20×).
2. Throughput: optimizer steps (forward + backward + AdamW) on batches (64; 32 for the heavy heads) built from each agent's declared
   feature/target specs, median of timed steps after warm-up; samples/s, the better of 1 thread and torch's
   default (on a shared 2-core machine OpenMP spinning can make 2 threads far slower than 1). Data loading
   is excluded here (the loader has its own benchmark).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Result

ROOT = Path(__file__).resolve().parents[1]
CALIB = ROOT / "tests" / "data" / "navsim_calibration"
SECTION = "training"

VIT_S = {
    "agent.encoder.embed_dim": 384,
    "agent.encoder.depth": 12,
    "agent.encoder.num_heads": 6,
    "agent.encoder.patch_size": 16,
    "agent.camera.image_height": 64,
    "agent.camera.image_width": 256,
}


def _epoch(agent, dataset, batch_size: int, seed: int) -> tuple[float, list[float]]:
    """One epoch of head training in a plain loop; (seconds, per-step losses)."""
    from torch.utils.data import DataLoader

    from planlab.models.optim import build_optimizer

    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g, num_workers=0)
    opt = build_optimizer(agent.parameter_groups(), "adamw", 1e-4)
    agent.train()
    losses = []
    t0 = time.perf_counter()
    for features, targets in loader:
        out = agent.compute_loss(features, targets, agent(features))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return time.perf_counter() - t0, losses


def bench_embedding_cache(workdir: Path) -> list[Result]:
    from planlab.agents.registry import build_agent
    from planlab.data.feature_cache import FeatureCache
    from planlab.training.config import build_train_config
    from planlab.training.data import load_split
    from planlab.training.dataset import EmbeddingSource, PlanningDataset, build_feature_cache
    from planlab.training.embeddings import build_embedding_cache

    over = {"data.root": str(CALIB), "data.train_split": "calib", "data.val_split": None, **VIT_S}
    cfg = build_train_config("encoder_mlp", overrides=over)
    part = load_split(
        cfg, "calib", build_agent("encoder_mlp", config=cfg.agent_settings()).get_sensor_config()
    )
    cache_root = workdir / "features"
    results = []

    def fresh_agent():
        torch.manual_seed(0)
        return build_agent("encoder_mlp", config=cfg.agent_settings())

    agent = fresh_agent()
    fbs, tbs = agent.get_feature_builders(), agent.get_target_builders()
    build_feature_cache(
        part.loader, part.tokens, fbs, tbs, cache_root, agent.get_sensor_config(), progress=False
    )
    t0 = time.perf_counter()
    store, _ = build_embedding_cache(
        agent.embedding_spec(),
        [(part.loader, part.tokens)],
        str(workdir / "emb"),
        batch_size=16,
        progress=False,
    )
    encode_once = time.perf_counter() - t0
    cache = FeatureCache(cache_root)
    with_images = PlanningDataset(part.tokens, fbs, tbs, part.loader, cache)
    with_embeddings = PlanningDataset(
        part.tokens, fbs, tbs, part.loader, cache, embeddings=EmbeddingSource(store, "camera", False)
    )
    _epoch(fresh_agent(), with_embeddings, 8, seed=0)  # warm-up (allocator, first reads)
    best_img, loss_img = _epoch(fresh_agent(), with_images, 8, seed=0)
    best_emb, loss_emb = min(
        (_epoch(fresh_agent(), with_embeddings, 8, seed=0) for _ in range(3)), key=lambda r: r[0]
    )
    max_dev = max(abs(a - b) for a, b in zip(loss_img, loss_emb, strict=True))
    n = len(part.tokens)
    results.append(
        Result(
            SECTION,
            "head training per epoch, frozen-embedding cache vs encoder every step",
            best_img / best_emb,
            "x",
            target=20.0,
            baseline=None,
            notes=f"encoder_mlp, ViT-S/16 frozen at 64x256, {n} calibration scenes, batch 8: "
            f"{best_img * 1000 / n:.1f} vs {best_emb * 1000 / n:.2f} ms/scene; max per-step loss difference "
            f"{max_dev:.1e}; one-time encoding {encode_once:.1f} s",
            extra={
                "epoch_s_encoder": best_img,
                "epoch_s_cached": best_emb,
                "max_loss_diff": max_dev,
                "losses_equal": max_dev <= 1e-5,
            },
        )
    )
    results.append(
        Result(
            SECTION,
            "per-step loss difference, cached vs encoder (fixed seed)",
            max_dev,
            "abs",
            target=1e-5,
            higher_is_better=False,
            notes="must be equal (float32 cache)",
        )
    )
    return results


def _random_batch(builders, batch: int) -> dict[str, torch.Tensor]:
    out = {}
    for b in builders:
        for key, spec in b.specs().items():
            shape = [batch, *[s if isinstance(s, int) else 4 for s in spec.shape]]
            if spec.torch_dtype.is_floating_point:
                x = torch.rand(shape) if spec.value_range == (0.0, 1.0) else torch.randn(shape)
            else:
                x = torch.zeros(shape, dtype=spec.torch_dtype)
            out[key] = x
    return out


def _throughput(
    name: str, overrides: dict, batch: int = 64, steps: int = 8, cached: str | None = None
) -> tuple[float, int]:
    """(samples/s, threads) — the better of 1 thread and the default thread count."""
    default = torch.get_num_threads()
    best = (0.0, default)
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        try:
            rate = _throughput_once(name, overrides, batch, steps, cached)
        finally:
            torch.set_num_threads(default)
        best = max(best, (rate, threads))
    return best


def _throughput_once(name: str, overrides: dict, batch: int, steps: int, cached: str | None) -> float:
    from planlab.agents.registry import build_agent
    from planlab.models.optim import build_optimizer
    from planlab.training.config import build_train_config

    cfg = build_train_config(name, overrides=overrides)
    torch.manual_seed(0)
    agent = build_agent(name, config=cfg.agent_settings())
    if name == "vocab_scorer":
        k, t = cfg.agent.vocabulary_size, cfg.agent.trajectory.num_poses
        agent.scorer.set_vocabulary(torch.randn(k, t, 3))
        agent.has_vocabulary = True
    feats = _random_batch(agent.get_feature_builders(), batch)
    if cached:
        feats.pop("camera")
        grid = (cfg.agent.camera.image_height // 16) * (cfg.agent.camera.image_width // 16)
        feats["camera_pooled"] = torch.randn(batch, agent.encoder.embed_dim)
        if cached == "patches":
            feats["camera_patches"] = torch.randn(batch, grid, agent.encoder.embed_dim)
    targets = (
        _random_batch(agent.get_target_builders(), batch)
        if name != "vocab_scorer"
        else {
            "trajectory": torch.randn(batch, 8, 3),
            "vocab_imitation": torch.softmax(torch.randn(batch, cfg.agent.vocabulary_size), 1),
            "vocab_scores": torch.rand(batch, cfg.agent.vocabulary_size, len(cfg.agent.sub_scores)),
        }
    )
    opt = build_optimizer(agent.parameter_groups(), "adamw", 1e-4)
    agent.train()
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss = agent.compute_loss(feats, targets, agent(feats))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def bench_throughput() -> list[Result]:
    small_vit = {"agent.camera.image_height": 128, "agent.camera.image_width": 512}
    cases = [
        ("ego_status_mlp", {}, None, "NAVSIM ego MLP 8-512x3-24"),
        ("encoder_mlp", {**small_vit}, "pooled", "head only on cached pooled vectors"),
        (
            "encoder_mlp",
            {**small_vit},
            None,
            "ViT-Tiny-ish (192-d, 4 blocks) frozen encoder runs every step, 128x512",
        ),
        ("encoder_transformer", {**small_vit}, "patches", "pose-query decoder on 256 cached patch tokens"),
        ("vocab_scorer", {"agent.use_camera": False}, None, "256-entry vocabulary, ego context only"),
        ("vocab_scorer", {**small_vit}, "patches", "256-entry vocabulary over 256 cached patch tokens"),
    ]
    out = []
    for name, over, cached, note in cases:
        light = name == "ego_status_mlp" or cached == "pooled"
        batch = 64 if light else 32
        rate, threads = _throughput(name, over, batch=batch, cached=cached, steps=8 if light else 3)
        label = name + (f" ({cached} cache)" if cached else "")
        out.append(
            Result(
                SECTION,
                f"train throughput {label}",
                rate,
                "samples/s",
                notes=f"batch 64, forward+backward+AdamW, {threads} thread(s); {note}",
            )
        )
    return out


def run(workdir: Path) -> list[Result]:
    workdir.mkdir(parents=True, exist_ok=True)
    np.random.seed(0)
    return [*bench_embedding_cache(workdir), *bench_throughput()]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Path(tmp)):
            print(f"{r.name}: {r.value:.4g} {r.unit}  ({r.notes})")
