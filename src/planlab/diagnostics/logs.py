"""What happened in this run? ``planlab logs analyze`` over metrics.csv, TensorBoard events and job logs.

The numbers researchers paste into their experiment logs (seed 000's "Progress Tracking" table) come from
here, computed rather than copied: per loss component the first value, the epoch-0 value, the best and the
last with the improvement, the train–validation gap, iterations/s and epoch time over training, NaN/Inf
occurrences; plus every failure signature found in the stdout/SLURM logs (:mod:`.signatures`) with its fix.

Sources, in order of preference for the numbers: Lightning ``metrics.csv`` (planlab's or CSVLogger's),
TensorBoard event files (they carry wall times, hence iterations/s and epoch time), and as a last resort
the progress bars of a text log (``Epoch 3: 100%|…| 242/242 [21:15<00:00, 0.19it/s, loss=4.03]``).
"""

from __future__ import annotations

import csv
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.diagnostics.signatures import Finding, TextScan, merge_findings, scan_text
from planlab.errors import DataError

TEXT_SUFFIXES = (".out", ".err", ".log", ".txt")
# Components where larger is better (scores, accuracies); everything else (losses, errors) is minimised.
_HIGHER_IS_BETTER = re.compile(r"(?:^|[/_])(?:acc\w*|score|pdms|epdms|precision|recall|map|miou|iou|f1)$")
_SPLIT = re.compile(r"^(train|val|valid|validation|test)[/_](.+)$")


@dataclass
class Point:
    """One logged value: optimizer step, epoch (when known), value, wall time (TensorBoard only)."""

    step: int
    epoch: int | None
    value: float
    wall: float | None = None


Series = dict[str, list[Point]]


# --------------------------------------------------------------------------------------------- readers
def _float(text: Any) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_metrics_csv(path: str | Path) -> Series:
    """Lightning-style ``metrics.csv`` (columns step, epoch, <metric>…; one row per logging call)."""
    p = Path(path)
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{p}: not a readable CSV file ({exc})") from None
    if "step" not in fields:
        raise DataError(
            f"{p}: no 'step' column; not a Lightning metrics.csv (columns: {', '.join(fields[:8])})"
        )
    series: Series = {}
    for row in rows:
        step = _float(row.get("step"))
        if step is None:
            continue
        ep = _float(row.get("epoch"))
        for key in fields:
            if key in ("step", "epoch"):
                continue
            v = _float(row.get(key))
            if v is not None:
                series.setdefault(key, []).append(Point(int(step), int(ep) if ep is not None else None, v))
    return series


def find_event_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(path.rglob("events.out.tfevents.*"))


