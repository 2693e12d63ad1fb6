"""Experiment-manager benchmarks: harvest and reindex of 500 run dirs, export, CLI start-up.

Run alone with ``python -m benchmarks.run --only experiments``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks.common import Result
from planlab.experiments import registry
from planlab.experiments.export import export_master
from planlab.experiments.harvest import V1_SUBSCORES

N_RUNS = 500
N_SCENES = 100


def _make_runs(root: Path) -> None:
    """Run dirs as jobs leave them: spec, resolved config, status, meta and a 100-scene pdm_scores.csv."""
    from planlab.config import to_dict
    from planlab.training.config import build_train_config

    train = to_dict(build_train_config("ego_status_mlp"))
    for i in range(N_RUNS):
        run = root / f"r{i:04d}"
        (run / "eval" / "test").mkdir(parents=True)
        (run / "experiment.yaml").write_text(
            yaml.safe_dump(
                {
                    "exp_id": run.name,
                    "template": "ego_mlp",
                    "description": f"run {i}",
                    "tags": ["bench"],
                    "seed": i % 3,
                }
            )
        )
        (run / "config.yaml").write_text(
            yaml.safe_dump({"train": train, "eval": {"split": "test", "metric": "pdms"}})
        )
        (run / "status.json").write_text(json.dumps({"state": "completed", "jobs": {"train": str(i)}}))
        (run / "meta.json").write_text(json.dumps({"git": {"sha": "0" * 40, "dirty": False}}))
        lines = [",token,valid," + ",".join(V1_SUBSCORES) + ",score"]
        lines += [f"{k},t{k:04d},True,1.0,1.0,0.5,1.0,1.0,1.0,0.75" for k in range(N_SCENES)]
        (run / "eval" / "test" / "pdm_scores.csv").write_text("\n".join(lines) + "\n")


def run(workdir: Path) -> list[Result]:
    root = workdir / "exps"
    _make_runs(root)
    t0 = time.perf_counter()
    registry.reindex(root)
    t_reindex = time.perf_counter() - t0
    t0 = time.perf_counter()
    registry.harvest(root, None)
    t_harvest = time.perf_counter() - t0
    t0 = time.perf_counter()
    registry.sync(root)  # nothing changed: fingerprints only
    t_sync = time.perf_counter() - t0
    t0 = time.perf_counter()
    export_master(root, workdir / "results_master.csv")
    t_export = time.perf_counter() - t0
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "planlab.cli.main", "exp", "templates"], capture_output=True, check=True
        )
        starts.append(time.perf_counter() - t0)
    note = f"{N_RUNS} run dirs, {N_SCENES} scenes each"
    return [
        Result(
            "experiments",
            "reindex (build new index + atomic rename)",
            N_RUNS / t_reindex,
            "runs/s",
            notes=note,
        ),
        Result(
            "experiments",
            "harvest (re-read + replace rows, locked batches)",
            N_RUNS / t_harvest,
            "runs/s",
            notes=note,
        ),
        Result(
            "experiments",
            "list refresh when nothing changed (fingerprints)",
            t_sync * 1000,
            "ms",
            higher_is_better=False,
            notes=note,
        ),  # fmt: skip
        Result(
            "experiments",
            "export results_master.csv",
            t_export * 1000,
            "ms",
            higher_is_better=False,
            notes=note,
        ),
        Result(
            "experiments",
            "`planlab exp templates` wall time (fresh process)",
            min(starts),
            "s",
            target=1.0,
            higher_is_better=False,
            notes="best of 3",
        ),  # fmt: skip
    ]
