"""The run directory of one training run, and the rules that keep runs from overwriting each other.

Layout written by training::

    <run_dir>/config.yaml      resolved training config (unless the caller owns config.yaml)
    <run_dir>/meta.json        provenance (merged into an existing file under <run_dir>/.lock)
    <run_dir>/git.diff         uncommitted changes at launch
    <run_dir>/training.json    training lifecycle: state, config hash, attempts, final step
    <run_dir>/status.json      lifecycle for ``planlab train`` runs (experiment runs manage their own)
    <run_dir>/checkpoints/     last.ckpt, epochNNN-stepNNNNNN.ckpt (top-k), index.json, hpc_ckpt_N.ckpt
    <run_dir>/manifests/<split>.json   log manifests (name, sha256, token count) of the splits used
    <run_dir>/subset.json      the label-fraction token list trained on (when label_fraction < 1)
    <run_dir>/metrics.csv, <run_dir>/tb/

Rules (lesson C8, S7): a directory holding anything but a planlab training run is refused; a finished run
is never continued or overwritten; an unfinished run continues only with ``--resume`` (or automatically
after a SLURM requeue) and only with the same config (a few run-length/loader keys may change).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from planlab.atomic import atomic_write_text
from planlab.config import config_hash, to_dict
from planlab.errors import ConfigError, PlanlabError

# Keys that may differ between a run and its resumption (run length, loader performance, display).
RESUMABLE_KEYS = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.progress_bar",
    "trainer.log_every_n_steps",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.prefetch_factor",
    "data.cache.build_workers",
    "data.cache.rebuild",
    "logging.csv",
    "logging.tensorboard",
)
TRAINING_FILE = "training.json"


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def resume_hash(cfg: Any) -> str:
    """Config hash over everything that must not change when a run is resumed."""
    return config_hash(cfg, exclude=RESUMABLE_KEYS)


@contextlib.contextmanager
def locked(run: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``<run>/.lock`` (the experiments room uses the same convention)."""
    run.mkdir(parents=True, exist_ok=True)
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanlabError(f"{path}: not readable JSON ({exc})") from None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def merge_json(run: Path, name: str, updates: Mapping[str, Any]) -> dict[str, Any]:
    """Locked read-merge-write of ``<run>/<name>`` (top-level keys of ``updates`` replace old ones)."""
    with locked(run):
        data = read_json(run / name) or {}
        data.update(updates)
        write_json(run / name, data)
        return data


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{prefix}{k}.")
            if d:
                return d
        return None
    return None if a == b else f"{prefix.rstrip('.')} ({a!r} -> {b!r})"


@dataclass
class RunPlan:
    """What to do in a run directory: start fresh or resume from ``resume_from``."""

    path: Path
    resume_from: Path | None
    attempt: int
    resuming: bool


