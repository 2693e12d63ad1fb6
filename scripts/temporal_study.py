#!/usr/bin/env python
"""Regenerate ``results/temporal.md`` (+ ``.json``): does temporal BEV fusion help? PDMS and perception metrics
of ``convgru_bev`` (4 LiDAR BEV frames, ego-motion-warped ConvGRU) against the same agent with
``use_convgru=false`` (current frame only, same parameters), over several training seeds on one world.

    python scripts/temporal_study.py --data data/small                      # 3 seeds, defaults below
    python scripts/temporal_study.py --data data/small --seeds 0,1,2,3,4 --epochs 12 --label-fraction 0.5
    python scripts/temporal_study.py --data /tmp/tiny --preset tiny --seeds 0 --epochs 1 --out /tmp/res  # dry run

Every step is an ordinary ``planlab`` command (printed before it runs, listed in the report): train each
variant and seed, score it with ``planlab eval run`` (PDMS, NAVSIM v1.1 rules) and ``planlab eval perception``
on the evaluation split. The report adds the paired difference with bootstrap CIs over scenes and over whole
logs, the logs that carry it, breakdowns by scenario type and ego speed (+ ``temporal.png``), and a history
probe (``--no-probe`` to skip; in-process): how far each trained convgru plan moves without its history. Finished runs and outputs are reused, an interrupted training run is resumed. The
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

from planlab.evaluation.results import SHORT_NAMES, V11_METRICS

ROOT = Path(__file__).resolve().parents[1]
TRAIN_YAML = ROOT / "src" / "planlab" / "configs" / "train" / "convgru_bev.yaml"
REFERENCE_YAML = ROOT / "src" / "planlab" / "configs" / "train" / "transfuser_lite.yaml"
REFERENCE = "transfuser_lite"
SUBS = V11_METRICS  # NAVSIM v1.1 sub-scores, in the order of its CSV
SHORT = SHORT_NAMES
VARIANTS = {"convgru": "true", "single_frame": "false"}  # name -> agent.use_convgru
PROBE_VERSION = 2  # of history_probe_<split>.json in a run dir (older files are recomputed)
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


def paired(
    runs: dict[str, dict[int, dict]],
    seeds: list[int],
    token_log: dict[str, str] | None = None,
    boot: int = 2000,
) -> dict:
    """Per-scene paired difference convgru − single_frame, averaged over seeds; bootstrap CIs over scenes and,
    with ``token_log``, over logs (the scenes of one log are consecutive windows of one drive, not independent
    samples: the log-level CI is the honest one); the logs that move the mean most."""
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
    out = {
        "scenes": len(tokens),
        "mean": float(diff.mean()),
        "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        "per_seed": seed_diffs,
        "seeds_better": int(sum(d > 0 for d in seed_diffs)),
    }
    logs = [token_log.get(t) for t in tokens] if token_log else []
    if logs and all(logs):
        names = sorted(set(logs))
        idx = np.array([names.index(log) for log in logs])
        sums, counts = np.bincount(idx, diff, len(names)), np.bincount(idx, minlength=len(names))
        pick = rng.integers(0, len(names), size=(boot, len(names)))
        # cluster bootstrap: resample whole logs, mean over all their scenes
        log_means = sums[pick].sum(1) / counts[pick].sum(1)
        order = np.argsort(-np.abs(sums))
        out.update({
            "logs": len(names),
            "ci95_logs": [float(np.quantile(log_means, 0.025)), float(np.quantile(log_means, 0.975))],
            "top_logs": [
                {
                    "log": names[i],
                    "scenes": int(counts[i]),
                    "mean": float(sums[i] / counts[i]),
                    "share": float(sums[i] / sums.sum()) if sums.sum() else float("nan"),
                }
                for i in order[:3]
            ],
            "mean_without_top_log": float(np.delete(diff, np.flatnonzero(idx == order[0])).mean()),
        })  # fmt: skip
    return out


def history_probe(
    convgru_run: Path, single_run: Path, data: Path, split: str, cache: Path, token_log: dict[str, str]
) -> dict:
    """Does the trained ConvGRU agent use its history? Over the evaluation scenes, how far the 4 s endpoint of
    its plan moves when the *same weights* get the current frame repeated with no motion (no temporal content,
    same GRU steps) or the current frame only (the ``use_convgru=false`` path: one step from a zero state, a
    state the run never saw in training), next to the endpoint gap to the single_frame run of the seed."""
    import torch

    from planlab.agents.checkpoint_io import load_agent_from_checkpoint
    from planlab.data.feature_cache import FeatureCache
    from planlab.data.loader import SceneLoader
    from planlab.features.base import builder_record, check_contract, compute_features
    from planlab.scene import SceneFilter

    agents = {
        name: load_agent_from_checkpoint(run, device="cpu")  # the checkpoint eval run scores
        for name, run in (("convgru", convgru_run), ("single_frame", single_run))
    }
    store = FeatureCache(cache)
    for a in agents.values():
        for b in a.get_feature_builders():  # the description training's cache build records
            store.register_builder(b.cache_key, builder_record(b))
    loaders = {
        name: SceneLoader(data, split, SceneFilter(frame_interval=1), a.get_sensor_config())
        for name, a in agents.items()
    }
    tokens = sorted(set(loaders["convgru"].tokens) & set(token_log))

    def features(name: str, chunk: list[str]) -> dict[str, torch.Tensor]:
        rows = []
        for tok in chunk:
            merged: dict[str, torch.Tensor] = {}
            todo = []
            for b in agents[name].get_feature_builders():
                if store.has(b.cache_key, token_log[tok], tok):
                    arrays = store.read(b.cache_key, token_log[tok], tok)
                    merged.update(
                        check_contract(b, {k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
                    )
                else:
                    todo.append(b)
            if todo:  # computed once, then kept in the cache for the other seeds
                fresh = compute_features(todo, loaders[name].get_agent_input_from_token(tok))
                for b in todo:
                    part = {k: fresh[k] for k in b.specs()}
                    store.write(b.cache_key, token_log[tok], tok, {k: v.numpy() for k, v in part.items()})
                    merged.update(part)
            rows.append(merged)
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    ends: dict[str, list[np.ndarray]] = {"full": [], "repeated": [], "current_only": [], "single_frame": []}
    with torch.no_grad():
        for lo in range(0, len(tokens), 32):
            chunk = tokens[lo : lo + 32]
            f = features("convgru", chunk)
            seq, motion = f["lidar_bev_seq"], f["ego_motion"]
            # no temporal content, same number of GRU steps: the current frame T times, no motion
            rep = {**f, "lidar_bev_seq": seq[:, -1:].expand_as(seq), "ego_motion": torch.zeros_like(motion)}
            now = {**f, "lidar_bev_seq": seq[:, -1:], "ego_motion": motion[:, -1:]}
            ends["full"].append(agents["convgru"](f)["trajectory"][:, -1, :2].numpy())
            ends["repeated"].append(agents["convgru"](rep)["trajectory"][:, -1, :2].numpy())
            ends["current_only"].append(agents["convgru"](now)["trajectory"][:, -1, :2].numpy())
            sf = agents["single_frame"](features("single_frame", chunk))
            ends["single_frame"].append(sf["trajectory"][:, -1, :2].numpy())
    e = {k: np.concatenate(v) for k, v in ends.items()}
    d_hist = np.linalg.norm(e["full"] - e["repeated"], axis=1)
    d_one = np.linalg.norm(e["full"] - e["current_only"], axis=1)
    d_var = np.linalg.norm(e["full"] - e["single_frame"], axis=1)
    per_log: dict[str, list[int]] = {}
    for i, tok in enumerate(tokens):
        per_log.setdefault(token_log[tok], []).append(i)
    return {
        "version": PROBE_VERSION,
        "scenes": len(tokens),
        "history_shift_m": float(d_hist.mean()),
        "history_shift_p90_m": float(np.quantile(d_hist, 0.9)),
        "one_step_shift_m": float(d_one.mean()),
        "variant_gap_m": float(d_var.mean()),
        "per_log": {
            log: {
                "history_shift_m": float(d_hist[ix].mean()),
                "one_step_shift_m": float(d_one[ix].mean()),
                "variant_gap_m": float(d_var[ix].mean()),
            }
            for log, ix in per_log.items()
        },
    }


def dataset_identity(data: Path) -> dict:
    """Preset, world seed and config hash of a generated dataset (``dataset.json``): which world was used."""
    path = data / "dataset.json"
    if not path.is_file():
        return {}
    info = json.loads(path.read_text())
    return {k: info.get(k) for k in ("preset", "seed", "config_hash", "logs", "scenes")}


def scene_logs(metric_cache: Path) -> dict[str, str]:
    """token -> log of every cached evaluation scene (the metric cache's index)."""
    index = metric_cache / "index.json"
    return dict(json.loads(index.read_text()).get("entries", {})) if index.is_file() else {}


def scene_scenarios(data: Path, token_log: dict[str, str]) -> dict[str, str]:
    """Scenario type of every scored scene: token -> log -> scenario (``dataset.json``)."""
    info = data / "dataset.json"
    if not info.is_file():
        return {}
    log_scenario = {e["name"]: e["scenario"] for e in json.loads(info.read_text()).get("log_list", [])}
    return {tok: log_scenario[log] for tok, log in token_log.items() if log in log_scenario}


SPEED_BANDS = (("< 1 m/s", 1.0), ("1–5 m/s", 5.0), ("5–10 m/s", 10.0), ("≥ 10 m/s", math.inf))


def scene_speeds(data: Path, split: str, tokens: set[str]) -> dict[str, str]:
    """Ego speed band of every scored scene, read at its current frame (scene token = current frame token)."""
    from planlab.data.logs import read_log

    out: dict[str, str] = {}
    for path in sorted((data / "navsim_logs" / split).glob("*.pkl")):
        for frame in read_log(path):
            if frame["token"] in tokens:
                # ego_dynamic_state = (vx, vy, ax, ay) in the ego frame, m/s and m/s² (fact sheet §2)
                v = float(np.hypot(*np.asarray(frame["ego_dynamic_state"], dtype=np.float64)[:2]))
                out[frame["token"]] = next(name for name, top in SPEED_BANDS if v < top)
    return out


def by_group(
    runs: dict, seeds: list[int], labels: dict[str, str], order: list[str] | None = None, boot: int = 2000
) -> list[dict]:
    """Paired per-scene difference convgru − single_frame within each group of scenes (seed-averaged
    scenes, bootstrap CI over the group's scenes); groups by size unless ``order`` is given."""
    common = set.intersection(*(set(runs[v][s]["scores"]) for v in VARIANTS for s in seeds))
    groups: dict[str, list[str]] = {}
    for tok in sorted(common):
        if tok in labels:
            groups.setdefault(labels[tok], []).append(tok)
    names = [n for n in order if n in groups] if order else sorted(groups, key=lambda n: -len(groups[n]))
    rng = np.random.default_rng(0)
    rows = []
    for name in names:
        toks = groups[name]
        per = {
            v: np.array([[runs[v][s]["scores"][t] for t in toks] for s in seeds]).mean(0) for v in VARIANTS
        }
        diff = per["convgru"] - per["single_frame"]
        means = diff[rng.integers(0, len(diff), size=(boot, len(diff)))].mean(1)
        rows.append({
            "group": name,
            "scenes": len(toks),
            "convgru": float(per["convgru"].mean()),
            "single_frame": float(per["single_frame"].mean()),
            "mean": float(diff.mean()),
            "ci95": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
        })  # fmt: skip
    return rows


def train_seconds(run_dir: Path) -> float | None:
    """Wall-clock seconds of a finished training run (first start to completion, resumes included)."""
    path = run_dir / "training.json"
    if not path.is_file():
        return None
    from datetime import datetime

    times = [datetime.fromisoformat(h["time"]) for h in json.loads(path.read_text()).get("history", [])]
    return (max(times) - min(times)).total_seconds() if len(times) > 1 else None


def outcome(comparison: dict, seeds: list[int], probes: dict[int, dict] | None = None) -> str:
    """Sentences read off the paired comparison: helps / hurts / no detectable difference, whether one log
    carries the difference, and (with the history probes) whether the plans depend on the history at all."""
    if not comparison:
        return "No scene was scored by every run: no paired comparison."
    lo, hi = comparison.get("ci95_logs") or comparison["ci95"]
    unit = "logs" if "ci95_logs" in comparison else "scenes"
    better = f"{comparison['seeds_better']} of {len(seeds)} seeds"
    if lo > 0:
        text = f"**History helps** here: the paired difference is above zero (CI over {unit} excludes 0; ConvGRU better in {better})."
    elif hi < 0:
        text = (
            "**History does not help** here: averaged over seeds the ConvGRU agent scores *lower* than the same agent on the current "
            f"frame only (CI over {unit} below 0; ConvGRU better in {better})."
        )
    else:
        text = (
            f"**No detectable effect of history** here: the CI over {unit} includes 0 "
            f"(ConvGRU better in {better})."
        )
    top = (comparison.get("top_logs") or [None])[0]
    if top and math.isfinite(top["share"]) and abs(top["share"]) >= 0.5:
        text += (
            f" One log carries {100 * top['share']:.0f} % of the difference (`{top['log']}`, {top['scenes']} scenes, "
            f"{top['mean']:+.3f} per scene); without it the mean difference is "
            f"{comparison['mean_without_top_log']:+.4f}."
        )
    if probes:
        shift = statistics.fmean(pr["history_shift_m"] for pr in probes.values())
        gap = statistics.fmean(pr["variant_gap_m"] for pr in probes.values())
        verdict = "barely depend on" if shift < gap else "depend on"
        text += (
            f" The trained ConvGRU plans {verdict} their history: without its temporal content a plan's 4 s endpoint "
            f"moves {shift:.2f} m on average, against {gap:.2f} m between the convgru and single_frame runs of "
            "one seed (see the history probe below)."
        )
    return text


def plot(path: Path, runs: dict, seeds: list[int], breakdowns: dict[str, list[dict]]) -> None:
    """Per-seed PDMS of both variants and, per breakdown, the paired difference by group with its 95 % CI."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [(title, rows) for title, rows in breakdowns.items() if rows]
    fig = Figure(figsize=(4 + 4 * len(panels), 3.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        1, 1 + len(panels), gridspec_kw={"width_ratios": [1] + [2] * len(panels)}, squeeze=False
    )[0]
    ax1 = axes[0]
    for i, v in enumerate(VARIANTS):
        ys = [runs[v][s]["pdms"] for s in seeds]
        ax1.plot([i] * len(ys), ys, "o", alpha=0.7)
        ax1.hlines(statistics.fmean(ys), i - 0.2, i + 0.2, colors="k")
    for s in seeds:
        ax1.plot([0, 1], [runs[v][s]["pdms"] for v in VARIANTS], "-", color="0.7", lw=0.8)
    ax1.set_xticks(range(len(VARIANTS)), list(VARIANTS))
    ax1.set_xlim(-0.5, len(VARIANTS) - 0.5)
    ax1.set_ylabel("PDMS (evaluation split)")
    ax1.set_title("per seed", fontsize=9)
    for ax, (title, rows) in zip(axes[1:], panels, strict=True):
        xs = list(range(len(rows)))
        m = [r["mean"] for r in rows]
        err = [[r["mean"] - r["ci95"][0] for r in rows], [r["ci95"][1] - r["mean"] for r in rows]]
        ax.errorbar(xs, m, yerr=err, fmt="o", capsize=3)
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xticks(xs, [f"{r['group']}\n({r['scenes']})" for r in rows], fontsize=7)
        ax.set_ylabel("PDMS convgru − single_frame")
        ax.set_title(f"by {title} (95 % CI)", fontsize=9)
    fig.tight_layout()
    from planlab.atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def render(meta: dict, runs: dict, comparison: dict, breakdowns: dict[str, list[dict]] | None = None) -> str:
    seeds = meta["seeds"]
    ident = meta.get("dataset") or {}
    world = (
        f", world seed {ident['seed']}, config hash `{ident['config_hash']}`, {ident['logs']} logs"
        if ident.get("config_hash")
        else ""
    )

    def minutes(v: str) -> str:
        m, sd = mean_std([runs[v][s].get("train_seconds") for s in seeds])
        return f"{m / 60:.0f} ± {sd / 60:.0f}" if math.isfinite(m) else "–"

    train_min, train_sf = minutes("convgru"), minutes("single_frame")
    lines = [
        "# Temporal BEV fusion: ConvGRU vs single frame",
        "",
        f"Written by `python scripts/temporal_study.py {meta['argv']}`; do not edit by hand. Dataset: `{meta['data']}` "
        f"(preset `{meta['preset']}`{world}), trained on split `train` (label fraction {meta['label_fraction']}: "
        f"{meta['train_scenes']} scenes) for {meta['epochs']} epochs per run, evaluated on split `{meta['split']}` "
        f"({meta['eval_scenes']} scenes) with the PDM score (NAVSIM v1.1 rules). Seeds: {', '.join(map(str, seeds))}.",
        "",
        f"Scale: batch {meta['batch_size']}, {meta['threads']} CPU thread(s) per process; training took "
        f"{train_min} min per run (convgru) and {train_sf} min (single_frame) of wall clock on `{meta['host']}`. "
        "The seeds change the initialisation and the batch order; the labelled subset is the same for all runs.",
        "",
        "**Outcome.** "
        + outcome(
            comparison,
            seeds,
            {s: runs["convgru"][s]["probe"] for s in seeds if runs["convgru"][s].get("probe")},
        ),
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
        if "ci95_logs" in comparison:
            lo, hi = comparison["ci95_logs"]
            lines += [
                "",
                f"Resampling whole logs instead ({comparison['logs']} logs; a log's scenes are overlapping windows "
                f"of one drive): 95 % CI [{lo:+.4f}, {hi:+.4f}]. Logs that move the mean most:",
                "",
                "| log | scenes | difference per scene | share of the total difference |",
                "|---|---|---|---|",
                *(
                    f"| {t['log']} | {t['scenes']} | {t['mean']:+.4f} | {100 * t['share']:.0f} % |"
                    for t in comparison["top_logs"]
                ),
            ]
    probes = {s: runs["convgru"][s].get("probe") for s in seeds if runs["convgru"][s].get("probe")}
    if probes:
        top = ((comparison or {}).get("top_logs") or [{}])[0].get("log")
        lines += [
            "",
            "## Does the trained agent use its history?",
            "",
            "How far the 4 s endpoint of the `convgru` run's plan moves when the same weights get no temporal "
            "content (the current frame repeated 4 times, no motion), or only the current frame (one GRU step from "
            "a zero state: the `use_convgru=false` path, never seen in its training); next to the endpoint gap to "
            "the `single_frame` run of the same seed. Mean over the evaluation scenes"
            + (f" and on `{top}`" if top else "")
            + "; computed by the script from the checkpoints and the feature cache.",
            "",
            "| seed | history → repeated [m] | p90 [m] | history → current only [m] | gap to single_frame [m] |"
            + (" on top log: repeated / current only / gap [m] |" if top else ""),
            "|---|---|---|---|---|" + ("---|" if top else ""),
        ]
        for s, pr in probes.items():
            row = (
                f"| {s} | {pr['history_shift_m']:.2f} | {pr['history_shift_p90_m']:.2f} | "
                f"{pr['one_step_shift_m']:.2f} | {pr['variant_gap_m']:.2f} |"
            )
            if top:
                lg = pr["per_log"].get(top, {})
                row += " {:.2f} / {:.2f} / {:.2f} |".format(
                    *(
                        lg.get(k, float("nan"))
                        for k in ("history_shift_m", "one_step_shift_m", "variant_gap_m")
                    )
                )
            lines.append(row)
    for title, rows in (breakdowns or {}).items():
        if not rows:
            continue
        lines += [
            "",
            f"By {title} (paired per-scene difference, seed-averaged; 95 % bootstrap CI over the scenes of the "
            "group; `temporal.png`):",
            "",
            f"| {title} | scenes | convgru | single_frame | difference | 95 % CI |",
            "|---|---|---|---|---|---|",
        ]
        for r in rows:
            lo, hi = r["ci95"]
            lines.append(
                f"| {r['group']} | {r['scenes']} | {r['convgru']:.4f} | {r['single_frame']:.4f} | "
                f"{r['mean']:+.4f} | [{lo:+.4f}, {hi:+.4f}] |"
            )
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
        f"Generated {meta['generated']} in {meta['seconds']:.0f} s on {meta['host']} (this invocation; the steps "
        "marked reused ran in earlier invocations of the same command, which resumes).",
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
        "train_seconds": train_seconds(run),
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
    p.add_argument(
        "--probe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure how far the history moves the trained convgru plans (in-process, cached per run)",
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
    token_log = scene_logs(metric_cache)
    from planlab.atomic import atomic_write_text

    comparison = paired(runs, seeds, token_log)
    if args.probe:
        for seed in seeds:
            path = work / f"convgru_seed{seed}" / f"history_probe_{args.split}.json"
            if not path.is_file() or json.loads(path.read_text()).get("version") != PROBE_VERSION:
                print(f"history probe of convgru_seed{seed}", flush=True)
                result = history_probe(
                    work / f"convgru_seed{seed}", work / f"single_frame_seed{seed}", data, args.split,
                    features, token_log,
                )  # fmt: skip
                atomic_write_text(path, json.dumps(result, indent=1) + "\n")
            runs["convgru"][seed]["probe"] = json.loads(path.read_text())
    scored = set.intersection(*(set(r["scores"]) for rs in runs.values() for r in rs.values()))
    breakdowns = {
        "scenario type of the log": by_group(runs, seeds, scene_scenarios(data, token_log)),
        "ego speed at the current frame": by_group(
            runs, seeds, scene_speeds(data, args.split, scored), order=[n for n, _ in SPEED_BANDS]
        ),
    }
    first = runs["convgru"][seeds[0]]
    meta = {
        "argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "data": str(args.data),
        "preset": args.preset,
        "seeds": seeds,
        "dataset": dataset_identity(data),
        "epochs": args.epochs,
        "label_fraction": args.label_fraction,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "train_scenes": first["train_scenes"],
        "split": args.split,
        "eval_scenes": first["num_valid"],
        "commands": log,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": time.perf_counter() - t0,
        "host": os.uname().nodename,
    }
    args.out.mkdir(parents=True, exist_ok=True)

    plain = {v: {s: {k: r[k] for k in r if k != "scores"} for s, r in rs.items()} for v, rs in runs.items()}
    atomic_write_text(
        args.out / "temporal.json",
        json.dumps({"meta": meta, "runs": plain, "paired": comparison, "breakdowns": breakdowns}, indent=1)
        + "\n",
    )
    plot(args.out / "temporal.png", runs, seeds, breakdowns)
    atomic_write_text(args.out / "temporal.md", render(meta, runs, comparison, breakdowns))
    print(f"wrote {args.out / 'temporal.md'}")


if __name__ == "__main__":
    main()
