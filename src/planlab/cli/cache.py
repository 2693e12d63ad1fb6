"""``planlab cache features|embeddings|vocabulary``: precompute what training reads."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, print_json

cache_app = typer.Typer(
    help="Precompute training inputs: feature cache, frozen-encoder embeddings, vocabulary.",
    no_args_is_help=True,
)


def _cfg(agent: str | None, config: list[Path] | None, overrides: list[str] | None):
    from planlab.training.config import build_train_config

    return build_train_config(agent, config or [], overrides or [])


@cache_app.command("features")
def features(
    overrides: list[str] = typer.Argument(
        None, help="training-config overrides key=value (data.cache.path=DIR, ...)"
    ),
    agent: str = typer.Option(None, "--agent", "-a", help="registered agent name"),
    config: list[Path] = typer.Option(None, "--config", "-c", help="training YAML (repeatable)"),
    workers: int = typer.Option(None, "--workers", "-j", help="processes (default data.cache.build_workers)"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Fill the feature cache (one safetensors file per builder and token) for the config's train/val splits."""
    from planlab.training.cache_jobs import cache_features

    cfg = _cfg(
        agent,
        config,
        (overrides or []) + ([f"data.cache.build_workers={workers}"] if workers is not None else []),
    )
    out = cache_features(cfg, progress=not json_out)
    if json_out:
        print_json(out)
        return
    for split in (cfg.data.train_split, cfg.data.val_split):
        if split and split in out:
            console.print(f"{split}: {out[split]['tokens']} scenes, {out[split]['computed']} computed")
    console.print(f"cache {out['cache']} ({', '.join(out['builders'])}) in {out['seconds']:.1f} s")


@cache_app.command("embeddings")
def embeddings(
    overrides: list[str] = typer.Argument(
        None, help="training-config overrides (data.cache.embeddings=DIR, ...)"
    ),
    agent: str = typer.Option(
        None, "--agent", "-a", help="an encoder agent (encoder_mlp, encoder_transformer, ...)"
    ),
    config: list[Path] = typer.Option(None, "--config", "-c", help="training YAML (repeatable)"),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: cuda when available)"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Run the frozen encoder once per token; store pooled vectors (and patch grids when the head needs them)."""
    from planlab.training.cache_jobs import cache_embeddings

    cfg = _cfg(agent, config, overrides)
    out = cache_embeddings(cfg, progress=not json_out, device=device)
    if json_out:
        print_json(out)
        return
    counts = ", ".join(f"{k}: {v}" for k, v in out["tokens"].items())
    console.print(
        f"embeddings {out['store']} ({counts}; {out['encoded']} encoded now, "
        f"{'patch grids' if out['patches'] else 'pooled vectors'}) in {out['seconds']:.1f} s"
    )


@cache_app.command("vocabulary")
def vocabulary(
    overrides: list[str] = typer.Argument(None, help="training-config overrides key=value"),
    out: Path = typer.Option(..., "--out", "-o", help="output .npy (a .json sidecar records its provenance)"),
    agent: str = typer.Option("vocab_scorer", "--agent", "-a", help="the scorer agent whose sampling to use"),
    config: list[Path] = typer.Option(None, "--config", "-c", help="training YAML (repeatable)"),
    size: int = typer.Option(None, "--size", "-k", help="vocabulary size (default agent.vocabulary_size)"),
    seed: int = typer.Option(0, "--seed", help="k-means seed"),
) -> None:
    """k-means trajectory vocabulary over the training split's logged futures (label subset applied)."""
    from planlab.training.cache_jobs import build_vocabulary

    cfg = _cfg(agent, config, overrides)
    res = build_vocabulary(cfg, str(out), size, seed)
    console.print(
        f"vocabulary {res['path']}: {res['size']} trajectories from {res['trajectories']} futures "
        f"in {res['seconds']:.1f} s"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
