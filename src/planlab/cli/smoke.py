"""``planlab smoke`` (pre-flight run with success criteria) and ``planlab memory estimate`` (fit and advice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from planlab.cli._common import console, parse_int_list, print_json

memory_app = typer.Typer(help="Memory estimates for training jobs.", no_args_is_help=True)

_CONFIG = typer.Option(None, "--config", "-c", help="training YAML (repeatable; later wins)")
_EXP = typer.Option(None, "--exp", help="experiment id (its resolved training config and job resources)")
_ROOT = typer.Option(None, "--root", help="experiments root (default: $PLANLAB_EXP_ROOT or ./experiments)")
_AGENT = typer.Option(None, "--agent", "-a", help="registered agent (with --config or alone)")


def register(app: typer.Typer) -> None:
    app.command(
        "smoke",
        help="Pre-flight run: a few training steps on a small subset, then checks (builders' contracts, "
        "completion, checkpoint validity, peak memory vs budget, loss decreases, no NaN/Inf) and a 5-scene "
        "evaluation through `planlab eval run --checkpoint`'s path. Writes smoke.md/smoke.json; exit 1 on failure.",
    )(smoke)
    app.add_typer(memory_app, name="memory")


def resolve_target(
    config: list[Path] | None,
    exp: str | None,
    root: Path | None,
    agent: str | None,
    overrides: list[str] | None,
) -> tuple[Any, Any]:
    """(training config, experiment target or None) from ``--config``/``--agent`` or from ``--exp``."""
    from planlab.errors import ConfigError

    if exp is not None:
        if config:
            raise ConfigError("give --config or --exp, not both")
        from planlab.diagnostics.preflight import experiment_target

        target = experiment_target(root, exp, overrides)
        return target.cfg, target
    if not config and agent is None:
        raise ConfigError("give --config FILE (and/or --agent NAME) or --exp ID")
    from planlab.training.config import build_train_config

    return build_train_config(agent, config or [], overrides or []), None


def smoke(
    overrides: list[str] = typer.Argument(None, help="config overrides key=value (e.g. optim.lr=1e-3)"),
    config: list[Path] = _CONFIG,
    exp: str = _EXP,
    root: Path = _ROOT,
    agent: str = _AGENT,
    run_dir: Path = typer.Option(
        None,
        "--run-dir",
        help="new directory for the smoke run (default: smoke/<agent>-<time>, or the "
        "experiment's logs/preflight/<time>)",
    ),
    steps: int = typer.Option(10, "--steps", min=1, help="optimizer steps"),
    scenes: int = typer.Option(64, "--scenes", min=1, help="scenes per split (train and validation)"),
    eval_scenes: int = typer.Option(5, "--eval-scenes", min=1, help="scenes scored by the evaluation"),
    mem_budget: str = typer.Option(
        None,
        "--mem-budget",
        help="host memory per rank, e.g. 16G (default with --exp: --mem / tasks per node)",
    ),
    gpu_budget: str = typer.Option(None, "--gpu-budget", help="GPU memory, e.g. 40G"),
    eval_cache: Path = typer.Option(None, "--eval-cache", help="metric-cache directory to reuse"),
    no_eval: bool = typer.Option(False, "--no-eval", help="skip the 5-scene evaluation"),
    as_json: bool = typer.Option(False, "--json", help="print smoke.json"),
) -> None:
    from planlab.diagnostics.memory import parse_size
    from planlab.diagnostics.preflight import PREFLIGHT_DIR, utc_stamp
    from planlab.diagnostics.smoke import SmokeOptions, run_smoke

    cfg, target = resolve_target(config, exp, root, agent, overrides)
    host = parse_size(mem_budget, "--mem-budget") if mem_budget else None
    if host is None and target is not None:
        host = target.rank_budget
    opts = SmokeOptions(
        steps=steps,
        scenes=scenes,
        eval_scenes=eval_scenes,
        host_budget=host,
        gpu_budget=parse_size(gpu_budget, "--gpu-budget") if gpu_budget else None,
        evaluate=not no_eval,
        eval_cache=str(eval_cache) if eval_cache else None,
    )
    if run_dir is None:
        if target is not None:
            run_dir = target.run_dir / PREFLIGHT_DIR / utc_stamp()
        else:
            run_dir = Path("smoke") / f"{cfg.agent_name}-{utc_stamp()}"
    report = run_smoke(cfg, run_dir, opts)
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
    if not report.passed:
        raise typer.Exit(1)


def print_report(report: Any) -> None:
    from rich.table import Table

    style = {"pass": "green", "fail": "bold red", "skip": "dim"}
    table = Table(
        title=f"smoke run of {report.agent}: {report.run_dir}", title_justify="left", show_lines=False
    )
    for col in ("criterion", "result", "measured", "limit", "detail"):
        table.add_column(col, overflow="fold")
    for c in report.ordered():
        table.add_row(
            c.name, f"[{style.get(c.status, '')}]{c.status.upper()}[/]", c.measured, c.limit, c.detail
        )
    console.print(table)
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"{verdict} in {report.seconds:.0f} s; report: {report.run_dir / 'smoke.md'}")
    if report.error:
        console.print(f"[red]error:[/] {report.error}")


@memory_app.command(
    "estimate",
    help="Measure peak memory (process tree PSS, GPU) of short runs at 2-3 batch sizes x worker counts, fit "
    "linearly, predict the configured job and recommend batch size / DataLoader workers for a memory budget.",
)
def estimate(
    overrides: list[str] = typer.Argument(None, help="config overrides key=value"),
    config: list[Path] = _CONFIG,
    exp: str = _EXP,
    root: Path = _ROOT,
    agent: str = _AGENT,
    budget: str = typer.Option(
        None, "--budget", help="host memory per node, e.g. 64G (default with --exp: --mem)"
    ),
    gpus_per_node: int = typer.Option(
        None, "--gpus-per-node", min=1, help="training processes (ranks) per node (default 1, or --exp's)"
    ),
    gpu_budget: str = typer.Option(None, "--gpu-budget", help="memory of one GPU, e.g. 48G"),
    batch_sizes: str = typer.Option(None, "--batch-sizes", help="measured batch sizes, e.g. 8,16,32"),
    workers: str = typer.Option(None, "--workers", help="measured worker counts, e.g. 0,2"),
    max_workers: int = typer.Option(None, "--max-workers", min=0, help="upper bound for the advice"),
    steps: int = typer.Option(3, "--steps", min=1, help="training batches per measurement"),
    workdir: Path = typer.Option(
        None, "--workdir", help="where the measurement runs go (default: a temp dir)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable result"),
) -> None:
    import tempfile

    from planlab.diagnostics.memory import estimate as run_estimate
    from planlab.diagnostics.memory import gib, parse_size

    cfg, target = resolve_target(config, exp, root, agent, overrides)
    node_budget = parse_size(budget, "--budget") if budget else (target.node_budget if target else None)
    ranks = gpus_per_node or (target.ranks_per_node if target else 1)
    gpu = parse_size(gpu_budget, "--gpu-budget") if gpu_budget else None

    def progress(p: Any) -> None:
        if not as_json:
            what = p.error or f"host {gib(p.host_bytes)}" + (
                f", GPU {gib(p.gpu_bytes)}" if p.gpu_bytes else ""
            )
            console.print(f"[dim]measured batch {p.batch_size}, {p.num_workers} worker(s): {what}[/]")

    with tempfile.TemporaryDirectory(prefix="planlab-mem-") as tmp:
        result = run_estimate(
            cfg,
            workdir or tmp,
            budget_per_node=node_budget,
            ranks_per_node=ranks,
            gpu_budget=gpu,
            batch_sizes=parse_int_list(batch_sizes),
            workers=parse_int_list(workers),
            steps=steps,
            max_workers=max_workers,
            progress=progress,
        )
    data = result.to_dict()
    if as_json:
        print_json(data)
        return
    _print_estimate(result, data)


def _print_estimate(result: Any, data: dict[str, Any]) -> None:
    from rich.table import Table

    from planlab.diagnostics.memory import gib

    pts = Table(title=f"measured peaks ({result.agent})", title_justify="left")
    for col in ("batch", "workers", "host (PSS)", "host (RSS sum)", "GPU", "fitted host"):
        pts.add_column(col, justify="right")
    m = result.model
    for p in result.points:
        if p.error:
            pts.add_row(str(p.batch_size), str(p.num_workers), f"[red]{p.error}[/]", "", "", "")
            continue
        pts.add_row(
            str(p.batch_size),
            str(p.num_workers),
            gib(p.host_bytes),
            gib(p.host_rss_bytes),
            gib(p.gpu_bytes),
            gib(m.host(p.batch_size, p.num_workers)),
        )
    console.print(pts)
    console.print(
        f"fit: host = {gib(m.a)} + {m.b / 2**20:.1f} MiB/sample + workers × ({m.c / 2**20:.0f} MiB + "
        f"{m.d / 2**20:.2f} MiB/sample)"
        + (f"; GPU = {gib(m.ga)} + {m.gb / 2**20:.1f} MiB/sample" if m.ga is not None else "")
    )
    conf = data["configured"]
    console.print(
        f"configured (batch {result.config_batch_size}, {result.config_num_workers} workers): "
        f"{gib(conf['host_bytes_per_rank'])} per rank, {gib(conf['host_bytes_per_node'])} per node "
        f"({result.ranks_per_node} rank(s))"
        + (f", GPU {gib(conf['gpu_bytes'])}" if conf["gpu_bytes"] else "")
    )
    rec = result.recommendation
    budget = f" for {gib(rec.budget_per_node)} per node" if rec.budget_per_node else ""
    style = "green" if rec.fits else "bold red"
    console.print(
        f"[{style}]recommended{budget}:[/] trainer.batch_size={rec.batch_size} data.num_workers={rec.num_workers}"
        + (
            f" trainer.accumulate_grad_batches={rec.accumulate_grad_batches}"
            if rec.accumulate_grad_batches > 1
            else ""
        )
        + f" → {gib(rec.host_bytes_per_node)} per node"
    )
    for note in rec.notes:
        console.print(f"  - {note}")
    prof = data["profile"]
    console.print(
        f"cluster profile numbers: process_mem_gb: {prof['process_mem_gb']:.1f}, worker_mem_gb: {prof['worker_mem_gb']:.2f}"
    )


def preflight(root: Path | None, exp_id: str, only: list[str] | None = None, force: bool = False) -> None:
    """What ``planlab exp submit`` runs first: the experiment's smoke run, printed; a one-line
    PlanlabError when it fails (nothing is submitted then)."""
    from planlab.diagnostics.preflight import preflight_error, preflight_experiment

    report = preflight_experiment(root, exp_id, only, force, announce=console.print)
    if report is None:
        return
    print_report(report)
    if not report.passed:
        raise preflight_error(report, exp_id)
