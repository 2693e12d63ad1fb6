"""Scoring runs: an agent over a split, a trajectory file over a cache, and merging shards.

Everything lands in one output directory (``pdm_scores.csv``, ``summary.json``, ``failures.csv``;
:mod:`planlab.evaluation.results`). A scene that fails (agent exception, NaN poses, wrong shape,
unknown token, missing or corrupt cache entry) becomes a ``valid=False`` row with its reason and the
run goes on. Rows are sorted by the loader's token order, so the same inputs give byte-identical
CSVs whatever the number of workers or shards. Shards split the split *by log* (EC pairs stay
together); workers are processes, each building and ``initialize()``-ing its agent once.

This module takes any object with the :class:`planlab.agents.base.Agent` interface through an
:class:`AgentFactory`; it never imports the agents package (layering).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planlab.errors import ConfigError, DataError, PlanlabError
from planlab.evaluation.cache import (
    FORMAT_VERSION,
    SCORER_VERSION,
    MetricCache,
    MetricCacheEntry,
    _map_jobs,
    _progress_bar,
    build_cache,
)
from planlab.evaluation.epdms import finalize_v2, score_v2
from planlab.evaluation.results import (
    METRIC_COLUMNS,
    ScoreRow,
    read_csv,
    write_results,
)
from planlab.evaluation.scoring import score_v11

DEFAULT_INTERVAL = 0.5  # s between submitted poses (NAVSIM: 8 poses over 4 s)
SCORE_CHUNK = 256


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` → (I, N) with 0 <= I < N; None for no sharding."""
    if text is None or text == "":
        return None
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def shard_logs(tokens_per_log: dict[str, list[str]], shard: tuple[int, int] | None) -> list[str]:
    """Logs of shard I of N: logs sorted by name, dealt round-robin (a log is never split)."""
    logs = sorted(tokens_per_log)
    if shard is None:
        return logs
    i, n = shard
    return logs[i::n]


def check_metric(metric: str) -> str:
    if metric not in METRIC_COLUMNS:
        raise ConfigError(f"unknown metric {metric!r}; valid metrics: {', '.join(METRIC_COLUMNS)}")
    return metric


# -------------------------------------------------------------------------------------------- validation
def validate_poses(value: Any, expected_poses: int | None = None) -> np.ndarray:
    """A trajectory as a float64 ``(N, 3)`` array; ValueError with a one-line reason otherwise."""
    try:
        poses = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("trajectory is not a numeric array") from None
    if poses.ndim != 2 or poses.shape[1] != 3 or poses.shape[0] < 1:
        raise ValueError(f"trajectory has shape {tuple(poses.shape)}, expected (N, 3) poses [x, y, heading]")
    if expected_poses is not None and poses.shape[0] != expected_poses:
        raise ValueError(f"trajectory has {poses.shape[0]} poses, expected {expected_poses}")
    if not np.all(np.isfinite(poses)):
        raise ValueError("trajectory contains NaN or infinite values")
    return poses


# ----------------------------------------------------------------------------------------------- scoring
@dataclass
class Submission:
    """A trajectory to score for one token, or the reason there is none."""

    token: str
    poses: np.ndarray | None = None
    interval: float = DEFAULT_INTERVAL
    reason: str = ""


def score_submissions(
    cache: MetricCache,
    submissions: Sequence[Submission],
    metric: str = "pdms",
    entries: dict[str, MetricCacheEntry] | None = None,
) -> list[ScoreRow]:
    """Rows for ``submissions`` (same order): batched simulation + scoring of the valid ones.

    For ``epdms`` the two-frame extended comfort pairs scenes *within these submissions* (same log,
    started ≤ 0.55 s earlier), so pass whole logs together.
    """
    check_metric(metric)
    rows: list[ScoreRow | None] = [None] * len(submissions)
    loaded: dict[str, MetricCacheEntry] = dict(entries or {})
    groups: dict[tuple[int, float], list[int]] = {}
    for i, sub in enumerate(submissions):
        log = cache.index.entries.get(sub.token, "")
        if sub.poses is None:
            rows[i] = ScoreRow.failed(sub.token, sub.reason or "no trajectory", log)
            continue
        if sub.token not in loaded:
            try:
                entry = cache.load(sub.token)
                if metric == "epdms" and entry.v2 is None:
                    raise DataError(
                        f"{cache.path_of(sub.token)}: built without epdms (rebuild the cache with --metric epdms)"
                    )
                loaded[sub.token] = entry
            except DataError as exc:
                rows[i] = ScoreRow.failed(sub.token, str(exc), log)
                continue
        groups.setdefault((len(sub.poses), float(sub.interval)), []).append(i)
    states: list[np.ndarray | None] = [None] * len(submissions)
    columns = METRIC_COLUMNS[metric]
    for (_, interval), idx in groups.items():
        for start in range(0, len(idx), SCORE_CHUNK):
            part = idx[start : start + SCORE_CHUNK]
            entries_part = [loaded[submissions[i].token] for i in part]
            poses = np.stack([submissions[i].poses for i in part])  # type: ignore[misc]
            if metric == "pdms":
                result = score_v11(entries_part, poses, interval)
                keys = (*columns, "score")
            else:
                result, sim = score_v2(entries_part, poses, interval)
                keys = tuple(c for c in columns if c != "two_frame_extended_comfort")
                for k, i in enumerate(part):
                    states[i] = sim[k]
            for k, i in enumerate(part):
                values = {c: float(result[c][k]) for c in keys}
                rows[i] = ScoreRow(submissions[i].token, True, values, "", entries_part[k].log_name)
    if metric == "epdms":
        valid = [i for i, r in enumerate(rows) if r is not None and r.valid]
        finalize_v2(
            [rows[i].values for i in valid],  # type: ignore[union-attr]
            [states[i] for i in valid],
            [submissions[i].token for i in valid],
            [loaded[submissions[i].token].log_name for i in valid],
            [loaded[submissions[i].token].t0_us for i in valid],
        )
    return rows  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ agent runs
