"""A static HTML report over the index: experiment and seed-aggregate tables plus PNG plots.

Plots: learning curves from each run's ``metrics.csv`` (Lightning CSVLogger layout), score bars per
experiment and per group (mean with the 95 % bootstrap CI), and score vs label fraction. All text from
experiments (ids are safe, descriptions and notes are not) is HTML-escaped by Jinja2's autoescape. The page
needs no server and no network: open ``<out>/index.html``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_path, atomic_write_text
from planlab.evaluation.results import SHORT_NAMES as SHORT
from planlab.experiments import registry
from planlab.experiments.export import aggregate, flat_config, master_rows
from planlab.experiments.harvest import ALL_SUBSCORES
from planlab.experiments.rundir import now_iso

LABEL_FRACTION_KEY = "train.data.label_fraction"


def find_metrics_csv(run: Path) -> Path | None:
    """``<run>/metrics.csv``, else the newest ``metrics.csv`` up to three levels below the run dir."""
    top = run / "metrics.csv"
    if top.is_file():
        return top
    found = [
        p for pattern in ("*/metrics.csv", "*/*/metrics.csv", "*/*/*/metrics.csv") for p in run.glob(pattern)
    ]
    found = [p for p in found if "eval" not in p.relative_to(run).parts[:1]]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """{metric: [(step, value)]} from a CSVLogger file (sparse rows; ``step`` or the row number as x)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for i, row in enumerate(reader):
                x_text = row.get("step") or ""
                try:
                    x = float(x_text) if x_text else float(i)
                except ValueError:
                    x = float(i)
                for key, text in row.items():
                    if key in ("step", "epoch") or key is None or not text:
                        continue
                    try:
                        v = float(text)
                    except (TypeError, ValueError):
                        continue
                    if math.isfinite(v):
                        curves.setdefault(key, []).append((x, v))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    return curves


def _figure(width_in: float, height_in: float) -> Any:
    """A figure on an Agg canvas without pyplot's global state (headless, safe in any process)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def plot_learning_curves(rows: Sequence[dict[str, Any]], path: Path, max_runs: int = 12) -> bool:
    """Loss curves (every logged metric with 'loss' in its name) of up to ``max_runs`` experiments."""
    series: list[tuple[str, str, list[tuple[float, float]]]] = []
    for row in rows:
        p = find_metrics_csv(Path(row["run_dir"]))
        if p is None:
            continue
        for name, pts in sorted(read_curves(p).items()):
            if "loss" in name and len(pts) >= 1:
                series.append((row["exp_id"], name, pts))
    if not series:
        return False
    names = sorted({s[1] for s in series})[:4]
    fig = _figure(5 * len(names), 3.6)
    axes = fig.subplots(1, len(names), squeeze=False)
    runs = sorted({s[0] for s in series})[:max_runs]
    for ax, name in zip(axes[0], names, strict=False):
        for exp_id, metric, pts in series:
            if metric != name or exp_id not in runs:
                continue
            xs, ys = zip(*sorted(pts), strict=True)
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=exp_id)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    _save(fig, path)
    return True


def plot_scores(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Headline score and sub-scores per experiment (grouped bars)."""
    scored = [r for r in rows if r.get("primary") and r["primary"].get("score") is not None]
    if not scored:
        return False
    import numpy as np

    subs = [k for k in ALL_SUBSCORES if any(k in (r["primary"].get("subscores") or {}) for r in scored)]
    labels = ["score", *[SHORT.get(s, s) for s in subs]]
    x = np.arange(len(labels))
    width = 0.8 / len(scored)
    fig = _figure(max(6, 1.1 * len(labels) + 0.3 * len(scored)), 3.8)
    ax = fig.subplots()
    for i, r in enumerate(scored):
        vals = [r["primary"]["score"], *[(r["primary"].get("subscores") or {}).get(s) for s in subs]]
        vals = [np.nan if v is None else v for v in vals]
        ax.bar(x - 0.4 + width * (i + 0.5), vals, width, label=r["exp_id"])
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return True


