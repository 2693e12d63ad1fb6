"""Datasets of (features, targets) per scene token, from the feature cache or computed on the fly.

Every builder output is contract-checked (when computed and again when read back from the cache), and any
``trajectory`` target is checked against the scene's future in the current rear-axle frame when it is
computed (lesson C1). With an embedding store, the frozen encoder's pooled vector / patch grid of the token
replaces the camera image (``camera_pooled`` [D], ``camera_patches`` [P, D]).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from planlab.data.feature_cache import EmbeddingStore, FeatureCache
from planlab.errors import ContractError
from planlab.features.base import (
    Builder,
    FeatureBuilder,
    TargetBuilder,
    builder_record,
    check_contract,
    check_unique_names,
)
from planlab.features.trajectory import check_trajectory_target
from planlab.scene import SensorConfig


@dataclass
class EmbeddingSource:
    """Frozen-encoder outputs replacing builder ``replaces`` (its key ``camera``) in the features."""

    store: EmbeddingStore
    replaces: str
    patches: bool


def _to_numpy(out: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def _to_torch(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in arrays.items()}


def compute_checked_targets(
    builders: Sequence[TargetBuilder], scene: Any
) -> dict[str, dict[str, torch.Tensor]]:
    """{builder name: contract-checked output}; a ``trajectory`` key must be the current-frame future."""
    out = {}
    for b in builders:
        res = check_contract(b, b.compute_targets(scene))
        if "trajectory" in res:
            check_trajectory_target(b.get_unique_name(), res["trajectory"], scene)
        out[b.get_unique_name()] = res
    return out


def compute_checked_features(
    builders: Sequence[FeatureBuilder], agent_input: Any
) -> dict[str, dict[str, torch.Tensor]]:
    return {b.get_unique_name(): check_contract(b, b.compute_features(agent_input)) for b in builders}


def _merge(parts: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    merged: dict[str, torch.Tensor] = {}
    for name, out in parts.items():
        for k, v in out.items():
            if k in merged:
                raise ContractError(f"builder {name!r} returns key {k!r}, which another builder returns too")
            merged[k] = v
    return merged


class PlanningDataset(Dataset):
    """(features, targets) for ``tokens``; reads the feature cache when given, else computes from the loader."""

    def __init__(
        self,
        tokens: Sequence[str],
        feature_builders: Sequence[FeatureBuilder],
        target_builders: Sequence[TargetBuilder],
        scene_loader: Any = None,
        cache: FeatureCache | None = None,
        token_logs: dict[str, str] | None = None,
        sensor_config: SensorConfig | None = None,
        embeddings: EmbeddingSource | None = None,
    ) -> None:
        check_unique_names([*feature_builders, *target_builders])
        self.tokens = list(tokens)
        self.embeddings = embeddings
        skip = embeddings.replaces if embeddings is not None else None
        self.feature_builders = [b for b in feature_builders if b.get_unique_name() != skip]
        self.target_builders = list(target_builders)
        self.scene_loader = scene_loader
        self.cache = cache
        self.sensor_config = sensor_config or SensorConfig.build_no_sensors()
        if token_logs is None and scene_loader is not None:
            token_logs = {
                t: log for log, toks in scene_loader.get_tokens_list_per_log().items() for t in toks
            }
        self.token_logs = token_logs or {}
        if cache is None and scene_loader is None:
            raise ValueError("PlanningDataset needs a scene loader or a feature cache")
        missing = [t for t in self.tokens if t not in self.token_logs]
        if missing:
            raise ContractError(f"{len(missing)} token(s) have no known log, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.tokens)

    def _from_cache(self, builder: Builder, token: str) -> dict[str, torch.Tensor]:
        assert self.cache is not None
        out = _to_torch(self.cache.read(builder.cache_key, self.token_logs[token], token))
        return check_contract(builder, out)  # validated on load: a stale or foreign entry is refused

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        token = self.tokens[index]
        if self.cache is not None:
            feats = {b.get_unique_name(): self._from_cache(b, token) for b in self.feature_builders}
            targs = {b.get_unique_name(): self._from_cache(b, token) for b in self.target_builders}
        else:
            feats = compute_checked_features(
                self.feature_builders, self.scene_loader.get_agent_input_from_token(token, self.sensor_config)
            )
            targs = compute_checked_targets(
                self.target_builders,
                self.scene_loader.get_scene_from_token(token, SensorConfig.build_no_sensors()),
            )
        features = _merge(feats)
        if self.embeddings is not None:
            pooled, patches = self.embeddings.store.get(token, patches=self.embeddings.patches)
            features["camera_pooled"] = torch.from_numpy(pooled)
            if patches is not None:
                features["camera_patches"] = torch.from_numpy(patches)
        return features, _merge(targs)


# ------------------------------------------------------------------------------------------- cache building
def _fill_tokens(
    loader: Any,
    tokens: Sequence[str],
    feature_builders: Sequence[FeatureBuilder],
    target_builders: Sequence[TargetBuilder],
    cache_root: str,
    sensor_config: SensorConfig,
    rebuild: bool,
) -> int:
    """Compute and store the missing entries of ``tokens``; returns the number of tokens computed."""
    cache = FeatureCache(cache_root)
    logs = {t: log for log, toks in loader.get_tokens_list_per_log().items() for t in toks}
    done = 0
    for token in tokens:
        log = logs[token]
        todo_f = [b for b in feature_builders if rebuild or not cache.has(b.cache_key, log, token)]
        todo_t = [b for b in target_builders if rebuild or not cache.has(b.cache_key, log, token)]
        if not todo_f and not todo_t:
            continue
        if todo_f:
            feats = compute_checked_features(todo_f, loader.get_agent_input_from_token(token, sensor_config))
            for b in todo_f:
                cache.write(b.cache_key, log, token, _to_numpy(feats[b.get_unique_name()]))
        if todo_t:
            targs = compute_checked_targets(
                todo_t, loader.get_scene_from_token(token, SensorConfig.build_no_sensors())
            )
            for b in todo_t:
                cache.write(b.cache_key, log, token, _to_numpy(targs[b.get_unique_name()]))
        done += 1
    return done


def _worker_init() -> None:
    torch.set_num_threads(1)


def build_feature_cache(
    loader: Any,
    tokens: Sequence[str],
    feature_builders: Sequence[FeatureBuilder],
    target_builders: Sequence[TargetBuilder],
    cache_root: str | os.PathLike,
    sensor_config: SensorConfig | None = None,
    workers: int = 0,
    rebuild: bool = False,
    progress: bool = True,
) -> dict[str, int]:
    """Fill the feature cache for ``tokens`` (per-log chunks over ``workers`` processes, with a progress bar).

    Returns ``{"tokens": n, "computed": k}``. Contract violations abort the build with a ContractError.
    """
    from tqdm import tqdm

    builders: list[Builder] = [*feature_builders, *target_builders]
    check_unique_names(builders)
    cache = FeatureCache(cache_root)
    for b in builders:
        cache.register_builder(b.cache_key, builder_record(b))
    sensor_config = sensor_config or SensorConfig.build_no_sensors()
    per_log: dict[str, list[str]] = {}
    logs = {t: log for log, toks in loader.get_tokens_list_per_log().items() for t in toks}
    for t in tokens:
        per_log.setdefault(logs[t], []).append(t)
    computed = 0
    bar = tqdm(total=len(tokens), desc="feature cache", unit="scene", disable=not progress, leave=False)
    try:
        if workers <= 0 or len(per_log) <= 1:
            for chunk in per_log.values():
                computed += _fill_tokens(
                    loader, chunk, feature_builders, target_builders, str(cache_root), sensor_config, rebuild
                )
                bar.update(len(chunk))
        else:
            import multiprocessing as mp

            # spawn: forking a process that already runs torch/OpenMP threads can deadlock the child.
            with ProcessPoolExecutor(
                workers, mp_context=mp.get_context("spawn"), initializer=_worker_init
            ) as pool:
                futures = {
                    pool.submit(
                        _fill_tokens,
                        loader,
                        chunk,
                        list(feature_builders),
                        list(target_builders),
                        str(cache_root),
                        sensor_config,
                        rebuild,
                    ): len(chunk)
                    for chunk in per_log.values()
                }
                for fut in as_completed(futures):
                    computed += fut.result()
                    bar.update(futures[fut])
    finally:
        bar.close()
    return {"tokens": len(tokens), "computed": computed}


def cache_dir_for(cache_root: str | os.PathLike, builder: Builder) -> Path:
    return Path(cache_root) / builder.cache_key
