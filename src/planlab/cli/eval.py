"""``planlab eval …``: build the metric cache, score an agent or a trajectory file, merge shards.

Heavy libraries are imported inside the commands (``planlab eval --help`` starts in well under 1 s;
torch is imported only when a learned agent or a checkpoint is requested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from planlab.cli._common import console, print_json

eval_app = typer.Typer(
    name="eval",
    help="PDM score (NAVSIM v1.1 PDMS, v2 EPDMS): metric cache, agent runs, trajectory files, shard merging.",
    no_args_is_help=True,
)

_DATA = typer.Option(..., "--data", help="Dataset root (navsim_logs/<split>, maps/).")
_SPLIT = typer.Option(..., "--split", help="Split directory under navsim_logs/ (e.g. navtest).")
_WORKERS = typer.Option(1, "--workers", min=1, help="Worker processes.")
_HISTORY = typer.Option(4, "--history", help="History frames per scene (current frame included).")
_FUTURE = typer.Option(10, "--future", help="Future frames per scene (PDMS v1.1 needs 10).")
_INTERVAL = typer.Option(
    1, "--frame-interval", help="Window stride in frames (1 = navtest style, 0 = non-overlapping)."
)
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show a progress bar.")


def _loader(data: Path, split: str, history: int, future: int, frame_interval: int) -> Any:
    from planlab.data import SceneLoader
    from planlab.errors import ConfigError
    from planlab.scene import SceneFilter

    try:
        scene_filter = SceneFilter(
            num_history_frames=history,
            num_future_frames=future,
            frame_interval=frame_interval if frame_interval > 0 else None,
        )
    except ValueError as exc:
        raise ConfigError(f"scene filter: {exc}") from None
    return SceneLoader(data, split, scene_filter)


@eval_app.command("cache")
def cache(
    data: Path = _DATA,
    split: str = _SPLIT,
    out: Path = typer.Option(..., "--out", help="Metric cache directory to create or complete."),
    workers: int = _WORKERS,
    rebuild: bool = typer.Option(False, "--rebuild", help="Recompute entries that already exist."),
    metric: str = typer.Option(
        "pdms", "--metric", help="pdms (NAVSIM v1.1) or epdms (adds the NAVSIM v2 parts)."
    ),
    history: int = _HISTORY,
    future: int = _FUTURE,
    frame_interval: int = _INTERVAL,
    progress: bool = _PROGRESS,
) -> None:
    """Build the metric cache of a split (PDM-Closed, interpolated ground truth, drivable map per scene)."""
    from planlab.evaluation.cache import build_cache
    from planlab.evaluation.runner import check_metric

    check_metric(metric)
    loader = _loader(data, split, history, future, frame_interval)
    metrics = ("pdms",) if metric == "pdms" else ("pdms", "epdms")
    report = build_cache(loader, out, workers=workers, rebuild=rebuild, progress=progress, metrics=metrics)
    console.print(
        f"metric cache {report.root}: {len(report.built)} built, {len(report.reused)} reused, "
        f"{len(report.failed)} failed ({report.seconds:.1f} s, "
        f"{len(report.built) / report.cpu_seconds if report.cpu_seconds else 0:.1f} scenes/s/core)"
    )
    for token, reason in sorted(report.failed.items())[:10]:
        console.print(f"  [yellow]failed[/] {token}: {reason}")


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    score = summary.get("score")
    console.print(
        f"[bold]{summary['metric'].upper()}[/] {'–' if score is None else f'{score:.4f}'} over "
        f"{summary['num_valid']}/{summary['num_scenes']} valid scenes → {out / 'pdm_scores.csv'}"
    )
    for token, reason in list(summary.get("failures", {}).items())[:5]:
        console.print(f"  [yellow]invalid[/] {token}: {reason}")
    if summary["num_failed"] > 5:
        console.print(f"  … {summary['num_failed'] - 5} more in {out / 'failures.csv'}")


@eval_app.command("run")
def run(
    agent: str = typer.Option(None, "--agent", help="Registered agent (planlab agents list)."),
    checkpoint: Path = typer.Option(
        None, "--checkpoint", help="Trained checkpoint (file or run dir); implies its agent."
    ),
    data: Path = _DATA,
    split: str = _SPLIT,
    metric: str = typer.Option(
        "pdms", "--metric", help="pdms (NAVSIM v1.1 PDMS) or epdms (NAVSIM v2 EPDMS)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output directory (pdm_scores.csv, summary.json, failures.csv)."
    ),
    cache_dir: Path = typer.Option(
        None, "--cache", help="Metric cache directory (default: <out>/metric_cache)."
    ),
    workers: int = _WORKERS,
    shard: str = typer.Option(None, "--shard", help="I/N: score only shard I of N (split by log)."),
    history: int = _HISTORY,
    future: int = _FUTURE,
    frame_interval: int = _INTERVAL,
    progress: bool = _PROGRESS,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score an agent on a split; builds missing metric-cache entries first."""
    from planlab.errors import ConfigError
    from planlab.evaluation.runner import AgentFactory, check_metric, evaluate_agent, parse_shard

    check_metric(metric)
    shard_spec = parse_shard(shard)
    if checkpoint is not None:
        from planlab.training.checkpoint import load_agent_from_checkpoint

        factory = AgentFactory(
            load_agent_from_checkpoint, (str(checkpoint),), {}, label=f"checkpoint:{checkpoint}"
        )
        load_agent_from_checkpoint(str(checkpoint))  # fail fast with a one-line error before any work
    elif agent is not None:
        from planlab.agents.registry import build_agent, get_spec

        get_spec(agent)
        factory = AgentFactory(build_agent, (agent,), {}, label=agent)
    else:
        raise ConfigError("give --agent NAME or --checkpoint CKPT")
    loader = _loader(data, split, history, future, frame_interval)
    result = evaluate_agent(factory, loader, out, metric, cache_dir, workers, shard_spec, progress)
    if as_json:
        print_json(result.summary)
    else:
        _print_summary(result.summary, out)


