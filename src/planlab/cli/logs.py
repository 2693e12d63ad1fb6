"""``planlab logs analyze``: losses, speed, NaN/Inf and failure signatures of a run, as a table or markdown."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, print_json

logs_app = typer.Typer(help="Training-log diagnostics.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(logs_app, name="logs")


@logs_app.command(
    "analyze",
    help="Analyse a run directory (metrics.csv, tb/, logs/*.out), a metrics.csv, a TensorBoard event file or a "
    "stdout/SLURM log: per-loss first/epoch-0/best/last with improvement, train-val gap, it/s and epoch time, "
    "NaN/Inf, and recognised failures (OOM, DDP/NCCL timeouts, time limit, missing srun, ...) with the fix.",
)
def analyze(
    target: Path = typer.Argument(..., help="run directory or log file"),
    log: list[Path] = typer.Option(None, "--log", help="extra stdout/SLURM log to scan (repeatable)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable report on stdout"),
    markdown: bool = typer.Option(False, "--markdown", "--md", help="print the markdown report"),
    out: Path = typer.Option(None, "--out", help="also write the markdown report to this file"),
    check: bool = typer.Option(False, "--check", help="exit 1 when an error signature or NaN/Inf is found"),
) -> None:
    from planlab.atomic import atomic_write_text
    from planlab.diagnostics.logs import analyze as run_analyze

    report = run_analyze(target, extra_logs=log or [])
    if out is not None:
        atomic_write_text(out, report.to_markdown())
    if as_json:
        print_json(report.to_dict())
    elif markdown:
        typer.echo(report.to_markdown(), nl=False)
    else:
        _print(report)
    if check and report.failed:
        raise typer.Exit(1)


def _print(report) -> None:  # noqa: ANN001 - LogReport (imported lazily)
    from rich.table import Table

    from planlab.diagnostics.logs import fmt, progress_table

    header, rows = progress_table(report)
    table = Table(title=f"Progress Tracking: {report.target}", title_justify="left")
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right", no_wrap=(i == 0))
    for row in rows:
        table.add_row(*row)
    if rows:
        console.print(table)
    else:
        console.print("[yellow]no metrics found[/]")
    for g in report.gaps:
        pct = f" ({g.relative_pct:+.0f}%)" if g.relative_pct is not None else ""
        console.print(
            f"train–val gap {g.component}: val {fmt(g.val)} − train {fmt(g.train)} = {fmt(g.absolute)}{pct}"
        )
    if report.speed is not None and report.speed.note:
        console.print(f"[dim]speed: {report.speed.source}; {report.speed.note}[/]")
    if report.run:
        console.print("run: " + "; ".join(f"{k}={v}" for k, v in report.run.items()))
    for n in report.nonfinite:
        console.print(
            f"[bold red]NaN/Inf[/] {n['metric']}: {n['count']} value(s), first at step {n['first_step']}"
        )
    if report.findings:
        ft = Table(title="Failures and warnings", title_justify="left", show_lines=True)
        for col in ("signature", "where", "evidence", "likely fix"):
            ft.add_column(col, overflow="fold")
        for f in report.findings:
            style = "bold red" if f.severity == "error" else "yellow"
            where = f"{Path(f.source).name}:{f.line_no}" if f.line_no else Path(f.source).name
            title = f"[{style}]{f.title}[/]" + (f" ×{f.count}" if f.count > 1 else "")
            evidence = f.line + (f"\n({f.detail})" if f.detail else "")
            ft.add_row(title, where, evidence, f.fix)
        console.print(ft)
    for e in report.exceptions:
        console.print(f"last exception in {Path(e['source']).name}:{e['line_no']}: [bold]{e['exception']}[/]")
