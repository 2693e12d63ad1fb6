"""Create experiments and sweeps, submit them (SLURM or local), cancel them and reconcile their status.

This is the login-node side: it validates everything before creating a run dir, renders the batch
scripts into the run dir (numbered, never overwritten), submits with ``afterok``/``aftercorr``
dependencies, records the job ids in ``status.json`` and keeps the index current.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.errors import ConfigError, PlanlabError
from planlab.experiments import registry, rundir, slurm
from planlab.experiments.cluster import time_to_seconds
from planlab.experiments.ids import check_id, check_tags
from planlab.experiments.scripts import Script, eval_script, merge_script, train_script
from planlab.experiments.spec import (
    SEED_KEY,
    ResolvedExperiment,
    from_stored,
    load_template,
    make_spec,
    normalize_overrides,
    resolve,
    spec_from_dict,
    template_seeds,
)

Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- create


def _write_new(root: Path | None, resolved: ResolvedExperiment) -> Path:
    run = rundir.create_run_dir(root, resolved.spec.exp_id)
    try:
        rundir.write_yaml(run / "experiment.yaml", resolved.spec.to_dict())
        rundir.write_yaml(run / "config.yaml", resolved.stored_dict())
        rundir.set_status(run, "created", config_hash=resolved.config_hash)
    except BaseException:
        shutil.rmtree(run, ignore_errors=True)  # we created it a moment ago: leave nothing half-made
        raise
    return run


def new_experiment(
    root: str | os.PathLike | None,
    exp_id: str,
    template: str,
    *,
    description: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    tags: Sequence[str] | str | None = None,
    notes: str | None = None,
    cluster: str | None = None,
    seed: int | None = None,
) -> tuple[Path, ResolvedExperiment]:
    """Validate and create one experiment (run dir with experiment.yaml, config.yaml, status.json)."""
    base = rundir.experiments_root(root)
    if rundir.run_dir(base, exp_id).exists():
        raise ConfigError(
            f"experiment {exp_id!r} already exists at {rundir.run_dir(base, exp_id)}; choose another --exp-id"
        )
    spec, tmpl = make_spec(exp_id, template, description=description, overrides=overrides, tags=tags,
                           notes=notes, cluster=cluster, seed=seed, created=rundir.now_iso())  # fmt: skip
    resolved = resolve(spec, tmpl)
    run = _write_new(base, resolved)
    registry.harvest(base, [exp_id])
    return run, resolved


def load(root: str | os.PathLike | None, exp_id: str) -> tuple[Path, ResolvedExperiment]:
    run = rundir.existing_run_dir(root, exp_id)
    spec = spec_from_dict(rundir.read_spec_dict(run), str(run / "experiment.yaml"))
    return run, from_stored(spec, rundir.read_config(run), str(run / "config.yaml"))


# --------------------------------------------------------------------------- runtime estimate (S8)


def estimate_train_seconds(
    root: str | os.PathLike | None, resolved: ResolvedExperiment
) -> tuple[float, str] | None:
    """Runtime of the training job estimated from the throughput of earlier runs of the same agent on the
    same training data (samples/s × planned samples). None when no earlier run qualifies."""
    train = resolved.train
    best: tuple[str, dict[str, Any], dict[str, Any]] | None = None
    for run in rundir.list_run_dirs(root):
        if run.name == resolved.spec.exp_id:
            continue
        try:
            meta = rundir.read_json(run / "meta.json", {}) or {}
            cfg = rundir.read_config(run).get("train") or {}
        except PlanlabError:
            continue
        stats = next(
            (j.get("train_stats") for j in reversed(meta.get("jobs") or []) if j.get("train_stats")), None
        )
        samples_total = ((meta.get("training") or {}).get("resolved") or {}).get("train_samples")
        if not stats or not stats.get("samples_per_s") or not samples_total:
            continue
        data = cfg.get("data") or {}
        if ((cfg.get("agent") or {}).get("name") != train.agent_name
                or data.get("root") != train.data.root or data.get("train_split") != train.data.train_split):  # fmt: skip
            continue
        end = next((j.get("end") or "" for j in reversed(meta.get("jobs") or []) if j.get("train_stats")), "")
        if best is None or end > best[0]:
            best = (
                end,
                stats,
                {
                    "train_samples": samples_total,
                    "label_fraction": data.get("label_fraction") or 1.0,
                    "exp": run.name,
                },
            )
    if best is None:
        return None
    _, stats, prev = best
    t = train.trainer
    world = t.devices * t.num_nodes
    per_step = t.batch_size * world * t.accumulate_grad_batches
    est_train = prev["train_samples"] * train.data.label_fraction / float(prev["label_fraction"])
    if t.max_steps and t.max_steps > 0:
        samples = t.max_steps * per_step
        if t.max_epochs > 0:
            samples = min(samples, t.max_epochs * est_train)
    else:
        samples = t.max_epochs * est_train
    seconds = samples / float(stats["samples_per_s"])
    return (
        seconds,
        f"{samples:.0f} samples at {stats['samples_per_s']:.1f} samples/s measured in {prev['exp']}",
    )


def time_warning(root: str | os.PathLike | None, resolved: ResolvedExperiment) -> str | None:
    est = estimate_train_seconds(root, resolved)
    if est is None:
        return None
    seconds, why = est
    limit = time_to_seconds(resolved.train_resources.time)
    if limit < seconds:
        from planlab.experiments.cluster import seconds_to_time

        return (
            f"time limit {resolved.train_resources.time} is below the estimated training time {seconds_to_time(seconds)} "
            f"({why}); the job will be requeued at the limit and resume, or raise resources.train.time"
        )
    return None


# --------------------------------------------------------------------------- submit


@dataclass
class Submission:
    exp_ids: list[str]
    launcher: str
    scripts: list[Path] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)
    exit_code: int = 0


def _git_brief() -> dict[str, Any]:
    """The submitting checkout's sha/branch/dirty flag (recorded with each submission)."""
    from planlab.experiments.provenance import git_info

    info = git_info(with_diff=False)
    return {k: info.get(k) for k in ("sha", "branch", "dirty")}


