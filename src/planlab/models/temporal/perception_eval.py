"""``evaluate_perception``: the perception metrics of an agent on a split (what ``planlab eval perception``
runs): every scene goes through the agent's own feature and target builders (contract-checked), batched
forward in eval mode, the agent's decoder, and :class:`~planlab.metrics.perception.PerceptionMetrics`.
Writes ``perception.json`` (metrics, scene count, split, agent) atomically into the output directory.

With a feature cache (``cache``, the ``data.cache.path`` of training) every builder output is read from it
when present — contract-checked on load — and written to it otherwise, so repeated evaluations (seeds,
ablations sharing their targets) compute each BEV-semantic raster once.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import default_collate

from planlab.atomic import atomic_write_text
from planlab.errors import ConfigError, DataError
from planlab.features.base import (
    builder_record,
    check_contract,
    check_unique_names,
    compute_features,
    compute_targets,
)
from planlab.scene import SensorConfig

RESULT_FILE = "perception.json"


def _outputs(builders: list[Any], compute: Any, cache: Any, log: str, token: str) -> dict[str, torch.Tensor]:
    """Contract-checked outputs of ``builders``: from the cache when there, else computed (and cached)."""
    merged: dict[str, torch.Tensor] = {}
    todo = [b for b in builders if cache is None or not cache.has(b.cache_key, log, token)]
    for b in builders:
        if b not in todo:
            arrays = cache.read(b.cache_key, log, token)
            merged.update(check_contract(b, {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}))
    if todo:
        fresh = compute(todo)
        for b in todo:
            part = {k: fresh[k] for k in b.specs()}
            merged.update(part)
            if cache is not None:
                cache.write(b.cache_key, log, token, {k: v.numpy() for k, v in part.items()})
    return merged


def evaluate_perception(
    agent: Any,
    loader: Any,
    out_dir: str | os.PathLike,
    batch_size: int = 16,
    max_scenes: int | None = None,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
    cache: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Perception metrics of ``agent`` (an agent with perception heads) over ``loader``'s scenes."""
    if not callable(getattr(agent, "perception_outputs", None)) or not callable(
        getattr(agent, "new_perception_metrics", None)
    ):
        raise ConfigError(
            f"agent {agent.name()!r} has no perception heads (planlab eval perception needs them)"
        )
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    tokens = list(loader.tokens)[: max_scenes if max_scenes is not None else None]
    if not tokens:
        raise DataError("no scenes to evaluate (the split is empty under this scene filter)")
    fbs, tbs = agent.get_feature_builders(), agent.get_target_builders()
    check_unique_names([*fbs, *tbs])
    sensors = agent.get_sensor_config()
    metrics = agent.new_perception_metrics()
    store = None
    if cache is not None:
        from planlab.data.feature_cache import FeatureCache

        store = FeatureCache(cache)
        for b in [*fbs, *tbs]:  # the same description training's cache build records
            store.register_builder(b.cache_key, builder_record(b))
    logs = {t: log for log, toks in loader.get_tokens_list_per_log().items() for t in toks}
    agent.eval()
    device = agent.device
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(tokens), desc="perception", unit="scene", disable=not progress, leave=False)
    try:
        for lo in range(0, len(tokens), batch_size):
            samples = []
            for token in tokens[lo : lo + batch_size]:

                def feats_of(todo: list[Any], t: str = token) -> dict[str, torch.Tensor]:
                    return compute_features(todo, loader.get_agent_input_from_token(t, sensors))

                def targs_of(todo: list[Any], t: str = token) -> dict[str, torch.Tensor]:
                    return compute_targets(
                        todo, loader.get_scene_from_token(t, SensorConfig.build_no_sensors())
                    )

                log = logs[token]
                samples.append(
                    (_outputs(fbs, feats_of, store, log, token), _outputs(tbs, targs_of, store, log, token))
                )
            feats, targs = default_collate(samples)
            feats = {k: v.to(device) for k, v in feats.items()}
            targs = {k: v.to(device) for k, v in targs.items()}
            with torch.no_grad():
                metrics.update(agent.perception_outputs(agent(feats), targs))
            bar.update(len(samples))
    finally:
        bar.close()
    values = metrics.compute()
    result = {
        "agent": agent.name(),
        "num_scenes": len(tokens),
        "seconds": time.perf_counter() - t0,
        # JSON has no NaN: a metric without ground truth (e.g. no agent in the split) is null
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in sorted(values.items())},
        **(extra or {}),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / RESULT_FILE, json.dumps(result, indent=2) + "\n")
    return result
