"""Submitting I-JEPA pre-training to SLURM: one batch script per submission, in the run directory.

The experiment manager's templates describe training/evaluation of agents; pre-training is its own job kind,
so this module renders its batch script with the same cluster profiles (partition, account, GPUs, setup
lines) and the same quoted header (``planlab/experiments/templates/_header.j2``: every interpolated value is
shell-quoted). The resolved config is frozen into ``<run_dir>/scripts/pretrain[.N].yaml`` at submission;
the job runs ``planlab ssl pretrain --config <it> --run-dir <run_dir> --resume`` under ``srun``. SIGUSR1
arrives ``signal_grace_s`` before the time limit: the loop saves a checkpoint and requeues the job
(:mod:`planlab.ssl.pretrain`), and the requeued job resumes in the same run dir.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from planlab.errors import ConfigError

TEMPLATE = """{% include "_header.j2" %}
# I-JEPA pre-training is one process ({{ device }}). SIGUSR1 comes {{ grace|int }} s before the time limit:
# planlab ssl pretrain saves a checkpoint and requeues this job, which then resumes in the same run dir.
srun --kill-on-bad-exit=1 --ntasks=1 {% for word in command %}{{ word|q }} {% endfor %}
"""


def _env() -> Any:
    import jinja2

    from planlab.experiments.scripts import TEMPLATES

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=False,  # shell, not HTML: quoting is explicit through the `q` filter
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["q"] = lambda v: shlex.quote(str(v))
    return env


def pretrain_script(cfg: Any, run_dir: Path, config_path: Path, profile: Any, created: str) -> str:
    """The batch script text for pre-training ``cfg`` into ``run_dir`` on ``profile``'s training resources."""
    import dataclasses

    import planlab
    from planlab.experiments.scripts import gres, python_for

    # One process on one device: a multi-node / multi-GPU training allocation is cut to one node, one GPU.
    res = dataclasses.replace(profile.train, nodes=1, gpus_per_node=min(profile.train.gpus_per_node, 1))
    command = [*profile.container, python_for(profile), "-m", "planlab.cli.main", "ssl", "pretrain", "--config",
               str(config_path), "--run-dir", str(run_dir), "--resume", "--no-progress"]  # fmt: skip
    ctx = {
        "version": planlab.__version__,
        "created": created,
        "kind": "ssl-pretrain",
        "subject": str(run_dir),
        "description": f"I-JEPA pre-training ({cfg.encoder.embed_dim}-d x {cfg.encoder.depth}) on split {cfg.data.split}",
        "job_name": f"pl-ssl-{run_dir.name}"[:64],
        "log_path": str(run_dir / "logs" / "pretrain-%j.out"),
        "workdir": str(Path.cwd()),
        "nodes": 1,
        "tasks_per_node": 1,
        "cpus_per_task": res.cpus_per_task,
        "mem": res.mem,
        "time": res.time,
        "partition": profile.partition,
        "account": profile.account,
        "qos": profile.qos,
        "constraint": profile.constraint,
        "gres": gres(res, profile),
        "array": None,
        "signal": f"SIGUSR1@{profile.signal_grace_s}" if profile.requeue else None,
        "requeue": profile.requeue,
        "dependent": False,
        "sbatch_extra": [
            (o.partition("=")[0], o.partition("=")[2] if "=" in o else None) for o in profile.sbatch_extra
        ],
        "env": sorted(profile.env.items()),
        "setup": list(profile.setup),
        "profile": profile.name,
        "submit_note": None,
        "grace": profile.signal_grace_s,
        "device": f"{res.gpus_per_node} GPU" if res.gpus_per_node else f"{res.cpus_per_task} CPU cores",
        "command": command,
    }
    return _env().from_string(TEMPLATE).render(**ctx)


def submit_pretraining(
    config_files: Sequence[str | os.PathLike],
    overrides: Sequence[str] | Mapping[str, Any] | None,
    run_dir: str | os.PathLike,
    cluster: str,
    *,
    time: str | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Resolve the config, freeze it into the run dir, render the script and ``sbatch`` it (unless dry run)."""
    import dataclasses

    import yaml

    from planlab.config import to_dict
    from planlab.experiments import rundir, slurm
    from planlab.experiments.cluster import load_profile, time_to_seconds
    from planlab.ssl.config import build_pretrain_config

    cfg = build_pretrain_config(config_files, overrides)
    profile = load_profile(cluster)
    if time is not None:
        time_to_seconds(time, "--time")
        profile = dataclasses.replace(profile, train=dataclasses.replace(profile.train, time=time))
    run = Path(run_dir).expanduser().absolute()
    state = rundir.read_json(run / "training.json", {}) or {}
    if state.get("state") == "completed":
        raise ConfigError(f"run dir {run} holds a finished pre-training run; choose another --run-dir")
    (run / "logs").mkdir(parents=True, exist_ok=True)
    _, paths = rundir.reserve_scripts(run, ["pretrain"])  # scripts/pretrain[.N].sbatch, never reused
    script = paths["pretrain"]
    config_path = script.with_suffix(".yaml")  # scripts/pretrain[.N].yaml beside it
    with open(config_path, "x", encoding="utf-8") as fh:
        fh.write(
            f"# frozen by planlab ssl submit for {run}\n" + yaml.safe_dump(to_dict(cfg), sort_keys=False)
        )
    text = pretrain_script(cfg, run, config_path, profile, rundir.now_iso())
    rundir.write_new_file(script, text)
    info: dict[str, Any] = {"script": str(script), "config": str(config_path), "run_dir": str(run)}
    if dry_run:
        echo(text)
        return info
    info["job_id"] = slurm.sbatch(script)
    echo(f"submitted pre-training job {info['job_id']} ({script})")
    return info