@eval_app.command("score")
def score(
    trajectories: Path = typer.Option(
        ..., "--trajectories", help="JSON: token -> list of [x, y, heading] poses."
    ),
    cache_dir: Path = typer.Option(..., "--cache", help="Metric cache directory."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    metric: str = typer.Option(
        "pdms", "--metric", help="pdms (NAVSIM v1.1 PDMS) or epdms (NAVSIM v2 EPDMS)."
    ),
    interval: float = typer.Option(0.5, "--interval", help="Seconds between consecutive poses."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score trajectories from any external planner against a metric cache."""
    from planlab.errors import ConfigError
    from planlab.evaluation.runner import evaluate_trajectory_file

    if not interval > 0:
        raise ConfigError(f"--interval must be > 0, got {interval}")
    result = evaluate_trajectory_file(trajectories, cache_dir, out, metric, interval)
    if as_json:
        print_json(result.summary)
    else:
        _print_summary(result.summary, out)


@eval_app.command("merge")
def merge(
    shard_dirs: list[Path] = typer.Argument(..., help="Output directories of the shards."),
    out: Path = typer.Option(..., "--out", help="Output directory of the merged result."),
) -> None:
    """Merge shard outputs into one pdm_scores.csv / summary.json (equal to an unsharded run)."""
    from planlab.evaluation.runner import merge_results

    result = merge_results(shard_dirs, out)
    _print_summary(result.summary, out)


@eval_app.command("table")
def table(
    results: list[Path] = typer.Argument(..., help="output directories of `planlab eval run|score|merge`"),
    label: list[str] = typer.Option(
        None, "--label", help="row labels, one per directory (default: agent names)"
    ),
    out: Path = typer.Option(None, "--out", help="also write the table as markdown to this file"),
) -> None:
    """Compare finished scoring runs side by side (NAVSIM-style sub-score table from each summary.json)."""
    from rich.table import Table

    from planlab.atomic import atomic_write_text
    from planlab.evaluation.results import SHORT_NAMES
    from planlab.evaluation.table import columns_for, render_markdown, summary_rows

    rows = summary_rows(results, label or None)
    metric = rows[0].metric
    grid = Table(title=f"{'EPDMS' if metric == 'epdms' else 'PDMS'} on split {rows[0].split or '?'}")
    grid.add_column("agent", no_wrap=True)
    for c in columns_for(metric):
        grid.add_column(SHORT_NAMES.get(c, c), justify="right")
    grid.add_column("EPDMS" if metric == "epdms" else "PDMS", justify="right", style="bold")
    grid.add_column("scenes", justify="right")
    for r in rows:
        vals = [f"{100 * r.means[c]:.1f}" if c in r.means else "–" for c in columns_for(metric)]
        grid.add_row(
            r.label,
            *vals,
            "–" if r.score is None else f"{100 * r.score:.1f}",
            f"{r.num_valid}/{r.num_scenes}",
        )
    console.print(grid)
    if out is not None:
        atomic_write_text(out, render_markdown(rows))
        console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    from planlab.cli.perception import perception  # perception metrics of a checkpoint (room temporal)

    eval_app.command("perception")(perception)
    app.add_typer(eval_app, name="eval")
