#!/usr/bin/env python
"""Regenerate ``results/ssl_probe_layers.md`` (+ ``.json``): linear probes on the mean-pooled tokens after
*every* transformer block of I-JEPA encoders and of random-init encoders of the same architecture, next to
the raw image averaged over the patch grid — whether the SSL information sits in an earlier block than the
last one that ``planlab ssl probe`` reads.

    python scripts/probe_layers.py --data data/small --cache-dir runs/frames \\
        --encoder 30ep=runs/ijepa_long/encoder --random-seeds 0,1 --out results

The protocol is ``planlab ssl probe``'s (fitted on up to ``--max-train-frames`` train frames, scored on every
frame of the held-out split). Intermediate blocks are layer-normed per token (no affine) before pooling, so
every block is read at the same scale; the last block is the encoder's own output (its final LayerNorm).
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
import torch.nn.functional as F

from planlab.ssl.probe import SCORE_KEYS, ProbeSet, encoder_camera, run_probes

TASKS = {"speed_r2": "speed R²", "command_bacc": "command bal. acc.", "lead_bacc": "lead vehicle bal. acc."}


@torch.no_grad()
def block_features(encoder: torch.nn.Module, ps: ProbeSet, batch: int = 128) -> list[np.ndarray]:
    """``[N, D]`` mean-pooled tokens after each block (layer-normed; the last one through ``encoder.norm``)."""
    encoder.eval()
    per_block: list[list[np.ndarray]] = [[] for _ in encoder.blocks]
    for frames, idx in ps.parts:
        for start in range(0, len(idx), batch):
            h = encoder.embed(
                torch.from_numpy(np.asarray(frames.images[idx[start : start + batch]], np.float32))
            )
            for i, block in enumerate(encoder.blocks):
                h = block(h)
                last = i == len(encoder.blocks) - 1
                tokens = encoder.norm(h) if last else F.layer_norm(h, (h.shape[-1],))
                per_block[i].append(tokens.mean(dim=1).double().numpy())
    return [np.concatenate(b) for b in per_block]


def scores(feats: np.ndarray, ps: ProbeSet) -> dict[str, float]:
    r = run_probes(feats, ps.labels, ps.is_test, logs=ps.logs)
    return {k: r[k] for k in SCORE_KEYS.values()}


def render(result: dict) -> str:
    m = result["meta"]
    head = "| features | block | " + " | ".join(TASKS[k] for k in SCORE_KEYS.values()) + " |"
    lines = [
        "# Linear probes per transformer block: I-JEPA vs random init vs raw pixels",
        "",
        f"Written by `python scripts/probe_layers.py {m['argv']}`; do not edit by hand. Dataset `{m['data']}`; "
        f"{m['protocol']} ({m['n_train']} probe-train frames, {m['n_test']} test frames). Mean-pooled tokens after "
        "each block (layer-normed; the last block through the encoder's final LayerNorm). Random init: `JepaViT` "
        f"drawn with seeds {m['random_seeds']}, each listed.",
        "",
        head,
        "|---|---|" + "---|" * len(SCORE_KEYS),
    ]
    for row in result["rows"]:
        cells = " | ".join(f"{row['scores'][k]:.3f}" for k in SCORE_KEYS.values())
        lines.append(f"| {row['features']} | {row['block']} | {cells} |")
    lines += ["", f"Generated {m['generated']} in {m['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--encoder", action="append", required=True, help="NAME=DIR of a planlab-vit encoder")
    p.add_argument("--split", default="val")
    p.add_argument("--train-split", default="train")
    p.add_argument("--max-train-frames", type=int, default=3000)
    p.add_argument("--random-seeds", default="0,1")
    p.add_argument("--cache-dir", type=Path, required=True, help="frame cache")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    p.add_argument("--name", default="ssl_probe_layers", help="output stem")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    from planlab.models.vit import load_vit
    from planlab.ssl.encoder import JepaViT
    from planlab.ssl.frames import build_frames

    encoders = []
    for item in args.encoder:
        name, sep, path = item.partition("=")
        if not sep or not Path(path, "config.json").is_file():
            sys.exit(f"--encoder {item!r}: expected NAME=DIR of a planlab-vit encoder directory")
        encoders.append((name, load_vit(path), path))
    c = encoders[0][1].config
    if any(vit.config != c for _, vit, _ in encoders):
        sys.exit("--encoder: all encoders must share one architecture (the random inits are drawn for it)")
    camera = encoder_camera(encoders[0][2], (c.grid_height * c.patch_size, c.grid_width * c.patch_size))
    test = build_frames(str(args.data), args.split, camera, args.cache_dir, progress=False)
    train = build_frames(str(args.data), args.train_split, camera, args.cache_dir, progress=False)
    ps = ProbeSet(test, train, args.max_train_frames)
    grid = (c.grid_height, c.grid_width)
    rows = [{"features": f"raw pixels, {grid[0]}×{grid[1]} cells", "block": "—",
             "scores": scores(ps.pixels(grid), ps)}]  # fmt: skip
    models = [(name, vit) for name, vit, _ in encoders]
    seeds = [int(s) for s in args.random_seeds.split(",") if s.strip()]
    for seed in seeds:
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        models.append((f"random init (seed {seed})", JepaViT(c)))
        torch.random.set_rng_state(state)
    for name, vit in models:
        for i, feats in enumerate(block_features(vit, ps)):
            rows.append({"features": name, "block": i + 1, "scores": scores(feats, ps)})
            print(name, i + 1, {k: round(v, 3) for k, v in rows[-1]["scores"].items()}, flush=True)
    result = {
        "rows": rows,
        "meta": {
            "argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "data": str(args.data),
            "protocol": ps.protocol,
            "n_train": int((~ps.is_test).sum()),
            "n_test": int(ps.is_test.sum()),
            "random_seeds": seeds,
            "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
            "seconds": time.perf_counter() - t0,
        },
    }
    from planlab.atomic import atomic_write_text

    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.name}.json", json.dumps(result, indent=1, default=float) + "\n")
    atomic_write_text(args.out / f"{args.name}.md", render(result))
    print(f"→ {args.out / f'{args.name}.md'}")


if __name__ == "__main__":
    main()
