"""Lightning callbacks and the CSV logger of ``planlab train``.

- :class:`LastCheckpoint`: ``checkpoints/last.ckpt`` every N optimizer steps and at every epoch end, written
  to a temporary name and renamed (a kill -9 mid-write never corrupts it).
- :class:`TopKCheckpoint`: Lightning's ModelCheckpoint for the best ``save_top_k`` by a validation metric,
  with names free of ``=`` (lesson V7) and an ``index.json`` that says which file is best.
- :class:`ThroughputMonitor`: samples/s and peak memory (host RSS, CUDA) into the logs.
- :class:`SelectiveFinetune`: the second stage of selective fine-tuning (unfreeze the last k encoder blocks).
- :class:`CsvMetricsLogger`: ``<run_dir>/metrics.csv`` that survives resume (Lightning's CSVLogger deletes
  an existing file), truncated back to the resume step so no row appears twice.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from planlab.agents.checkpoint_io import INDEX_FILE
from planlab.atomic import atomic_open, atomic_write_text


def _replace_atomically(trainer: pl.Trainer, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    trainer.save_checkpoint(tmp, weights_only=False)  # collective: every rank calls it, rank 0 writes
    if trainer.is_global_zero:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    trainer.strategy.barrier("planlab.last_checkpoint")


class LastCheckpoint(Callback):
    """``last.ckpt`` every ``every_n_steps`` optimizer steps (0: never mid-epoch) and at each epoch end."""

    def __init__(self, dirpath: str | os.PathLike, every_n_steps: int = 0) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = int(every_n_steps)
        self._last_step_saved = -1

    @property
    def path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.global_step == self._last_step_saved and self.path.is_file():
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        _replace_atomically(trainer, self.path)
        self._last_step_saved = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps <= 0 or trainer.sanity_checking:
            return
        # Only right after an optimizer step (not between accumulated micro-batches).
        if trainer.global_step > 0 and trainer.global_step % self.every_n_steps == 0:
            if trainer.fit_loop.epoch_loop._should_accumulate():
                return
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._save(trainer)


class TopKCheckpoint(ModelCheckpoint):
    """Best-k checkpoints by ``monitor`` (``epoch003-step000120.ckpt``) and ``index.json`` naming the best."""

    def __init__(self, dirpath: str | os.PathLike, monitor: str, mode: str, save_top_k: int) -> None:
        super().__init__(
            dirpath=str(dirpath),
            filename="epoch{epoch:03d}-step{step:06d}",
            auto_insert_metric_name=False,
            monitor=monitor,
            mode=mode,
            save_top_k=save_top_k,
            save_last=False,
        )

    def _write_index(self, trainer: pl.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        score = self.best_model_score
        index = {
            "last": "last.ckpt",
            "best": Path(self.best_model_path).name if self.best_model_path else None,
            "monitor": self.monitor,
            "mode": self.mode,
            "best_score": float(score) if score is not None else None,
            "top_k": {Path(p).name: float(s) for p, s in self.best_k_models.items()},
        }
        atomic_write_text(Path(self.dirpath) / INDEX_FILE, json.dumps(index, indent=1) + "\n")

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self._write_index(trainer)

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        super()._remove_checkpoint(trainer, filepath)
        self._write_index(trainer)


class ThroughputMonitor(Callback):
    """Logs ``perf/samples_per_s`` (all ranks together), ``perf/rss_mb`` and ``perf/cuda_max_mb``."""

    def __init__(self, every_n_steps: int = 10) -> None:
        self.every_n_steps = max(int(every_n_steps), 1)
        self._t0: float | None = None
        self._samples = 0
        self.history: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._t0, self._samples = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._t0 is None:
            self._t0, self._samples = time.perf_counter(), 0
            return
        features = batch[0]
        self._samples += int(next(iter(features.values())).shape[0]) * trainer.world_size
        if (batch_idx + 1) % self.every_n_steps:
            return
        dt = time.perf_counter() - self._t0
        if dt <= 0:
            return
        rate = self._samples / dt
        self.history.append(rate)
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        metrics = {
            "perf/samples_per_s": rate,
            "perf/rss_mb": rss_kb / (1024.0 if sys.platform != "darwin" else 1024.0**2),
        }
        if torch.cuda.is_available():
            metrics["perf/cuda_max_mb"] = torch.cuda.max_memory_allocated() / 2**20
        pl_module.log_dict(metrics, on_step=True, on_epoch=False, rank_zero_only=True)
        self._t0, self._samples = time.perf_counter(), 0


class SelectiveFinetune(Callback):
    """At ``unfreeze_at_epoch``, train the last ``k`` encoder blocks too (the encoder group's lr was set low
    from the start; parameters without gradients were skipped by the optimiser until now)."""

    def __init__(self, unfreeze_at_epoch: int, k: int) -> None:
        self.unfreeze_at_epoch = int(unfreeze_at_epoch)
        self.k = int(k)

    def _apply(self, pl_module: Any, epoch: int) -> None:
        k = self.k if epoch >= self.unfreeze_at_epoch else 0
        pl_module.agent.set_trainable_encoder_blocks(k)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._apply(pl_module, trainer.current_epoch)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self._apply(pl_module, trainer.current_epoch)


class CsvMetricsLogger(Logger):
    """Append-only ``metrics.csv`` (one row per logging call; header grows as new keys appear)."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] = []
        self._resume_step = resume_step
        self._prepared = False

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        return self

    def _prepare(self) -> None:
        """On resume keep rows up to the resume step; on a fresh run start an empty file."""
        if self._prepared:
            return
        self._prepared = True
        if not self.path.is_file():
            return
        if self._resume_step is None:
            self.path.unlink()
            return
        with open(self.path, newline="") as fh:
            reader = csv.DictReader(fh)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _step_of(r) <= self._resume_step]
        self._keys = keys
        self._write_all(rows)

    def _write_all(self, rows: list[dict[str, Any]]) -> None:
        with atomic_open(self.path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._keys)
            writer.writeheader()
            writer.writerows(rows)

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row: dict[str, Any] = {"step": step if step is not None else len(self._rows)}
        for k, v in metrics.items():
            row[k] = float(v.item()) if isinstance(v, torch.Tensor) else v
        self._rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        self._prepare()
        if not self._rows:
            return
        new = [k for r in self._rows for k in r if k not in self._keys]
        if new or not self.path.is_file():
            old_rows: list[dict[str, Any]] = []
            if self.path.is_file():
                with open(self.path, newline="") as fh:
                    old_rows = list(csv.DictReader(fh))
            for k in new:
                if k not in self._keys:
                    self._keys.append(k)
            self._keys = ["step"] + sorted(k for k in self._keys if k != "step")
            self._write_all(old_rows + self._rows)
        else:
            with open(self.path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self._keys).writerows(self._rows)
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        with contextlib.suppress(OSError):
            self.save()


def _step_of(row: dict[str, Any]) -> float:
    try:
        return float(row.get("step") or 0)
    except ValueError:
        return 0.0
