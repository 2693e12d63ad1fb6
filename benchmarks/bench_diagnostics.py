"""Diagnostics benchmarks: "is this checkpoint good?", "what happened in this run?" and "will this job
survive?" must be answered in seconds, at the sizes of a real cluster run.

1. ``ckpt validate`` of a real planlab checkpoint of ~0.4 GB (ego MLP, hidden 4096: 33.6 M parameters plus
   AdamW state, written by ``run_training``): CRC-32 of every member, weights-only load, structure,
   NaN/Inf scan, agent rebuild and key/optimizer comparison. Figure: MB/s (aim: the 909 MB checkpoints of
   seed 002 in under 10 s, i.e. ≥ 91 MB/s).
2. ``logs analyze`` of a 40-epoch × 242-step Lightning ``metrics.csv`` with 9 loss components (seed 000's
   run) and of a 22 MB SLURM log (the size of seed 002's ``train_273697.out``), made of the fixture logs.
3. ``planlab smoke`` of the ego MLP on the calibration set, end to end (contract, 10 steps, checkpoint
   validation, 5-scene evaluation), wall time.
"""

from __future__ import annotations

import csv
import math
import random
import time
from pathlib import Path

from benchmarks.common import Result

ROOT = Path(__file__).resolve().parents[1]
CALIB = ROOT / "tests" / "data" / "navsim_calibration"
LOGS = ROOT / "tests" / "data" / "logs"
SECTION = "diagnostics"


def _calib_overrides(workdir: Path) -> dict:
    from planlab.data.splits import make_log_split

    logs = sorted(p.stem for p in (CALIB / "navsim_logs" / "calib").glob("*.pkl"))
    make_log_split(logs, {"train": 0.6, "val": 0.4}, seed=0, data_split="calib").write(
        workdir / "splits.json"
    )
    return {
        "data.root": str(CALIB),
        "data.splits_file": str(workdir / "splits.json"),
        "data.train_split": "train",
        "data.val_split": "val",
        "data.num_workers": 0,
        "trainer.progress_bar": False,
    }


def bench_checkpoint(workdir: Path) -> list[Result]:
    from planlab.diagnostics.checkpoint import validate
    from planlab.training.config import build_train_config
    from planlab.training.train import run_training

    over = {
        **_calib_overrides(workdir),
        "agent.hidden_dim": 4096,
        "trainer.max_steps": 1,
        "trainer.max_epochs": 1,
        "data.max_scenes": 8,
        "trainer.batch_size": 8,
        "logging.tensorboard": False,
    }
    run = run_training(build_train_config("ego_status_mlp", overrides=over), workdir / "big", progress=False)
    ckpt = run.last_checkpoint
    assert ckpt is not None
    size_mb = ckpt.stat().st_size / 1e6
    best = math.inf
    for _ in range(2):
        t0 = time.perf_counter()
        rep = validate(ckpt)
        best = min(best, time.perf_counter() - t0)
        assert rep.exit_code == 0, rep.checkpoints[0].diagnosis
    params = rep.checkpoints[0].total_params
    return [
        Result(
            SECTION,
            "ckpt validate throughput (0.4 GB planlab checkpoint, every check)",
            size_mb / best,
            "MB/s",
            target=909 / 10,
            notes=f"{size_mb:.0f} MB, {params / 1e6:.1f} M parameters + AdamW state in {best:.2f} s",
            extra={"seconds": best, "size_mb": size_mb},
        )
    ]


def _metrics_csv(path: Path, epochs: int = 40, steps: int = 242) -> None:
    comps = ["loss", "imi_loss", "pdm_noc_loss", "pdm_da_loss", "pdm_ttc_loss", "pdm_progress_loss",
             "pdm_ddc_loss", "pdm_lk_loss", "pdm_tl_loss"]  # fmt: skip
    rng = random.Random(0)
    keys = ["step", "epoch"] + [f"train/{c}_step" for c in comps] + [f"train/{c}_epoch" for c in comps]
    keys += [f"val/{c}" for c in comps] + ["perf/samples_per_s"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for e in range(epochs):
            for s in range(steps):
                g = e * steps + s
                row = {"step": g, "epoch": e, "perf/samples_per_s": 60 + rng.random()}
                row.update({f"train/{c}_step": 20 * math.exp(-g / 3000) + rng.random() for c in comps})
                w.writerow(row)
            row = {"step": (e + 1) * steps - 1, "epoch": e}
            row.update({f"train/{c}_epoch": 20 * math.exp(-e / 12) for c in comps})
            row.update({f"val/{c}": 25 * math.exp(-e / 15) for c in comps})
            w.writerow(row)


def bench_logs(workdir: Path) -> list[Result]:
    from planlab.diagnostics.logs import analyze

    run = workdir / "logs_run"
    run.mkdir()
    _metrics_csv(run / "metrics.csv")
    t0 = time.perf_counter()
    rep = analyze(run)
    t_csv = time.perf_counter() - t0
    assert rep.epochs == 40 and len(rep.rows) == 18
    # a 22 MB SLURM log: the fixture logs repeated, the signatures at the end
    parts = [p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("slurm-*"))]
    healthy = (LOGS / "slurm-273697-complete.out").read_text(encoding="utf-8")
    text = healthy * int(22e6 // len(healthy)) + "".join(parts)
    log = workdir / "train_273697.out"
    log.write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    rep = analyze(log)
    t_log = time.perf_counter() - t0
    assert {f.id for f in rep.findings} >= {"host_oom_kill", "ddp_rendezvous_timeout", "time_limit"}
    mb = log.stat().st_size / 1e6
    return [
        Result(
            SECTION,
            "logs analyze: 40 epochs x 242 steps metrics.csv (9 components)",
            t_csv,
            "s",
            target=5.0,
            higher_is_better=False,
            notes=f"{40 * 243} rows",
        ),
        Result(
            SECTION,
            "logs analyze: 22 MB SLURM log (signatures + progress bars)",
            mb / t_log,
            "MB/s",
            target=22 / 10,
            notes=f"{mb:.0f} MB in {t_log:.1f} s; aim: 22 MB in 10 s",
        ),
    ]


def bench_smoke(workdir: Path) -> list[Result]:
    from planlab.diagnostics.smoke import SmokeOptions, run_smoke
    from planlab.training.config import build_train_config

    cfg = build_train_config(
        "ego_status_mlp", overrides={**_calib_overrides(workdir), "trainer.batch_size": 8}
    )
    t0 = time.perf_counter()
    rep = run_smoke(cfg, workdir / "smoke", SmokeOptions(steps=10, scenes=64, eval_scenes=5))
    seconds = time.perf_counter() - t0
    assert rep.passed, rep.to_markdown()
    return [
        Result(
            SECTION,
            "planlab smoke, ego MLP (10 steps, validate, 5-scene eval)",
            seconds,
            "s",
            target=60.0,
            higher_is_better=False,
            notes="one process; includes Lightning start-up and the 5-scene metric cache",
        )
    ]


def run(workdir: Path) -> list[Result]:
    return bench_checkpoint(workdir) + bench_logs(workdir) + bench_smoke(workdir)
