"""Result rows and the files a scoring run writes: NAVSIM's ``pdm_scores.csv``, ``summary.json``, ``failures.csv``.

CSV layout follows NAVSIM (fact sheet §1.8): an unnamed integer index column, then ``token, valid``, the
sub-scores and ``score``; failed scenes have ``valid=False`` and empty metrics; the last row
(``average`` for v1.1, ``average_all_frames`` for v2) holds the NaN-skipping column means with
``valid`` = all rows valid. Floats are written as Python's shortest round-trip text, like pandas.
Rows are written in a deterministic order chosen by the caller (the loader's token order).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_write_text
from planlab.errors import DataError

V11_METRICS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
)
V2_METRICS = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "driving_direction_compliance",
    "traffic_light_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "lane_keeping",
    "history_comfort",
    "two_frame_extended_comfort",
)
METRIC_COLUMNS = {"pdms": V11_METRICS, "epdms": V2_METRICS}
# Short column headers of the sub-scores in NAVSIM's paper order (fact sheet §5.1), for tables and plots.
SHORT_NAMES = {
    "no_at_fault_collisions": "NC",
    "drivable_area_compliance": "DAC",
    "driving_direction_compliance": "DDC",
    "traffic_light_compliance": "TLC",
    "ego_progress": "EP",
    "time_to_collision_within_bound": "TTC",
    "comfort": "C",
    "lane_keeping": "LK",
    "history_comfort": "HC",
    "two_frame_extended_comfort": "EC",
}
AVERAGE_TOKEN = {"pdms": "average", "epdms": "average_all_frames"}
SCORES_FILE = "pdm_scores.csv"
SUMMARY_FILE = "summary.json"
FAILURES_FILE = "failures.csv"


@dataclass
class ScoreRow:
    """One token's result; ``values`` is empty when ``valid`` is False (then ``reason`` says why)."""

    token: str
    valid: bool
    values: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    log_name: str = ""

    @classmethod
    def failed(cls, token: str, reason: str, log_name: str = "") -> ScoreRow:
        return cls(token, False, {}, " ".join(str(reason).split()), log_name)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    value = float(value)
    if math.isnan(value):
        return ""
    return repr(value)


def column_means(rows: Sequence[ScoreRow], columns: Sequence[str]) -> dict[str, float]:
    """NaN-skipping mean of each column over the valid rows (NaN when a column has no value)."""
    out = {}
    for c in columns:
        vals = np.array([r.values.get(c, np.nan) for r in rows if r.valid], dtype=np.float64)
        vals = vals[~np.isnan(vals)]
        out[c] = float(vals.sum() / len(vals)) if len(vals) else float("nan")
    return out


def render_csv(rows: Sequence[ScoreRow], metric: str) -> str:
    """The ``pdm_scores.csv`` text for ``rows`` in the given order, closing row included."""
    metrics = METRIC_COLUMNS[metric]
    columns = [*metrics, "score"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["", "token", "valid", *columns])
    for i, r in enumerate(rows):
        w.writerow([i, r.token, "True" if r.valid else "False", *(_fmt(r.values.get(c)) for c in columns)])
    means = column_means(rows, columns)
    valid_all = all(r.valid for r in rows)
    w.writerow(
        [
            len(rows),
            AVERAGE_TOKEN[metric],
            "True" if valid_all else "False",
            *(_fmt(means[c]) for c in columns),
        ]
    )
    return buf.getvalue()


def read_csv(path: Path) -> tuple[str, list[ScoreRow]]:
    """(metric, rows without the closing row) of a ``pdm_scores.csv`` written by planlab or NAVSIM."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read scores ({exc.strerror})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty scores file") from None
    metric = next((m for m, cols in METRIC_COLUMNS.items() if header[3:] == [*cols, "score"]), None)
    if metric is None or header[1:3] != ["token", "valid"]:
        raise DataError(f"{path}: not a pdm_scores.csv (columns {header})")
    rows = []
    for line in reader:
        if not line:
            continue
        token, valid = line[1], line[2] == "True"
        if token in AVERAGE_TOKEN.values():
            continue
        values = {c: float(v) for c, v in zip(header[3:], line[3:], strict=True) if v != ""}
        rows.append(ScoreRow(token, valid, values if valid else {}, ""))
    return metric, rows


def failure_rates(rows: Sequence[ScoreRow], metric: str) -> dict[str, float]:
    """Per sub-score: the fraction of valid rows where it is below 1 (where it cost points)."""
    valid = [r for r in rows if r.valid]
    out = {}
    for c in METRIC_COLUMNS[metric]:
        vals = [r.values[c] for r in valid if c in r.values and not math.isnan(r.values[c])]
        out[c] = float(np.mean(np.array(vals) < 1.0)) if vals else float("nan")
    return out


def write_results(
    out_dir: Path, rows: Sequence[ScoreRow], metric: str, summary_extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``pdm_scores.csv``, ``failures.csv`` and ``summary.json``; returns the summary dict."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SCORES_FILE, render_csv(rows, metric))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["token", "log_name", "reason"])
    for r in rows:
        if not r.valid:
            w.writerow([r.token, r.log_name, r.reason])
    atomic_write_text(out_dir / FAILURES_FILE, buf.getvalue())
    columns = [*METRIC_COLUMNS[metric], "score"]
    means = column_means(rows, columns)
    summary: dict[str, Any] = {
        "metric": metric,
        "num_scenes": len(rows),
        "num_valid": sum(r.valid for r in rows),
        "num_failed": sum(not r.valid for r in rows),
        "score": None if math.isnan(means["score"]) else means["score"],
        "means": {k: (None if math.isnan(v) else v) for k, v in means.items()},
        "failure_rates": {k: (None if math.isnan(v) else v) for k, v in failure_rates(rows, metric).items()},
        "failures": {r.token: r.reason for r in rows if not r.valid},
    }
    if summary_extra:
        summary.update(summary_extra)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=False) + "\n")
    return summary
