"""The library side of ``planlab cache``: fill the feature cache or the frozen-embedding cache for the
train and validation splits of a training config (the same tokens ``planlab train`` will use)."""

from __future__ import annotations

import time
from typing import Any

from planlab.errors import ConfigError


def _agent_and_splits(cfg: Any) -> tuple[Any, list[Any]]:
    from planlab.agents.registry import build_agent
    from planlab.training.data import load_split

    agent = build_agent(cfg.agent_name, config=cfg.agent_settings())
    sensor = agent.get_sensor_config()
    parts = [load_split(cfg, cfg.data.train_split, sensor, None, train=True)]
    if cfg.data.val_split:
        parts.append(load_split(cfg, cfg.data.val_split, sensor))
    return agent, parts


def cache_features(cfg: Any, progress: bool = True) -> dict[str, Any]:
    """Compute every missing feature/target entry (``data.cache.path``) in ``data.cache.build_workers`` processes."""
    from planlab.training.dataset import build_feature_cache

    if not cfg.data.cache.path:
        raise ConfigError("data.cache.path is not set (pass data.cache.path=DIR)")
    t0 = time.perf_counter()
    agent, parts = _agent_and_splits(cfg)
    out: dict[str, Any] = {"cache": cfg.data.cache.path, "builders": []}
    fbs, tbs = agent.get_feature_builders(), agent.get_target_builders()
    out["builders"] = [b.cache_key for b in [*fbs, *tbs]]
    for part in parts:
        out[part.name] = build_feature_cache(
            part.loader,
            part.tokens,
            fbs,
            tbs,
            cfg.data.cache.path,
            agent.get_sensor_config(),
            workers=cfg.data.cache.build_workers,
            rebuild=cfg.data.cache.rebuild,
            progress=progress,
        )
    out["seconds"] = time.perf_counter() - t0
    return out


def cache_embeddings(cfg: Any, progress: bool = True, device: str | None = None) -> dict[str, Any]:
    """Run the agent's frozen encoder once per token of the splits into ``data.cache.embeddings``."""
    from planlab.training.embeddings import build_embedding_cache

    if not cfg.data.cache.embeddings:
        raise ConfigError("data.cache.embeddings is not set (pass data.cache.embeddings=DIR)")
    t0 = time.perf_counter()
    agent, parts = _agent_and_splits(cfg)
    get_spec = getattr(agent, "embedding_spec", None)
    spec = get_spec() if callable(get_spec) else None
    if spec is None:
        raise ConfigError(f"agent {cfg.agent_name!r} has no frozen image encoder to cache")
    store, n = build_embedding_cache(
        spec,
        [(p.loader, p.tokens) for p in parts],
        cfg.data.cache.embeddings,
        batch_size=cfg.trainer.batch_size,
        device=device,
        progress=progress,
        dtype=cfg.data.cache.embeddings_dtype,
    )
    return {
        "store": str(store.dir),
        "encoded": n,
        "tokens": {p.name: len(p.tokens) for p in parts},
        "patches": spec.patches,
        "seconds": time.perf_counter() - t0,
    }


def build_vocabulary(
    cfg: Any, out: str, size: int | None = None, seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    """k-means vocabulary over the logged futures of the config's training tokens (subset applied)."""
    import numpy as np
    from tqdm import tqdm

    from planlab.models.vocabulary import kmeans_vocabulary, save_vocabulary
    from planlab.scene import SensorConfig
    from planlab.training.data import load_split

    t0 = time.perf_counter()
    settings = cfg.agent
    num_poses = settings.trajectory.num_poses
    k = int(size or getattr(settings, "vocabulary_size", 0) or 0)
    if k < 2:
        raise ConfigError("give the vocabulary size (--size or agent.vocabulary_size >= 2)")
    part = load_split(cfg, cfg.data.train_split, SensorConfig.build_no_sensors(), None, train=True)
    futures = []
    for token in tqdm(part.tokens, desc="futures", unit="scene", disable=not progress, leave=False):
        scene = part.loader.get_scene_from_token(token, SensorConfig.build_no_sensors())
        futures.append(scene.get_future_trajectory(num_poses).poses)
    vocab = kmeans_vocabulary(np.stack(futures), k, seed)
    info = {
        "split": part.name,
        "num_trajectories": len(futures),
        "seed": seed,
        "subset": part.summary()["subset"],
        "tokens_sha256": part.summary()["tokens_sha256"],
    }
    path = save_vocabulary(vocab, out, info)
    return {"path": str(path), "size": k, "trajectories": len(futures), "seconds": time.perf_counter() - t0}
