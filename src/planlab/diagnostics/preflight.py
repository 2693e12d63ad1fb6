"""Smoke runs and memory estimates of *experiments*: their resolved training config and job resources.

``planlab exp submit`` calls :func:`preflight_experiment` before anything is queued (lessons S1–S8: the
failures that cost a queue wait and a node allocation should cost a minute on the login node instead).
The per-rank host budget is the job's ``--mem`` divided by its tasks per node; the smoke run's report goes
to ``<run>/logs/preflight/<UTC time>/`` (``logs/`` is the one place a not-yet-trained run dir may hold files).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planlab.diagnostics.smoke import SmokeOptions, SmokeReport, run_smoke
from planlab.errors import PlanlabError

PREFLIGHT_DIR = Path("logs") / "preflight"
# States in which `planlab exp submit` refuses to train again (without --force): no preflight for those.
_REFUSED = ("submitted", "running", "requeued", "completed")


@dataclass
class ExperimentTarget:
    """An experiment's training config and the memory its training job gets."""

    exp_id: str
    run_dir: Path
    cfg: Any
    node_budget: int  # bytes of host memory per node (sbatch --mem)
    ranks_per_node: int
    resolved: Any

    @property
    def rank_budget(self) -> int:
        return self.node_budget // max(self.ranks_per_node, 1)


def utc_stamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")


def experiment_target(
    root: str | os.PathLike | None, exp_id: str, overrides: Sequence[str] | None = None
) -> ExperimentTarget:
    """Load experiment ``exp_id`` (optionally with extra ``key=value`` training overrides)."""
    from planlab.config import build_config, to_dict
    from planlab.experiments.cluster import mem_to_mb, tasks_per_node
    from planlab.experiments.launch import load

    run, resolved = load(root, exp_id)
    cfg = resolved.train
    if overrides:
        cfg = build_config(type(cfg), to_dict(cfg), overrides=list(overrides))
    res = resolved.train_resources
    return ExperimentTarget(exp_id, run, cfg, int(mem_to_mb(res.mem) * 2**20), tasks_per_node(res), resolved)


def preflight_experiment(
    root: str | os.PathLike | None,
    exp_id: str,
    only: Sequence[str] | None = None,
    force: bool = False,
    opts: SmokeOptions | None = None,
    announce: Callable[[str], None] | None = None,
) -> SmokeReport | None:
    """The smoke run of an experiment about to be submitted; None when the submission trains nothing
    (``--only eval``) or will be refused anyway (live or completed without ``--force``)."""
    from planlab.experiments import rundir
    from planlab.experiments.launch import plan_stages

    target = experiment_target(root, exp_id)
    resolved = target.resolved
    if "train" not in plan_stages(resolved, only, resolved.profile.launcher):
        return None
    if not force and rundir.read_status(target.run_dir).get("state", "created") in _REFUSED:
        return None  # launch.submit refuses these with its own message
    opts = opts or SmokeOptions()
    if opts.host_budget is None:
        opts.host_budget = target.rank_budget
    if announce is not None:
        announce(f"preflight: smoke run of {exp_id} (skip with --no-preflight)")
    return run_smoke(target.cfg, target.run_dir / PREFLIGHT_DIR / utc_stamp(), opts)


def preflight_error(report: SmokeReport, exp_id: str) -> PlanlabError:
    """One line: which criterion failed, why, where the report is, how to skip."""
    failed = [c for c in report.ordered() if c.status == "fail"] or [
        c for c in report.ordered() if c.status != "pass"
    ]
    why = f"{failed[0].name}: {failed[0].detail}" if failed else "see the report"
    return PlanlabError(
        f"preflight of {exp_id!r} failed ({why}); report {report.run_dir / 'smoke.md'}; "
        "fix it or submit with --no-preflight"
    )