class RunDir:
    """Paths and lifecycle files of one training run."""

    def __init__(self, path: str | os.PathLike, config_name: str = "config.yaml") -> None:
        self.path = Path(path).expanduser().absolute()
        self.config_name = config_name

    config_path = property(lambda self: self.path / self.config_name)
    checkpoints = property(lambda self: self.path / "checkpoints")
    last_ckpt = property(lambda self: self.path / "checkpoints" / "last.ckpt")
    metrics_csv = property(lambda self: self.path / "metrics.csv")
    tb_dir = property(lambda self: self.path / "tb")
    training_file = property(lambda self: self.path / TRAINING_FILE)

    def training_state(self) -> dict[str, Any] | None:
        return read_json(self.training_file)

    def newest_checkpoint(self) -> Path | None:
        """The resume point: the newest of last.ckpt and Lightning's SLURM ``hpc_ckpt_N.ckpt`` (by step)."""
        from planlab.agents.checkpoint_io import read_checkpoint

        candidates = [
            p for p in [self.last_ckpt, *sorted(self.checkpoints.glob("hpc_ckpt_*.ckpt"))] if p.is_file()
        ]
        best: tuple[int, float, Path] | None = None
        for p in candidates:
            try:
                step = int(read_checkpoint(p).get("global_step", -1))
            except PlanlabError:
                continue  # an unreadable file is no resume point
            key = (step, p.stat().st_mtime, p)
            if best is None or key[:2] > best[:2]:
                best = key
        return best[2] if best else None

    def plan(self, cfg: Any, resume: bool | str, write_config: bool = True) -> RunPlan:
        """Decide fresh start vs resume; PlanlabError for a foreign, finished or mismatched run."""
        p = self.path
        requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
        state = self.training_state() if p.is_dir() else None
        if state is None:
            allowed = _ALLOWED_IN_FRESH - ({self.config_name} if write_config else set())
            if p.is_dir() and any(x for x in p.iterdir() if x.name not in allowed):
                raise PlanlabError(
                    f"run dir {p} is not empty and holds no planlab training run; choose an empty or new --run-dir"
                )
            return RunPlan(p, None, 1, False)
        if state.get("config_hash") != resume_hash(cfg):
            old = state.get("config") or {}
            diff = _first_difference(
                {k: v for k, v in old.items()}, json.loads(json.dumps(to_dict(cfg), default=str))
            )
            raise PlanlabError(
                f"run dir {p} holds a run with a different config (first difference: {diff or 'unknown'}); "
                "choose another --run-dir"
            )
        if state.get("state") == "completed":
            raise PlanlabError(
                f"run dir {p} holds a finished run (step {state.get('global_step')}); choose another --run-dir"
            )
        if not (resume is True or resume == "auto" or requeued):
            raise PlanlabError(
                f"run dir {p} already holds a run (state {state.get('state')!r}); pass --resume to continue it "
                "or choose another --run-dir"
            )
        ckpt = self.newest_checkpoint()
        return RunPlan(p, ckpt, int(state.get("attempts", 0)) + 1, True)

    def start(self, cfg: Any, plan: RunPlan, write_config: bool, info: Mapping[str, Any]) -> None:
        """Write config (fresh runs), mark the training state running and record the attempt."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        if write_config and not plan.resuming:
            atomic_write_text(self.config_path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
        with locked(self.path):
            data = read_json(self.training_file) or {}
            data.update(
                {
                    "state": "running",
                    "config_hash": resume_hash(cfg),
                    "config": json.loads(json.dumps(to_dict(cfg), default=str)),
                    "attempts": plan.attempt,
                    "updated": now_iso(),
                }
            )
            data.setdefault("history", []).append(
                {
                    "time": now_iso(),
                    "event": "resume" if plan.resuming else "start",
                    "from": str(plan.resume_from) if plan.resume_from else None,
                    **dict(info),
                }
            )
            write_json(self.training_file, data)

    def finish(self, state: str, **info: Any) -> None:
        with locked(self.path):
            data = read_json(self.training_file) or {}
            data.update({"state": state, "updated": now_iso(), **info})
            data.setdefault("history", []).append({"time": now_iso(), "event": state, **info})
            write_json(self.training_file, data)

    def set_status(self, state: str, **info: Any) -> None:
        """``status.json`` in the lifecycle vocabulary of run directories (running/completed/failed)."""
        with locked(self.path):
            data = read_json(self.path / "status.json") or {}
            event = {
                "state": state,
                "time": now_iso(),
                "phase": "train",
                **{k: v for k, v in info.items() if v is not None},
            }
            data["state"] = state
            data["updated"] = event["time"]
            data["phase"] = "train"
            if "reason" in info:
                data["reason"] = info["reason"]
            elif state != "failed":
                data.pop("reason", None)
            data.setdefault("history", []).append(event)
            write_json(self.path / "status.json", data)


# Files an experiment launcher may have put into a run dir before training starts.
_ALLOWED_IN_FRESH = {
    ".lock",
    "experiment.yaml",
    "config.yaml",
    "status.json",
    "meta.json",
    "scripts",
    "logs",
}


def check_run_dir_name(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not str(path).strip():
        raise ConfigError("--run-dir must not be empty")
    return p