@dataclass(frozen=True)
class AgentFactory:
    """How a worker process builds its agent: ``target(*args, **kwargs)`` (must be picklable)."""

    target: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def build(self) -> Any:
        return self.target(*self.args, **self.kwargs)


def _agent_trajectories(agent: Any, loader: Any, tokens: Sequence[str]) -> list[Submission]:
    subs = []
    sensors = agent.get_sensor_config()
    for token in tokens:
        try:
            agent_input = loader.get_agent_input_from_token(token, sensors)
            if getattr(agent, "requires_scene", False):
                scene = loader.get_scene_from_token(token, sensors)
                trajectory = agent.compute_trajectory(agent_input, scene)
            else:
                trajectory = agent.compute_trajectory(agent_input)
            sampling = trajectory.trajectory_sampling
            poses = validate_poses(trajectory.poses, sampling.num_poses)
            subs.append(Submission(token, poses, float(sampling.interval_length)))
        except ValueError as exc:
            subs.append(Submission(token, None, reason=f"invalid trajectory: {exc}"))
        except PlanlabError as exc:
            subs.append(Submission(token, None, reason=str(exc)))
        except Exception as exc:  # noqa: BLE001 - a failing agent marks the scene invalid, the run goes on
            subs.append(Submission(token, None, reason=f"agent failed: {type(exc).__name__}: {exc}"))
    return subs


def _agent_job(args: tuple[AgentFactory, Any, str, list[str], str]) -> tuple[list[ScoreRow], float, int]:
    factory, loader, cache_root, tokens, metric = args
    t0 = time.process_time()
    cache = MetricCache(cache_root)
    agent = factory.build()
    agent.initialize()
    # a job is whole logs: scored in one call so EC finds each scene's predecessor
    rows = score_submissions(cache, _agent_trajectories(agent, loader, tokens), metric)
    return rows, time.process_time() - t0, os.getpid()


@dataclass
class EvalResult:
    """Rows (in output order) and the summary that was written."""

    out_dir: Path
    rows: list[ScoreRow]
    summary: dict[str, Any]


def _versions() -> dict[str, Any]:
    from planlab import __version__

    return {"planlab": __version__, "cache_format": FORMAT_VERSION, "scorer": SCORER_VERSION}


def evaluate_agent(
    factory: AgentFactory,
    loader: Any,
    out_dir: str | os.PathLike,
    metric: str = "pdms",
    cache_dir: str | os.PathLike | None = None,
    workers: int = 1,
    shard: tuple[int, int] | None = None,
    progress: bool = True,
    extra: dict[str, Any] | None = None,
) -> EvalResult:
    """Score an agent on ``loader``'s scenes (the shard's logs), building missing cache entries first."""
    check_metric(metric)
    out = Path(out_dir)
    started, cpu0 = time.perf_counter(), time.process_time()
    per_log = loader.get_tokens_list_per_log()
    logs = shard_logs(per_log, shard)
    order = {t: i for i, t in enumerate(loader.tokens)}
    tokens = sorted((t for log in logs for t in per_log[log]), key=order.__getitem__)
    cache_root = Path(cache_dir) if cache_dir is not None else out / "metric_cache"
    metrics = ("pdms",) if metric == "pdms" else ("pdms", "epdms")
    cache_report = build_cache(
        loader, cache_root, workers=workers, tokens=tokens, progress=progress, metrics=metrics
    )
    cache = MetricCache(cache_root)
    cache.check_versions()
    jobs = [(factory, loader, str(cache_root), per_log[log], metric) for log in logs]
    rows: list[ScoreRow] = []
    cpu_workers = 0.0
    bar = _progress_bar(len(tokens), progress, f"scoring {factory.label or 'agent'}")
    try:
        for part, cpu, pid in _map_jobs(_agent_job, jobs, workers):
            rows += part
            if pid != os.getpid():  # a pool worker's CPU (in-process jobs are in this process's time)
                cpu_workers += cpu
            bar.update(len(part))
    finally:
        bar.close()
    rows.sort(key=lambda r: order[r.token])
    seconds = time.perf_counter() - started
    summary_extra = {
        "agent": factory.label,
        "split": loader.split,
        "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
        "logs": logs,
        "token_order": {t: order[t] for t in tokens},
        "cache": str(cache_root),
        "cache_built": len(cache_report.built),
        "cache_failed": len(cache_report.failed),
        "timing": {
            "seconds": seconds,
            "cpu_seconds": (time.process_time() - cpu0)
            + cpu_workers
            + (cache_report.cpu_seconds - cache_report.parent_cpu_seconds),
            "cache_seconds": cache_report.seconds,
            "scenes_per_second": len(rows) / seconds if seconds > 0 else math.nan,
            "workers": workers,
        },
        "versions": _versions(),
        **(extra or {}),
    }
    summary = write_results(out, rows, metric, summary_extra)
    return EvalResult(out, rows, summary)


