#!/usr/bin/env python
"""Regenerate ``results/baselines.md`` (+ ``.json``): PDMS of constant velocity, the ego-status MLP and the
vocabulary scorer on the synthetic world, every number from the commands below.

    python scripts/baselines.py                      # small preset in data/small, one seed
    python scripts/baselines.py --seeds 0,1,2 --epochs 30 --workers 2
    python scripts/baselines.py --preset tiny --data /tmp/tiny --out /tmp/res   # a quick dry run

Each step is an ordinary ``planlab`` command (printed before it runs), so any row can be reproduced by hand.
Finished training runs and metric caches are reused; an interrupted training run is resumed.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from planlab.evaluation.results import SHORT_NAMES, V11_METRICS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "src" / "planlab" / "configs" / "train"
SUBS = V11_METRICS  # NAVSIM v1.1 sub-scores, in the order of its CSV
SHORT = SHORT_NAMES


def planlab(*args: str, log: list[str], skip: bool = False) -> None:
    """Run (or, when its output already exists, only record) one planlab command."""
    cmd = [sys.executable, "-m", "planlab.cli.main", *args]
    shown = "planlab " + " ".join(shlex.quote(a) for a in args)
    log.append(shown + ("   # output existed, reused" if skip else ""))
    if skip:
        return
    print(f"$ {shown}", flush=True)
    subprocess.run(cmd, check=True)


def finished(run_dir: Path) -> bool:
    state = run_dir / "training.json"
    return state.is_file() and json.loads(state.read_text()).get("state") == "completed"


def train(run_dir: Path, args: list[str], log: list[str]) -> None:
    resume = ["--resume"] if (run_dir / "training.json").is_file() and not finished(run_dir) else []
    planlab(
        "train", *args, "--run-dir", str(run_dir), "--no-progress", *resume, log=log, skip=finished(run_dir)
    )


def evaluate(
    out: Path, agent_args: list[str], data: Path, split: str, cache: Path, workers: int, log: list[str]
) -> dict:
    planlab(
        "eval",
        "run",
        *agent_args,
        "--data",
        str(data),
        "--split",
        split,
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
        log=log,
        skip=(out / "summary.json").is_file(),
    )
    return json.loads((out / "summary.json").read_text())


def metric_cache(data: Path, split: str, out: Path, workers: int, log: list[str]) -> Path:
    planlab(
        "eval",
        "cache",
        "--data",
        str(data),
        "--split",
        split,
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--no-progress",
        log=log,
        skip=(out / "index.json").is_file(),
    )
    return out


def row(name: str, summaries: list[dict], dirs: list[Path]) -> dict:
    scores = [s["score"] for s in summaries]
    return {
        "agent": name,
        "eval_dirs": [str(d) for d in dirs],
        "seeds": len(summaries),
        "pdms_mean": statistics.fmean(scores),
        "pdms_std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
        "pdms_runs": scores,
        "subscores": {k: statistics.fmean(s["means"][k] for s in summaries) for k in SUBS},
        "scenes": summaries[0]["num_valid"],
    }


def scene_scores(r: dict) -> dict[str, float]:
    """Per test scene, the PDMS averaged over the row's seeds (scenes every seed scored validly)."""
    from planlab.evaluation.results import SCORES_FILE, read_csv

    per_seed = []
    for d in r["eval_dirs"]:
        _, rows = read_csv(Path(d) / SCORES_FILE)
        per_seed.append({x.token: x.values["score"] for x in rows if x.valid})
    common = set.intersection(*(set(x) for x in per_seed))
    return {t: statistics.fmean(x[t] for x in per_seed) for t in sorted(common)}


def paired(rows: list[dict], pairs: list[tuple[str, str]]) -> list[dict]:
    """A − B per pair of rows (by agent-name prefix): paired bootstrap over the test scenes of the
    seed-averaged per-scene PDMS (planlab.experiments.stats.paired_bootstrap)."""
    from planlab.experiments.stats import paired_bootstrap

    by = {r["agent"].split(" ")[0]: r for r in rows}
    out = []
    for a, b in pairs:
        t = paired_bootstrap(scene_scores(by[a]), scene_scores(by[b]))
        out.append({"a": a, "b": b, "n": t.n, "diff": t.diff, "ci": [t.ci_low, t.ci_high], "p": t.p_value})
    return out


