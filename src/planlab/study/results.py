"""Results of the label-efficiency study, computed only from the run directories of its experiments.

Per run: the PDMS and sub-score means of ``eval/<split>/summary.json`` and the per-scene scores of
``pdm_scores.csv``; the number of labels is the training-token count recorded in ``meta.json`` (the saved,
hashed subset). Per (arm, fraction): mean ± std over seeds, n, and two 95 % bootstrap CIs — over seeds only
(percentile bootstrap of the seed means, :func:`planlab.experiments.stats.bootstrap_ci`) and hierarchical
(resampling seeds, then test scenes: the uncertainty of both the training draw and the test set; the band
drawn in the figure). Derived: labels needed to reach ``reach`` × the arm's full-data PDMS, PDMS per 1k labels,
and paired differences between arms (same seeds = same subsets, same scenes). Everything is written by
:func:`write_results`: ``<name>.md``, ``<name>.csv`` (aggregate), ``<name>_runs.csv`` (per run),
``<name>.png`` (the learning curve).
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planlab.errors import PlanlabError
from planlab.evaluation.results import SHORT_NAMES, V11_METRICS

SUB_SCORES = {"pdms": V11_METRICS}  # the sub-scores tabulated per metric (NAVSIM v1.1 order)
SHORT = SHORT_NAMES


@dataclass
class RunResult:
    exp_id: str
    arm: str
    fraction: float
    seed: int
    run_dir: Path
    score: float
    subscores: dict[str, float]
    scene_scores: dict[str, float]  # valid scenes only
    n_scenes: int
    n_failed: int
    labels: int | None
    subset_sha256: str | None
    features: str  # agent (compute_trajectory per scene) | embedding_cache
    checkpoint: str | None
    train_s: float | None
    eval_s: float | None


@dataclass
class StudyTable:
    metric: str
    split: str
    completed: dict[str, RunResult] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # exp_id -> why (state)

    def of(self, arm: str, fraction: float) -> list[RunResult]:
        return sorted(
            (r for r in self.completed.values() if r.arm == arm and r.fraction == fraction),
            key=lambda r: r.seed,
        )


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise PlanlabError(f"{path}: not valid JSON") from None
    return data if isinstance(data, dict) else {}


def _stage_seconds(meta: dict[str, Any], stage: str) -> float | None:
    vals = [
        float(j.get("wall_s") or 0.0)
        for j in meta.get("jobs") or []
        if j.get("stage") == stage and j.get("wall_s")
    ]
    return round(sum(vals), 3) if vals else None


def collect(plan: Any) -> StudyTable:
    """Read every finished run of the plan (a run without ``eval/<split>/pdm_scores.csv`` is listed as missing)."""
    from planlab.evaluation.results import SCORES_FILE, SUMMARY_FILE, read_csv
    from planlab.experiments import rundir

    split, metric = plan.cfg.eval.split, plan.cfg.eval.metric
    table = StudyTable(metric, split)
    for run in plan.runs:
        out = run.run_dir / "eval" / split
        status = rundir.read_status(run.run_dir)
        if not (out / SCORES_FILE).is_file() or "eval" not in (status.get("done") or []):
            table.missing[run.exp_id] = str(status.get("state") or "created")
            continue
        m, rows = read_csv(out / SCORES_FILE)
        if m != metric:
            raise PlanlabError(f"{out / SCORES_FILE}: scored with {m}, the study uses {metric}")
        summary = _json(out / SUMMARY_FILE)
        meta = _json(run.run_dir / "meta.json")
        train = ((meta.get("data") or {}).get("train")) or {}
        subset = train.get("subset") or {}
        evals = [
            j for j in meta.get("jobs") or [] if j.get("stage") == "eval" and j.get("state") == "completed"
        ]
        features = ((evals[-1].get("eval") or {}).get("features") if evals else None) or "agent"
        table.completed[run.exp_id] = RunResult(
            exp_id=run.exp_id,
            arm=run.arm,
            fraction=run.fraction,
            seed=run.seed,
            run_dir=run.run_dir,
            score=float(summary["score"]) if summary.get("score") is not None else math.nan,
            subscores={
                k: v for k, v in (summary.get("means") or {}).items() if k != "score" and v is not None
            },
            scene_scores={r.token: float(r.values["score"]) for r in rows if r.valid},
            n_scenes=len(rows),
            n_failed=sum(not r.valid for r in rows),
            labels=int(train["num_tokens"]) if train.get("num_tokens") is not None else None,
            subset_sha256=subset.get("sha256"),
            features=features,
            checkpoint=(evals[-1].get("eval") or {}).get("checkpoint") if evals else None,
            train_s=_stage_seconds(meta, "train"),
            eval_s=_stage_seconds(meta, "eval"),
        )
    return table


# --------------------------------------------------------------------------- statistics


def _score_matrix(runs: list[RunResult], tokens: list[str]) -> np.ndarray:
    """``[seeds, scenes]`` per-scene scores (NaN where a run has no valid score for the scene)."""
    return np.array([[r.scene_scores.get(t, np.nan) for t in tokens] for r in runs], dtype=float)


def hierarchical_ci(
    matrix: np.ndarray, confidence: float = 0.95, resamples: int = 10000, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean score, resampling seeds (rows) and then scenes (columns) with replacement.

    The same scene draw is used for every seed of a replicate (one test set, several training draws).
    """
    s, t = matrix.shape
    if s == 0 or t == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(s * t, 1))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        rows = rng.integers(0, s, size=(n, s))
        cols = rng.integers(0, t, size=(n, t))
        sub = matrix[rows[:, :, None], cols[:, None, :]]  # [n, s, t]
        stats[start : start + n] = np.nanmean(np.nanmean(sub, axis=2), axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_difference(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, resamples: int = 10000, seed: int = 0
) -> dict[str, float]:
    """A − B over paired seeds (rows) and scenes (columns): mean, hierarchical bootstrap CI and a two-sided
    p-value (resampling the centred differences: the null of equal means), +1 smoothed."""
    d = a - b
    keep = ~np.isnan(d).any(axis=0)
    d = d[:, keep]
    if d.size == 0:
        return {"diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "scenes": 0}
    obs = float(d.mean())
    lo, hi = hierarchical_ci(d, confidence, resamples, seed)
    rng = np.random.default_rng(seed + 1)
    s, t = d.shape
    centred = d - obs
    count = 0
    chunk = max(1, 2_000_000 // max(s * t, 1))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        rows = rng.integers(0, s, size=(n, s))
        cols = rng.integers(0, t, size=(n, t))
        means = centred[rows[:, :, None], cols[:, None, :]].mean(axis=(1, 2))
        count += int(np.sum(np.abs(means) >= abs(obs) - 1e-15))
    p = min(1.0, (1.0 + count) / (resamples + 1.0))
    return {
        "diff": obs,
        "ci_low": lo,
        "ci_high": hi,
        "p_value": p,
        "scenes": int(d.shape[1]),
        "seeds": int(s),
    }


def aggregate(plan: Any, table: StudyTable) -> list[dict[str, Any]]:
    """One row per (arm, fraction) with at least one finished run."""
    from planlab.experiments.stats import bootstrap_ci

    res = plan.cfg.results
    subs = SUB_SCORES.get(table.metric, ())
    out = []
    for arm in plan.cfg.arms:
        for frac in plan.cfg.fractions:
            runs = table.of(arm.name, frac)
            if not runs:
                continue
            scores = [r.score for r in runs]
            tokens = sorted(set().union(*(r.scene_scores for r in runs)))
            s = bootstrap_ci(scores, confidence=res.confidence, resamples=res.resamples)
            lo, hi = hierarchical_ci(_score_matrix(runs, tokens), res.confidence, res.resamples)
            labels = [r.labels for r in runs if r.labels is not None]
            row: dict[str, Any] = {
                "arm": arm.name,
                "label": arm.label or arm.name,
                "fraction": frac,
                "labels": float(np.mean(labels)) if labels else math.nan,
                "n": len(runs),
                "seeds": ";".join(str(r.seed) for r in runs),
                "pdms_mean": s.mean,
                "pdms_std": s.std,
                "ci_low": lo,
                "ci_high": hi,
                "ci_seeds_low": s.ci_low,
                "ci_seeds_high": s.ci_high,
            }
            for k in subs:
                vals = [r.subscores.get(k) for r in runs if r.subscores.get(k) is not None]
                row[k] = float(np.mean(vals)) if vals else math.nan
            row["pdms_per_1k_labels"] = s.mean / (row["labels"] / 1000.0) if row["labels"] > 0 else math.nan
            row["failed_scenes"] = sum(r.n_failed for r in runs)
            row["exp_ids"] = ";".join(r.exp_id for r in runs)
            out.append(row)
    return out


def labels_to_reach(rows: list[dict[str, Any]], reach: float) -> dict[str, Any]:
    """For one arm's rows (sorted by fraction): the labels at which the mean PDMS first reaches ``reach`` × the
    full-data mean — the first evaluated fraction, and a log-linear interpolation between the bracketing ones.

    Without a finished 100 % row there is no full-data reference: ``{"full_missing": True}`` (the largest finished
    fraction is not "full data" and would mislabel every derived figure of an incomplete arm)."""
    rows = sorted(rows, key=lambda r: r["fraction"])
    if not rows:
        return {}
    full = rows[-1]
    if full["fraction"] < 1.0 - 1e-9:
        return {"full_missing": True}
    target = reach * full["pdms_mean"]
    out: dict[str, Any] = {
        "full_fraction": full["fraction"],
        "full_pdms": full["pdms_mean"],
        "target": target,
    }
    prev = None
    for row in rows:
        if row["pdms_mean"] >= target:
            out["first_fraction"] = row["fraction"]
            out["first_labels"] = row["labels"]
            if prev is None:
                out["interpolated_labels"] = (
                    None  # reached at the smallest fraction already: "≤ first_labels"
                )
                out["at_or_below"] = True
            else:
                x0, x1 = math.log(prev["labels"]), math.log(row["labels"])
                y0, y1 = prev["pdms_mean"], row["pdms_mean"]
                w = (target - y0) / (y1 - y0) if y1 != y0 else 1.0
                out["interpolated_labels"] = math.exp(x0 + w * (x1 - x0))
                out["at_or_below"] = False
            return out
        prev = row
    return out


def comparisons(plan: Any, table: StudyTable) -> list[dict[str, Any]]:
    res = plan.cfg.results
    out = []
    for a_name, b_name in res.compare:
        for frac in plan.cfg.fractions:
            a_runs = {r.seed: r for r in table.of(a_name, frac)}
            b_runs = {r.seed: r for r in table.of(b_name, frac)}
            seeds = sorted(set(a_runs) & set(b_runs))
            if not seeds:
                continue
            tokens = sorted(set().union(*(a_runs[s].scene_scores for s in seeds)))
            a = _score_matrix([a_runs[s] for s in seeds], tokens)
            b = _score_matrix([b_runs[s] for s in seeds], tokens)
            d = paired_difference(a, b, res.confidence, res.resamples)
            out.append({"a": a_name, "b": b_name, "fraction": frac, **d,
                        "per_seed": [round(a_runs[s].score - b_runs[s].score, 4) for s in seeds]})  # fmt: skip
    return out


# --------------------------------------------------------------------------- outputs


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k])) else r.get(k))
                    for k in columns})  # fmt: skip
    return buf.getvalue()


