#!/usr/bin/env python
"""Regenerate ``results/ssl_probes.md`` (+ ``.json``): linear probes of I-JEPA encoders against random-init
encoders of the same architecture, over pre-training length and pooling — the investigation of whether the
SSL features hold more driving-relevant information than random ones.

    python scripts/probe_study.py --data data/small --encoder 2ep=runs/le/pretrain/encoder \\
        --encoder e10=runs/ijepa/snap/step780 --random-seeds 0,1,2 --out results

Every encoder and every random-init ViT (``planlab.ssl.encoder.JepaViT`` drawn with each seed, the same
weights as the label-efficiency study's ``random`` arms) is run once over the frames; its patch tokens are
pooled both ways (``mean`` over all patches, ``grid`` = 2 × 4 regions concatenated). The protocol is
``planlab ssl probe``'s: probes fitted on up to ``--max-train-frames`` frames of the train split, scored on
every frame of the held-out split, SSL − random init (mean over the seeds) with a 95 % CI from a bootstrap
over the held-out logs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from planlab.ssl.probe import (
    POOLINGS,
    SCORE_KEYS,
    ProbeSet,
    encoder_camera,
    paired_bootstrap,
    pool_tokens,
    probe_predictions,
    run_probes,
)

TASK_NAMES = {
    "speed_r2": "speed R²",
    "command_bacc": "command bal. acc.",
    "lead_bacc": "lead vehicle bal. acc.",
}


@torch.no_grad()
def pooled_both(encoder: torch.nn.Module, ps: ProbeSet, batch: int = 64) -> dict[str, np.ndarray]:
    """One pass of ``encoder`` over the probe frames → {pooling: [N, F]} for every pooling."""
    encoder.eval()
    out: dict[str, list[np.ndarray]] = {p: [] for p in POOLINGS}
    for frames, idx in ps.parts:
        for start in range(0, len(idx), batch):
            x = torch.from_numpy(np.asarray(frames.images[idx[start : start + batch]], dtype=np.float32))
            tokens = encoder(x)
            grid = (x.shape[-2] // encoder.patch_size, x.shape[-1] // encoder.patch_size)
            for p in POOLINGS:
                out[p].append(pool_tokens(tokens, grid, p).double().numpy())
    return {p: np.concatenate(v) for p, v in out.items()}


def probe(feats: np.ndarray, ps: ProbeSet) -> tuple[dict, dict]:
    preds = probe_predictions(feats, ps.labels, ps.is_test, logs=ps.logs)
    return run_probes(feats, ps.labels, ps.is_test, logs=ps.logs, predictions=preds), preds


def encoder_info(path: Path) -> dict:
    info = json.loads((path / "planlab.json").read_text()) if (path / "planlab.json").is_file() else {}
    return {k: info.get(k) for k in ("run_dir", "step", "epoch", "source", "snapshot")}


def render(result: dict) -> str:
    m = result["meta"]
    lines = [
        "# Linear probes: I-JEPA encoders vs random init",
        "",
        f"Written by `python scripts/probe_study.py {m['argv']}`; do not edit by hand. Dataset `{m['data']}`; "
        f"{m['protocol']} ({m['n_train']} probe-train frames, {m['n_test']} test frames of {m['n_logs']} held-out "
        f"logs; a lead vehicle in {m['lead_rate']:.0%} of the test frames). Random init: `JepaViT` drawn with "
        f"seeds {m['random_seeds']} (the label-efficiency study's random arms), scores averaged. Δ = SSL − random "
        "init, 95 % CI from a bootstrap over the held-out logs (the same resampled frames score both sides).",
        "",
    ]
    for pooling in POOLINGS:
        lines += [
            f"## Pooling: {pooling}",
            "",
            "| encoder | step | " + " | ".join(TASK_NAMES[k] for k in SCORE_KEYS.values()) + " | RankMe |",
            "|---|---|" + "---|" * (len(SCORE_KEYS) + 1),
        ]
        r = result["random"][pooling]
        lines.append(
            "| random init (mean) | 0 | "
            + " | ".join(f"{r[k]:.3f}" for k in SCORE_KEYS.values())
            + f" | {r['rankme']:.1f} |"
        )
        px = result.get("pixels")
        if px:
            lines.append(
                f"| raw pixels, {px['grid'][0]}×{px['grid'][1]} cells (no encoder) | — | "
                + " | ".join(f"{px['scores'][k]:.3f}" for k in SCORE_KEYS.values())
                + f" | {px['scores']['rankme']:.1f} |"
            )
        for e in result["encoders"]:
            s, ci = e["pooling"][pooling]["scores"], e["pooling"][pooling]["delta"]
            cells = []
            for k in SCORE_KEYS.values():
                d = ci[k]
                mark = " **+**" if d and d["ci"][0] > 0 else (" **−**" if d and d["ci"][1] < 0 else "")
                cells.append(
                    f"{s[k]:.3f} (Δ {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]){mark}"
                    if d
                    else f"{s[k]}"
                )
            lines.append(
                f"| {e['name']} | {e['info'].get('step', '—')} | "
                + " | ".join(cells)
                + f" | {s['rankme']:.1f} |"
            )
        lines.append("")
    lines += [
        "**+** / **−**: the CI of Δ excludes 0 (SSL better / worse than random init). Raw pixels: the normalised "
        "image averaged over the encoder's patch-grid cells (3 values per patch, no encoder), probed the same way: "
        "what the tasks can get from layout alone.",
        "",
        f"Generated {m['generated']} in {m['seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--encoder", action="append", required=True, help="NAME=DIR of a planlab-vit encoder")
    p.add_argument("--split", default="val", help="held-out split scoring the probes")
    p.add_argument("--train-split", default="train", help="split the probes are fitted on")
    p.add_argument("--max-train-frames", type=int, default=3000)
    p.add_argument("--random-seeds", default="0,1,2")
    p.add_argument("--cache-dir", type=Path, required=True, help="frame cache")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--name", default="ssl_probes", help="output stem: <out>/<name>.md and .json")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    encoders = []
    for item in args.encoder:
        name, sep, path = item.partition("=")
        if not sep or not Path(path, "config.json").is_file():
            sys.exit(f"--encoder {item!r}: expected NAME=DIR of a planlab-vit encoder directory")
        encoders.append((name, Path(path)))
    seeds = [int(s) for s in args.random_seeds.split(",") if s.strip()]

    from planlab.models.vit import load_vit
    from planlab.ssl.encoder import JepaViT
    from planlab.ssl.frames import build_frames

    first = load_vit(encoders[0][1])
    c = first.config
    camera = encoder_camera(str(encoders[0][1]), (c.grid_height * c.patch_size, c.grid_width * c.patch_size))
    test = build_frames(str(args.data), args.split, camera, args.cache_dir, progress=False)
    train = build_frames(str(args.data), args.train_split, camera, args.cache_dir, progress=False)
    ps = ProbeSet(test, train, args.max_train_frames)

    random_scores: dict[str, list[dict]] = {pl: [] for pl in POOLINGS}
    random_preds: dict[str, list[dict]] = {pl: [] for pl in POOLINGS}
    for seed in seeds:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        vit = JepaViT(c)
        torch.random.set_rng_state(state)
        for pl, feats in pooled_both(vit, ps).items():
            s, pr = probe(feats, ps)
            random_scores[pl].append(s)
            random_preds[pl].append(pr)
        print(f"random init seed {seed}: done", flush=True)
    grid = (c.grid_height, c.grid_width)
    px_scores, _ = probe(ps.pixels(grid), ps)
    print("raw pixels: done", flush=True)
    result: dict = {"random": {}, "random_per_seed": random_scores, "encoders": [],
                    "pixels": {"grid": list(grid), "scores": px_scores}}  # fmt: skip
    for pl in POOLINGS:
        result["random"][pl] = {
            k: float(np.mean([s[k] for s in random_scores[pl]])) for k in (*SCORE_KEYS.values(), "rankme")
        }
    for name, path in encoders:
        vit = load_vit(path)
        if vit.config != c:
            sys.exit(f"--encoder {name}: architecture differs from {encoders[0][0]}'s")
        entry = {"name": name, "dir": str(path), "info": encoder_info(path), "pooling": {}}
        for pl, feats in pooled_both(vit, ps).items():
            s, pr = probe(feats, ps)
            delta = paired_bootstrap(pr, random_preds[pl], ps.test_labels, ps.test_logs, args.boot)
            entry["pooling"][pl] = {"scores": s, "delta": delta}
        result["encoders"].append(entry)
        print(f"{name}: " + ", ".join(f"{k} {entry['pooling']['mean']['delta'][k]['diff']:+.3f}"
                                      for k in SCORE_KEYS.values() if entry['pooling']['mean']['delta'][k]), flush=True)  # fmt: skip
    result["meta"] = {
        "argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "data": str(args.data),
        "protocol": ps.protocol,
        "n_train": int((~ps.is_test).sum()),
        "n_test": int(ps.is_test.sum()),
        "n_logs": len(set(ps.test_logs)),
        "lead_rate": float(np.mean(ps.test_labels["lead"])),
        "random_seeds": seeds,
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": time.perf_counter() - t0,
    }
    from planlab.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(result, indent=1, default=float) + "\n")
    atomic_write_text(args.out / f"{args.name}.md", render(result))
    print(f"→ {args.out / f'{args.name}.md'}")


if __name__ == "__main__":
    main()
