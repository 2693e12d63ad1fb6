"""Training data: which tokens train and validate, the datasets over them, and the DataModule.

Train tokens come from a saved label-fraction subset (``planlab.data.subsets``: nested, seeded, hashed),
never from ``limit_train_batches`` (lesson C6). The subset file, the manifests of the splits and the token
counts go into ``meta.json``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from planlab.data.feature_cache import FeatureCache
from planlab.data.layout import dataset_root
from planlab.data.loader import SceneLoader
from planlab.data.subsets import (
    Subset,
    load_subset,
    make_subsets,
    resolve_split,
)
from planlab.errors import ConfigError, DataError
from planlab.scene import SceneFilter
from planlab.training.dataset import PlanningDataset, build_feature_cache
from planlab.training.sampler import ResumableDataLoader, ResumableSampler


def token_list_hash(tokens: list[str]) -> str:
    return hashlib.sha256("\n".join(tokens).encode()).hexdigest()


@dataclass
class SplitData:
    """One split's loader and the tokens used from it."""

    name: str
    loader: SceneLoader
    tokens: list[str]
    manifest: dict[str, Any]
    subset: dict[str, Any] | None = None
    subset_obj: Subset | None = None

    def record(self, run_dir: Path) -> None:
        """Write this split's manifest (and the label subset used) into the run directory."""
        self.loader.manifest().write(run_dir / "manifests" / f"{self.name}.json")
        if self.subset_obj is not None:
            self.subset_obj.write(run_dir / "subset.json")

    def summary(self) -> dict[str, Any]:
        return {
            "split": self.name,
            "num_tokens": len(self.tokens),
            "tokens_sha256": token_list_hash(self.tokens),
            "manifest_hash": self.manifest.get("hash"),
            "num_logs": self.manifest.get("num_logs"),
            "subset": self.subset,
        }


def scene_filter_from(
    cfg: Any, log_names: list[str] | None = None, tokens: list[str] | None = None
) -> SceneFilter:
    d = cfg.data
    return SceneFilter(
        num_history_frames=d.num_history_frames,
        num_future_frames=d.num_future_frames,
        frame_interval=d.frame_interval,
        has_route=d.has_route,
        log_names=log_names,
        tokens=tokens,
    )


def _subset_for(cfg: Any, root: Path, split: str, loader: SceneLoader, run_dir: Path | None) -> Subset | None:
    """The label-fraction subset to train on (None: every token)."""
    d = cfg.data
    manifest_hash = loader.manifest().hash
    if d.subset_file:
        return load_subset(d.subset_file, expected_manifest_hash=manifest_hash)
    if d.label_fraction >= 1.0:
        return None
    probe = make_subsets(
        loader.tokens, [d.label_fraction], d.subset_seed, split, manifest_hash, scene_filter_from(cfg)
    )[0]
    standard = root / "subsets" / split / probe.file_name
    if standard.is_file():
        subset = load_subset(standard, expected_manifest_hash=manifest_hash)
        # Drawn over the same tokens it must give the same list; a different scene filter would not.
        if subset.tokens == probe.tokens:
            return subset
    return probe


def load_split(
    cfg: Any, split: str, sensor_config: Any, run_dir: Path | None = None, train: bool = False
) -> SplitData:
    """Loader and tokens of ``split`` (train: restricted to the label-fraction subset, then ``max_scenes``)."""
    root = dataset_root(cfg.data.root)
    source = resolve_split(root, split, cfg.data.splits_file)
    loader = SceneLoader(
        root,
        source.data_split,
        scene_filter_from(cfg, source.log_names),
        sensor_config,
        maps_root=cfg.data.maps_root,
    )
    if len(loader) == 0:
        raise DataError(f"split {split!r} under {root} has no scenes with the configured scene filter")
    tokens = loader.tokens
    subset_info = None
    subset = None
    if train:
        subset = _subset_for(cfg, root, split, loader, run_dir)
        if subset is not None:
            have = set(tokens)
            missing = [t for t in subset.tokens if t not in have]
            if missing:
                raise DataError(
                    f"subset {subset.file_name}: {len(missing)} token(s) are not scenes of split {split!r} under the "
                    f"configured scene filter (e.g. {missing[0]})"
                )
            keep = set(subset.tokens)
            tokens = [t for t in tokens if t in keep]
            subset_info = {
                "file": subset.file_name,
                "fraction": subset.fraction,
                "seed": subset.seed,
                "sha256": subset.sha256,
                "num_tokens": len(subset.tokens),
            }
    if cfg.data.max_scenes is not None:
        tokens = tokens[: cfg.data.max_scenes]
    manifest = loader.manifest().to_dict()
    manifest.pop("logs", None)
    return SplitData(split, loader, tokens, manifest, subset_info, subset)


@dataclass
class TrainingData:
    """Everything the DataModule needs, plus what meta.json records about the data."""

    train: SplitData
    val: SplitData | None
    train_set: PlanningDataset
    val_set: PlanningDataset | None
    cache_stats: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "train": self.train.summary(),
            "val": self.val.summary() if self.val is not None else None,
            "cache": self.cache_stats,
        }


