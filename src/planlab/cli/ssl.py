"""``planlab ssl pretrain|submit|export|import|probe``: I-JEPA pre-training, SLURM submission, encoder conversion."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from planlab.cli._common import console, print_json

ssl_app = typer.Typer(
    help="Self-supervised I-JEPA pre-training of image encoders; export/import of transformers IJepaModel dirs.",
    no_args_is_help=True,
)


@ssl_app.command("pretrain")
def pretrain(
    overrides: list[str] = typer.Argument(None, help="config overrides key=value (e.g. trainer.epochs=5)"),
    config: list[Path] = typer.Option(
        None, "--config", "-c", help="pre-training YAML (repeatable; later wins)"
    ),
    run_dir: Path = typer.Option(None, "--run-dir", help="run directory (must be new unless --resume)"),
    resume: bool = typer.Option(False, "--resume", help="continue the unfinished run in --run-dir"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved config and exit"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Pre-train a ViT with I-JEPA on every frame of a split's logs; export the target encoder to RUN_DIR/encoder."""
    from planlab.config import to_yaml
    from planlab.errors import ConfigError
    from planlab.ssl.config import build_pretrain_config

    cfg = build_pretrain_config(config or [], overrides or [])
    if dry_run:
        typer.echo(to_yaml(cfg), nl=False)
        return
    if run_dir is None:
        raise ConfigError("--run-dir is required (every run writes into its own directory)")
    from planlab.ssl.pretrain import run_pretraining

    result = run_pretraining(cfg, run_dir, resume=resume, progress=False if no_progress else None)
    if result.state != "completed":
        console.print(f"[bold yellow]stopped[/] by {result.stopped_by_signal} at step {result.step}; "
                      f"continue with --resume (checkpoint in {result.run_dir / 'checkpoints'})")  # fmt: skip
        raise typer.Exit(3)
    console.print(f"[bold]pre-trained[/] → {result.run_dir}  step {result.step}, {result.seconds:.0f} s")
    console.print(f"encoder: {result.encoder_dir}")
    delta = (result.probe or {}).get("ssl_minus_random") or {}
    if delta:
        parts = ", ".join(f"{k} {v:+.3f}" for k, v in delta.items() if v is not None)
        console.print(f"linear probe, SSL − random init: {parts}")


@ssl_app.command("snapshot")
def snapshot(
    run_dir: Path = typer.Option(..., "--run-dir", help="pre-training run directory (finished or running)"),
    out: Path = typer.Option(..., "--out", help="encoder directory to write (planlab-vit/1)"),
) -> None:
    """Export the target encoder of a pre-training run's newest checkpoint, e.g. to probe a run mid-way."""
    from planlab.ssl.pretrain import snapshot_encoder

    enc = snapshot_encoder(run_dir, out)
    info = json.loads((enc / "planlab.json").read_text())
    console.print(f"encoder of step {info['step']} (epoch {info['epoch']}) → {enc}")