def plan_stages(resolved: ResolvedExperiment, only: Sequence[str] | None, launcher: str) -> list[str]:
    stages = ["train"]
    if resolved.eval.enabled:
        stages.append("eval")
        if resolved.eval.shards > 1 and launcher == "slurm":
            stages.append("merge")
    if only:
        for s in only:
            if s not in ("train", "eval"):
                raise ConfigError(f"--only {s!r} is not valid; choose train or eval")
        wanted = set(only) | ({"merge"} if "eval" in only else set())
        stages = [s for s in stages if s in wanted]
        if "eval" in only and not resolved.eval.enabled:
            raise ConfigError("eval.enabled is false for this experiment; nothing to evaluate")
    return stages


def _check_resubmit(run: Path, exp_id: str, stages: Sequence[str], force: bool) -> None:
    status = rundir.read_status(run)
    state = status.get("state", "created")
    if force:
        return
    if state in ("submitted", "running", "requeued"):
        raise PlanlabError(
            f"experiment {exp_id!r} is {state} (jobs {status.get('jobs')}); cancel it first "
            "(planlab exp cancel) or pass --force"
        )
    if state == "completed" and "train" in stages:
        raise PlanlabError(
            f"experiment {exp_id!r} is completed; create a new experiment, or --only eval to re-evaluate"
        )


def _sbatch_chain(scripts: list[Script], echo: Echo) -> dict[str, str]:
    """Submit scripts in order, each with its dependency on an earlier one; cancel all on a failure."""
    jobs: dict[str, str] = {}
    try:
        for s in scripts:
            assert s.path is not None
            dep = f"{s.dependency_type}:{jobs[s.depends_on]}" if s.depends_on in jobs else None
            jobs[s.kind] = slurm.sbatch(s.path, dependency=dep)
            echo(f"submitted {s.kind}: job {jobs[s.kind]}" + (f" ({dep})" if dep else ""))
    except BaseException:
        with contextlib.suppress(PlanlabError):
            slurm.scancel(list(jobs.values()))
        raise
    return jobs


def _render(run: Path, resolved: ResolvedExperiment, stages: Sequence[str], created: str) -> list[Script]:
    workdir = Path.cwd()
    logs = run / "logs"
    scripts: list[Script] = []
    if "train" in stages:
        scripts.append(train_script(resolved, run=run, log_dir=logs, workdir=workdir, created=created))
    if "eval" in stages:
        scripts.append(eval_script(resolved, run=run, log_dir=logs, workdir=workdir, created=created,
                                   after_train="train" in stages))  # fmt: skip
    if "merge" in stages:
        scripts.append(merge_script(resolved, run=run, log_dir=logs, workdir=workdir, created=created))
    _, paths = rundir.reserve_scripts(run, [s.kind for s in scripts])
    for s in scripts:
        s.path = paths[s.kind]
        rundir.write_new_file(s.path, s.text)
    return scripts


