"""Render the SLURM batch scripts of an experiment (train, sharded eval, merge) from Jinja2 templates.

Rules baked in (lessons S2–S9): always ``srun``; tasks per node = GPUs per node (CPU: the profile's
``cpu_tasks_per_node``) and Lightning's ``num_nodes``/``devices`` taken from the same numbers; MASTER_ADDR
from ``scontrol show hostnames`` and MASTER_PORT derived from the job id; ``--signal=SIGUSR1@<grace>
--requeue`` with Lightning as the signal's only owner; every interpolated value passes ``shlex.quote``
(the template filter ``q``), so descriptions with quotes, ``$()``, backticks or newlines stay inert.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import planlab
from planlab.errors import ConfigError
from planlab.experiments.cluster import ClusterProfile, JobResources, tasks_per_node
from planlab.experiments.spec import ResolvedExperiment

TEMPLATES = Path(__file__).resolve().parent / "templates"
JOB_MODULE = "planlab.experiments.job"


@cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=False,  # shell, not HTML: quoting is explicit through the `q` filter
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
    )
    env.filters["q"] = lambda v: shlex.quote(str(v))
    return env


@dataclass
class Script:
    """One rendered batch script and how to submit it."""

    kind: str  # train | eval | merge
    text: str
    depends_on: str | None = None  # the stage whose job id goes into --dependency
    dependency_type: str = "afterok"  # afterok | aftercorr (array task i after task i)
    array_size: int = 0
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def gres(res: JobResources, profile: ClusterProfile) -> str | None:
    if res.gpus_per_node <= 0:
        return None
    return f"gpu:{profile.gpu_type}:{res.gpus_per_node}" if profile.gpu_type else f"gpu:{res.gpus_per_node}"


def _split_opt(opt: str) -> tuple[str, str | None]:
    name, eq, value = opt.partition("=")
    return name, (value if eq else None)


def python_for(profile: ClusterProfile) -> str:
    """The interpreter the jobs run: the profile's, else the one running this process."""
    return profile.python or sys.executable


def _base_context(
    *,
    kind: str,
    subject: str,
    description: str,
    job_name: str,
    log_path: Path,
    workdir: Path,
    res: JobResources,
    profile: ClusterProfile,
    created: str,
    ntasks: int,
    array: str | None = None,
    dependent: bool = False,
    requeue: bool = False,
    signal: str | None = None,
    submit_note: str | None = None,
) -> dict[str, Any]:
    return {
        "version": planlab.__version__,
        "created": created,
        "kind": kind,
        "subject": subject,
        "description": description,
        "job_name": job_name,
        "log_path": str(log_path),
        "workdir": str(workdir),
        "nodes": res.nodes,
        "tasks_per_node": ntasks,
        "cpus_per_task": res.cpus_per_task,
        "mem": res.mem,
        "time": res.time,
        "partition": profile.partition,
        "account": profile.account,
        "qos": profile.qos,
        "constraint": profile.constraint,
        "gres": gres(res, profile),
        "array": array,
        "signal": signal,
        "requeue": requeue,
        "dependent": dependent,
        "sbatch_extra": [_split_opt(o) for o in profile.sbatch_extra],
        "env": sorted(profile.env.items()),
        "setup": list(profile.setup),
        "profile": profile.name,
        "submit_note": submit_note,
    }


def job_command(
    profile: ClusterProfile, stage: str, *, run: Path | None = None, array_map: Path | None = None
) -> list[str]:
    """The srun'd command words (each quoted when rendered)."""
    words = [*profile.container, python_for(profile), "-m", JOB_MODULE, stage]
    if array_map is not None:
        words += ["--array-map", str(array_map)]
    elif run is not None:
        words += ["--run-dir", str(run)]
    else:
        raise ValueError("job_command needs run or array_map")
    return words


def render(template: str, context: dict[str, Any]) -> str:
    return _env().get_template(template).render(**context)


