"""Tables over the index: the master CSV (one row per experiment), seed aggregates, pairwise comparison.

``results_master.csv`` replaces the hand-kept spreadsheet (seed 001): id, description, tags, status, every
resolved hyperparameter (flattened ``train.optim.lr``…), git sha/dirty, job ids, timestamps, checkpoint and
every metric. Its column order is stable: a fixed block of metadata and metric columns, then the
hyperparameters sorted by key, so two exports of the same runs are byte-identical.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.errors import PlanlabError
from planlab.experiments import registry
from planlab.experiments.harvest import ALL_SUBSCORES
from planlab.experiments.spec import flatten, group_key
from planlab.experiments.stats import bootstrap_ci, paired_bootstrap

META_COLUMNS = (
    "exp_id", "description", "tags", "notes", "template", "status", "phase", "reason", "cluster", "seed",
    "sweep", "config_hash", "group_key", "created", "submitted", "started", "finished",
    "git_sha", "git_branch", "git_dirty", "launcher", "job_train", "job_eval", "job_merge",
    "checkpoint", "wall_time_s", "gpu_hours", "run_dir",
)  # fmt: skip
METRIC_COLUMNS = (
    "eval_split", "metric", "pdms", "epdms", "n_scenarios", "n_valid", "n_failed", *ALL_SUBSCORES,
    "epdms_stage_one", "epdms_stage_two",
)  # fmt: skip
SCORE_NAMES = ("score", *ALL_SUBSCORES)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def config_of(row: dict[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(row.get("config_json") or "{}")
    except ValueError:
        return {}


def flat_config(row: dict[str, Any]) -> dict[str, Any]:
    return flatten(config_of(row))


def metric_cells(primary: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {c: None for c in METRIC_COLUMNS}
    if primary is None:
        return out
    out["eval_split"] = primary["split"]
    out["metric"] = primary["metric"]
    out[primary["metric"]] = primary["score"]
    out["n_scenarios"] = primary["n_scenarios"]
    out["n_valid"] = primary["n_valid"]
    if primary["n_scenarios"] is not None and primary["n_valid"] is not None:
        out["n_failed"] = primary["n_scenarios"] - primary["n_valid"]
    subs = primary.get("subscores") or {}
    for name in ALL_SUBSCORES:
        out[name] = subs.get(name)
    extra = primary.get("extra") or {}
    out["epdms_stage_one"] = extra.get("extended_pdm_score_stage_one")
    out["epdms_stage_two"] = extra.get("extended_pdm_score_stage_two")
    return out


def master_rows(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of the master table for index rows from :func:`registry.list_experiments`."""
    table: list[dict[str, Any]] = []
    hyper_keys: set[str] = set()
    other_split_cols: set[str] = set()
    for row in rows:
        rec: dict[str, Any] = {c: row.get(c) for c in META_COLUMNS if c in row}
        tags = json.loads(row.get("tags") or "[]")
        rec["tags"] = ";".join(tags)
        jobs = json.loads(row.get("job_ids") or "{}")
        for stage in ("train", "eval", "merge"):
            rec[f"job_{stage}"] = jobs.get(stage)
        rec.update(metric_cells(row.get("primary")))
        for split, res in (row.get("results") or {}).items():
            if row.get("primary") is not None and split == row["primary"]["split"]:
                continue
            for key in ("score", "n_scenarios"):
                col = f"split.{split}.{key}"
                rec[col] = res.get(key)
                other_split_cols.add(col)
        for key, value in flat_config(row).items():
            rec[key] = value
            hyper_keys.add(key)
        table.append(rec)
    columns = [*META_COLUMNS, *METRIC_COLUMNS, *sorted(other_split_cols), *sorted(hyper_keys)]
    return columns, table


def to_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def export_master(root: str | os.PathLike | None, out: str | os.PathLike, **filters: Any) -> tuple[int, int]:
    """Write ``results_master.csv`` atomically; returns (rows, columns)."""
    rows = registry.list_experiments(root, sort="exp_id", **filters)
    columns, table = master_rows(rows)
    atomic_write_text(Path(out), to_csv(columns, table))
    return len(table), len(columns)


# --------------------------------------------------------------------------- aggregate