def render(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Baselines on the synthetic world",
        "",
        f"Written by `python scripts/baselines.py {meta['argv']}`; do not edit by hand. Dataset: `{meta['data']}` "
        f"(preset `{meta['preset']}`, world seed {meta['world_seed']}), evaluated on split `{meta['split']}` with the "
        f"PDM score (NAVSIM v1.1 rules). Training: {meta['epochs']} epochs, lr {meta['lr']:g}, batch "
        f"{meta['batch_size']}; seeds: {meta['seeds']}"
        + (
            f" (vocabulary scorer: {meta['vocab_seeds']})"
            if meta.get("vocab_seeds", meta["seeds"]) != meta["seeds"]
            else ""
        )
        + ".",
        "",
        "| agent | PDMS | ± std (seeds) | " + " | ".join(SHORT[k] for k in SUBS) + " | scenes |",
        "|---|---|---|" + "---|" * len(SUBS) + "---|",
    ]
    for r in rows:
        std = f"{r['pdms_std']:.4f} ({r['seeds']})" if r["seeds"] > 1 else f"– ({r['seeds']})"
        subs = " | ".join(f"{r['subscores'][k]:.3f}" for k in SUBS)
        lines.append(f"| {r['agent']} | {r['pdms_mean']:.4f} | {std} | {subs} | {r['scenes']} |")
    if meta.get("paired"):
        lines += [
            "",
            "Paired differences on the same test scenes (per-scene PDMS averaged over each agent's seeds; 95 % "
            "CI and two-sided p from a paired bootstrap over scenes, 10,000 resamples):",
            "",
            "| A | B | A − B | 95 % CI | p | scenes |",
            "|---|---|---|---|---|---|",
        ]
        for c in meta["paired"]:
            lines.append(f"| {c['a']} | {c['b']} | {c['diff']:+.4f} | [{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}] | "
                         f"{c['p']:.4f} | {c['n']} |")  # fmt: skip
    if meta.get("note"):
        lines += ["", meta["note"]]
    lines += [
        "",
        "Commands run:",
        "",
        "```",
        *meta["commands"],
        "```",
        "",
        f"Generated {meta['generated']} in {meta['seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data", type=Path, default=ROOT / "data" / "small", help="dataset root (generated if absent)"
    )
    p.add_argument("--preset", default="small", help="world preset used when generating --data")
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument(
        "--no-sensors",
        action="store_true",
        help="generate --data without cameras/LiDAR (none of these agents reads them)",
    )
    p.add_argument(
        "--work", type=Path, default=ROOT / "runs" / "baselines", help="run dirs, caches, eval outputs"
    )
    p.add_argument("--out", type=Path, default=ROOT / "results", help="where baselines.md/.json go")
    p.add_argument("--seeds", default="0", help="training seeds, comma separated")
    p.add_argument("--vocab-seeds", default=None, help="seeds of the vocabulary scorer (default: --seeds)")
    p.add_argument("--epochs", type=int, default=50)
    # NAVSIM trains the ego MLP with Adam 1e-4 for ~80k steps on navtrain; the small world has ~60 steps per
    # epoch at batch 64, so both learned agents use a larger rate here (recorded in the table's header).
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="processes for data generation and caches")
    # Agent evaluation runs in-process by default: `planlab eval run --checkpoint ... --workers N` forks after
    # torch has started its thread pool in the parent, which can deadlock the forked workers.
    p.add_argument("--eval-workers", type=int, default=1, help="processes for `planlab eval run`")
    p.add_argument("--split", default="test", help="evaluation split")
    p.add_argument("--vocab-size", type=int, default=128)
    p.add_argument(
        "--note-file",
        type=Path,
        default=None,
        help="markdown paragraph(s) printed under the table: scale, why",
    )
    args = p.parse_args(argv)
    note = args.note_file.read_text().strip() if args.note_file else ""  # read first: fail before any work
    t0 = time.perf_counter()
    log: list[str] = []
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    vocab_seeds = [int(s) for s in (args.vocab_seeds or args.seeds).split(",") if s.strip()]
    data, work = args.data.absolute(), args.work.absolute()
    planlab(
        "data",
        "generate",
        "--out",
        str(data),
        "--preset",
        args.preset,
        "--seed",
        str(args.world_seed),
        "--workers",
        str(args.workers),
        *(["--no-sensors"] if args.no_sensors else []),
        log=log,
        skip=(data / "navsim_logs").is_dir(),
    )
    test_cache = metric_cache(data, args.split, work / "metric" / args.split, args.workers, log)
    common = [
        f"data.root={data}",
        f"trainer.max_epochs={args.epochs}",
        f"data.num_workers={min(args.workers, 2)}",
        f"optim.lr={args.lr}",
        f"trainer.batch_size={args.batch_size}",
        f"data.cache.path={work / 'features'}",
    ]
    # The logged human future (privileged): the ceiling of an imitation planner in this world.
    rows = [
        row(
            "log_replay (logged future, reference)",
            [
                evaluate(
                    work / "eval" / "log_replay",
                    ["--agent", "log_replay"],
                    data,
                    args.split,
                    test_cache,
                    args.eval_workers,
                    log,
                )
            ],
            [work / "eval" / "log_replay"],
        ),
        row(
            "constant_velocity",
            [
                evaluate(
                    work / "eval" / "constant_velocity",
                    ["--agent", "constant_velocity"],
                    data,
                    args.split,
                    test_cache,
                    args.eval_workers,
                    log,
                )
            ],
            [work / "eval" / "constant_velocity"],
        ),
    ]

    summaries = []
    for seed in seeds:
        run = work / "runs" / f"ego_status_mlp-seed{seed}"
        train(run, ["--config", str(CONFIGS / "ego_status_mlp.yaml"), *common, f"trainer.seed={seed}"], log)
        summaries.append(
            evaluate(
                work / "eval" / f"ego_status_mlp-seed{seed}",
                ["--checkpoint", str(run)],
                data,
                args.split,
                test_cache,
                args.eval_workers,
                log,
            )
        )
    rows.append(row("ego_status_mlp", summaries, [work / "eval" / f"ego_status_mlp-seed{s}" for s in seeds]))

    train_cache = metric_cache(data, "train", work / "metric" / "train", args.workers, log)
    vocab = work / f"vocab{args.vocab_size}.npy"
    # A CPU-sized scorer (Hydra-MDP uses d_model 256 and 8192 entries on GPUs): ego-status context only.
    vocab_args = [
        "--config",
        str(CONFIGS / "vocab_scorer.yaml"),
        *common,
        "agent.use_camera=false",
        f"agent.vocabulary_size={args.vocab_size}",
        f"agent.metric_cache={train_cache}",
        "agent.d_model=64",
        "agent.ffn_dim=256",
        "agent.num_heads=4",
        "agent.num_layers=1",
        f"data.cache.build_workers={args.workers}",
    ]
    planlab("cache", "vocabulary", *vocab_args, "--out", str(vocab), log=log, skip=vocab.is_file())
    summaries = []
    for seed in vocab_seeds:
        run = work / "runs" / f"vocab_scorer-seed{seed}"
        train(run, [*vocab_args, f"agent.vocabulary_path={vocab}", f"trainer.seed={seed}"], log)
        summaries.append(
            evaluate(
                work / "eval" / f"vocab_scorer-seed{seed}",
                ["--checkpoint", str(run)],
                data,
                args.split,
                test_cache,
                args.eval_workers,
                log,
            )
        )
    rows.append(
        row(
            "vocab_scorer (ego status only)",
            summaries,
            [work / "eval" / f"vocab_scorer-seed{s}" for s in vocab_seeds],
        )
    )

    meta = {
        "argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "data": str(args.data),
        "preset": args.preset,
        "world_seed": args.world_seed,
        "split": args.split,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "seeds": seeds,
        "vocab_seeds": vocab_seeds,
        "note": note,
        "paired": paired(
            rows,
            [
                ("ego_status_mlp", "constant_velocity"),
                ("vocab_scorer", "ego_status_mlp"),
                ("vocab_scorer", "constant_velocity"),
            ],
        ),
        "commands": log,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": time.perf_counter() - t0,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "src"))
    from planlab.atomic import atomic_write_text

    atomic_write_text(args.out / "baselines.json", json.dumps({"rows": rows, **meta}, indent=1) + "\n")
    atomic_write_text(args.out / "baselines.md", render(rows, meta))
    for r in rows:
        print(
            f"{r['agent']:>32}: PDMS {r['pdms_mean']:.4f}"
            + (f" ± {r['pdms_std']:.4f}" if r["seeds"] > 1 else "")
        )
    assert all(math.isfinite(r["pdms_mean"]) for r in rows)


if __name__ == "__main__":
    main()