def _group_label(group: dict[str, Any], varying: Sequence[str]) -> str:
    """What distinguishes a group: its varying hyperparameters (last key segment), else its key."""
    parts = [f"{k.rsplit('.', 1)[-1]}={group.get(k)}" for k in varying[:3]]
    return ("\n".join(parts) or group["group_key"][:8]) + f"\n(n={group['n']})"


def plot_groups(groups: Sequence[dict[str, Any]], path: Path, varying: Sequence[str] = ()) -> bool:
    """Mean score per group with its bootstrap CI, labelled by the hyperparameters that differ."""
    groups = [g for g in groups if g.get("score_mean") is not None]
    if not groups:
        return False
    fig = _figure(max(5, 0.9 * len(groups) + 2), 3.6)
    ax = fig.subplots()
    means = [g["score_mean"] for g in groups]
    lo = [g["score_mean"] - g["score_ci_low"] for g in groups]
    hi = [g["score_ci_high"] - g["score_mean"] for g in groups]
    ax.bar(range(len(groups)), means, yerr=[lo, hi], capsize=4, color="#4c78a8")
    ax.set_xticks(range(len(groups)), [_group_label(g, varying) for g in groups], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean score (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return True


def plot_label_fraction(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Score vs label fraction (mean ± CI over seeds), one line per template."""
    from planlab.experiments.stats import bootstrap_ci

    points: dict[str, dict[float, list[float]]] = {}
    for r in rows:
        if not r.get("primary") or r["primary"].get("score") is None:
            continue
        frac = flat_config(r).get(LABEL_FRACTION_KEY)
        if frac is None:
            continue
        points.setdefault(r.get("template") or "?", {}).setdefault(float(frac), []).append(
            r["primary"]["score"]
        )
    if not points or all(len(v) < 2 for v in points.values()):
        return False
    fig = _figure(6, 3.8)
    ax = fig.subplots()
    for template, by_frac in sorted(points.items()):
        fracs = sorted(by_frac)
        stats = [bootstrap_ci(by_frac[f]) for f in fracs]
        ax.errorbar(
            fracs,
            [s.mean for s in stats],
            yerr=[[s.mean - s.ci_low for s in stats], [s.ci_high - s.mean for s in stats]],
            marker="o",
            capsize=3,
            label=template,
        )
    ax.set_xscale("log")
    ax.set_xlabel("label fraction")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def write_report(
    root: str | os.PathLike | None, out: str | os.PathLike, title: str = "planlab experiments", **filters: Any
) -> Path:
    """Write ``<out>/index.html`` and its PNGs; returns the HTML path."""
    import jinja2

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = registry.list_experiments(root, sort="exp_id", **filters)
    _, master = master_rows(rows)
    group_cols, groups = aggregate(rows)
    plots = []
    varying = [c for c in group_cols if c.startswith(("train.", "eval."))]
    for name, caption, fn, data in (
        ("scores.png", "Score and sub-scores per experiment", plot_scores, rows),
        (
            "groups.png",
            "Mean score per configuration (seeds aggregated, 95% bootstrap CI)",
            lambda d, p: plot_groups(d, p, varying),
            groups,
        ),
        ("label_fraction.png", "Score vs label fraction", plot_label_fraction, rows),
        ("learning_curves.png", "Learning curves (metrics.csv)", plot_learning_curves, rows),
    ):
        if fn(data, out_dir / name):
            plots.append({"file": name, "caption": caption})
        else:
            (out_dir / name).unlink(missing_ok=True)
    exp_cols = ["exp_id", "description", "tags", "status", "template", "eval_split", "metric", "pdms", "epdms",
                "n_scenarios", "n_failed", *ALL_SUBSCORES, "git_sha", "git_dirty", "job_train", "created"]  # fmt: skip
    exp_cols = [
        c
        for c in exp_cols
        if c in ("exp_id", "description", "status") or any(m.get(c) not in (None, "") for m in master)
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).resolve().parent / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = _fmt
    html = env.get_template("report.html.j2").render(
        title=title,
        generated=now_iso(),
        root=str(registry.index_path(root).parent),
        exp_cols=exp_cols,
        experiments=master,
        short=SHORT,
        group_cols=group_cols,
        groups=groups,
        plots=plots,
    )
    path = out_dir / "index.html"
    atomic_write_text(path, html)
    return path
