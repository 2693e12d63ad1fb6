"""Side-by-side tables of finished scoring runs (``summary.json`` of several ``planlab eval`` outputs).

Used by ``planlab eval table`` and the demo to print the PDMS table of several agents on one split;
every number comes from a run's own summary, and each row names the directory it was read from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planlab.errors import DataError
from planlab.evaluation.results import SHORT_NAMES, V2_METRICS, V11_METRICS


@dataclass
class SummaryRow:
    label: str
    path: Path
    metric: str
    split: str
    num_valid: int
    num_scenes: int
    score: float | None
    means: dict[str, float]


def load_summary(path: str | os.PathLike) -> dict[str, Any]:
    """The ``summary.json`` of an output directory (or the file itself); DataError names what is wrong."""
    p = Path(path)
    f = p / "summary.json" if p.is_dir() else p
    if not f.is_file():
        raise DataError(f"no summary.json in {p} (is it the --out directory of `planlab eval run`?)")
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{f}: not a readable summary ({type(exc).__name__})") from None
    for key in ("metric", "means", "num_valid", "num_scenes"):
        if key not in data:
            raise DataError(f"{f}: summary has no {key!r}")
    return data


def summary_rows(paths: Sequence[str | os.PathLike], labels: Sequence[str] | None = None) -> list[SummaryRow]:
    """One row per output directory; ``labels`` default to the summaries' agent names."""
    if labels is not None and len(labels) != len(paths):
        raise DataError(f"{len(labels)} labels given for {len(paths)} result directories")
    rows = []
    for i, path in enumerate(paths):
        s = load_summary(path)
        label = labels[i] if labels is not None else str(s.get("agent") or Path(path).name)
        rows.append(
            SummaryRow(
                label=label,
                path=Path(path),
                metric=str(s["metric"]),
                split=str(s.get("split", "")),
                num_valid=int(s["num_valid"]),
                num_scenes=int(s["num_scenes"]),
                score=s.get("score"),
                means={k: float(v) for k, v in s["means"].items() if v is not None},
            )
        )
    metrics = {r.metric for r in rows}
    if len(metrics) > 1:
        raise DataError(f"cannot tabulate different metrics together: {', '.join(sorted(metrics))}")
    return rows


def columns_for(metric: str) -> tuple[str, ...]:
    return V2_METRICS if metric == "epdms" else V11_METRICS


def render_markdown(rows: Sequence[SummaryRow], scale: float = 100.0) -> str:
    """A markdown table in NAVSIM's style (sub-scores and score ×100, one decimal)."""
    if not rows:
        return ""
    metric = rows[0].metric
    cols = columns_for(metric)
    name = "EPDMS" if metric == "epdms" else "PDMS"
    head = ["agent", *(SHORT_NAMES.get(c, c) for c in cols), name, "scenes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [f"{scale * r.means[c]:.1f}" if c in r.means else "–" for c in cols]
        score = "–" if r.score is None else f"{scale * r.score:.1f}"
        lines.append(
            f"| {r.label} | " + " | ".join(vals) + f" | **{score}** | {r.num_valid}/{r.num_scenes} |"
        )
    return "\n".join(lines) + "\n"