def submit(
    root: str | os.PathLike | None,
    exp_id: str,
    *,
    launcher: str | None = None,
    only: Sequence[str] | None = None,
    dry_run: bool = False,
    force: bool = False,
    detach: bool = False,
    echo: Echo = _quiet,
) -> Submission:
    """Submit one experiment: SLURM train → eval (shard array + merge) chain, or the local launcher."""
    base = rundir.experiments_root(root)
    run, resolved = load(base, exp_id)
    launcher = launcher or resolved.profile.launcher
    if launcher not in ("slurm", "local"):
        raise ConfigError(f"launcher={launcher!r} is not valid; choose slurm or local")
    stages = plan_stages(resolved, only, launcher)
    if not dry_run:
        _check_resubmit(run, exp_id, stages, force)
    sub = Submission([exp_id], launcher, dry_run=dry_run)
    if "train" in stages:
        warn = time_warning(base, resolved)
        if warn:
            sub.warnings.append(warn)
            echo(f"warning: {warn}")
    if launcher == "local":
        from planlab.experiments import local

        if dry_run:
            echo(f"dry run: would run {', '.join(stages)} locally for {exp_id}")
            return sub
        ids = local.local_job_ids(stages)
        sub.jobs = ids
        rundir.record_jobs(run, ids, "local", stages, git=_git_brief())
        registry.harvest(base, [exp_id])
        if detach:
            pid = local.spawn_detached(base, run, stages, ids)
            rundir.update_json(run, "status.json", lambda d: d.__setitem__("local_pid", pid))
            echo(f"started {exp_id} in the background (pid {pid}); logs in {run / 'logs'}")
        else:
            sub.exit_code = local.run_stages(base, run, stages, ids)
            if sub.exit_code != 0 and rundir.read_status(run).get("state") not in rundir.TERMINAL:
                rundir.set_status(run, "failed", reason=f"local job exited with code {sub.exit_code}")
        registry.harvest(base, [exp_id])
        return sub

    scripts = _render(run, resolved, stages, rundir.now_iso())
    sub.scripts = [s.path for s in scripts if s.path is not None]
    if dry_run:
        for s in scripts:
            echo(f"# ---- {s.path}")
            echo(s.text)
        echo(f"dry run: wrote {len(scripts)} script(s) into {run / 'scripts'}; nothing submitted")
        return sub
    sub.jobs = _sbatch_chain(scripts, echo)
    rundir.record_jobs(
        run, sub.jobs, "slurm", stages, scripts=[str(p) for p in sub.scripts], git=_git_brief()
    )
    registry.harvest(base, [exp_id])
    return sub


# --------------------------------------------------------------------------- sweeps


def parse_grid(items: Sequence[str] | Mapping[str, Sequence[Any]] | None) -> dict[str, list[Any]]:
    """``key=v1,v2,v3`` strings (or a mapping) -> {key: [values]} in the given key order."""
    from planlab.config import parse_value

    if not items:
        return {}
    if isinstance(items, Mapping):
        grid = {str(k): list(v) if isinstance(v, (list, tuple)) else [v] for k, v in items.items()}
    else:
        grid = {}
        for item in items:
            if "=" not in item:
                raise ConfigError(f"--grid {item!r} is not of the form key=v1,v2")
            key, values = item.split("=", 1)
            key = key.strip()
            if not key:
                raise ConfigError(f"--grid {item!r} has an empty key")
            text = values.strip()
            parsed = (
                parse_value(text)
                if text.startswith("[")
                else [parse_value(v) for v in text.split(",") if v.strip()]
            )
            grid[key] = parsed if isinstance(parsed, list) else [parsed]
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"--grid {key} has no values")
        if key.startswith("resources.") or key == SEED_KEY:
            raise ConfigError(f"--grid {key}: a sweep shares one allocation and uses --seeds for seeds")
    return grid