def aggregate(
    rows: Sequence[dict[str, Any]],
    *,
    ignore: Sequence[str] = (),
    confidence: float = 0.95,
) -> tuple[list[str], list[dict[str, Any]]]:
    """Group experiments by their config without the seed (and ``ignore`` keys); per group and metric:
    n, mean, std and the bootstrap CI. Experiments without a result are left out."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("primary") is None or row["primary"].get("score") is None:
            continue
        key = group_key(config_of(row), ignore=ignore) if ignore else (row.get("group_key") or row["exp_id"])
        groups.setdefault(key, []).append(row)
    # Hyperparameters that differ between groups: the columns that say what each group is.
    flats = {k: flat_config(members[0]) for k, members in groups.items()}
    all_keys = sorted({k for f in flats.values() for k in f})
    skip = {"train.trainer.seed", *ignore}
    varying = [
        k
        for k in all_keys
        if k not in skip and len({json.dumps(f.get(k), sort_keys=True) for f in flats.values()}) > 1
    ]
    out: list[dict[str, Any]] = []
    for key, members in groups.items():
        rec: dict[str, Any] = {
            "group_key": key,
            "n": len(members),
            "exp_ids": ";".join(sorted(m["exp_id"] for m in members)),
            "seeds": ";".join(str(m.get("seed")) for m in sorted(members, key=lambda m: m["exp_id"])),
            "template": members[0].get("template"),
            "eval_split": members[0]["primary"]["split"],
            "metric": members[0]["primary"]["metric"],
        }
        for k in varying:
            rec[k] = flats[key].get(k)
        for name in SCORE_NAMES:
            vals = [
                m["primary"]["score"] if name == "score" else (m["primary"].get("subscores") or {}).get(name)
                for m in members
            ]
            vals = [v for v in vals if v is not None]
            if not vals:
                continue
            s = bootstrap_ci(vals, confidence=confidence)
            rec[f"{name}_mean"], rec[f"{name}_std"] = s.mean, s.std
            rec[f"{name}_ci_low"], rec[f"{name}_ci_high"] = s.ci_low, s.ci_high
        out.append(rec)
    out.sort(key=lambda r: (-(r.get("score_mean") or -math.inf), r["group_key"]))
    metric_cols = [f"{n}_{s}" for n in SCORE_NAMES for s in ("mean", "std", "ci_low", "ci_high")]
    present = [c for c in metric_cols if any(c in r for r in out)]
    columns = ["group_key", "n", "exp_ids", "seeds", "template", "eval_split", "metric", *varying, *present]
    return columns, out


# --------------------------------------------------------------------------- compare


def config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, value in A, value in B) for every flattened key whose values differ (missing = None)."""
    fa, fb = flatten(a), flatten(b)
    out = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key), fb.get(key)
        if json.dumps(va, sort_keys=True) != json.dumps(vb, sort_keys=True):
            out.append((key, va, vb))
    return out


def compare(root: str | os.PathLike | None, a: str, b: str, split: str | None = None) -> dict[str, Any]:
    """Config diff of two experiments plus a paired per-scene bootstrap test on the score."""
    ra, rb = registry.get_experiment(root, a), registry.get_experiment(root, b)
    out: dict[str, Any] = {"a": a, "b": b, "config_diff": config_diff(config_of(ra), config_of(rb))}
    pa = registry.primary_result(ra, split)
    if split is None and pa is not None:
        split = pa["split"]
    pb = registry.primary_result(rb, split) if split else None
    out["split"] = split
    out["score_a"] = pa["score"] if pa else None
    out["score_b"] = pb["score"] if pb else None
    if pa is None or pb is None:
        missing = [x for x, p in ((a, pa), (b, pb)) if p is None]
        out["test"] = None
        out["note"] = f"no results for {', '.join(missing)}" + (f" on split {split!r}" if split else "")
        return out
    sa = registry.scene_scores(root, a, split)
    sb = registry.scene_scores(root, b, split)
    test = paired_bootstrap(sa, sb)
    if test.n == 0:
        raise PlanlabError(f"{a} and {b} share no scored scene on split {split!r}; nothing to pair")
    out["test"] = test.__dict__
    return out
