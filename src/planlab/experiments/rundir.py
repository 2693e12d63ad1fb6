"""Run directories: the unit of truth for one experiment (DESIGN.md contract).

```
<root>/<exp_id>/experiment.yaml    the spec as created (never rewritten)
                config.yaml        resolved config: train (TrainConfig) + eval (EvalSettings)
                status.json        lifecycle, written by the submitter and by the jobs themselves
                meta.json          provenance: git, lock hash, host, SLURM variables, job attempts
                scripts/           generated sbatch scripts, never overwritten (train.sbatch, train.2.sbatch…)
                logs/              job output
                checkpoints/ metrics.csv tb/        written by training
                eval/<split>/pdm_scores.csv summary.json   written by evaluation (or imported NAVSIM CSVs)
<root>/_sweeps/<sweep_id>/        sweep scripts and the array index -> experiment map
<root>/_index.sqlite              the registry (rebuilt from run dirs at any time)
```
Every JSON/YAML here is written atomically; read-modify-write of ``status.json``/``meta.json`` holds an
``flock`` on ``<run>/.lock`` so concurrent jobs (eval shards, the login node's ``exp status``) never lose
an update.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from planlab.atomic import atomic_write_text
from planlab.errors import ConfigError, PlanlabError
from planlab.experiments.ids import check_id, is_valid_id

ROOT_ENV = "PLANLAB_EXP_ROOT"
SWEEPS_DIR = "_sweeps"
INDEX_NAME = "_index.sqlite"

STATES = ("created", "submitted", "running", "completed", "failed", "cancelled", "requeued")
TERMINAL = ("completed", "failed", "cancelled")


def now_iso() -> str:
    """UTC timestamp with seconds, ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def experiments_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$PLANLAB_EXP_ROOT``, else ``./experiments`` (absolute)."""
    value = root if root is not None else os.environ.get(ROOT_ENV) or "experiments"
    return Path(value).expanduser().absolute()


def run_dir(root: str | os.PathLike | None, exp_id: str) -> Path:
    return experiments_root(root) / check_id(exp_id)


def existing_run_dir(root: str | os.PathLike | None, exp_id: str) -> Path:
    """The run dir of ``exp_id``; a PlanlabError if the experiment does not exist."""
    d = run_dir(root, exp_id)
    if not (d / "experiment.yaml").is_file():
        raise PlanlabError(f"no experiment {exp_id!r} under {experiments_root(root)}")
    return d


def list_run_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    """Every run dir under the root (directories named by a valid id with an experiment.yaml), sorted."""
    base = experiments_root(root)
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if is_valid_id(p.name) and (p / "experiment.yaml").is_file())


def sweep_dir(root: str | os.PathLike | None, sweep_id: str) -> Path:
    return experiments_root(root) / SWEEPS_DIR / check_id(sweep_id, "sweep id")


def create_run_dir(root: str | os.PathLike | None, exp_id: str) -> Path:
    """Create ``<root>/<exp_id>`` exclusively: an existing experiment is never overwritten."""
    d = run_dir(root, exp_id)
    d.parent.mkdir(parents=True, exist_ok=True)
    try:
        d.mkdir()
    except FileExistsError:
        raise ConfigError(f"experiment {exp_id!r} already exists at {d}; choose another --exp-id") from None
    for sub in ("scripts", "logs"):
        (d / sub).mkdir()
    return d


class LockTimeout(PlanlabError):
    """The run dir lock could not be taken in time."""


@contextlib.contextmanager
def locked(run: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive advisory lock on ``<run>/.lock`` (released by the kernel if the holder dies).

    The training room uses the same file, so status/meta updates from both never interleave. With
    ``timeout`` the lock is polled and :class:`LockTimeout` raised when it stays busy (signal handlers
    use this: the interrupted code may hold the lock itself).
    """
    fd = os.open(run / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"{run / '.lock'} stayed busy for {timeout:.0f} s") from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def read_json(path: Path, default: Any = None) -> Any:
    """A JSON file, or ``default`` if absent; a corrupt file is a PlanlabError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanlabError(f"{path}: not readable JSON ({exc})") from None


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_yaml(path: Path, data: Any) -> None:
    atomic_write_text(
        path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
    )


def update_json(
    run: Path, name: str, fn: Callable[[dict[str, Any]], None], timeout: float | None = None
) -> dict[str, Any]:
    """Locked read-modify-write of ``<run>/<name>``; ``fn`` mutates the dict in place."""
    with locked(run, timeout):
        data = read_json(run / name, {}) or {}
        fn(data)
        write_json(run / name, data)
        return data


# --------------------------------------------------------------------------- status lifecycle


def read_status(run: Path) -> dict[str, Any]:
    return read_json(run / "status.json", {}) or {"state": "created", "history": []}


def set_status(run: Path, state: str, *, lock_timeout: float | None = None, **info: Any) -> dict[str, Any]:
    """Move the experiment to ``state`` and append the event (with ``info``) to its history."""
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")

    def apply(data: dict[str, Any]) -> None:
        event = {"state": state, "time": now_iso(), **{k: v for k, v in info.items() if v is not None}}
        data["state"] = state
        data["updated"] = event["time"]
        for key in ("phase", "reason"):
            if key in info:
                data[key] = info[key]
        if state in ("completed",):
            data.pop("reason", None)
        data.setdefault("history", []).append(event)

    return update_json(run, "status.json", apply, lock_timeout)


def record_jobs(
    run: Path, jobs: dict[str, str], launcher: str, stages: list[str], **info: Any
) -> dict[str, Any]:
    """Record a submission: the job id of each stage, the planned stages, and state ``submitted``."""

    def apply(data: dict[str, Any]) -> None:
        t = now_iso()
        data["state"] = "submitted"
        data["updated"] = t
        data["launcher"] = launcher
        data["jobs"] = dict(jobs)
        data["stages"] = list(stages)
        data["done"] = []
        data.pop("reason", None)
        data["phase"] = stages[0] if stages else None
        data.setdefault("submissions", []).append(
            {"time": t, "launcher": launcher, "jobs": dict(jobs), **info}
        )
        data.setdefault("history", []).append({"state": "submitted", "time": t, "jobs": dict(jobs)})

    return update_json(run, "status.json", apply)


def stage_done(run: Path, stage: str, **info: Any) -> dict[str, Any]:
    """Mark ``stage`` finished; the experiment is ``completed`` once every planned stage is done."""

    def apply(data: dict[str, Any]) -> None:
        t = now_iso()
        done = data.setdefault("done", [])
        if stage not in done:
            done.append(stage)
        stages = data.get("stages") or [stage]
        remaining = [s for s in stages if s not in done]
        data["updated"] = t
        if remaining:
            data["state"] = "running"
            data["phase"] = f"waiting for {remaining[0]}"
            data.setdefault("history", []).append({"state": "running", "time": t, "finished": stage, **info})
        else:
            data["state"] = "completed"
            data["phase"] = None
            data.pop("reason", None)
            data.setdefault("history", []).append(
                {"state": "completed", "time": t, "finished": stage, **info}
            )

    return update_json(run, "status.json", apply)


# libyaml's safe loader when present (same constructors as yaml.safe_load, ~10x faster: the index reads
# two YAML files per run dir).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a SafeLoader (C or Python), never the full loader


def read_spec_dict(run: Path) -> dict[str, Any]:
    path = run / "experiment.yaml"
    try:
        data = safe_load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanlabError(f"{path}: not found") from None
    except yaml.YAMLError:
        raise PlanlabError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise PlanlabError(f"{path}: expected a mapping")
    return data


def read_config(run: Path) -> dict[str, Any]:
    path = run / "config.yaml"
    try:
        data = safe_load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except yaml.YAMLError:
        raise PlanlabError(f"{path}: not valid YAML") from None
    return data if isinstance(data, dict) else {}


def reserve_scripts(
    run_or_sweep: Path, stems: list[str], suffix: str = ".sbatch"
) -> tuple[int, dict[str, Path]]:
    """Fresh, never-used script paths for one submission: ``scripts/<stem>.sbatch`` the first time, then
    ``<stem>.2.sbatch``, ``<stem>.3.sbatch`` … with one number shared by all stems. Files are created
    exclusively (O_EXCL), so a resubmission can never overwrite a script an earlier job ran."""
    scripts = run_or_sweep / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        made: dict[str, Path] = {}
        for stem in stems:
            path = scripts / (f"{stem}{suffix}" if n == 1 else f"{stem}.{n}{suffix}")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                for p in made.values():
                    p.unlink()
                made = {}
                break
            os.close(fd)
            made[stem] = path
        if made or not stems:
            return n, made
        n += 1


def write_new_file(path: Path, text: str, mode: int = 0o755) -> None:
    """Fill a file reserved by :func:`reserve_scripts` (fsync'd, then made executable)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)
