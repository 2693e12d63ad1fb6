"""Thin, quoted-argv wrappers around ``sbatch``, ``sacct``/``squeue`` and ``scancel`` (Slurm 22.05 and later).

No shell is involved: every call passes an argument list. Job states are read for many jobs with one
batched call (``sacct -j a,b,c``), falling back to ``squeue -t all`` where accounting is disabled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from planlab.errors import PlanlabError

_JOB_ID = re.compile(r"\A\d+(?:_\d+)?\Z")

# SLURM job states -> experiment lifecycle words (status.json vocabulary).
ACTIVE = {"PENDING": "submitted", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "SUSPENDED": "running", "STAGE_OUT": "running", "SIGNALING": "running", "RESIZING": "running"}  # fmt: skip
REQUEUED = {"REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED", "RESV_DEL_HOLD"}
FAILED = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT"}


@dataclass
class JobState:
    job_id: str
    state: str  # SLURM's word, e.g. COMPLETED, CANCELLED, FAILED, TIMEOUT
    exit_code: str = ""
    reason: str = ""
    restarts: int = 0

    @property
    def lifecycle(self) -> str:
        if self.state == "COMPLETED":
            return "completed"
        if self.state == "CANCELLED":
            return "cancelled"
        if self.state in FAILED:
            return "failed"
        if self.state in REQUEUED:
            return "requeued"
        if self.state == "PENDING" and self.restarts > 0:
            return "requeued"
        return ACTIVE.get(self.state, "submitted")


def available() -> bool:
    return shutil.which("sbatch") is not None


def _run(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise PlanlabError(f"{argv[0]} not found: is SLURM installed on this machine?") from None
    except subprocess.TimeoutExpired:
        raise PlanlabError(f"{argv[0]} did not answer within {timeout:.0f} s") from None


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def sbatch(script: Path, *, dependency: str | None = None, extra: Sequence[str] = ()) -> str:
    """Submit ``script``; returns the job id. ``dependency`` like ``afterok:123``."""
    argv = ["sbatch", "--parsable"]
    if dependency:
        if not re.match(
            r"\A(afterok|afterany|afternotok|aftercorr|after):\d+(?:_\d+)?(?::\d+(?:_\d+)?)*\Z", dependency
        ):
            raise ValueError(f"bad dependency {dependency!r}")
        argv.append(f"--dependency={dependency}")
    argv += [*extra, str(script)]
    out = _run(argv)
    if out.returncode != 0:
        raise PlanlabError(
            f"sbatch {script.name} failed: {_first_line(out.stderr) or 'exit ' + str(out.returncode)}"
        )
    job_id = out.stdout.strip().split(";")[0]
    if not _JOB_ID.match(job_id):
        raise PlanlabError(f"sbatch {script.name}: unexpected answer {out.stdout.strip()!r}")
    return job_id


def scancel(job_ids: Iterable[str]) -> None:
    ids = [j for j in job_ids if j]
    for j in ids:
        if not _JOB_ID.match(j):
            raise ValueError(f"bad job id {j!r}")
    if not ids:
        return
    out = _run(["scancel", *ids])
    if out.returncode != 0:
        raise PlanlabError(f"scancel failed: {_first_line(out.stderr)}")


def query(job_ids: Iterable[str]) -> dict[str, JobState]:
    """States of many jobs with one ``sacct`` call (array ids expand to their tasks ``123_0``…).

    Without accounting (``sacct`` refuses) one ``squeue -t all`` call is used instead; jobs it no longer
    knows are absent from the answer.
    """
    ids = sorted({j for j in job_ids if j})
    for j in ids:
        if not _JOB_ID.match(j):
            raise ValueError(f"bad job id {j!r}")
    if not ids:
        return {}
    # -D lists every run of a requeued job (its earlier runs as REQUEUED, in order): one call gives the
    # current state and the restart count.
    argv = [
        "sacct",
        "-X",
        "-D",
        "--noheader",
        "--parsable2",
        "-j",
        ",".join(ids),
        "-o",
        "JobID,State,ExitCode,Reason",
    ]
    out = _run(argv)
    if out.returncode == 0:
        states: dict[str, JobState] = {}
        for line in out.stdout.splitlines():
            parts = line.split("|")
            if len(parts) < 3 or not parts[0]:
                continue
            jid, state = parts[0], parts[1].split()[0] if parts[1] else ""
            # "123_[0-3]" rows are array tasks not started yet; they keep their pending range as id.
            previous = states.get(jid)
            restarts = previous.restarts + (previous.state == "REQUEUED") if previous else 0
            states[jid] = JobState(jid, state, parts[2], parts[3] if len(parts) > 3 else "", restarts)
        return states
    return _query_squeue(ids)


def _query_squeue(ids: list[str]) -> dict[str, JobState]:
    out = _run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
    states: dict[str, JobState] = {}
    if out.returncode != 0:
        return states
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) >= 2:
            states[parts[0]] = JobState(parts[0], parts[1], "", parts[2] if len(parts) > 2 else "")
    return states


def states_of(states: dict[str, JobState], job_id: str) -> list[JobState]:
    """The state rows of ``job_id``: itself, or every task ``<id>_<n>`` of an array job."""
    if job_id in states:
        return [states[job_id]]
    prefix = f"{job_id}_"
    return [s for k, s in states.items() if k.startswith(prefix)]


def combine(rows: list[JobState]) -> str | None:
    """One lifecycle word for a job (or all tasks of an array): failures win, then cancellation, then
    activity; completed only when every task completed. None when the scheduler does not know the job."""
    if not rows:
        return None
    words = [r.lifecycle for r in rows]
    for word in ("failed", "cancelled", "running", "requeued", "submitted"):
        if word in words:
            return word
    return "completed"