def plot_curve(plan: Any, rows: list[dict[str, Any]], path: Path) -> None:
    """PDMS vs labelled fraction (log x), one line per arm with its hierarchical CI band."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from planlab.atomic import atomic_write_bytes

    fig = Figure(figsize=(7.5, 4.8), dpi=130)
    ax = fig.add_subplot(1, 1, 1)
    for arm in plan.cfg.arms:
        pts = sorted((r for r in rows if r["arm"] == arm.name), key=lambda r: r["fraction"])
        if not pts:
            continue
        x = [100.0 * r["fraction"] for r in pts]
        y = [r["pdms_mean"] for r in pts]
        line = ax.plot(x, y, marker="o", ms=4, lw=1.6, label=f"{arm.label or arm.name}")[0]
        ax.fill_between(x, [r["ci_low"] for r in pts], [r["ci_high"] for r in pts], color=line.get_color(),
                        alpha=0.15, lw=0)  # fmt: skip
    ax.set_xscale("log")
    fr = [100.0 * f for f in plan.cfg.fractions]
    ax.set_xticks(fr)
    ax.set_xticklabels([f"{f:g}" for f in fr])
    ax.set_xlabel("labelled training scenes (% of the train split)")
    ax.set_ylabel(f"{plan.cfg.eval.metric.upper()} on {plan.cfg.eval.split}")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"Label efficiency ({plan.cfg.name}): mean over seeds, {int(plan.cfg.results.confidence * 100)} % "
                 "CI (seeds × scenes)", fontsize=9)  # fmt: skip
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())


def _git() -> str:
    from planlab.training.provenance import REPO_ROOT

    try:
        sha = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=20, check=False).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=20, check=False).stdout.strip()  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (sha or "unknown") + ("+dirty" if dirty else "")


def _encoder_section(plan: Any) -> list[str]:
    lines = []
    enc = plan.encoder_dir
    if enc is None:
        return lines
    info = _json(enc / "planlab.json")
    cfg = _json(enc / "config.json")
    lines.append(f"- SSL encoder: `{enc}` (ViT {cfg.get('embed_dim')}-d, {cfg.get('depth')} blocks, patch "
                 f"{cfg.get('patch_size')}, grid {cfg.get('grid_height')}×{cfg.get('grid_width')}); "
                 f"{info.get('source', 'weights')} of pre-training run `{info.get('run_dir', '—')}` "
                 f"(step {info.get('step', '—')})")  # fmt: skip
    study_probe = _json(Path(plan.out_dir) / "probe.json")
    if study_probe.get("ssl") and study_probe.get("random_init"):
        s, r, ci = (
            study_probe["ssl"],
            study_probe["random_init"],
            study_probe.get("ssl_minus_random_ci") or {},
        )
        seeds = ", ".join(str(x.get("seed")) for x in study_probe.get("random_inits") or [])

        def part(name: str, key: str) -> str:
            d = ci.get(key) or {}
            delta = ""
            if d:
                delta = f" (Δ {d['diff']:+.3f}, 95 % CI [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}] over {d['n_logs']} logs)"
            return f"{name} {_fmt(s.get(key))} vs {_fmt(r.get(key))}{delta}"

        lines.append(
            f"- Linear probes of the frozen SSL encoder vs the random-init encoders of the random arms (seeds "
            f"{seeds}, scores averaged), {study_probe.get('protocol')}: {s.get('n_train')} probe-train and "
            f"{s.get('n_test')} test frames (`probe.json`): {part('speed R²', 'speed_r2')}; "
            f"{part('command balanced acc.', 'command_bacc')}; {part('lead vehicle balanced acc.', 'lead_bacc')} "
            f"(lead vehicle in {_fmt(s.get('lead_rate'))} of the test frames); RankMe {_fmt(s.get('rankme'), 1)} vs "
            f"{_fmt(r.get('rankme'), 1)}"
        )
    probe = info.get("probe") or {}
    if probe.get("ssl") and probe.get("random_init"):
        s, r = probe["ssl"], probe["random_init"]
        lines.append(
            f"- Pre-training's last monitor probe ({probe.get('protocol') or 'log split of the validation split'}; "
            f"{s.get('n_test')} test frames, SSL vs random init): speed R² "
            f"{_fmt(s.get('speed_r2'))} vs {_fmt(r.get('speed_r2'))}, command balanced acc. "
            f"{_fmt(s.get('command_bacc'))} vs {_fmt(r.get('command_bacc'))}, lead vehicle balanced acc. "
            f"{_fmt(s.get('lead_bacc'))} vs {_fmt(r.get('lead_bacc'))}, RankMe {_fmt(s.get('rankme'), 1)} vs "
            f"{_fmt(r.get('rankme'), 1)}"
        )
    run_dir = info.get("run_dir")
    if run_dir:
        curve = pretrain_curve(Path(run_dir) / "metrics.csv")
        if curve:
            lines.append(
                f"- Pre-training loss (smooth-L1) {_fmt(curve['loss_first'], 4)} at step {curve['step_first']} → "
                f"{_fmt(curve['loss_last'], 4)} at step {curve['step_last']} (mean of the first / last quarter of "
                f"the logged steps {_fmt(curve['loss_first_quarter'], 4)} → {_fmt(curve['loss_last_quarter'], 4)}); "
                f"target-feature std over channels {_fmt(curve['target_std_first'])} → "
                f"{_fmt(curve['target_std_last'])} (minimum {_fmt(curve['target_std_min'])}; collapse would drive it "
                "to 0)"
            )
        tr = _json(Path(run_dir) / "training.json")
        if tr.get("seconds") is not None:
            lines.append(
                f"- Pre-training wall time: {tr['seconds'] / 60:.1f} min ({tr.get('global_step')} steps)"
            )
    return lines


def pretrain_curve(path: Path) -> dict[str, Any]:
    """First/last logged pre-training loss and target-feature std of a ``metrics.csv`` (the evidence that the loss
    fell and the targets did not collapse); {} when the file or the columns are missing."""
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("train/loss") and r.get("monitor/target_std")]
    except (OSError, csv.Error):
        return {}
    if not rows:
        return {}
    loss = [float(r["train/loss"]) for r in rows]
    std = [float(r["monitor/target_std"]) for r in rows]
    q = max(1, len(rows) // 4)
    return {
        "step_first": int(float(rows[0]["step"])),
        "step_last": int(float(rows[-1]["step"])),
        "loss_first": loss[0],
        "loss_last": loss[-1],
        "loss_first_quarter": float(np.mean(loss[:q])),
        "loss_last_quarter": float(np.mean(loss[-q:])),
        "target_std_first": std[0],
        "target_std_last": std[-1],
        "target_std_min": min(std),
        "logged": len(rows),
    }


def _schedule_text(cfg: Any, arm: Any) -> str:
    sch = arm.schedule or cfg.schedule
    text = f"≥ {sch.epochs} epochs, ≥ {sch.min_steps} steps"
    if sch.max_steps is not None:
        text += f", ≤ {sch.max_steps} steps" + (" after unfreezing" if arm.finetune_at is not None else "")
    return text


def outcome_lines(cfg: Any, comps: list[dict[str, Any]]) -> list[str]:
    """One sentence per compared pair: at which fractions A is better, worse, or not distinguishable from B."""
    label = {a.name: a.label or a.name for a in cfg.arms}
    lines = []
    for a_name, b_name in cfg.results.compare:
        mine = [c for c in comps if c["a"] == a_name and c["b"] == b_name]
        if not mine:
            continue
        better = [f"{100 * c['fraction']:g} %" for c in mine if c["ci_low"] > 0]
        worse = [f"{100 * c['fraction']:g} %" for c in mine if c["ci_high"] < 0]
        same = [f"{100 * c['fraction']:g} %" for c in mine if c["ci_low"] <= 0 <= c["ci_high"]]
        parts = []
        if better:
            parts.append(f"higher at {', '.join(better)}")
        if worse:
            parts.append(f"lower at {', '.join(worse)}")
        if same:
            parts.append(f"not distinguishable at {', '.join(same)}")
        lines.append(f"- {label[a_name]} vs {label[b_name]}: " + "; ".join(parts) + ".")
    return lines


def markdown(plan: Any, table: StudyTable, rows: list[dict[str, Any]], reach: dict[str, dict[str, Any]],
             comps: list[dict[str, Any]], command: str, names: dict[str, str]) -> str:  # fmt: skip
    cfg = plan.cfg
    metric = table.metric.upper()
    study = _json(plan.out_dir / "study.json")
    t = study.get("timings") or {}
    done = list(table.completed.values())
    any_run = done[0] if done else None
    n_test = any_run.n_scenes if any_run else 0
    lines = [
        f"# Label efficiency: {cfg.name}",
        "",
        f"Generated by `{command}` (git {_git()}). Every number below is computed from the experiment run "
        f"directories under `{plan.exp_root}`; `{names['runs_csv']}` lists each run's id, directory, subset hash "
        "and scores. Do not edit by hand: rerun the command.",
        "",
        "## Set-up",
        "",
        f"- Data: `{Path(str(cfg.data.root or '$OPENSCENE_DATA_ROOT'))}`; train split `{cfg.data.train_split}`, model "
        f"selection on `{cfg.data.val_split}` ({cfg.eval.checkpoint} checkpoint), evaluation on `{cfg.eval.split}` "
        f"({n_test} scenes, {metric}, the same evaluator and metric cache for every run).",
        f"- Label fractions {', '.join(f'{100 * f:g} %' for f in cfg.fractions)} (nested subsets per seed), seeds "
        f"{', '.join(map(str, cfg.seeds))} (seed s = training seed and subset seed).",
        *_encoder_section(plan),
        f"- Runs finished: {len(table.completed)} of {len(plan.runs)}"
        + (f"; missing: {', '.join(sorted(table.missing))}" if table.missing else ""),
        "",
        "| arm | template | encoder | head input | run length |",
        "|---|---|---|---|---|",
    ]
    for arm in cfg.arms:
        src = {
            "ssl": "I-JEPA (this study)",
            "random": "random init of the same ViT (one per seed)",
            "none": "—",
        }[arm.encoder]
        how = (
            "frozen-embedding cache"
            if arm.embeddings
            else ("images (encoder runs)" if arm.encoder != "none" else "ego status")
        )
        lines.append(f"| {arm.label or arm.name} (`{arm.name}`) | {arm.template} | {src} | {how} | "
                     f"{_schedule_text(cfg, arm)} |")  # fmt: skip
    if cfg.results.notes:
        lines += ["", "## Scale and budget", ""] + [f"- {n}" for n in cfg.results.notes]
    lines += ["", f"## {metric} by labelled fraction", "",
              f"Mean ± std over seeds (n), [{int(cfg.results.confidence * 100)} % CI: seeds × scenes bootstrap].", ""]  # fmt: skip
    header = "| fraction | labels | " + " | ".join(a.label or a.name for a in cfg.arms) + " |"
    lines += [header, "|---|---|" + "---|" * len(cfg.arms)]
    for frac in cfg.fractions:
        cells = []
        labels = [r["labels"] for r in rows if r["fraction"] == frac and math.isfinite(r["labels"])]
        for arm in cfg.arms:
            r = next((x for x in rows if x["arm"] == arm.name and x["fraction"] == frac), None)
            cells.append("—" if r is None else
                         f"{_fmt(r['pdms_mean'])} ± {_fmt(r['pdms_std'])} ({r['n']}) [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]")  # fmt: skip
        lines.append(
            f"| {100 * frac:g} % | {_fmt(float(np.mean(labels)), 0) if labels else '—'} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", f"![learning curve]({names['png']})", "", "## Derived figures", "",
              f"Labels needed to reach {int(cfg.results.reach * 100)} % of the arm's own full-data {metric} (first "
              "evaluated fraction that reaches it; log-linear interpolation between the bracketing fractions), and "
              f"{metric} per 1k labels at the smallest and the largest fraction.", "",
              f"| arm | full-data {metric} | target | first fraction reaching it | labels there | interpolated labels | "
              f"{metric}/1k labels (smallest) | {metric}/1k labels (full) |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in cfg.arms:
        rr = reach.get(arm.name) or {}
        mine = sorted((r for r in rows if r["arm"] == arm.name), key=lambda r: r["fraction"])
        if not mine:
            continue
        if "first_fraction" in rr:
            first = f"{100 * rr['first_fraction']:g} %"
            lab = _fmt(rr["first_labels"], 0)
            interp = f"≤ {lab}" if rr.get("at_or_below") else _fmt(rr.get("interpolated_labels"), 0)
        elif rr.get("full_missing"):
            first, lab, interp = "— (no 100 % runs)", "—", "—"
        else:
            first, lab, interp = "not reached", "—", "—"
        full_per_1k = mine[-1]["pdms_per_1k_labels"] if mine[-1]["fraction"] >= 1.0 - 1e-9 else None
        lines.append(f"| {arm.label or arm.name} | {_fmt(rr.get('full_pdms'))} | {_fmt(rr.get('target'))} | {first} | "
                     f"{lab} | {interp} | {_fmt(mine[0]['pdms_per_1k_labels'])} | {_fmt(full_per_1k, 4)} |")  # fmt: skip
    if comps:
        lines += [
            "",
            "## Outcome",
            "",
            "Read off the paired comparisons below (a difference counts when its CI excludes 0):",
            "",
        ]
        lines += outcome_lines(cfg, comps)
        lines += ["", "## Paired comparisons", "",
                  "A − B on the same seeds (hence the same labelled subsets) and the same test scenes; CI and two-sided "
                  "p-value from a hierarchical bootstrap over seeds and scenes.", "",
                  "| A | B | fraction | A − B | CI | p | per-seed A − B |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        label = {a.name: a.label or a.name for a in cfg.arms}
        for c in comps:
            lines.append(f"| {label[c['a']]} | {label[c['b']]} | {100 * c['fraction']:g} % | {c['diff']:+.4f} | "
                         f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['p_value']:.4f} | "
                         f"{', '.join(f'{v:+.3f}' for v in c['per_seed'])} |")  # fmt: skip
    subs = SUB_SCORES.get(table.metric, ())
    if subs:
        lines += ["", "## Sub-scores (means over seeds)", "",
                  "| arm | fraction | " + " | ".join(SHORT.get(k, k) for k in subs) + " | failed scenes |",
                  "|---|---|" + "---|" * (len(subs) + 1)]  # fmt: skip
        for r in rows:
            lines.append(f"| {r['label']} | {100 * r['fraction']:g} % | " + " | ".join(_fmt(r[k]) for k in subs)
                         + f" | {r['failed_scenes']} |")  # fmt: skip
    # budget, from the run dirs (train/eval job wall times) and the study's own timings
    per_arm: dict[str, tuple[float, float, int]] = {}
    for r in done:
        tr, ev, n = per_arm.get(r.arm, (0.0, 0.0, 0))
        per_arm[r.arm] = (tr + (r.train_s or 0.0), ev + (r.eval_s or 0.0), n + 1)
    total = sum(a + b for a, b, _ in per_arm.values())
    lines += ["", "## Compute budget", "",
              "Wall time recorded by each run's jobs (`meta.json`), plus the study's shared steps (`study.json`).", "",
              "| arm | runs | training (min) | evaluation (min) |", "|---|---|---|---|"]  # fmt: skip
    for arm in cfg.arms:
        if arm.name in per_arm:
            tr, ev, n = per_arm[arm.name]
            lines.append(f"| {arm.label or arm.name} | {n} | {tr / 60:.1f} | {ev / 60:.1f} |")
    lines.append(f"| all runs | {len(done)} | | {total / 60:.1f} (train + eval) |")
    for key, text in (("pretrain_s", "pre-training"), ("caches_s", "feature and embedding caches (last invocation)"),
                      ("runs_s", "runs of the last invocation")):  # fmt: skip
        if t.get(key) is not None:
            lines.append(f"- {text}: {t[key] / 60:.1f} min")
    probe_s = _json(Path(plan.out_dir) / "probe.json").get("seconds")
    if probe_s is not None:
        lines.append(
            f"- linear probes of the SSL encoder (`probe.json`, when computed): {probe_s / 60:.1f} min"
        )
    last = study.get("last_run") or {}
    if last.get("seconds") is not None:
        lines.append(f"- the whole previous invocation of this command ({last.get('launcher')} launcher, "
                     f"{last.get('completed')} runs complete at its end): {last['seconds'] / 60:.1f} min")  # fmt: skip
    lines += ["", "## Runs", "", "| experiment | arm | fraction | seed | labels | " + metric + " | features | run dir |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(done, key=lambda r: ([a.name for a in cfg.arms].index(r.arm), r.fraction, r.seed)):
        lines.append(f"| `{r.exp_id}` | {r.arm} | {100 * r.fraction:g} % | {r.seed} | {r.labels} | {_fmt(r.score, 4)} | "
                     f"{r.features} | `{r.run_dir}` |")  # fmt: skip
    return "\n".join(lines) + "\n"


def write_results(plan: Any, table: StudyTable, command: str) -> dict[str, Path]:
    """Write ``<dir>/<name>.{md,csv,png}`` and ``<name>_runs.csv``; returns their paths."""
    from planlab.atomic import atomic_write_text

    res = plan.cfg.results
    out = Path(res.dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "md": out / f"{res.name}.md",
        "csv": out / f"{res.name}.csv",
        "runs_csv": out / f"{res.name}_runs.csv",
        "png": out / f"{res.name}.png",
    }
    rows = aggregate(plan, table)
    reach = {
        a.name: labels_to_reach([r for r in rows if r["arm"] == a.name], res.reach) for a in plan.cfg.arms
    }
    comps = comparisons(plan, table)
    subs = list(SUB_SCORES.get(table.metric, ()))
    agg_cols = ["arm", "label", "fraction", "labels", "n", "seeds", "pdms_mean", "pdms_std", "ci_low", "ci_high",
                "ci_seeds_low", "ci_seeds_high", *subs, "pdms_per_1k_labels", "failed_scenes", "exp_ids"]  # fmt: skip
    for r in rows:
        rr = reach.get(r["arm"]) or {}
        r["labels_to_reach"] = (
            rr.get("interpolated_labels") if not rr.get("at_or_below") else rr.get("first_labels")
        )
    agg_cols.append("labels_to_reach")
    atomic_write_text(paths["csv"], _csv_text(agg_cols, rows))
    run_rows = []
    for r in sorted(table.completed.values(), key=lambda r: (r.arm, r.fraction, r.seed)):
        run_rows.append({"exp_id": r.exp_id, "arm": r.arm, "fraction": r.fraction, "seed": r.seed, "labels": r.labels,
                         "subset_sha256": r.subset_sha256, "pdms": r.score, **r.subscores, "scenes": r.n_scenes,
                         "failed_scenes": r.n_failed, "features": r.features, "checkpoint": r.checkpoint,
                         "train_s": r.train_s, "eval_s": r.eval_s, "run_dir": str(r.run_dir)})  # fmt: skip
    run_cols = ["exp_id", "arm", "fraction", "seed", "labels", "subset_sha256", "pdms", *subs, "scenes",
                "failed_scenes", "features", "checkpoint", "train_s", "eval_s", "run_dir"]  # fmt: skip
    atomic_write_text(paths["runs_csv"], _csv_text(run_cols, run_rows))
    plot_curve(plan, rows, paths["png"])
    names = {k: p.name for k, p in paths.items()}
    atomic_write_text(paths["md"], markdown(plan, table, rows, reach, comps, command, names))
    atomic_write_text(plan.out_dir / "results.json",
       json.dumps({"aggregate": rows, "reach": reach, "comparisons": comps}, indent=1, default=str) + "\n")  # fmt: skip
    return paths