def load_trajectory_file(path: str | os.PathLike) -> dict[str, Any]:
    """``{token: [[x, y, heading], ...]}`` from a JSON file (one-line DataError when unreadable)."""
    import json

    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"{p}: trajectory file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{p}: not a JSON trajectory file ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{p}: expected a JSON object mapping token -> list of [x, y, heading] poses")
    return data


def evaluate_trajectory_file(
    trajectories: str | os.PathLike,
    cache_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    metric: str = "pdms",
    interval: float = DEFAULT_INTERVAL,
    extra: dict[str, Any] | None = None,
) -> EvalResult:
    """Score an external planner's trajectories against an existing metric cache.

    Rows: every token of the cache (in cache order) plus unknown tokens of the file (invalid, listed
    last in file order); a cache token without a trajectory, NaNs or a wrong shape give invalid rows.
    """
    check_metric(metric)
    started = time.perf_counter()
    cache = MetricCache(cache_dir)
    cache.check_versions()
    data = load_trajectory_file(trajectories)
    subs: list[Submission] = []
    for token in cache.order:
        if token not in data:
            subs.append(Submission(token, None, reason="no trajectory for this token in the file"))
            continue
        try:
            subs.append(Submission(token, validate_poses(data[token]), interval))
        except ValueError as exc:
            subs.append(Submission(token, None, reason=f"invalid trajectory: {exc}"))
    known = set(cache.order)
    unknown = [t for t in data if t not in known]
    rows = score_submissions(cache, subs, metric)
    rows += [
        ScoreRow.failed(str(t), f"unknown token (not in the metric cache {cache.root})") for t in unknown
    ]
    seconds = time.perf_counter() - started
    summary = write_results(
        Path(out_dir),
        rows,
        metric,
        {
            "trajectories": str(trajectories),
            "cache": str(cache.root),
            "timing": {
                "seconds": seconds,
                "scenes_per_second": len(rows) / seconds if seconds > 0 else math.nan,
            },
            "versions": _versions(),
            **(extra or {}),
        },
    )
    return EvalResult(Path(out_dir), rows, summary)


def merge_results(shard_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> EvalResult:
    """Concatenate shard outputs (their ``pdm_scores.csv``) into one, ordered as the shards' loader order.

    Shards are disjoint sets of logs; rows are re-sorted by the token order recorded in each shard's
    summary (the split's loader order), so merging N shards equals one unsharded run.
    """
    import json

    dirs = [Path(d) for d in shard_dirs]
    if not dirs:
        raise ConfigError("merge needs at least one shard directory")
    metric = None
    rows: list[ScoreRow] = []
    order: dict[str, int] = {}
    reasons: dict[str, str] = {}
    seen: set[str] = set()
    for d in dirs:
        m, part = read_csv(d / "pdm_scores.csv")
        if metric is not None and m != metric:
            raise DataError(f"{d}: shard scored with {m}, others with {metric}")
        metric = m
        try:
            summary = json.loads((d / "summary.json").read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{d / 'summary.json'}: unreadable shard summary ({exc})") from None
        reasons.update(summary.get("failures", {}))
        for t, i in (summary.get("token_order") or {}).items():
            order.setdefault(t, int(i))
        for r in part:
            if r.token in seen:
                raise DataError(f"{d}: token {r.token} appears in more than one shard")
            seen.add(r.token)
            r.reason = reasons.get(r.token, r.reason)
            rows.append(r)
    rows.sort(key=lambda r: (order.get(r.token, math.inf), r.token))
    assert metric is not None
    summary = write_results(
        Path(out_dir), rows, metric, {"merged_from": [str(d) for d in dirs], "versions": _versions()}
    )
    return EvalResult(Path(out_dir), rows, summary)
