#!/usr/bin/env python
"""Regenerate ``results/temporal.md`` (+ ``.json``): does temporal BEV fusion help? PDMS and perception metrics
of ``convgru_bev`` (4 LiDAR BEV frames, ego-motion-warped ConvGRU) against the same agent with
``use_convgru=false`` (current frame only, same parameters), over several training seeds on one world.

    python scripts/temporal_study.py --data data/small                      # 3 seeds, defaults below
    python scripts/temporal_study.py --data data/small --seeds 0,1,2,3,4 --epochs 12 --label-fraction 0.5
    python scripts/temporal_study.py --data /tmp/tiny --preset tiny --seeds 0 --epochs 1 --out /tmp/res  # dry run

Every step is an ordinary ``planlab`` command (printed before it runs, listed in the report): train each
variant and seed, score it with ``planlab eval run`` (PDMS, NAVSIM v1.1 rules) and ``planlab eval perception``
on the evaluation split. Finished runs and outputs are reused, an interrupted training run is resumed. The
two variants share one feature cache (their targets are identical) and one metric cache. Training runs with
one OpenMP thread per process by default (``--threads``): on a shared 2-core machine two threads are several
times slower than one.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_YAML = ROOT / "src" / "planlab" / "configs" / "train" / "convgru_bev.yaml"
REFERENCE_YAML = ROOT / "src" / "planlab" / "configs" / "train" / "transfuser_lite.yaml"
REFERENCE = "transfuser_lite"
SUBS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
)
SHORT = {
    "no_at_fault_collisions": "NC",
    "drivable_area_compliance": "DAC",
    "ego_progress": "EP",
    "time_to_collision_within_bound": "TTC",
    "comfort": "C",
    "driving_direction_compliance": "DDC",
}
VARIANTS = {"convgru": "true", "single_frame": "false"}  # name -> agent.use_convgru
PERCEPTION_ROWS = [
    ("detection/map", "detection mAP (0.5/1/2/4 m)"),
    ("detection/ap@2m", "detection AP @ 2 m"),
    ("semantic/miou", "BEV semantic mIoU"),
    ("semantic/iou/road", "IoU road"),
    ("semantic/iou/vehicle", "IoU vehicle"),
    ("occupancy/precision", "occupancy precision"),
    ("occupancy/recall", "occupancy recall"),
    ("forecast/min_ade", "forecast minADE (3 modes) [m]"),
    ("forecast/min_fde", "forecast minFDE [m]"),
    ("forecast/miss_rate", "forecast miss rate (minFDE > 2 m)"),
]


def planlab(*args: str, log: list[str], env: dict[str, str], skip: bool = False) -> None:
    """Run (or, when its output already exists, only record) one planlab command."""
    shown = "planlab " + " ".join(shlex.quote(a) for a in args)
    log.append(shown + ("   # output existed, reused" if skip else ""))
    if skip:
        return
    print(f"$ {shown}", flush=True)
    subprocess.run([sys.executable, "-m", "planlab.cli.main", *args], check=True, env=env)


def finished(run_dir: Path) -> bool:
    state = run_dir / "training.json"
    return state.is_file() and json.loads(state.read_text()).get("state") == "completed"


def read_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as fh:
        # NAVSIM's CSV ends with an "average" row (fact sheet §1.8)
        return {
            r["token"]: float(r["score"])
            for r in csv.DictReader(fh)
            if r["valid"] == "True" and r["token"] != "average"
        }


def throughput(run_dir: Path) -> float | None:
    """Median training samples/s logged by the run (perf/samples_per_s)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        vals = [float(r["perf/samples_per_s"]) for r in csv.DictReader(fh) if r.get("perf/samples_per_s")]
    return statistics.median(vals) if vals else None


def mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def fmt(m: float, s: float, digits: int = 4) -> str:
    if not math.isfinite(m):
        return "–"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def paired(runs: dict[str, dict[int, dict]], seeds: list[int], boot: int = 2000) -> dict:
    """Per-scene paired difference convgru − single_frame, averaged over seeds; bootstrap CI over scenes."""
    per_seed = []
    common: set[str] | None = None
    for s in seeds:
        a, b = runs["convgru"][s]["scores"], runs["single_frame"][s]["scores"]
        keys = set(a) & set(b)
        common = keys if common is None else common & keys
        per_seed.append((a, b))
    tokens = sorted(common or [])
    if not tokens:
        return {}
    diff = np.array([[a[t] - b[t] for t in tokens] for a, b in per_seed]).mean(0)
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), size=(boot, len(diff)))].mean(1)
    seed_diffs = [runs["convgru"][s]["pdms"] - runs["single_frame"][s]["pdms"] for s in seeds]
    return {
        "scenes": len(tokens),
        "mean": float(diff.mean()),
        "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        "per_seed": seed_diffs,
        "seeds_better": int(sum(d > 0 for d in seed_diffs)),
    }


def render(meta: dict, runs: dict, comparison: dict) -> str:
    seeds = meta["seeds"]
    lines = [
        "# Temporal BEV fusion: ConvGRU vs single frame",
        "",
        f"Written by `python scripts/temporal_study.py {meta['argv']}`; do not edit by hand. Dataset: `{meta['data']}` "
        f"(preset `{meta['preset']}`), trained on split `train` (label fraction {meta['label_fraction']}: "
        f"{meta['train_scenes']} scenes) for {meta['epochs']} epochs per run, evaluated on split `{meta['split']}` "
        f"({meta['eval_scenes']} scenes) with the PDM score (NAVSIM v1.1 rules). Seeds: {', '.join(map(str, seeds))}.",
        "",
        "Both variants are the `convgru_bev` agent with identical parameters: `convgru` reads 4 LiDAR BEV frames "
        "(1.5 s) and fuses them with the ego-motion-warped ConvGRU; `single_frame` (`agent.use_convgru=false`) "
        "reads the current frame only and runs one GRU step from a zero state.",
        "",
        "## Planning (PDMS, mean ± std over seeds)",
        "",
        "| variant | PDMS | " + " | ".join(SHORT[k] for k in SUBS) + " | train samples/s |",
        "|---|---|" + "---|" * len(SUBS) + "---|",
    ]
    for v in VARIANTS:
        rs = [runs[v][s] for s in seeds]
        m, sd = mean_std([r["pdms"] for r in rs])
        subs = " | ".join(f"{mean_std([r['means'][k] for r in rs])[0]:.3f}" for k in SUBS)
        tp = mean_std([r["samples_per_s"] for r in rs])[0]
        lines.append(f"| {v} | {fmt(m, sd)} | {subs} | {tp:.1f} |")
    ref = runs.get(REFERENCE) or {}
    if ref:
        rs = list(ref.values())
        m, sd = mean_std([r["pdms"] for r in rs])
        subs = " | ".join(f"{mean_std([r['means'][k] for r in rs])[0]:.3f}" for k in SUBS)
        tp = mean_std([r["samples_per_s"] for r in rs])[0]
        label = f"{REFERENCE} (reference, seed{'s' if len(ref) > 1 else ''} {', '.join(map(str, ref))})"
        lines.append(f"| {label} | {fmt(m, sd)} | {subs} | {tp:.1f} |")
        lines += [
            "",
            f"`{REFERENCE}`: the TransFuser-style single-frame baseline (front cameras + LiDAR BEV, detection and "
            "BEV-semantic heads, fact-sheet loss weights), same data, schedule and evaluation.",
        ]
    lines += [
        "",
        "Per seed:",
        "",
        "| seed | " + " | ".join(VARIANTS) + " | difference |",
        "|---|---|---|---|",
    ]
    for s in seeds:
        a, b = runs["convgru"][s]["pdms"], runs["single_frame"][s]["pdms"]
        lines.append(f"| {s} | {a:.4f} | {b:.4f} | {a - b:+.4f} |")
    if comparison:
        lo, hi = comparison["ci95"]
        lines += [
            "",
            f"Paired over the {comparison['scenes']} scenes scored by every run (per-scene PDMS averaged over "
            f"seeds): convgru − single_frame = **{comparison['mean']:+.4f}** (95 % bootstrap CI over scenes "
            f"[{lo:+.4f}, {hi:+.4f}]); the ConvGRU run is better in {comparison['seeds_better']} of {len(seeds)} "
            "seeds. The CI reflects scene sampling only; the spread over seeds is in the per-seed table.",
        ]
    lines += [
        "",
        "## Perception (on the evaluation split, mean ± std over seeds)",
        "",
        "Detection: dense centre-cell detector, AP with centre-distance matching. Semantics / occupancy: 64×64 "
        "cells of 1 m around the ego. Forecasting: 3 modes over 4 s for the vehicles of the detection target, "
        "read at their cells. `planlab eval perception`.",
        "",
        "| metric | " + " | ".join([*VARIANTS, *([f"{REFERENCE}¹"] if ref else [])]) + " |",
        "|---|---|---|" + ("---|" if ref else ""),
    ]
    for key, label in PERCEPTION_ROWS:
        cells = []
        for v in VARIANTS:
            m, sd = mean_std([runs[v][s]["perception"].get(key) for s in seeds])
            cells.append(fmt(m, sd, 3))
        if ref:
            m, sd = mean_std([r["perception"].get(key) for r in ref.values()])
            cells.append(fmt(m, sd, 3))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if ref:
        lines += [
            "",
            f"¹ {REFERENCE}: query detector (Hungarian-matched), semantics on TransFuser's forward half "
            "(x ∈ [0, 32] m, 0.5 m cells), occupancy read off the semantic classes; no forecasting head.",
        ]
    lines += [
        "",
        "Commands run:",
        "",
        "```",
        *meta["commands"],
        "```",
        "",
        f"Generated {meta['generated']} in {meta['seconds']:.0f} s on {meta['host']}.",
    ]
    return "\n".join(lines) + "\n"


