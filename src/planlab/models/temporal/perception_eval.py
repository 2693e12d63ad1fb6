"""``evaluate_perception``: the perception metrics of an agent on a split (what ``planlab eval perception``
runs): every scene goes through the agent's own feature and target builders (contract-checked), batched
forward in eval mode, the agent's decoder, and :class:`~planlab.metrics.perception.PerceptionMetrics`.
Writes ``perception.json`` (metrics, scene count, split, agent) atomically into the output directory.
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
from planlab.features.base import check_unique_names, compute_features, compute_targets
from planlab.scene import SensorConfig

RESULT_FILE = "perception.json"


def evaluate_perception(
    agent: Any,
    loader: Any,
    out_dir: str | os.PathLike,
    batch_size: int = 16,
    max_scenes: int | None = None,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
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
    agent.eval()
    device = agent.device
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(tokens), desc="perception", unit="scene", disable=not progress, leave=False)
    try:
        for lo in range(0, len(tokens), batch_size):
            samples = []
            for token in tokens[lo : lo + batch_size]:
                feats = compute_features(fbs, loader.get_agent_input_from_token(token, sensors))
                targs = compute_targets(
                    tbs, loader.get_scene_from_token(token, SensorConfig.build_no_sensors())
                )
                samples.append((feats, targs))
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
