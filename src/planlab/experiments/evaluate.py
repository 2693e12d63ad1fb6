"""The evaluation stage of an experiment: score its checkpoint with :mod:`planlab.evaluation` into the run dir.

Outputs: ``<run>/eval/<split>/pdm_scores.csv`` + ``summary.json`` (+ ``failures.csv``); a sharded
evaluation writes ``<run>/eval/<split>/shards/<i>-of-<n>/`` per array task and the merge job combines
them. The metric cache depends only on the scenes, so experiments share one per (data root, split,
scene filter) under ``<experiments root>/_metric_cache/``; it is completed under an ``flock`` before
scoring, so concurrent evaluation jobs (shards, sweep arrays) never race on its index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from planlab.config import build_config
from planlab.errors import DataError, PlanlabError
from planlab.experiments.spec import EvalSettings

FUTURE_FRAMES = 10  # PDMS needs the 4 s ground truth (fact sheet §3.3: 10 future frames at 2 Hz)


def split_dir(run: Path, split: str) -> Path:
    return run / "eval" / split


def shard_dir(run: Path, split: str, index: int, count: int) -> Path:
    return split_dir(run, split) / "shards" / f"{index:03d}-of-{count:03d}"


def _settings(config: dict[str, Any]) -> tuple[EvalSettings, Any]:
    from planlab.training.config import train_config_from_dict

    return build_config(EvalSettings, config["eval"]), train_config_from_dict(config["train"])


def _loader(ev: EvalSettings, train: Any) -> Any:
    from planlab.data import SceneLoader
    from planlab.scene import SceneFilter

    root = ev.data_root or train.data.root
    scene_filter = SceneFilter(
        num_history_frames=train.data.num_history_frames,  # the history the agent was trained with
        num_future_frames=FUTURE_FRAMES,
        frame_interval=ev.frame_interval,
        has_route=True,
        max_scenes=ev.max_scenes,
    )
    return SceneLoader(root, ev.split, scene_filter, maps_root=train.data.maps_root)


def metric_cache_dir(run: Path, ev: EvalSettings, loader: Any) -> Path:
    """``eval.cache_dir`` or a shared cache keyed by dataset, split and scene filter."""
    if ev.cache_dir:
        return Path(ev.cache_dir).expanduser().absolute()
    key = "|".join(
        str(x)
        for x in (loader.layout.log_dir.resolve(), ev.split, loader.scene_filter.num_history_frames,
                  FUTURE_FRAMES, ev.frame_interval, ev.max_scenes)
    )  # fmt: skip
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return run.parent / "_metric_cache" / f"{ev.split}-{digest}"


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / ".planlab-build.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def evaluate_run(run: Path, config: dict[str, Any], shard: tuple[int, int] | None = None) -> dict[str, Any]:
    """Score the experiment's checkpoint (``eval.checkpoint``: best or last) on ``eval.split``."""
    from planlab.evaluation.cache import build_cache
    from planlab.evaluation.runner import AgentFactory, check_metric, evaluate_agent
    from planlab.training.checkpoint import load_agent_from_checkpoint, resolve_checkpoint

    ev, train = _settings(config)
    check_metric(ev.metric)
    ckpt = resolve_checkpoint(run, which=ev.checkpoint)
    load_agent_from_checkpoint(str(ckpt))  # fail fast, with the checkpoint's one-line error, before any work
    loader = _loader(ev, train)
    if not loader.tokens:
        raise DataError(f"split {ev.split!r} of {loader.layout.log_dir} has no scenes to evaluate")
    cache = metric_cache_dir(run, ev, loader)
    cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or len(os.sched_getaffinity(0))
    workers = ev.workers or max(1, min(cpus, 8))
    with _cache_lock(cache):
        build_cache(loader, cache, workers=workers, progress=False)
    out = split_dir(run, ev.split) if shard is None or shard[1] == 1 else shard_dir(run, ev.split, *shard)
    factory = AgentFactory(load_agent_from_checkpoint, (str(ckpt),), {}, label=f"{run.name}:{ckpt.name}")
    result = evaluate_agent(
        factory, loader, out, ev.metric, cache, workers=workers, shard=shard if shard and shard[1] > 1 else None,
        progress=False, extra={"experiment": run.name, "checkpoint": str(ckpt)},
    )  # fmt: skip
    return {
        "eval": {
            "split": ev.split,
            "metric": ev.metric,
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "scenes": len(result.rows),
            "score": result.summary.get("score"),
            "out": str(out),
            "checkpoint": str(ckpt),
            "metric_cache": str(cache),
        }
    }


def merge_run(run: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Merge the ``eval.shards`` shard outputs into ``<run>/eval/<split>/``; every shard must be present."""
    from planlab.evaluation.runner import merge_results

    ev, _ = _settings(config)
    n = ev.shards
    dirs = [shard_dir(run, ev.split, i, n) for i in range(n)]
    missing = [d.name for d in dirs if not (d / "pdm_scores.csv").is_file()]
    if missing:
        raise PlanlabError(
            f"{run.name}: cannot merge, shard(s) {', '.join(missing)} of {n} have no pdm_scores.csv"
        )
    result = merge_results(dirs, split_dir(run, ev.split))
    return {
        "eval": {
            "split": ev.split,
            "merged_shards": n,
            "scenes": len(result.rows),
            "score": result.summary.get("score"),
        }
    }
