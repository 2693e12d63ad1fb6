"""Scoring a frozen-encoder experiment from the embedding cache: the same evaluator, fewer encoder passes.

An experiment's evaluation stage (:func:`planlab.experiments.evaluate.evaluate_run`) runs the agent on every
test scene: decode three JPEGs, run the encoder, run the head. When the encoder is fully frozen, the encoder
output of a scene never changes between the runs of a study, so it is computed once per scene into the
frozen-embedding cache and every run's head reads it. The trajectories then go through the very same scorer
(:func:`planlab.evaluation.runner.score_submissions`, the same metric cache and split) and land in the same
files (``<run>/eval/<split>/pdm_scores.csv`` + ``summary.json``). Before scoring, ``parity_scenes`` scenes are
planned both ways (images through ``compute_trajectory``, and the cache); any pose differing by more than
``PARITY_TOLERANCE`` metres stops the run — a stale or foreign cache can never leak into a result.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from planlab.errors import ContractError, PlanlabError

PARITY_TOLERANCE = 1e-4  # m (and rad): float32 round-off of the head on the same inputs is ~1e-6


def _feature_batch(agent: Any, loader: Any, tokens: list[str], store: Any, patches: bool, camera: str) -> Any:
    import torch

    from planlab.scene import SensorConfig
    from planlab.training.dataset import compute_checked_features

    builders = [b for b in agent.get_feature_builders() if b.get_unique_name() != camera]
    rows: list[dict[str, Any]] = []
    for token in tokens:
        parts = compute_checked_features(
            builders, loader.get_agent_input_from_token(token, SensorConfig.build_no_sensors())
        )
        feats: dict[str, Any] = {}
        for out in parts.values():
            feats.update(out)
        pooled, grid = store.get(token, patches=patches)
        feats["camera_pooled"] = torch.from_numpy(pooled)
        if grid is not None:
            feats["camera_patches"] = torch.from_numpy(grid)
        rows.append(feats)
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def cached_trajectories(agent: Any, loader: Any, tokens: list[str], store: Any, patches: bool, camera: str,
                        batch_size: int = 256) -> np.ndarray:  # fmt: skip
    """``[N, num_poses, 3]`` float64 plans of ``tokens`` from the embedding cache (agent in eval mode)."""
    import torch

    agent.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(tokens), batch_size):
            batch = _feature_batch(agent, loader, tokens[start : start + batch_size], store, patches, camera)
            traj = agent.forward({k: v.to(agent.device) for k, v in batch.items()})["trajectory"]
            out.append(traj.detach().to("cpu", torch.float64).numpy())
    return np.concatenate(out) if out else np.zeros((0, agent.trajectory_sampling.num_poses, 3))


def check_parity(agent: Any, loader: Any, tokens: list[str], cached: np.ndarray) -> float:
    """Max |Δ| between image-path plans (``compute_trajectory``) and ``cached`` plans of ``tokens``."""
    sensors = agent.get_sensor_config()
    worst = 0.0
    for token, plan in zip(tokens, cached, strict=True):
        poses = np.asarray(agent.compute_trajectory(loader.get_agent_input_from_token(token, sensors)).poses)
        worst = max(worst, float(np.abs(poses - plan).max()))
    return worst


def evaluate_cached(
    run: Path, config: dict[str, Any], embeddings_root: str, parity_scenes: int = 4
) -> dict[str, Any]:
    """Score the experiment's checkpoint on ``eval.split`` from the embedding cache (see the module docstring).

    Returns what the experiment's ``meta.json`` records for an evaluation job (as the eval stage does).
    """
    from planlab.config import build_config
    from planlab.evaluation.cache import MetricCache, build_cache
    from planlab.evaluation.results import write_results
    from planlab.evaluation.runner import (
        Submission,
        _versions,
        check_metric,
        score_submissions,
        validate_poses,
    )
    from planlab.experiments import evaluate as exp_eval
    from planlab.experiments.spec import EvalSettings
    from planlab.training.checkpoint import load_agent_from_checkpoint, resolve_checkpoint
    from planlab.training.config import train_config_from_dict
    from planlab.training.embeddings import build_embedding_cache

    t0 = time.perf_counter()
    ev = build_config(EvalSettings, config["eval"])
    train = train_config_from_dict(config["train"])
    check_metric(ev.metric)
    ckpt = resolve_checkpoint(run, which=ev.checkpoint)
    agent = load_agent_from_checkpoint(str(ckpt))
    spec = agent.embedding_spec() if hasattr(agent, "embedding_spec") else None
    if spec is None:
        raise ContractError(
            f"{run.name}: the agent's encoder is not fully frozen; it cannot be scored from a cache"
        )
    # The experiment room's own split loader and shared metric cache: the agent path scores these same scenes.
    loader = exp_eval._loader(ev, train)
    tokens = list(loader.tokens)
    if not tokens:
        raise PlanlabError(f"split {ev.split!r} has no scenes to evaluate")
    cache_dir = exp_eval.metric_cache_dir(run, ev, loader)
    workers = ev.workers or 1
    with exp_eval._cache_lock(cache_dir):
        build_cache(loader, cache_dir, workers=workers, progress=False)
    store, encoded = build_embedding_cache(spec, [(loader, tokens)], embeddings_root, progress=False)
    camera = spec.camera_builder.get_unique_name()
    plans = cached_trajectories(agent, loader, tokens, store, spec.patches, camera)
    k = min(parity_scenes, len(tokens))
    picks = [int(round(i * (len(tokens) - 1) / max(k - 1, 1))) for i in range(k)]
    worst = check_parity(agent, loader, [tokens[i] for i in picks], plans[picks])
    if not worst <= PARITY_TOLERANCE:
        raise PlanlabError(
            f"{run.name}: plans from the embedding cache differ from the image path by {worst:.2e} "
            f"(> {PARITY_TOLERANCE}); the cache at {store.dir} does not match this encoder"
        )
    interval = float(agent.trajectory_sampling.interval_length)
    subs = []
    for token, plan in zip(tokens, plans, strict=True):
        try:
            subs.append(
                Submission(token, validate_poses(plan, agent.trajectory_sampling.num_poses), interval)
            )
        except ValueError as exc:
            subs.append(Submission(token, None, reason=f"invalid trajectory: {exc}"))
    cache = MetricCache(cache_dir)
    cache.check_versions()
    rows = score_submissions(cache, subs, ev.metric)
    out = exp_eval.split_dir(run, ev.split)
    seconds = time.perf_counter() - t0
    summary = write_results(out, rows, ev.metric, {
        "agent": f"{run.name}:{ckpt.name}",
        "split": loader.split,
        "shard": None,
        "logs": sorted(loader.get_tokens_list_per_log()),
        "token_order": {t: i for i, t in enumerate(tokens)},
        "cache": str(cache_dir),
        "timing": {"seconds": seconds, "scenes_per_second": len(rows) / seconds if seconds > 0 else math.nan},
        "versions": _versions(),
        "experiment": run.name,
        "checkpoint": str(ckpt),
        "features": {"source": "embedding_cache", "store": str(store.dir), "encoded_now": encoded,
                     "parity_scenes": k, "parity_max_abs_diff": worst},
    })  # fmt: skip
    return {
        "eval": {
            "split": ev.split,
            "metric": ev.metric,
            "shard": None,
            "scenes": len(rows),
            "score": summary.get("score"),
            "out": str(out),
            "checkpoint": str(ckpt),
            "metric_cache": str(cache_dir),
            "features": "embedding_cache",
            "parity_max_abs_diff": worst,
        }
    }
