"""Read evaluation outputs into scores: planlab's ``pdm_scores.csv`` and NAVSIM's ``run_pdm_score`` CSVs.

Layouts understood (fact sheet §1.8):

* NAVSIM v1.1 (PDMS): unnamed index column, ``token, valid``, six sub-scores, ``score``; summary row
  ``token="average"`` (NaN-skipping column means, failed scenes excluded).
* NAVSIM v2 one-stage (EPDMS): ``token, valid``, nine sub-scores (incl. ``two_frame_extended_comfort``),
  ``score``; summary row ``average_all_frames``.
* NAVSIM v2 two-stage: ``<metric>_stage_one`` / ``<metric>_stage_two`` columns; summary rows
  ``extended_pdm_score_stage_one``, ``…_stage_two`` and ``…_combined`` (the pseudo-closed-loop EPDMS).

planlab's evaluator writes the same columns (v1.1 for pdms, v2 one-stage for epdms) plus ``summary.json``.
The headline score is the file's own summary row when present (NAVSIM's number, bit for bit), else the
NaN-skipping mean of the per-scene scores.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.errors import DataError
from planlab.experiments.ids import is_valid_id

V1_SUBSCORES = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
)
V2_SUBSCORES = (
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
# Every sub-score name planlab reports, in a stable order (export columns follow it).
ALL_SUBSCORES = tuple(dict.fromkeys((*V1_SUBSCORES, *V2_SUBSCORES)))
SUMMARY_TOKENS = (
    "average",
    "average_all_frames",
    "extended_pdm_score_stage_one",
    "extended_pdm_score_stage_two",
    "extended_pdm_score_combined",
)
PLANLAB_CSV = "pdm_scores.csv"


@dataclass
class SceneScore:
    token: str
    valid: bool
    score: float
    subscores: dict[str, float]


@dataclass
class EvalResult:
    """The scores of one evaluation (one split) of one experiment."""

    split: str
    path: str
    format: str  # navsim-v1.1 | navsim-v2-one-stage | navsim-v2-two-stage
    metric: str  # pdms | epdms
    score: float
    n_scenarios: int
    n_valid: int
    subscores: dict[str, float]
    scenes: list[SceneScore] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return self.n_scenarios - self.n_valid


def _float(text: str) -> float:
    s = text.strip()
    if s == "" or s.lower() in ("nan", "none", "null"):
        return math.nan
    try:
        return float(s)
    except ValueError:
        if s.lower() in ("true", "false"):
            return 1.0 if s.lower() == "true" else 0.0
        raise


def _bool(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "1.0", "yes")


def nanmean(values: list[float]) -> float:
    good = [v for v in values if not math.isnan(v)]
    return sum(good) / len(good) if good else math.nan


def detect_format(columns: list[str]) -> str:
    cols = set(columns)
    if "token" not in cols or "score" not in cols:
        raise DataError("not a PDM-score CSV: needs 'token' and 'score' columns")
    if any(c.endswith("_stage_one") for c in cols):
        return "navsim-v2-two-stage"
    if cols & {"traffic_light_compliance", "lane_keeping", "history_comfort", "two_frame_extended_comfort"}:
        return "navsim-v2-one-stage"
    return "navsim-v1.1"


def read_score_csv(path: str | os.PathLike, split: str = "") -> EvalResult:
    """Parse one per-scene score CSV (any layout above); a DataError names the file and the problem."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except FileNotFoundError:
        raise DataError(f"{p}: score CSV not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{p}: not a readable CSV ({exc})") from None
    if not rows:
        raise DataError(f"{p}: empty CSV")
    header = rows[0]
    drop_index = bool(header) and header[0] == ""  # pandas' unnamed index column
    if drop_index:
        header = header[1:]
    try:
        fmt = detect_format(header)
    except DataError as exc:
        raise DataError(f"{p}: {exc}") from None
    col = {name: i for i, name in enumerate(header)}
    if fmt == "navsim-v2-two-stage":
        sub_names = [c for c in header if c.endswith("_stage_one") or c.endswith("_stage_two")]
    else:
        names = V2_SUBSCORES if fmt == "navsim-v2-one-stage" else V1_SUBSCORES
        sub_names = [c for c in names if c in col]
    has_valid = "valid" in col

    scenes: list[SceneScore] = []
    summaries: dict[str, dict[str, float]] = {}
    for lineno, raw in enumerate(rows[1:], start=2):
        if not raw or all(not c.strip() for c in raw):
            continue
        cells = raw[1:] if drop_index else raw
        if len(cells) != len(header):
            raise DataError(f"{p}: line {lineno} has {len(cells)} cells, header has {len(header)}")
        token = cells[col["token"]]
        try:
            values = {name: _float(cells[col[name]]) for name in sub_names}
            score = _float(cells[col["score"]])
        except ValueError:
            raise DataError(f"{p}: line {lineno} has a non-numeric score") from None
        if token in SUMMARY_TOKENS:
            summaries[token] = {**values, "score": score}
            continue
        valid = _bool(cells[col["valid"]]) if has_valid else not math.isnan(score)
        scenes.append(SceneScore(token, valid, score, values))

    metric = "pdms" if fmt == "navsim-v1.1" else "epdms"
    summary_row = {
        "navsim-v1.1": "average",
        "navsim-v2-one-stage": "average_all_frames",
        "navsim-v2-two-stage": "extended_pdm_score_combined",
    }[fmt]
    if summary_row in summaries:
        headline = summaries[summary_row]
        score = headline["score"]
        subs = {k: headline[k] for k in sub_names}
    else:
        score = nanmean([s.score for s in scenes if s.valid])
        subs = {k: nanmean([s.subscores[k] for s in scenes if s.valid]) for k in sub_names}
    extra: dict[str, Any] = {}
    if fmt == "navsim-v2-two-stage":
        for key in ("extended_pdm_score_stage_one", "extended_pdm_score_stage_two"):
            if key in summaries:
                extra[key] = summaries[key]["score"]
    n_valid = sum(1 for s in scenes if s.valid)
    return EvalResult(split, str(p), fmt, metric, score, len(scenes), n_valid, subs, scenes, extra)