def train_script(
    resolved: ResolvedExperiment,
    *,
    run: Path | None,
    log_dir: Path,
    workdir: Path,
    created: str,
    subject: str | None = None,
    array_size: int = 0,
    array_map: Path | None = None,
    max_parallel: int | None = None,
) -> Script:
    """The training job (or, with ``array_map``, the training array of a sweep)."""
    res, profile = resolved.train_resources, resolved.profile
    ntasks = tasks_per_node(res)
    # Consistency by construction: the resolved config took its layout from these same resources.
    t = resolved.train.trainer
    if (t.num_nodes, t.devices) != (res.nodes, ntasks):
        raise ConfigError(
            f"trainer.num_nodes={t.num_nodes}/devices={t.devices} disagree with the allocation "
            f"{res.nodes} node(s) × {ntasks} task(s)"
        )
    spec = resolved.spec
    array = None
    if array_size:
        array = f"0-{array_size - 1}" + (f"%{max_parallel}" if max_parallel else "")
        log = log_dir / "train-%A_%a.out"
        name = f"pl-{spec.sweep}-train"
    else:
        log = log_dir / "train-%j.out"
        name = f"pl-{spec.exp_id}-train"
    ctx = _base_context(
        kind="train",
        subject=subject or spec.exp_id,
        description=spec.description,
        job_name=name,
        log_path=log,
        workdir=workdir,
        res=res,
        profile=profile,
        created=created,
        ntasks=ntasks,
        array=array,
        requeue=profile.requeue,
        signal=f"SIGUSR1@{profile.signal_grace_s}" if profile.requeue else None,
    )
    ctx["grace"] = profile.signal_grace_s
    ctx["command"] = job_command(profile, "train", run=run, array_map=array_map)
    return Script("train", render("train.sbatch.j2", ctx), array_size=array_size)


def eval_script(
    resolved: ResolvedExperiment,
    *,
    run: Path | None,
    log_dir: Path,
    workdir: Path,
    created: str,
    after_train: bool,
    subject: str | None = None,
    array_size: int = 0,
    array_map: Path | None = None,
    max_parallel: int | None = None,
) -> Script:
    """Evaluation: one job, a shard array (``eval.shards`` > 1), or a sweep's per-experiment array."""
    res, profile, spec = resolved.eval_resources, resolved.profile, resolved.spec
    shards = resolved.eval.shards if array_map is None else 1
    if array_map is not None:
        array = f"0-{array_size - 1}" + (f"%{max_parallel}" if max_parallel else "")
        log, name, dep_type = log_dir / "eval-%A_%a.out", f"pl-{spec.sweep}-eval", "aftercorr"
    elif shards > 1:
        array, log, name, dep_type = (
            f"0-{shards - 1}",
            log_dir / "eval-%A_%a.out",
            f"pl-{spec.exp_id}-eval",
            "afterok",
        )
    else:
        array, log, name, dep_type = None, log_dir / "eval-%j.out", f"pl-{spec.exp_id}-eval", "afterok"
    note = f"sbatch --dependency={dep_type}:<train job id>" if after_train else None
    ctx = _base_context(
        kind="eval",
        subject=subject or spec.exp_id,
        description=spec.description,
        job_name=name,
        log_path=log,
        workdir=workdir,
        res=res,
        profile=profile,
        created=created,
        ntasks=1,
        array=array,
        dependent=after_train,
        requeue=profile.requeue,
        submit_note=note,
    )
    ctx["command"] = job_command(profile, "eval", run=run, array_map=array_map)
    ctx["shards"] = shards
    return Script(
        "eval",
        render("eval.sbatch.j2", ctx),
        depends_on="train" if after_train else None,
        dependency_type=dep_type,
        array_size=array_size if array_map is not None else (shards if shards > 1 else 0),
    )


def merge_script(
    resolved: ResolvedExperiment, *, run: Path, log_dir: Path, workdir: Path, created: str
) -> Script:
    """The job that merges evaluation shards into ``pdm_scores.csv`` + ``summary.json``."""
    res, profile, spec = resolved.profile.merge, resolved.profile, resolved.spec
    ctx = _base_context(
        kind="merge",
        subject=spec.exp_id,
        description=spec.description,
        job_name=f"pl-{spec.exp_id}-merge",
        log_path=log_dir / "merge-%j.out",
        workdir=workdir,
        res=res,
        profile=profile,
        created=created,
        ntasks=1,
        dependent=True,
        requeue=profile.requeue,
        submit_note="sbatch --dependency=afterok:<eval array job id>",
    )
    ctx["command"] = job_command(profile, "merge", run=run)
    return Script("merge", render("merge.sbatch.j2", ctx), depends_on="eval", dependency_type="afterok")
