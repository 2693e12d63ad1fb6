"""``planlab study label-efficiency``: the label-efficiency study (pre-training, runs, results) in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, print_json

study_app = typer.Typer(help="Studies built from many experiments: label efficiency.", no_args_is_help=True)


@study_app.command("label-efficiency")
def label_efficiency(
    overrides: list[str] = typer.Argument(None, help="study-config overrides key=value (e.g. seeds=[0,1])"),
    config: list[Path] = typer.Option(
        None, "--config", "-c", help="study YAML or a packaged study name (repeatable; later wins)"
    ),
    launcher: str = typer.Option("local", "--launcher", help="local (in this process) | slurm (job arrays)"),
    collect: bool = typer.Option(False, "--collect", help="only (re)write the results of the finished runs"),
    dry_run: bool = typer.Option(False, "--dry-run", help="resolve and create the experiments, run nothing"),
    print_config: bool = typer.Option(
        False, "--print-config", help="print the resolved study config and exit"
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bars"),
    json_out: bool = typer.Option(False, "--json", help="print the outcome as JSON"),
) -> None:
    """Pre-train (or reuse) the I-JEPA encoder, train every arm × label fraction × seed, score them all with one
    evaluator and write results/<name>.{md,csv,png}. Rerunning continues where it stopped."""
    from planlab.config import to_yaml
    from planlab.study.config import build_study_config

    cfg = build_study_config(config or [], overrides or [])
    if print_config:
        typer.echo(to_yaml(cfg), nl=False)
        return
    from planlab.study.runner import run_study

    def echo(msg: str) -> None:
        if not json_out:
            console.print(msg, markup=False, highlight=False)

    outcome = run_study(cfg, launcher=launcher, collect_only=collect, dry_run=dry_run,
                        progress=not (no_progress or json_out), config_files=[str(p) for p in config or []],
                        overrides=list(overrides or []), echo=echo)  # fmt: skip
    info = {
        "out_dir": str(outcome.out_dir),
        "runs": len(outcome.plan.runs),
        "pending": outcome.pending,
        "failed": outcome.failed,
        "submitted_sweeps": outcome.submitted,
        "results": {k: str(v) for k, v in outcome.results.items()},
        "seconds": round(outcome.seconds, 1),
    }
    if json_out:
        print_json(info)
    else:
        done = len(outcome.plan.runs) - len(outcome.pending)
        console.print(
            f"{done}/{len(outcome.plan.runs)} runs finished ({outcome.seconds / 60:.1f} min this call)"
        )
        for kind, path in outcome.results.items():
            console.print(f"{kind}: {path}")
        if outcome.submitted:
            console.print(
                "submitted: " + ", ".join(outcome.submitted) + "; rerun with --collect when they finish"
            )
    if outcome.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
