"""``planlab ckpt validate``: is this checkpoint (or every checkpoint of a run) good? Exit code says why not."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, print_json

ckpt_app = typer.Typer(help="Checkpoint diagnostics.", no_args_is_help=True)

_EXIT_HELP = (
    "Exit codes: 0 valid, 3 not found, 4 corrupt (truncated, CRC/bit flip, not a torch archive), "
    "5 unsafe (needs arbitrary unpickling), 6 structure (Lightning/planlab entries, epoch/step vs name), "
    "7 NaN/Inf, 8 mismatch with the rebuilt agent (keys, shapes, frozen weights, optimizer), "
    "9 agent cannot be rebuilt. Several failures: the lowest code wins."
)


def register(app: typer.Typer) -> None:
    app.add_typer(ckpt_app, name="ckpt")


_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


@ckpt_app.command(
    "validate", help="Validate a checkpoint file or a run directory's checkpoints. " + _EXIT_HELP
)
def validate(
    target: Path = typer.Argument(..., help="a .ckpt file, a run directory or its checkpoints/ folder"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable report on stdout"),
    agent: str = typer.Option(None, "--agent", help="fail unless the checkpoint holds this registered agent"),
    no_rebuild: bool = typer.Option(
        False, "--no-rebuild", help="skip rebuilding the agent (no key/shape/optimizer comparison)"
    ),
) -> None:
    from planlab.diagnostics.checkpoint import validate as run_validate

    report = run_validate(target, expected_agent=agent, rebuild=not no_rebuild)
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    raise typer.Exit(report.exit_code)


def _print(report) -> None:  # noqa: ANN001 - ValidationReport (imported lazily)
    from rich.table import Table

    from planlab.diagnostics.checkpoint import human_bytes

    reports = report.checkpoints
    if report.kind == "run_dir":
        table = Table(title=f"checkpoints of {report.target}", title_justify="left")
        for col in ("file", "epoch", "step", "modified", "size", "metric", "verdict"):
            table.add_column(col, justify="right" if col in ("epoch", "step", "size", "metric") else "left")
        for r in reports:
            metric = f"{r.metric['name']}={r.metric['value']:.4g}" if r.metric else "-"
            modified = r.to_dict()["modified"] or "-"
            style = "green" if r.ok else "bold red"
            table.add_row(
                r.path.name,
                str(r.epoch) if r.epoch is not None else "-",
                str(r.global_step) if r.global_step is not None else "-",
                modified.replace("T", " ")[:19],
                human_bytes(r.size),
                metric,
                f"[{style}]{r.verdict}[/]",
            )
        console.print(table)
        for c in report.checks:
            console.print(f"[{_STYLE[c.status]}]{c.status:>4}[/] {c.name}: {c.detail}")
    detail = reports if report.kind == "file" else [r for r in reports if not r.ok or r.warnings]
    for r in detail:
        checks = Table(title=f"{r.path}", title_justify="left", show_header=True)
        checks.add_column("check")
        checks.add_column("status")
        checks.add_column("detail", overflow="fold")
        for c in r.checks:
            checks.add_row(c.name, f"[{_STYLE[c.status]}]{c.status}[/]", c.detail)
        console.print(checks)
    ref = _reference(reports)
    if ref is not None and ref.modules:
        mods = Table(title=f"parameters of {ref.path.name} (agent {ref.agent_name})", title_justify="left")
        for col in ("module", "tensors", "params", "bytes", "frozen"):
            mods.add_column(col, justify="left" if col == "module" else "right")
        for m in ref.modules:
            frozen = "-" if m.frozen is None else ("yes" if m.frozen else "no")
            mods.add_row(m.name, str(m.tensors), f"{m.params:,}", human_bytes(m.bytes), frozen)
        mods.add_row("[bold]total[/]", "", f"{ref.total_params:,}", human_bytes(ref.total_bytes), "")
        console.print(mods)
    for r in reports:
        style = "green" if r.ok else "bold red"
        console.print(f"[{style}]{r.path.name}[/]: {r.diagnosis}")


def _reference(reports):  # noqa: ANN001, ANN202
    ok = [r for r in reports if r.modules]
    if not ok:
        return None
    last = [r for r in ok if r.path.name == "last.ckpt"]
    return last[0] if last else ok[-1]
