"""``make bench``: run every benchmark module and write ``benchmarks/results.json`` and ``BENCHMARKS.md``.

Each module in ``MODULES`` exposes ``run(workdir: Path) -> list[Result]``. Figures are never typed by
hand: this file is the only writer of both outputs. ``python -m benchmarks.run --only eval`` runs a subset
and merges its figures into the existing results.
"""

from __future__ import annotations

import argparse
import importlib
import json
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, machine
from planlab.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
REPORT = ROOT / "BENCHMARKS.md"

# Explicit list: (short name, module). Each room adds its own line.
MODULES: list[tuple[str, str]] = [
    ("loader", "benchmarks.bench_loader"),
    ("maps", "benchmarks.bench_maps"),
    ("sensors", "benchmarks.bench_sensors"),
    ("training", "benchmarks.bench_training"),
    ("experiments", "benchmarks.bench_experiments"),
    ("eval", "benchmarks.bench_eval"),
    ("diagnostics", "benchmarks.bench_diagnostics"),
    ("temporal", "benchmarks.bench_temporal"),
    ("world", "benchmarks.bench_world"),
    ("ssl", "benchmarks.bench_ssl"),
]


def _fmt(v: float | None) -> str:
    if v is None:
        return "–"
    if v == 0 or 0.01 <= abs(v) < 1e5:
        return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:.3g}"


def render_markdown(data: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks.run`); do not edit by hand.",
        "",
        f"Machine: {data['machine'].get('cpus')} CPUs, Python {data['machine'].get('python')}, "
        f"torch {data['machine'].get('torch', '–')}, numpy {data['machine'].get('numpy')}; "
        f"GPU: {data['machine'].get('gpu', 'none')}.",
        "",
    ]
    sections: dict[str, list[dict]] = {}
    for r in data["results"]:
        sections.setdefault(r["section"], []).append(r)
    for section, rows in sections.items():
        lines += [
            f"## {section}",
            "",
            "| figure | value | unit | baseline | target | meets | notes |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            meets = {True: "yes", False: "**no**", None: "–"}[r["meets_target"]]
            tgt = _fmt(r["target"])
            if r["target"] is not None:
                tgt = ("≥ " if r["higher_is_better"] else "≤ ") + tgt
            lines.append(
                f"| {r['name']} | {_fmt(r['value'])} | {r['unit']} | {_fmt(r['baseline'])} | {tgt} | {meets} | {r['notes']} |"
            )
        lines.append("")
    lines.append(f"Generated {data['generated']} in {data['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="short names of the modules to run (merge into results)")
    args = parser.parse_args(argv)
    selected = [(n, m) for n, m in MODULES if not args.only or n in args.only]
    previous: list[dict] = []
    if args.only and RESULTS.exists():
        old = json.loads(RESULTS.read_text())
        rerun = {n for n, _ in selected}  # their old figures are replaced, every other module's are kept
        previous = [r for r in old.get("results", []) if r.get("module") not in rerun]
    t0 = time.perf_counter()
    results: list[dict] = list(previous)
    with tempfile.TemporaryDirectory(prefix="planlab-bench-") as tmp:
        for short, module_name in selected:
            print(f"[bench] {short} ...", flush=True)
            module = importlib.import_module(module_name)
            out: list[Result] = module.run(Path(tmp) / short)
            for r in out:
                d = r.to_dict()
                d["module"] = short
                results.append(d)
                print(f"  {r.section} | {r.name}: {_fmt(r.value)} {r.unit}", flush=True)
    data = {
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": time.perf_counter() - t0,
        "machine": machine(),
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps(data, indent=2) + "\n")
    atomic_write_text(REPORT, render_markdown(data))
    print(f"wrote {RESULTS.relative_to(ROOT)} and {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
