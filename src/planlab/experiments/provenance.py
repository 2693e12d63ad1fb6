"""Provenance of a job: code version (git sha, branch, dirty flag, diff), environment lock, host, SLURM.

Everything here is best effort and never raises: a job must not fail because ``git`` is missing on a
compute node; the missing item is recorded as ``None`` instead.
"""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import planlab

MAX_DIFF_BYTES = 5_000_000  # a diff larger than this is truncated (noted in meta.json)


def source_root() -> Path | None:
    """The checkout planlab runs from (the directory holding ``.git``), or None for an installed package."""
    here = Path(planlab.__file__).resolve().parent
    for parent in (here, *here.parents):
        if (parent / ".git").exists():
            return parent
    return None


def _git(root: Path, *args: str, timeout: float = 20.0) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", errors="replace")


def git_info(with_diff: bool = True) -> dict[str, Any]:
    """{sha, branch, dirty, diff (text or None), root} of the planlab checkout."""
    root = source_root()
    info: dict[str, Any] = {"root": str(root) if root else None, "sha": None, "branch": None, "dirty": None}
    if root is None:
        return info
    sha = _git(root, "rev-parse", "HEAD")
    info["sha"] = sha.strip() if sha else None
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    info["branch"] = branch.strip() if branch else None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    info["dirty"] = bool(status.strip()) if status is not None else None
    if with_diff and info["dirty"]:
        diff = _git(root, "diff", "HEAD", "--no-color", "--no-ext-diff")
        if diff is not None and len(diff) > MAX_DIFF_BYTES:
            info["diff_truncated"] = True
            diff = diff[:MAX_DIFF_BYTES]
        info["diff"] = diff
    return info


def lock_hash() -> dict[str, Any]:
    """sha256 of the checkout's ``constraints.txt`` (the package lock) and of the installed distributions."""
    out: dict[str, Any] = {"constraints_sha256": None, "installed_sha256": None}
    root = source_root()
    if root is not None and (root / "constraints.txt").is_file():
        out["constraints_sha256"] = hashlib.sha256((root / "constraints.txt").read_bytes()).hexdigest()
    try:
        from importlib import metadata

        pins = sorted(f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in metadata.distributions())
        out["installed_sha256"] = hashlib.sha256("\n".join(pins).encode()).hexdigest()
    except Exception:  # noqa: BLE001 - provenance is best effort
        pass
    return out


def slurm_env() -> dict[str, str]:
    """All ``SLURM_*`` variables of this process (job id, array ids, node list, restart count, …)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("SLURM_")}


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "planlab": planlab.__version__,
        "pid": os.getpid(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch  # noqa: F401 - only when already importable; reports the accelerator

        info["torch"] = torch.__version__
        info["cuda_devices"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if info["cuda_devices"]:
            info["gpu_name"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        pass
    return info


def job_identity() -> dict[str, Any]:
    """The scheduler's identity of this job: SLURM job/array ids and restart count, or the local launcher's."""
    env = os.environ
    if "SLURM_JOB_ID" in env:
        ident: dict[str, Any] = {"scheduler": "slurm", "job_id": env["SLURM_JOB_ID"]}
        if "SLURM_ARRAY_JOB_ID" in env:
            ident["array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
            ident["array_task_id"] = env.get("SLURM_ARRAY_TASK_ID")
        ident["restart_count"] = int(env.get("SLURM_RESTART_COUNT", "0") or 0)
        ident["nodes"] = int(env.get("SLURM_JOB_NUM_NODES", "1") or 1)
        ident["gpus_per_node"] = _gpus_on_node(env)
        return ident
    return {
        "scheduler": "local",
        "job_id": env.get("PLANLAB_LOCAL_JOB_ID", f"local-{os.getpid()}"),
        "restart_count": 0,
        "nodes": 1,
        "gpus_per_node": _gpus_on_node(env),
    }


def _gpus_on_node(env: os._Environ[str] | dict[str, str]) -> int:
    value = env.get("SLURM_GPUS_ON_NODE")
    if value and value.isdigit():
        return int(value)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"])
    return 0