@ssl_app.command("submit")
def submit(
    overrides: list[str] = typer.Argument(None, help="config overrides key=value"),
    config: list[Path] = typer.Option(
        None, "--config", "-c", help="pre-training YAML (repeatable; later wins)"
    ),
    run_dir: Path = typer.Option(..., "--run-dir", help="run directory the job pre-trains into"),
    cluster: str = typer.Option("local-slurm", "--cluster", help="cluster profile (planlab exp clusters)"),
    time: str = typer.Option(None, "--time", help="time limit (default: the profile's training time)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="write and print the script, submit nothing"),
) -> None:
    """Submit `planlab ssl pretrain` as a SLURM job (checkpoint + requeue on SIGUSR1, resume in the run dir)."""
    from planlab.ssl.slurm import submit_pretraining

    submit_pretraining(
        config or [], overrides or [], run_dir, cluster, time=time, dry_run=dry_run, echo=typer.echo
    )


@ssl_app.command("export")
def export(
    encoder: Path = typer.Option(..., "--encoder", help="planlab-vit directory (e.g. RUN_DIR/encoder)"),
    out: Path = typer.Option(..., "--out", help="output directory for IJepaModel.from_pretrained"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Write an encoder as a transformers IJepaModel directory (config.json + model.safetensors)."""
    from planlab.ssl.convert import export_ijepa

    info = export_ijepa(encoder, out)
    if json_out:
        print_json(info)
        return
    console.print(
        f"IJepaModel → {info['out']} (image size {info['image_size']}, max rel. token Δ {info['max_rel_diff']:.1e})"
    )


@ssl_app.command("import")
def import_(
    hf_dir: Path = typer.Option(..., "--hf", help="local IJepaModel directory (config.json + weights)"),
    out: Path = typer.Option(..., "--out", help="output planlab-vit directory"),
    json_out: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Read a transformers IJepaModel directory (ours or a local public checkpoint) into planlab-vit format."""
    from planlab.ssl.convert import import_ijepa

    info = import_ijepa(hf_dir, out)
    if json_out:
        print_json(info)
        return
    console.print(
        f"planlab-vit → {info['out']} (grid {info['grid']}, max rel. token Δ {info['max_rel_diff']:.1e})"
    )


@ssl_app.command("probe")
def probe(
    encoder: Path = typer.Option(..., "--encoder", help="planlab-vit directory"),
    split: str = typer.Option("val", "--split", help="held-out split whose frames score the probes"),
    train_split: str = typer.Option(
        "train", "--train-split", help="split the probes are fitted on ('' = divide --split by log)"
    ),
    data_root: Path = typer.Option(None, "--data-root", help="dataset root (default $OPENSCENE_DATA_ROOT)"),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="frame cache (default ENCODER/../frames)"),
    max_frames: int = typer.Option(
        None, "--max-frames", help="at most this many --split frames (default all)"
    ),
    max_train_frames: int = typer.Option(
        3000, "--max-train-frames", help="probe-train frames, evenly spread"
    ),
    pooling: str = typer.Option(
        "mean", "--pooling", help="mean (all patches) | grid (2x4 regions, concatenated)"
    ),
    random_seeds: str = typer.Option(
        "0", "--random-seeds", help="seeds of the random-init ViTs compared against (comma separated)"
    ),
    out_file: Path = typer.Option(None, "--out", help="also write the result as JSON here"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Linear probes (speed, command, lead vehicle) of an encoder vs random-init ViTs of the same shape."""
    from planlab.config import check_choice
    from planlab.errors import ConfigError
    from planlab.ssl.probe import POOLINGS, probe_encoder
    from planlab.training.rundir import write_json

    check_choice("--pooling", pooling, POOLINGS)
    try:
        seeds = [int(v) for v in random_seeds.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--random-seeds={random_seeds!r}: comma-separated integers expected") from None
    if not seeds:
        raise ConfigError("--random-seeds: at least one seed")
    if max_train_frames < 10 or (max_frames is not None and max_frames < 10):
        raise ConfigError("--max-frames and --max-train-frames must be >= 10")
    cache = cache_dir or encoder.absolute().parent / "frames"
    out = probe_encoder(str(encoder), str(data_root) if data_root else None, split, str(cache),
                        train_split=train_split or None, max_train_frames=max_train_frames,
                        max_frames=max_frames, pooling=pooling, random_seeds=seeds,
                        progress=not json_out)  # fmt: skip
    if out_file is not None:
        write_json(out_file, out)
    if json_out:
        print_json(out)
        return
    console.print(f"{out['frames']} frames: {out['protocol']}; random init = mean of seeds {seeds}")
    ci = out["ssl_minus_random_ci"]
    for key in ("speed_r2", "command_bacc", "lead_bacc", "rankme"):
        a, b = out["ssl"].get(key), out["random_init"].get(key)
        fa = "—" if a is None else f"{a:.3f}"
        fb = "—" if b is None else f"{b:.3f}"
        d = ci.get(key)
        extra = "" if not d else f"   Δ {d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"
        console.print(f"  {key:13s} encoder {fa:>8s}   random init {fb:>8s}{extra}")


def register(app: typer.Typer) -> None:
    app.add_typer(ssl_app, name="ssl")