def score(
    run: Path,
    data: Path,
    args: argparse.Namespace,
    metric_cache: Path,
    features: Path,
    log: list[str],
    env: dict,
) -> dict:
    """``planlab eval run`` (PDMS) and ``planlab eval perception`` of a finished run; its figures."""
    scored = run / f"eval_{args.split}"
    planlab(
        "eval", "run", "--checkpoint", str(run), "--data", str(data), "--split", args.split,
        "--cache", str(metric_cache), "--out", str(scored), "--workers", str(args.workers), "--no-progress",
        log=log, env=env, skip=(scored / "summary.json").is_file(),
    )  # fmt: skip
    perc = run / f"perception_{args.split}"
    planlab(
        "eval", "perception", "--checkpoint", str(run), "--data", str(data), "--split", args.split,
        "--cache", str(features), "--out", str(perc), "--no-progress",
        log=log, env=env, skip=(perc / "perception.json").is_file(),
    )  # fmt: skip
    summary = json.loads((scored / "summary.json").read_text())
    meta = json.loads((run / "meta.json").read_text())
    return {
        "run_dir": str(run),
        "pdms": summary["score"],
        "means": summary["means"],
        "num_valid": summary["num_valid"],
        "scores": read_scores(scored / "pdm_scores.csv"),
        "perception": json.loads((perc / "perception.json").read_text())["metrics"],
        "samples_per_s": throughput(run),
        "train_scenes": meta.get("data", {}).get("train", {}).get("num_tokens"),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=ROOT / "data" / "small", help="dataset root (planlab data generate)"
    )
    p.add_argument("--preset", default="small", help="world preset of --data (for the report)")
    p.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--label-fraction", type=float, default=0.25, help="fraction of the train split used")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--split", default="test", help="evaluation split")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "temporal_study", help="runs and caches")
    p.add_argument(
        "--out", type=Path, default=ROOT / "results", help="directory of temporal.md / temporal.json"
    )
    p.add_argument("--workers", type=int, default=2, help="cache-building and scoring processes")
    p.add_argument("--threads", type=int, default=1, help="OpenMP/torch threads per process")
    p.add_argument(
        "--reference-seeds", default="", help=f"also train and score {REFERENCE} with these seeds (e.g. 0)"
    )
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    data = args.data.resolve()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log: list[str] = []
    t0 = time.perf_counter()
    features = work / "feature_cache"
    metric_cache = work / f"metric_cache_{args.split}"
    planlab(
        "eval", "cache", "--data", str(data), "--split", args.split, "--out", str(metric_cache),
        "--workers", str(args.workers), "--no-progress",
        log=log, env=env, skip=(metric_cache / "index.json").is_file(),
    )  # fmt: skip
    runs: dict[str, dict[int, dict]] = {v: {} for v in VARIANTS}
    for seed in seeds:
        for variant, flag in VARIANTS.items():
            run = work / f"{variant}_seed{seed}"
            resume = ["--resume"] if (run / "training.json").is_file() and not finished(run) else []
            planlab(
                "train", "--config", str(TRAIN_YAML), "--run-dir", str(run), "--no-progress", *resume,
                f"data.root={data}", f"data.cache.path={features}", f"data.cache.build_workers={args.workers}",
                "data.val_split=null", "data.num_workers=0", f"data.label_fraction={args.label_fraction}",
                f"agent.use_convgru={flag}", f"trainer.seed={seed}", f"trainer.max_epochs={args.epochs}",
                f"trainer.batch_size={args.batch_size}", "trainer.progress_bar=false", "logging.tensorboard=false",
                log=log, env=env, skip=finished(run),
            )  # fmt: skip
            runs[variant][seed] = score(run, data, args, metric_cache, features, log, env)
    ref_seeds = [int(x) for x in args.reference_seeds.split(",") if x.strip()]
    if ref_seeds:
        runs[REFERENCE] = {}
    for seed in ref_seeds:
        run = work / f"{REFERENCE}_seed{seed}"
        resume = ["--resume"] if (run / "training.json").is_file() and not finished(run) else []
        planlab(
            "train", "--config", str(REFERENCE_YAML), "--run-dir", str(run), "--no-progress", *resume,
            f"data.root={data}", f"data.cache.path={features}", f"data.cache.build_workers={args.workers}",
            "data.val_split=null", "data.num_workers=0", f"data.label_fraction={args.label_fraction}",
            f"trainer.seed={seed}", f"trainer.max_epochs={args.epochs}", f"trainer.batch_size={args.batch_size}",
            "trainer.progress_bar=false", "logging.tensorboard=false",
            log=log, env=env, skip=finished(run),
        )  # fmt: skip
        runs[REFERENCE][seed] = score(run, data, args, metric_cache, features, log, env)
    comparison = paired(runs, seeds)
    first = runs["convgru"][seeds[0]]
    meta = {
        "argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "data": str(args.data),
        "preset": args.preset,
        "seeds": seeds,
        "epochs": args.epochs,
        "label_fraction": args.label_fraction,
        "train_scenes": first["train_scenes"],
        "split": args.split,
        "eval_scenes": first["num_valid"],
        "commands": log,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": time.perf_counter() - t0,
        "host": os.uname().nodename,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    from planlab.atomic import atomic_write_text

    plain = {v: {s: {k: r[k] for k in r if k != "scores"} for s, r in rs.items()} for v, rs in runs.items()}
    atomic_write_text(
        args.out / "temporal.json",
        json.dumps({"meta": meta, "runs": plain, "paired": comparison}, indent=1) + "\n",
    )
    atomic_write_text(args.out / "temporal.md", render(meta, runs, comparison))
    print(f"wrote {args.out / 'temporal.md'}")


if __name__ == "__main__":
    main()
