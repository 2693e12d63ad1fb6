"""``planlab data viz``: one scene token as a PNG (BEV with map, agents, trajectories and lights + 8 cameras)."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console


def register(data_app: typer.Typer) -> None:
    """Add the ``viz`` command to the ``planlab data`` group."""

    @data_app.command("viz")
    def viz(
        root: Path = typer.Argument(..., help="Dataset root (holds navsim_logs/, sensor_blobs/, maps/)."),
        token: str = typer.Option(..., "--token", help="Scene token (the current frame of the scene)."),
        out: Path = typer.Option(..., "--out", help="Output PNG file."),
        split: str = typer.Option(None, "--split", help="Split directory (default: the only one)."),
        radius: float = typer.Option(40.0, "--radius", help="Half-width of the BEV [m]."),
        cameras: bool = typer.Option(True, "--cameras/--no-cameras", help="Add the 8-camera grid."),
        history: int = typer.Option(4, "--history", help="History frames of the scene window."),
        future: int = typer.Option(10, "--future", help="Future frames of the scene window."),
        trajectories: Path = typer.Option(
            None,
            "--trajectories",
            help="JSON {token: [[x, y, heading], …]} to overlay as the planned trajectory.",
        ),
    ) -> None:
        """Render the BEV and camera grid of scene TOKEN to a PNG (atomic write)."""
        from planlab.errors import ConfigError
        from planlab.viz.scene import visualize_token

        if out.suffix.lower() != ".png":
            raise ConfigError(f"--out must name a .png file, got {out}")
        if radius <= 0:
            raise ConfigError(f"--radius must be positive, got {radius}")
        path = visualize_token(root, token, out, split, history, future, radius, cameras, trajectories)
        console.print(f"wrote {path}")
