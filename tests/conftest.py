"""Shared fixtures and the rule that `slurm`/`browser` tests run (never skip) when CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CALIB_ROOT = ROOT / "tests" / "data" / "navsim_calibration"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def slurm_available() -> bool:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(s in out.stdout for s in ("idle", "mixed", "allocated"))


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("slurm") is not None and not slurm_available():
        if _in_ci():
            pytest.fail("CI=true but no SLURM cluster answers (did .ci/run start slurm-local-up?)")
        pytest.skip("no SLURM cluster here (run ../shared/tools/slurm-local-up)")
    if item.get_closest_marker("browser") is not None and chromium_path() is None:
        if _in_ci():
            pytest.fail("CI=true but headless Chromium is not installed")
        pytest.skip("no Chromium here (apt-get install chromium)")


@pytest.fixture(scope="session")
def calib_root() -> Path:
    """The NAVSIM v1.1 calibration set (real formats, NAVSIM's own scores), copied into tests/data."""
    assert CALIB_ROOT.is_dir(), CALIB_ROOT
    return CALIB_ROOT


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` synthetic world (seed 0), generated once per session: the dataset root with
    ``navsim_logs/{train,val,test}``, ``sensor_blobs/{train,val,test}``, ``maps/`` and ``dataset.json``."""
    from planlab.world.config import load_world_config
    from planlab.world.generate import generate_dataset

    root = tmp_path_factory.mktemp("tiny_world") / "data"
    generate_dataset(root, load_world_config("tiny"), seed=0)
    return root
