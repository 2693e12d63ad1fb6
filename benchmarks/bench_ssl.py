"""SSL and study figures: I-JEPA step throughput of the small-preset config, mask drawing, and scoring a
frozen-encoder head from the embedding cache vs planning every scene through the encoder on images."""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import Result, timeit

SECTION = "ssl"


def _pretrain_throughput() -> list[Result]:
    import torch

    from planlab.ssl.config import CONFIGS_DIR, build_pretrain_config
    from planlab.ssl.masks import MaskSpec, MultiBlockMasks
    from planlab.ssl.pretrain import _step_generator, build_model, random_crop

    cfg = build_pretrain_config([CONFIGS_DIR / "ijepa_small.yaml"])
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.param_groups(), lr=1e-4)
    m = cfg.masks
    masker = MultiBlockMasks(cfg.grid, MaskSpec(m.num_targets, tuple(m.target_scale), tuple(m.target_aspect),
                                                tuple(m.context_scale), tuple(m.context_aspect), m.min_keep))  # fmt: skip
    b = cfg.trainer.batch_size
    x = torch.randn(b, 3, cfg.camera.image_height, cfg.camera.image_width)
    state = {"step": 0}

    def step() -> None:
        gen = _step_generator(0, state["step"])
        state["step"] += 1
        images = random_crop(x, tuple(cfg.augment.crop_scale), gen)
        stats = model(images, masker(b, gen))
        opt.zero_grad()
        stats.loss.backward()
        opt.step()
        model.update_target(0.996)

    step()  # warm-up
    t = timeit(step, repeat=3)
    tm = timeit(lambda: masker(b, _step_generator(0, 1)), repeat=5)
    grid = f"{cfg.grid[0]}x{cfg.grid[1]}"
    return [
        Result(
            SECTION,
            f"I-JEPA training step, ijepa_small ({cfg.encoder.embed_dim}-d x {cfg.encoder.depth}, grid {grid})",
            b / t,
            "images/s",
            notes=f"batch {b}, context + target encoder + predictor, fwd+bwd+EMA",
        ),  # fmt: skip
        Result(SECTION, f"multi-block masks for a batch of {b}", tm * 1e3, "ms", higher_is_better=False),
    ]


def _cached_scoring(workdir: Path) -> list[Result]:
    """Plans of a frozen encoder + MLP agent for the tiny world's test scenes: batched from the embedding
    cache vs ``compute_trajectory`` per scene (images decoded and encoded every time)."""
    import torch

    from planlab.agents.registry import build_agent
    from planlab.data.loader import SceneLoader
    from planlab.models.vit import ViTConfig, save_vit
    from planlab.scene import SceneFilter
    from planlab.ssl.encoder import JepaViT
    from planlab.study.evaluate import cached_trajectories
    from planlab.training.embeddings import build_embedding_cache
    from planlab.world.config import load_world_config
    from planlab.world.generate import generate_dataset

    root = workdir / "tiny"
    if not (root / "navsim_logs").is_dir():
        generate_dataset(root, load_world_config("tiny"), seed=0)
    torch.manual_seed(0)
    save_vit(JepaViT(ViTConfig(16, 128, 4, 4, 4.0, 4, 16)), workdir / "enc")
    agent = build_agent("encoder_mlp", config={"camera": {"image_height": 64, "image_width": 256},
                                               "encoder": {"kind": "vit", "path": str(workdir / "enc")}})  # fmt: skip
    agent.initialize()
    loader = SceneLoader(
        root, "test", SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1)
    )
    tokens = list(loader.tokens)
    spec = agent.embedding_spec()
    store, _ = build_embedding_cache(spec, [(loader, tokens)], str(workdir / "emb"), progress=False)
    sensors = agent.get_sensor_config()
    t_img = timeit(lambda: [agent.compute_trajectory(loader.get_agent_input_from_token(t, sensors)) for t in tokens],
                   repeat=2)  # fmt: skip
    t_cache = timeit(
        lambda: cached_trajectories(agent, loader, tokens, store, spec.patches, "camera"), repeat=3
    )
    n = len(tokens)
    return [
        Result(
            SECTION,
            "frozen encoder + MLP plans from the embedding cache",
            n / t_cache,
            "scenes/s",
            baseline=n / t_img,
            notes="baseline: compute_trajectory per scene on images (JPEG decode + ViT)",
        ),  # fmt: skip
    ]


def run(workdir: Path) -> list[Result]:
    return _pretrain_throughput() + _cached_scoring(workdir)