def find_score_csv(split_dir: Path) -> Path | None:
    """planlab's ``pdm_scores.csv`` in an eval split dir, else the newest NAVSIM ``<timestamp>.csv``."""
    own = split_dir / PLANLAB_CSV
    if own.is_file():
        return own
    others = sorted(p for p in split_dir.glob("*.csv") if p.is_file() and not p.name.startswith("."))
    return others[-1] if others else None


def harvest_run(run: Path) -> list[EvalResult]:
    """Every evaluated split of one run dir (``eval/<split>/``); an unreadable CSV raises DataError."""
    eval_dir = run / "eval"
    if not eval_dir.is_dir():
        return []
    results = []
    for split_dir in sorted(p for p in eval_dir.iterdir() if p.is_dir() and is_valid_id(p.name)):
        csv_path = find_score_csv(split_dir)
        if csv_path is None:
            continue
        result = read_score_csv(csv_path, split=split_dir.name)
        summary = split_dir / "summary.json"
        if summary.is_file() and csv_path.name == PLANLAB_CSV:
            import json

            try:
                result.extra["summary"] = json.loads(summary.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                raise DataError(f"{summary}: not readable JSON") from None
        results.append(result)
    return results


def import_csv(run: Path, source: str | os.PathLike, split: str) -> Path:
    """Copy a NAVSIM ``run_pdm_score`` CSV into ``<run>/eval/<split>/`` so the run dir stays the truth.

    The file is parsed first (a bad file is refused); an existing file of the same name is never replaced
    by different content.
    """
    from planlab.atomic import atomic_write_bytes
    from planlab.experiments.ids import check_id

    check_id(split, "split")
    src = Path(source)
    read_score_csv(src, split)  # refuse what harvest could not read
    dest = run / "eval" / split / src.name
    data = src.read_bytes()
    if dest.exists():
        if dest.read_bytes() == data:
            return dest
        raise DataError(f"{dest} already exists with different content; rename the file to import it")
    atomic_write_bytes(dest, data)
    return dest