def sweep_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def new_sweep(
    root: str | os.PathLike | None,
    sweep_id: str,
    template: str,
    *,
    grid: Sequence[str] | Mapping[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    description: str | None = None,
    tags: Sequence[str] | str | None = None,
    notes: str | None = None,
    cluster: str | None = None,
) -> tuple[Path, list[str]]:
    """Create one experiment per grid point × seed (ids ``<sweep>-p<i>-s<seed>``) and the sweep dir.

    Everything is resolved before anything is written; the sweep id doubles as a tag of its experiments.
    """
    base = rundir.experiments_root(root)
    check_id(sweep_id, "sweep id")
    tmpl = load_template(template)
    preset = tmpl.get("sweep") or {}
    grid_d = parse_grid(grid) or parse_grid(preset.get("grid") or {})
    if not grid_d:
        raise ConfigError(f"no --grid given and template {template!r} has no sweep.grid preset")
    seed_list = list(seeds) if seeds else list(preset.get("seeds") or template_seeds(tmpl))
    base_over = normalize_overrides(overrides)
    sdir = rundir.sweep_dir(base, sweep_id)
    if sdir.exists():
        raise ConfigError(f"sweep {sweep_id!r} already exists at {sdir}; choose another --sweep-id")
    points = sweep_points(grid_d)
    resolved_all: list[ResolvedExperiment] = []
    created = rundir.now_iso()
    for pi, point in enumerate(points):
        for seed in seed_list:
            exp_id = check_id(f"{sweep_id}-p{pi}-s{seed}")
            if rundir.run_dir(base, exp_id).exists():
                raise ConfigError(f"experiment {exp_id!r} already exists; choose another --sweep-id")
            desc = description if description is not None else str(tmpl.get("description") or "")
            point_desc = ", ".join(f"{k}={v}" for k, v in point.items())
            spec, _ = make_spec(exp_id, template, description=f"{point_desc}, seed {seed}: {desc}".strip(),
                                overrides={**base_over, **point}, tags=[*check_tags(tags), sweep_id],
                                notes=notes, cluster=cluster, seed=seed, sweep=sweep_id, created=created)  # fmt: skip
            resolved_all.append(resolve(spec, tmpl))
    first = resolved_all[0]
    for r in resolved_all[1:]:
        if (r.train_resources, r.eval_resources, r.profile.name) != (
            first.train_resources,
            first.eval_resources,
            first.profile.name,
        ):
            raise ConfigError(
                "all points of a sweep must share one cluster profile and allocation (one job array)"
            )
    sdir.mkdir(parents=True)
    ids: list[str] = []
    try:
        for r in resolved_all:
            _write_new(base, r)
            ids.append(r.spec.exp_id)
    except BaseException:
        for exp_id in ids:
            shutil.rmtree(rundir.run_dir(base, exp_id), ignore_errors=True)
        shutil.rmtree(sdir, ignore_errors=True)
        raise
    rundir.write_yaml(sdir / "sweep.yaml", {
        "sweep_id": sweep_id, "template": template, "grid": grid_d, "seeds": seed_list,
        "overrides": base_over, "created": created, "experiments": ids,
    })  # fmt: skip
    lines = ["# index\texp_id\trun_dir"] + [f"{i}\t{e}\t{rundir.run_dir(base, e)}" for i, e in enumerate(ids)]
    rundir.write_new_file(sdir / "array_map.tsv", "\n".join(lines) + "\n", mode=0o644)
    registry.harvest(base, ids)
    return sdir, ids


def submit_sweep(
    root: str | os.PathLike | None,
    sweep_id: str,
    *,
    launcher: str | None = None,
    dry_run: bool = False,
    max_parallel: int | None = None,
    echo: Echo = _quiet,
) -> Submission:
    """Submit a sweep: one training job array and one evaluation array (task i after training task i)."""
    base = rundir.experiments_root(root)
    sdir = rundir.sweep_dir(base, sweep_id)
    import yaml

    try:
        info = yaml.safe_load((sdir / "sweep.yaml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanlabError(f"no sweep {sweep_id!r} under {base}") from None
    ids: list[str] = list(info["experiments"])
    loaded = [load(base, e) for e in ids]
    first = loaded[0][1]
    launcher = launcher or first.profile.launcher
    sub = Submission(ids, launcher, dry_run=dry_run)
    if not dry_run:
        for run, r in loaded:
            _check_resubmit(run, r.spec.exp_id, ["train"], force=False)
    warn = time_warning(base, first)
    if warn:
        sub.warnings.append(warn)
        echo(f"warning: {warn}")
    stages = ["train", "eval"] if first.eval.enabled else ["train"]
    if launcher == "local":
        from planlab.experiments import local

        if dry_run:
            echo(f"dry run: would run {len(ids)} experiments locally, one after another")
            return sub
        for run, _ in loaded:
            jobs = local.local_job_ids(stages)
            rundir.record_jobs(run, jobs, "local", stages, sweep=sweep_id)
            code = local.run_stages(base, run, stages, jobs)
            if code != 0 and rundir.read_status(run).get("state") not in rundir.TERMINAL:
                rundir.set_status(run, "failed", reason=f"local job exited with code {code}")
            sub.exit_code = sub.exit_code or code
        registry.harvest(base, ids)
        return sub

    created = rundir.now_iso()
    amap = sdir / "array_map.tsv"
    logs = sdir / "logs"
    logs.mkdir(exist_ok=True)
    n = len(ids)
    scripts = [train_script(first, run=None, log_dir=logs, workdir=Path.cwd(), created=created,
                            subject=f"sweep {sweep_id} ({n} experiments)", array_size=n, array_map=amap,
                            max_parallel=max_parallel)]  # fmt: skip
    if "eval" in stages:
        scripts.append(eval_script(first, run=None, log_dir=logs, workdir=Path.cwd(), created=created,
                                   after_train=True, subject=f"sweep {sweep_id} ({n} experiments)",
                                   array_size=n, array_map=amap, max_parallel=max_parallel))  # fmt: skip
    # Array scripts do not depend on per-experiment text; the description shown is the sweep's.
    _, paths = rundir.reserve_scripts(sdir, [s.kind for s in scripts])
    for s in scripts:
        s.path = paths[s.kind]
        rundir.write_new_file(s.path, s.text)
    sub.scripts = [p for p in paths.values()]
    if dry_run:
        for s in scripts:
            echo(f"# ---- {s.path}")
            echo(s.text)
        echo(f"dry run: wrote {len(scripts)} script(s) into {sdir / 'scripts'}; nothing submitted")
        return sub
    arrays = _sbatch_chain(scripts, echo)
    sub.jobs = arrays
    git = _git_brief()
    for i, (run, _) in enumerate(loaded):
        jobs = {stage: f"{arrays[stage]}_{i}" for stage in arrays}
        rundir.record_jobs(
            run, jobs, "slurm", stages, sweep=sweep_id, scripts=[str(p) for p in sub.scripts], git=git
        )
    rundir.update_json(sdir, "submissions.json", lambda d: d.setdefault("submissions", []).append(
        {"time": created, "jobs": arrays, "scripts": [str(p) for p in sub.scripts]}))  # fmt: skip
    registry.harvest(base, ids)
    return sub


# --------------------------------------------------------------------------- status, cancel


def _stage_states(
    status: dict[str, Any], states: dict[str, slurm.JobState]
) -> dict[str, tuple[str | None, list[slurm.JobState]]]:
    out = {}
    for stage, jid in (status.get("jobs") or {}).items():
        rows = slurm.states_of(states, jid)
        out[stage] = (slurm.combine(rows), rows)
    return out


def derive_state(status: dict[str, Any], states: dict[str, slurm.JobState]) -> tuple[str, str | None] | None:
    """The lifecycle state the scheduler implies for one experiment, with a reason; None if unknown."""
    per = _stage_states(status, states)
    if not per or all(word is None for word, _ in per.values()):
        return None
    order = [s for s in ("train", "eval", "merge") if s in per]
    for stage in order:
        word, rows = per[stage]
        if word == "failed":
            bad = next(r for r in rows if r.lifecycle == "failed")
            return "failed", f"{stage} job {bad.job_id} {bad.state} (exit {bad.exit_code})"
    for stage in order:
        word, rows = per[stage]
        if word == "cancelled":
            bad = next(r for r in rows if r.lifecycle == "cancelled")
            return "cancelled", f"{stage} job {bad.job_id} {bad.state}"
    words = [per[s][0] for s in order]
    if all(w == "completed" for w in words):
        return "completed", None
    if "running" in words:
        return "running", None
    if "requeued" in words:
        return "requeued", None
    return "submitted", None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_vanished(run: Path, status: dict[str, Any]) -> tuple[str, str] | None:
    """A local run whose launcher and job processes are gone from this host without a final state."""
    import socket

    pid = status.get("local_pid")
    if pid is not None:
        return (
            None
            if _pid_alive(int(pid))
            else ("failed", f"local launcher (pid {pid}) exited without finishing")
        )
    try:
        jobs = (rundir.read_json(run / "meta.json", {}) or {}).get("jobs") or []
    except PlanlabError:
        return None
    open_jobs = [j for j in jobs if j.get("scheduler") == "local" and not j.get("end")]
    if not open_jobs:
        return None
    last = open_jobs[-1]
    host = (last.get("host") or {}).get("host")
    pid = (last.get("host") or {}).get("pid")
    if host == socket.gethostname() and pid is not None and not _pid_alive(int(pid)):
        return "failed", f"local {last.get('stage')} job (pid {pid}) ended without recording a result"
    return None


def refresh_status(
    root: str | os.PathLike | None, exp_ids: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Reconcile the status of unfinished experiments with the scheduler, using ONE batched sacct call.

    Terminal scheduler states (a timeout, an OOM kill, a cancellation the job could not record) are
    written into ``status.json``; a job seen pending again after a requeue becomes ``requeued``.
    Returns one row per experiment: id, recorded state, new state (if changed), reason.
    """
    base = rundir.experiments_root(root)
    runs = [rundir.existing_run_dir(base, e) for e in exp_ids] if exp_ids else rundir.list_run_dirs(base)
    statuses = {run: rundir.read_status(run) for run in runs}
    open_states = ("submitted", "running", "requeued", "cancelled", "failed")
    slurm_runs = [
        r for r, s in statuses.items() if s.get("launcher") == "slurm" and s.get("state") in open_states
    ]
    ids = sorted({jid for r in slurm_runs for jid in (statuses[r].get("jobs") or {}).values()})
    states = slurm.query(ids) if ids and slurm.available() else {}
    rows: list[dict[str, Any]] = []
    changed: list[str] = []
    for run, status in statuses.items():
        recorded = status.get("state", "created")
        new: tuple[str, str | None] | None = None
        if run in slurm_runs:
            derived = derive_state(status, states)
            if derived is not None:
                word, reason = derived
                old = status.get("reason") or ""
                # The scheduler's word (CANCELLED vs TIMEOUT vs OOM) first, the job's own message after it.
                merged = (
                    f"{reason}: {old}"
                    if reason and old and not old.startswith(reason)
                    else (reason or old or None)
                )
                if word in rundir.TERMINAL and word != recorded and recorded != "completed":
                    new = (word, merged)
                elif (
                    word in rundir.TERMINAL
                    and word == recorded
                    and word != "completed"
                    and reason
                    and reason not in old
                ):
                    new = (word, merged)  # e.g. the job recorded "SIGTERM"; sacct says CANCELLED or TIMEOUT
                elif word == "requeued" and recorded in ("running", "cancelled", "submitted"):
                    new = derived
                elif word == "running" and recorded == "cancelled":
                    new = ("requeued", "restarted after SIGTERM")
        elif status.get("launcher") == "local" and recorded in ("submitted", "running"):
            new = _local_vanished(run, status)
        if new is not None:
            rundir.set_status(run, new[0], reason=new[1], source="scheduler")
            changed.append(run.name)
        rows.append({"exp_id": run.name, "recorded": recorded, "state": new[0] if new else recorded,
                     "reason": new[1] if new else status.get("reason"), "jobs": status.get("jobs") or {}})  # fmt: skip
    if runs:
        registry.harvest(base, [r.name for r in runs])
    return rows


def cancel(root: str | os.PathLike | None, exp_id: str) -> list[str]:
    """scancel every job of the experiment; the jobs record ``cancelled`` themselves (SIGTERM)."""
    run = rundir.existing_run_dir(root, exp_id)
    status = rundir.read_status(run)
    jobs = list((status.get("jobs") or {}).values())
    if status.get("launcher") == "slurm":
        slurm.scancel(jobs)
    elif status.get("launcher") == "local":
        pid = status.get("local_pid")
        if pid is None:
            raise PlanlabError(f"experiment {exp_id!r} runs in a foreground local launcher; stop it there")
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGTERM)
    else:
        raise PlanlabError(f"experiment {exp_id!r} has no submitted jobs")
    if status.get("state") not in rundir.TERMINAL:
        rundir.set_status(run, "cancelled", reason="cancelled by planlab exp cancel")
    registry.harvest(root, [exp_id])
    return jobs


def summary_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=str)
