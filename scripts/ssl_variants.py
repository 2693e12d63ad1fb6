#!/usr/bin/env python
"""Regenerate ``results/ssl_variants.md`` (+ ``.json``): every I-JEPA pre-training variant tried, side by side,
each scored by its own end-of-run linear probe against the random-init encoder of the same architecture.

    python scripts/ssl_variants.py --base src/planlab/configs/ssl/ijepa_small.yaml \\
        --run runs/ijepa_long --run runs/ijepa_bigdata --out results

Nothing is re-computed: each row reads the run directory that ``planlab ssl pretrain`` wrote —
``training.json`` (the resolved config, steps, wall time), ``meta.json`` (frame count and sources) and
``probe.json`` (the final probe: SSL − random init with its 95 % log-bootstrap CI). The "changes" column is
the difference between the run's config and ``--base``, so a row says what was varied without a hand-written
label. Keys that do not change what is learned (paths, progress bars, probe cadence) are left out.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from planlab.config import to_dict
from planlab.ssl.config import build_pretrain_config
from planlab.ssl.probe import SCORE_KEYS

TASKS = {"speed_r2": "speed R²", "command_bacc": "command bal. acc.", "lead_bacc": "lead vehicle bal. acc."}
# keys that do not change what is learned
IGNORED = ("data.root", "data.cache_dir", "data.decode_threads", "data.maps_root", "trainer.progress_bar",
           "trainer.log_every_n_steps", "trainer.checkpoint_every_n_steps", "trainer.threads", "probe.")  # fmt: skip


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def changes(config: dict[str, Any], base: dict[str, Any]) -> list[str]:
    """``key=value`` for every learned-relevant key whose value differs from the base config."""
    got = flatten(config)
    out = []
    for key, value in sorted(got.items()):
        if any(key == i or (i.endswith(".") and key.startswith(i)) for i in IGNORED):
            continue
        differs = base[key] != value if key in base else value not in (None, [], {})
        if differs:
            out.append(f"{key}={json.dumps(value)}")
    return out


def read_run(run: Path, base: dict[str, Any]) -> dict[str, Any]:
    try:
        training = json.loads((run / "training.json").read_text())
        meta = json.loads((run / "meta.json").read_text())["pretraining"]
        final = json.loads((run / "probe.json").read_text())["final"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"error: {run}: not a finished pre-training run ({exc})") from None
    if training.get("state") != "completed" or not final:
        raise SystemExit(f"error: {run}: pre-training not completed or no final probe")
    if "protocol" not in final:  # probes of older runs were scored differently: not comparable
        raise SystemExit(
            f"error: {run}/probe.json: a probe of an older format (no protocol); use probe_study.py"
        )
    cfg = training["config"]
    return {
        "run": str(run),
        "changes": changes(cfg, base),
        "frames": meta["frames"]["count"],
        "sources": [s["root"] for s in meta["frames"].get("sources", [])],
        "steps": training["global_step"],
        "epochs": training["epoch"],
        "seconds": training.get("seconds"),
        "probe_step": final["step"],
        "ssl": {k: final["ssl"][k] for k in (*SCORE_KEYS.values(), "rankme")},
        "random_init": {k: final["random_init"][k] for k in (*SCORE_KEYS.values(), "rankme")},
        # runs from before the probe recorded a CI keep their plain difference (ci None)
        "delta": {
            k: final.get("ssl_minus_random_ci", {}).get(k)
            or {"diff": final["ssl_minus_random"][k], "ci": None}
            for k in SCORE_KEYS.values()
        },
        "protocol": final["protocol"],
        "n_train": final["ssl"]["n_train"],
        "n_test": final["ssl"]["n_test"],
    }


def cell(row: dict[str, Any], key: str) -> str:
    d = row["delta"][key]
    if d["ci"] is None:
        return f"{row['ssl'][key]:.3f} (Δ {d['diff']:+.3f}, no CI recorded)"
    lo, hi = d["ci"]
    mark = " **+**" if lo > 0 else " **−**" if hi < 0 else ""
    return f"{row['ssl'][key]:.3f} (Δ {d['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]){mark}"


def render(result: dict[str, Any]) -> str:
    rows = result["runs"]
    lines = [
        "# I-JEPA pre-training variants: each run's own linear probe vs random init",
        "",
        f"Written by `{result['meta']['command']}`; do not edit by hand. Each row is one `planlab ssl pretrain` "
        "run directory, scored by its end-of-run probe (fitted on "
        f"{rows[0]['n_train']} train frames of the `small` world, scored on {rows[0]['n_test']} held-out val "
        "frames). Δ = SSL − the random-init encoder of the same architecture, 95 % CI from a bootstrap over the "
        "held-out logs. Changes are relative to `" + result["meta"]["base"] + "`.",
        "",
        "| run | changes | frames | steps | min | " + " | ".join(TASKS[k] for k in SCORE_KEYS.values())
        + " | RankMe (random) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        ch = "<br>".join(f"`{c}`" for c in r["changes"]) or "—"
        mins = f"{r['seconds'] / 60:.1f}" if r["seconds"] else "—"
        lines.append(
            f"| `{Path(r['run']).name}` | {ch} | {r['frames']} | {r['steps']} | {mins} | "
            + " | ".join(cell(r, k) for k in SCORE_KEYS.values())
            + f" | {r['ssl']['rankme']:.1f} ({r['random_init']['rankme']:.1f}) |"
        )
    lines += [
        "",
        "**+** / **−**: the CI of Δ excludes 0 (SSL better / worse than random init).",
        "",
        f"Generated {result['meta']['generated']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the packaged pre-training config the variants start from")
    ap.add_argument("--run", action="append", required=True, help="a finished pre-training run directory")
    ap.add_argument("--out", default="results", help="directory for ssl_variants.md/.json")
    ap.add_argument("--name", default="ssl_variants")
    args = ap.parse_args(argv)
    base = flatten(to_dict(build_pretrain_config([args.base])))  # the resolved config, defaults included
    rows = [read_run(Path(r), base) for r in args.run]
    command = "python scripts/ssl_variants.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    result = {
        "meta": {"command": command, "base": args.base, "generated": time.strftime("%Y-%m-%d %H:%M:%S")},
        "runs": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".json", json.dumps(result, indent=1) + "\n"), (".md", render(result))):
        tmp = out / f".{args.name}{suffix}.tmp"
        tmp.write_text(text)
        tmp.replace(out / f"{args.name}{suffix}")
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
