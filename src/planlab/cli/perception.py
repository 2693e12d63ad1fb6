"""``planlab eval perception``: perception metrics (detection mAP, semantic IoU, occupancy precision/recall,
forecasting ADE/FDE/miss rate) of a trained agent with perception heads. Registered on the ``eval`` group by
``planlab.cli.eval``; torch is imported only inside the command."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, print_json


def perception(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained checkpoint (file or run dir)."),
    data: Path = typer.Option(..., "--data", help="Dataset root (navsim_logs/<split>, maps/)."),
    split: str = typer.Option(..., "--split", help="Split directory under navsim_logs/ (e.g. test)."),
    out: Path = typer.Option(..., "--out", help="Output directory (perception.json)."),
    history: int = typer.Option(4, "--history", help="History frames per scene (current frame included)."),
    future: int = typer.Option(10, "--future", help="Future frames per scene (forecast targets need them)."),
    frame_interval: int = typer.Option(
        1, "--frame-interval", help="Window stride in frames (0: non-overlapping)."
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Scenes per forward pass."),
    max_scenes: int = typer.Option(None, "--max-scenes", min=1, help="Evaluate only the first N scenes."),
    cache: Path = typer.Option(
        None, "--cache", help="Feature cache to read builder outputs from and add missing ones to."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print perception.json."),
) -> None:
    """Perception metrics of a checkpoint on a split: mAP@{0.5,1,2,4} m, IoU per class, occupancy, forecasting."""
    from planlab.data import SceneLoader
    from planlab.errors import ConfigError
    from planlab.models.temporal.perception_eval import RESULT_FILE, evaluate_perception
    from planlab.scene import SceneFilter
    from planlab.training.checkpoint import load_agent_from_checkpoint

    agent = load_agent_from_checkpoint(str(checkpoint))
    try:
        scene_filter = SceneFilter(
            num_history_frames=history,
            num_future_frames=future,
            frame_interval=frame_interval if frame_interval > 0 else None,
        )
    except ValueError as exc:
        raise ConfigError(f"scene filter: {exc}") from None
    loader = SceneLoader(data, split, scene_filter, agent.get_sensor_config())
    result = evaluate_perception(
        agent,
        loader,
        out,
        batch_size,
        max_scenes,
        progress,
        extra={"checkpoint": str(checkpoint), "data": str(data), "split": split},
        cache=cache,
    )
    if as_json:
        print_json(result)
        return
    console.print(
        f"[bold]perception[/] of {result['agent']} over {result['num_scenes']} scenes → {out / RESULT_FILE}"
    )
    for key, value in result["metrics"].items():
        console.print(f"  {key:32s} {'–' if value is None else f'{value:.4f}'}")
