"""The local launcher: an experiment's stages as processes on this machine, one queue for all of them.

Each stage runs ``python -m planlab.experiments.job <stage> --run-dir <run>`` with its output in
``<run>/logs/<stage>-<job id>.out``. Stages run in order and stop at the first failure (like SLURM's
``afterok``). Every local submission takes an ``flock`` on ``<root>/_local_queue.lock`` for its whole
run, so concurrent submissions (foreground or ``--detach``) queue instead of competing for the cores.
Evaluation shards are not split locally: one process scores the whole split.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from planlab.experiments import rundir
from planlab.experiments.scripts import JOB_MODULE

QUEUE_LOCK = "_local_queue.lock"


@contextlib.contextmanager
def queue_slot(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / QUEUE_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def local_job_ids(stages: Sequence[str]) -> dict[str, str]:
    token = uuid.uuid4().hex[:8]
    return {stage: f"local-{token}-{stage}" for stage in stages}


def run_stages(
    root: Path, run: Path, stages: Sequence[str], job_ids: dict[str, str], python: str | None = None
) -> int:
    """Run the stages in order inside the local queue; returns the first non-zero exit code (or 0)."""
    python = python or sys.executable
    with queue_slot(root):
        for stage in stages:
            log = run / "logs" / f"{stage}-{job_ids[stage]}.out"
            log.parent.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "PLANLAB_LOCAL_JOB_ID": job_ids[stage]}
            for key in [k for k in env if k.startswith("SLURM_")]:
                env.pop(key)  # a local job is not a SLURM job even when launched from inside one
            with open(log, "ab") as out:
                proc = subprocess.run(
                    [python, "-m", JOB_MODULE, stage, "--run-dir", str(run)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    check=False,
                )
            if proc.returncode != 0:
                return proc.returncode
    return 0


def spawn_detached(root: Path, run: Path, stages: Sequence[str], job_ids: dict[str, str]) -> int:
    """Start :func:`run_stages` in a background session; returns its pid."""
    log = run / "logs" / "local-launcher.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "planlab.experiments.local", "--root", str(root), "--run-dir", str(run),
            "--stages", ",".join(stages), "--job-ids", ",".join(job_ids[s] for s in stages)]  # fmt: skip
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return proc.pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planlab.experiments.local")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--stages", required=True)
    parser.add_argument("--job-ids", required=True)
    args = parser.parse_args(argv)
    stages = args.stages.split(",")
    ids = dict(zip(stages, args.job_ids.split(","), strict=True))
    if not (args.run_dir / "experiment.yaml").is_file():
        print(f"error: {args.run_dir} is not a run dir", file=sys.stderr)
        return 2
    code = run_stages(args.root, args.run_dir, stages, ids)
    status = rundir.read_status(args.run_dir)
    if code != 0 and status.get("state") not in rundir.TERMINAL:
        rundir.set_status(args.run_dir, "failed", reason=f"local job exited with code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