def prepare_training_data(
    cfg: Any,
    agent: Any,
    run_dir: Path | None,
    build_caches: bool = True,
    progress: bool = True,
) -> TrainingData:
    """Resolve splits and the subset, fill the caches (when configured and ``build_caches``), build datasets."""
    from planlab.training.embeddings import embedding_source_for

    sensor = agent.get_sensor_config()
    train = load_split(cfg, cfg.data.train_split, sensor, run_dir, train=True)
    val = load_split(cfg, cfg.data.val_split, sensor) if cfg.data.val_split else None
    parts = [(p.loader, p.tokens) for p in (train, val) if p is not None]
    if build_caches and run_dir is not None:  # rank 0 records what the run trains and validates on
        for p in (train, val):
            if p is not None:
                p.record(run_dir)
    embeddings = embedding_source_for(agent, cfg, parts, build=build_caches, progress=progress)
    fbs, tbs = agent.get_feature_builders(), agent.get_target_builders()
    costly = [b.get_unique_name() for b in [*fbs, *tbs] if b.expensive]
    if costly and not cfg.data.cache.path:
        raise ConfigError(
            f"agent {agent.name()!r} has expensive builder(s) {', '.join(costly)} computed once per token: "
            "set data.cache.path"
        )
    skip = embeddings.replaces if embeddings is not None else None
    cached_fbs = [b for b in fbs if b.get_unique_name() != skip]
    stats: dict[str, Any] = {}
    cache = None
    if cfg.data.cache.path:
        cache = FeatureCache(cfg.data.cache.path)
        if build_caches:
            for part in (train, val):
                if part is None:
                    continue
                stats[part.name] = build_feature_cache(
                    part.loader,
                    part.tokens,
                    cached_fbs,
                    tbs,
                    cfg.data.cache.path,
                    sensor,
                    workers=cfg.data.cache.build_workers,
                    rebuild=cfg.data.cache.rebuild,
                    progress=progress,
                )

    def dataset(part: SplitData) -> PlanningDataset:
        return PlanningDataset(
            part.tokens,
            fbs,
            tbs,
            scene_loader=part.loader,
            cache=cache,
            sensor_config=sensor,
            embeddings=embeddings,
        )

    return TrainingData(train, val, dataset(train), dataset(val) if val is not None else None, stats)


def batches_per_epoch(num_samples: int, batch_size: int, world_size: int) -> int:
    per_rank = math.ceil(num_samples / world_size) if num_samples else 0
    return math.ceil(per_rank / batch_size)


def optimizer_steps(cfg: Any, num_train: int, world_size: int) -> int:
    """Total optimizer steps of the run (for the LR schedule)."""
    per_epoch = math.ceil(
        batches_per_epoch(num_train, cfg.trainer.batch_size, world_size) / cfg.trainer.accumulate_grad_batches
    )
    total = per_epoch * max(cfg.trainer.max_epochs, 0)
    if cfg.trainer.max_steps > 0:
        total = min(total, cfg.trainer.max_steps) if total > 0 else cfg.trainer.max_steps
    return max(total, 1)


@dataclass
class ResumePosition:
    """Where the data stood when the resume checkpoint was written."""

    epoch: int
    batches_done: int


class PlanningDataModule(pl.LightningDataModule):
    """Train loader: seeded per-epoch order, rank-sharded, resumable mid-epoch. Val loader: fixed order."""

    def __init__(self, data: TrainingData, cfg: Any, resume: ResumePosition | None = None) -> None:
        super().__init__()
        self.data = data
        self.cfg = cfg
        self.resume = resume

    def _loader_kwargs(self) -> dict[str, Any]:
        d = self.cfg.data
        kw: dict[str, Any] = {"num_workers": d.num_workers, "pin_memory": d.pin_memory}
        if d.num_workers > 0:
            kw["persistent_workers"] = d.persistent_workers
            kw["prefetch_factor"] = d.prefetch_factor
        return kw

    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _progress(self) -> Callable[[], tuple[int, int]]:
        def progress() -> tuple[int, int]:
            trainer = self.trainer
            return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

        return progress

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank_world()
        t = self.cfg.trainer
        sampler = ResumableSampler(len(self.data.train_set), t.batch_size, t.seed, True, rank, world)
        if self.resume is not None:
            n = batches_per_epoch(len(self.data.train_set), t.batch_size, world)
            epoch, done = self.resume.epoch, self.resume.batches_done
            if done >= n:  # the checkpoint closed its epoch: continue with the next one from its start
                epoch, done = epoch + 1, 0
            sampler.resume_at(epoch, done)
            self.resume = None
        # Own generator: DataLoader worker seeds must not draw from (and shift) the global torch RNG.
        gen = torch.Generator()
        gen.manual_seed(t.seed)
        return ResumableDataLoader(
            self.data.train_set,
            batch_size=t.batch_size,
            sampler=sampler,
            drop_last=False,
            generator=gen,
            progress=self._progress(),
            **self._loader_kwargs(),
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.data.val_set is None:
            return []
        rank, world = self._rank_world()
        bs = self.cfg.trainer.val_batch_size or self.cfg.trainer.batch_size
        sampler = ResumableSampler(len(self.data.val_set), bs, 0, False, rank, world)
        gen = torch.Generator()
        gen.manual_seed(0)
        return DataLoader(
            self.data.val_set, batch_size=bs, sampler=sampler, generator=gen, **self._loader_kwargs()
        )
