"""``planlab train``: train a registered agent into its own run directory (resume, requeue-safe)."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console


def register(app: typer.Typer) -> None:
    @app.command(
        "train",
        context_settings={"allow_extra_args": False},
        help="Train an agent: planlab train --agent NAME [--config FILE] [key=value ...] --run-dir DIR [--resume]",
    )
    def train(
        overrides: list[str] = typer.Argument(
            None, help="config overrides key=value (e.g. trainer.max_epochs=5)"
        ),
        agent: str = typer.Option(None, "--agent", "-a", help="registered agent name (planlab agents list)"),
        config: list[Path] = typer.Option(
            None, "--config", "-c", help="training YAML (repeatable; later wins)"
        ),
        run_dir: Path = typer.Option(None, "--run-dir", help="run directory (must be new unless --resume)"),
        resume: bool = typer.Option(False, "--resume", help="continue the unfinished run in --run-dir"),
        dry_run: bool = typer.Option(False, "--dry-run", help="print the resolved config and exit"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    ) -> None:
        from planlab.config import to_yaml
        from planlab.errors import ConfigError
        from planlab.training.config import build_train_config

        cfg = build_train_config(agent, config or [], overrides or [])
        if dry_run:
            typer.echo(to_yaml(cfg), nl=False)
            return
        if run_dir is None:
            raise ConfigError("--run-dir is required (every run writes into its own directory)")
        from planlab.training.train import run_training

        result = run_training(cfg, run_dir, resume=resume, progress=False if no_progress else None)
        if result.rank != 0:
            return
        console.print(
            f"[bold]trained[/] {cfg.agent_name} → {result.run_dir}  step {result.global_step}, epoch {result.epoch}, "
            f"{result.seconds:.0f} s"
            + (f" (resumed from {result.resumed_from.name})" if result.resumed_from else "")
        )
        if result.best_checkpoint:
            console.print(f"best checkpoint: {result.best_checkpoint}")
        if result.last_checkpoint:
            console.print(f"last checkpoint: {result.last_checkpoint}")