def read_tensorboard(path: str | Path) -> Series:
    """Scalars of TensorBoard event files (a file or every file under a directory), with wall times."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    series: Series = {}
    epochs: dict[int, int] = {}
    for f in find_event_files(Path(path)):
        acc = EventAccumulator(str(f), size_guidance={SCALARS: 0})
        try:
            acc.Reload()
        except Exception as exc:  # noqa: BLE001 - a damaged event file is a one-line data error
            raise DataError(f"{f}: unreadable TensorBoard event file ({type(exc).__name__}: {exc})") from None
        tags = acc.Tags().get("scalars", [])
        if "epoch" in tags:
            for e in acc.Scalars("epoch"):
                epochs[int(e.step)] = int(round(e.value))
        for tag in tags:
            if tag == "epoch":
                continue
            for e in acc.Scalars(tag):
                series.setdefault(tag, []).append(
                    Point(int(e.step), None, float(e.value), float(e.wall_time))
                )
    for points in series.values():
        points.sort(key=lambda p: (p.wall or 0.0, p.step))
        for pt in points:
            pt.epoch = epochs.get(pt.step)
    return series


_BAR = re.compile(
    r"Epoch (?P<epoch>\d+):[ \t]+(?P<pct>\d+)%\|[^|\r\n]*\|[ \t]*(?P<n>\d+)/(?P<total>\d+)[ \t]*"
    r"\[(?P<elapsed>[\d:]+)<(?P<left>[\d:?]+),[ \t]*(?P<rate>[\d.]+|\?)[ \t]*(?P<unit>it/s|s/it)"
    r"(?:,[ \t]*(?P<post>[^\]\r\n]*))?\]"
)
_POSTFIX = re.compile(r"([\w/.\-]+)=([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))", re.IGNORECASE)


def _clock(text: str) -> float:
    parts = [int(x) for x in text.split(":")]
    sec = 0
    for x in parts:
        sec = sec * 60 + x
    return float(sec)


@dataclass
class EpochBar:
    """The progress-bar states seen for one training epoch in a text log."""

    epoch: int
    n: int
    total: int
    elapsed_s: float
    it_per_s: float | None  # at the last redraw
    first_it_per_s: float | None = None  # at the first redraw with a rate (the start of training for epoch 0)
    postfix: dict[str, float] = field(default_factory=dict)  # of the last redraw


@functools.cache
def _is_epoch_level(key: str) -> bool:
    c = _classify(key)
    return c is not None and (c[0] != "train" or c[2] == "epoch")


def parse_progress_bars(text: str) -> tuple[Series, list[EpochBar]]:
    """Loss values and per-epoch rate/elapsed from Lightning's TQDM training bars in a text log.

    Per-step values come from every redraw; per-epoch values (``val/*``, ``*_epoch``) from the last redraw of
    each epoch, and only when they changed — the bar keeps showing the previous epoch's value until the next
    validation, which must not count as a new epoch's result.
    """
    series: Series = {}
    bars: dict[int, EpochBar] = {}
    step_values: dict[tuple[int, int], dict[str, float]] = {}
    for m in _BAR.finditer(text):  # whole text at once; the pattern never crosses a line or a redraw
        epoch, n, total = int(m.group("epoch")), int(m.group("n")), int(m.group("total"))
        rate = None
        if m.group("rate") != "?":
            r = float(m.group("rate"))
            rate = r if m.group("unit") == "it/s" else (1.0 / r if r > 0 else None)
        post = {k: float(v) for k, v in _POSTFIX.findall(m.group("post") or "") if k != "v_num"}
        bar = bars.get(epoch)
        if bar is None:
            bar = bars[epoch] = EpochBar(epoch, n, total, _clock(m.group("elapsed")), rate)
        if n >= bar.n:
            bar.n, bar.total, bar.elapsed_s, bar.it_per_s = n, total, _clock(m.group("elapsed")), rate
            bar.postfix = post
        if bar.first_it_per_s is None and n > 0:
            bar.first_it_per_s = rate
        if n > 0:
            step_values.setdefault((epoch, n), {}).update(
                {k: v for k, v in post.items() if not _is_epoch_level(k)}
            )
    for (epoch, n), vals in sorted(step_values.items()):
        total = bars[epoch].total
        for k, v in vals.items():
            series.setdefault(k, []).append(Point(epoch * total + n, epoch, v))
    previous: dict[str, float] = {}
    for epoch in sorted(bars):
        bar = bars[epoch]
        for k, v in bar.postfix.items():
            if _is_epoch_level(k) and previous.get(k) != v:
                series.setdefault(k, []).append(Point(epoch * bar.total + bar.n, epoch, v))
                previous[k] = v
    return series, [bars[e] for e in sorted(bars)]


# --------------------------------------------------------------------------------------------- analysis
@dataclass
class ComponentRow:
    """One row of the progress table: a metric of one split over training."""

    metric: str
    split: str
    component: str
    mode: str  # min | max
    first: float | None = None
    first_step: int | None = None
    epoch0_end: float | None = None
    best: float | None = None
    best_epoch: int | None = None
    best_step: int | None = None
    last: float | None = None
    last_epoch: int | None = None
    last_step: int | None = None
    improvement_pct: float | None = None  # first → last; positive = got better
    improvement_from_epoch0_pct: float | None = None  # epoch-0 value → last
    points: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Gap:
    """Train–validation gap of one component at the end of training."""

    component: str
    train: float
    val: float

    @property
    def absolute(self) -> float:
        return self.val - self.train

    @property
    def relative_pct(self) -> float | None:
        return 100.0 * self.absolute / abs(self.train) if self.train else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "train": self.train,
            "val": self.val,
            "gap": self.absolute,
            "gap_pct": self.relative_pct,
        }


@dataclass
class Speed:
    """Throughput over training: iterations/s and samples/s at start, end of epoch 0 and end; epoch times."""

    source: str | None = None
    it_per_s: dict[str, float | None] = field(default_factory=dict)
    samples_per_s: dict[str, float | None] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    it_per_s_by_epoch: list[float | None] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@functools.cache
def _classify(key: str) -> tuple[str, str, str] | None:
    """(split, component, kind) of a logged key; kind is step, epoch or plain."""
    m = _SPLIT.match(key)
    if m is None:
        return None
    split = "val" if m.group(1).startswith("val") else m.group(1)
    rest = m.group(2)
    if rest.endswith("_step"):
        return split, rest[: -len("_step")], "step"
    if rest.endswith("_epoch"):
        return split, rest[: -len("_epoch")], "epoch"
    return split, rest, "plain"


def _epochs_in(points: list[Point]) -> int:
    return len({p.epoch for p in points if p.epoch is not None}) or 1


def _better(mode: str, a: float, b: float) -> bool:
    return a > b if mode == "max" else a < b


def _improvement(mode: str, ref: float | None, last: float | None) -> float | None:
    if ref is None or last is None or not math.isfinite(ref) or not math.isfinite(last) or ref == 0:
        return None
    change = (ref - last) / abs(ref) * 100.0
    return -change if mode == "max" else change


def _finite(points: list[Point]) -> list[Point]:
    return [p for p in points if math.isfinite(p.value)]


def component_rows(series: Mapping[str, list[Point]]) -> list[ComponentRow]:
    """Per (split, component): first, epoch-0 end, best, last and improvement, from step and epoch series."""
    groups: dict[tuple[str, str], dict[str, list[Point]]] = {}
    for key, points in series.items():
        c = _classify(key)
        if c is None or not points:
            continue
        split, comp, kind = c
        if kind == "plain":
            # logged only on step or only on epoch: many points per epoch means per step
            kind = "step" if split == "train" and len(points) > _epochs_in(points) + 1 else "epoch"
        groups.setdefault((split, comp), {})[kind] = sorted(points, key=lambda p: (p.step, p.wall or 0.0))
    rows: list[ComponentRow] = []
    order = {"train": 0, "val": 1, "test": 2}
    for (split, comp), kinds in sorted(
        groups.items(), key=lambda kv: (kv[0][1] != "loss", kv[0][1], order.get(kv[0][0], 3))
    ):
        steps, epochs = kinds.get("step", []), kinds.get("epoch", [])
        mode = "max" if _HIGHER_IS_BETTER.search(comp) else "min"
        row = ComponentRow(f"{split}/{comp}", split, comp, mode, points=len(steps) + len(epochs))
        first_pts = _finite(steps) or _finite(epochs)
        if first_pts:
            row.first, row.first_step = first_pts[0].value, first_pts[0].step
        summary = _finite(epochs) or _finite(steps)
        if summary:
            e0 = [p for p in _finite(epochs) if p.epoch == 0]
            if e0:
                row.epoch0_end = e0[-1].value
            elif not epochs:
                s0 = [p for p in _finite(steps) if p.epoch == 0]
                row.epoch0_end = s0[-1].value if s0 else None
            best = summary[0]
            for p in summary[1:]:
                if _better(mode, p.value, best.value):
                    best = p
            row.best, row.best_epoch, row.best_step = best.value, best.epoch, best.step
            last = summary[-1]
            row.last, row.last_epoch, row.last_step = last.value, last.epoch, last.step
        row.improvement_pct = _improvement(mode, row.first, row.last)
        row.improvement_from_epoch0_pct = _improvement(mode, row.epoch0_end, row.last)
        rows.append(row)
    return rows


def train_val_gaps(rows: list[ComponentRow]) -> list[Gap]:
    train = {r.component: r for r in rows if r.split == "train" and r.last is not None}
    return [
        Gap(r.component, train[r.component].last, r.last)  # type: ignore[arg-type]
        for r in rows
        if r.split == "val" and r.last is not None and r.component in train
    ]


def nonfinite_occurrences(series: Mapping[str, list[Point]]) -> list[dict[str, Any]]:
    out = []
    for key, points in sorted(series.items()):
        bad = [p for p in points if not math.isfinite(p.value)]
        if bad:
            out.append(
                {
                    "metric": key,
                    "count": len(bad),
                    "first_step": bad[0].step,
                    "first_epoch": bad[0].epoch,
                    "nan": sum(1 for p in bad if math.isnan(p.value)),
                    "inf": sum(1 for p in bad if math.isinf(p.value)),
                }
            )
    return out


def _rate_between(points: list[Point]) -> float | None:
    pts = [p for p in points if p.wall is not None]
    if len(pts) < 2 or pts[-1].wall == pts[0].wall:
        return None
    return (pts[-1].step - pts[0].step) / (pts[-1].wall - pts[0].wall)  # type: ignore[operator]


def speed_from_tensorboard(series: Mapping[str, list[Point]]) -> Speed | None:
    """Iterations/s from the wall times of a per-step series; epoch time from per-epoch train series."""
    step_keys = [k for k in series if (c := _classify(k)) and c[0] == "train" and c[2] == "step"]
    step_keys = sorted(step_keys, key=lambda k: (not k.startswith("train/loss"), k))
    if not step_keys or not any(p.wall is not None for p in series[step_keys[0]]):
        return None
    pts = sorted(series[step_keys[0]], key=lambda p: p.step)
    by_epoch: dict[int, list[Point]] = {}
    for p in pts:
        by_epoch.setdefault(p.epoch if p.epoch is not None else 0, []).append(p)
    epochs = sorted(by_epoch)
    speed = Speed(source="tensorboard wall times")
    speed.it_per_s = {
        "start": _rate_between(pts[:2]),
        "epoch0_end": _rate_between(by_epoch[epochs[0]]),
        "last": _rate_between(by_epoch[epochs[-1]]),
    }
    speed.it_per_s_by_epoch = [_rate_between(by_epoch[e]) for e in epochs]
    epoch_keys = [k for k in series if (c := _classify(k)) and c[0] == "train" and c[2] == "epoch"]
    if epoch_keys:
        ends = sorted((p for p in series[epoch_keys[0]] if p.wall is not None), key=lambda p: p.step)
        t0 = pts[0].wall
        walls = [t0] + [p.wall for p in ends]
        speed.epoch_seconds = [
            b - a for a, b in zip(walls, walls[1:], strict=False) if a is not None and b is not None
        ]
        speed.note = "epoch 0 timed from its first logged step; later epochs include validation"
    return speed


def speed_from_samples(series: Mapping[str, list[Point]], global_batch: int | None) -> Speed | None:
    pts = _finite(series.get("perf/samples_per_s", []))
    if not pts:
        return None
    e0 = [p for p in pts if p.epoch == 0] or pts[:1]
    speed = Speed(source="perf/samples_per_s")
    speed.samples_per_s = {"start": pts[0].value, "epoch0_end": e0[-1].value, "last": pts[-1].value}
    if global_batch:
        speed.it_per_s = {
            k: (v / global_batch if v is not None else None) for k, v in speed.samples_per_s.items()
        }
        speed.note = f"it/s = samples/s ÷ global batch {global_batch}"
    return speed


def speed_from_bars(bars: list[EpochBar]) -> Speed | None:
    if not bars:
        return None
    speed = Speed(source="progress bars")
    speed.it_per_s = {
        "start": bars[0].first_it_per_s,
        "epoch0_end": bars[0].it_per_s,
        "last": bars[-1].it_per_s,
    }
    speed.epoch_seconds = [b.elapsed_s for b in bars if b.n == b.total]
    speed.it_per_s_by_epoch = [b.it_per_s for b in bars]
    speed.note = "epoch time = the progress bar's elapsed time at 100 %"
    if bars[0].n < bars[0].total:
        speed.note += f"; epoch 0 stopped at {bars[0].n}/{bars[0].total}"
    return speed


# --------------------------------------------------------------------------------------------- report
@dataclass
class LogReport:
    """Everything ``planlab logs analyze`` found."""

    target: Path
    sources: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    rows: list[ComponentRow] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    speed: Speed | None = None
    nonfinite: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    epochs: int | None = None
    last_step: int | None = None

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" for f in self.findings) or bool(self.nonfinite)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "sources": self.sources,
            "run": self.run,
            "epochs": self.epochs,
            "last_step": self.last_step,
            "components": [r.to_dict() for r in self.rows],
            "train_val_gap": [g.to_dict() for g in self.gaps],
            "speed": self.speed.to_dict() if self.speed else None,
            "nonfinite": self.nonfinite,
            "findings": [f.to_dict() for f in self.findings],
            "exceptions": self.exceptions,
        }

    def to_markdown(self) -> str:
        return render_markdown(self)


def fmt(v: float | None, digits: int = 4) -> str:
    """Significant digits, like the values researchers paste (21.3, 0.0393, 9680)."""
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    text = f"{v:.{max(digits - 1 - mag, 0)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_duration(sec: float | None) -> str:
    if sec is None or not math.isfinite(sec):
        return "-"
    if sec < 60:
        return f"{sec:.1f}s"
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def fmt_pct(p: float | None) -> str:
    if p is None:
        return "-"
    arrow = "↓" if p >= 0 else "↑"
    return f"{abs(p):.1f}% {arrow}"


def progress_table(report: LogReport) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the "Progress Tracking" table (shared by markdown and the rich table)."""
    last_ep = report.epochs - 1 if report.epochs else None
    header = [
        "Metric",
        "Epoch 0 Start",
        "Epoch 0 End",
        "Best",
        f"Epoch {last_ep} End" if last_ep is not None else "Last",
        "Improvement",
    ]
    rows: list[list[str]] = []
    for r in report.rows:
        best = fmt(r.best) + (f" (ep {r.best_epoch})" if r.best_epoch is not None else "")
        start = fmt(r.first) if r.split == "train" else "-"
        imp = r.improvement_pct if r.split == "train" else r.improvement_from_epoch0_pct
        if r.mode == "max" and imp is not None:
            imp_text = f"{abs(imp):.1f}% {'↑' if imp >= 0 else '↓'}"
        else:
            imp_text = fmt_pct(imp)
        rows.append([r.metric, start, fmt(r.epoch0_end), best, fmt(r.last), imp_text])
    sp = report.speed
    if sp is not None and sp.it_per_s:
        it = sp.it_per_s
        rows.append(
            [
                "Training speed (it/s)",
                fmt(it.get("start"), 3),
                fmt(it.get("epoch0_end"), 3),
                "-",
                fmt(it.get("last"), 3),
                _stability(it),
            ]
        )
    if sp is not None and sp.samples_per_s and not sp.it_per_s:
        s = sp.samples_per_s
        rows.append(
            [
                "Training speed (samples/s)",
                fmt(s.get("start")),
                fmt(s.get("epoch0_end")),
                "-",
                fmt(s.get("last")),
                "",
            ]
        )
    if sp is not None and sp.epoch_seconds:
        rows.append(
            [
                "Epoch time",
                "-",
                fmt_duration(sp.epoch_seconds[0]),
                fmt_duration(min(sp.epoch_seconds)),
                fmt_duration(sp.epoch_seconds[-1]),
                "",
            ]
        )
    return header, rows


def _stability(it: Mapping[str, float | None]) -> str:
    a, b = it.get("epoch0_end"), it.get("last")
    if a is None or b is None or a <= 0:
        return ""
    change = (b - a) / a * 100
    return "Stable" if abs(change) < 10 else f"{change:+.0f}%"


def render_markdown(report: LogReport) -> str:
    """The report as markdown: the Progress Tracking table, gaps, NaN/Inf, failures with fixes."""
    out = [f"#### Progress Tracking ({report.target.name})", ""]
    header, rows = progress_table(report)
    if rows:
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        for row in rows:
            out.append("| " + " | ".join(row) + " |")
    else:
        out.append("_no metrics found_")
    out.append("")
    if report.gaps:
        out.append(
            "**Train–validation gap (last epoch):** "
            + "; ".join(
                f"{g.component}: val {fmt(g.val)} vs train {fmt(g.train)} ({'+' if g.absolute >= 0 else ''}{fmt(g.absolute)}"
                + (f", {g.relative_pct:+.0f}%" if g.relative_pct is not None else "")
                + ")"
                for g in report.gaps
            )
        )
        out.append("")
    if report.run:
        bits = [f"{k}: {v}" for k, v in report.run.items() if v not in (None, "", [])]
        out.append("**Run:** " + "; ".join(bits))
        out.append("")
    if report.nonfinite:
        out.append(
            "**NaN/Inf:** "
            + "; ".join(
                f"{n['metric']} ×{n['count']} (first at step {n['first_step']})" for n in report.nonfinite
            )
        )
        out.append("")
    if report.findings:
        out.append("#### Failures and warnings")
        out.append("")
        for f in report.findings:
            where = f"{Path(f.source).name}:{f.line_no}" if f.line_no else Path(f.source).name
            detail = f" — {f.detail}" if f.detail else ""
            times = f" (×{f.count})" if f.count > 1 else ""
            out.append(f"- **{f.title}**{times}{detail} [{where}]: `{f.line}`")
            out.append(f"  - fix: {f.fix}")
        out.append("")
    for e in report.exceptions:
        out.append(f"**Last exception** ({Path(e['source']).name}:{e['line_no']}): `{e['exception']}`")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------------------------- entry point
def _text_logs(run: Path) -> list[Path]:
    found: list[Path] = []
    for base in (run, run / "logs"):
        if base.is_dir():
            found += [p for p in sorted(base.iterdir()) if p.is_file() and p.suffix in TEXT_SUFFIXES]
    return found


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _global_batch(run: Path) -> int | None:
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        return None
    import yaml

    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
        batch = int(cfg["trainer"]["batch_size"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None
    world = (_json(run / "meta.json").get("training") or {}).get("resolved", {}).get("world_size") or 1
    return batch * int(world)


def _run_info(run: Path) -> dict[str, Any]:
    status = _json(run / "status.json")
    training = _json(run / "training.json")
    info: dict[str, Any] = {}
    state = status.get("state") or training.get("state")
    if state:
        info["state"] = state
    reason = status.get("reason") or training.get("reason")
    if reason:
        info["reason"] = reason
    if training.get("attempts"):
        info["attempts"] = training["attempts"]
    resumes = [h for h in training.get("history", []) if h.get("event") == "resume"]
    if resumes:
        info["resumed"] = [Path(str(h.get("from") or "?")).name for h in resumes]
    agent = (training.get("config") or {}).get("agent", {})
    if isinstance(agent, Mapping) and agent.get("name"):
        info["agent"] = agent["name"]
    return info


def analyze(target: str | Path, extra_logs: Iterable[str | Path] = ()) -> LogReport:
    """Analyse a run directory, a metrics.csv, a TensorBoard event file/dir, or a stdout/SLURM log."""
    t = Path(target)
    if not t.exists():
        raise DataError(f"no such run directory or log: {t}")
    report = LogReport(t)
    series: Series = {}
    tb: Series = {}
    texts: list[Path] = [Path(p) for p in extra_logs]
    bars: list[EpochBar] = []
    global_batch = None
    if t.is_dir():
        csvs = [t / "metrics.csv"] if (t / "metrics.csv").is_file() else sorted(t.rglob("metrics.csv"))
        if csvs:
            series = read_metrics_csv(csvs[-1])
            report.sources["metrics"] = str(csvs[-1])
        events = find_event_files(t)
        if events:
            tb = read_tensorboard(t / "tb" if (t / "tb").is_dir() else t)
            report.sources["tensorboard"] = str(events[0].parent)
        texts = _text_logs(t) + texts
        report.run = _run_info(t)
        global_batch = _global_batch(t)
    elif t.suffix == ".csv":
        series = read_metrics_csv(t)
        report.sources["metrics"] = str(t)
    elif t.name.startswith("events.out.tfevents"):
        tb = read_tensorboard(t)
        report.sources["tensorboard"] = str(t)
    else:
        texts = [t, *texts]
    scans: list[TextScan] = []
    for p in texts:
        text = _read_text(p)
        scans.append(scan_text(text, str(p)))
        s, b = parse_progress_bars(text)
        if not series and not tb and s:
            series = s
            report.sources["progress_bars"] = str(p)
        bars = bars or b
    if report.run.get("reason"):
        scans.append(scan_text(str(report.run["reason"]), str(t / "status.json")))
    if texts:
        report.sources["logs"] = [str(p) for p in texts]
    values = series or tb
    if not values and not texts:
        raise DataError(f"{t}: no metrics.csv, TensorBoard events or text logs found")
    report.rows = component_rows(values)
    report.gaps = train_val_gaps(report.rows)
    report.nonfinite = nonfinite_occurrences(values)
    report.speed = (
        speed_from_tensorboard(tb) or speed_from_samples(series, global_batch) or speed_from_bars(bars)
    )
    report.findings = merge_findings(scans)
    report.exceptions = [
        {"source": s.source, "line_no": s.last_exception_line, "exception": s.last_exception}
        for s in scans
        if s.last_exception
    ]
    all_pts = [p for pts in values.values() for p in pts]
    if all_pts:
        eps = [p.epoch for p in all_pts if p.epoch is not None]
        report.epochs = max(eps) + 1 if eps else None
        report.last_step = max(p.step for p in all_pts)
    return report
