"""Provenance of a training run for ``meta.json``: git state, lock hash, host, packages, SLURM variables."""

from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGES = (
    "torch",
    "lightning",
    "numpy",
    "transformers",
    "safetensors",
    "scipy",
    "shapely",
    "pandas",
    "omegaconf",
)
MAX_DIFF_BYTES = 5_000_000


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> tuple[dict[str, Any], str]:
    """({sha, dirty, branch}, diff text) of the source tree, or ({}, "") outside a git checkout."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        return {"available": False}, ""
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    diff = _git("diff", "HEAD") or ""
    info = {
        "available": True,
        "sha": sha.strip(),
        "dirty": bool(status.strip()),
        "branch": (_git("rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "diff_bytes": len(diff.encode()),
        "diff_truncated": len(diff.encode()) > MAX_DIFF_BYTES,
    }
    return info, diff.encode()[:MAX_DIFF_BYTES].decode(errors="replace")


def lock_hash() -> dict[str, Any]:
    """sha256 of constraints.txt (the environment lock)."""
    path = REPO_ROOT / "constraints.txt"
    if not path.is_file():
        return {"file": None, "sha256": None}
    return {"file": "constraints.txt", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["planlab"] = metadata.version("planlab")
    except metadata.PackageNotFoundError:
        out["planlab"] = None
    return out


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def slurm_env() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("SLURM_")}
