"""``planlab data generate``: make a synthetic dataset in the NAVSIM layout (``planlab.world``)."""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def register(data_app: typer.Typer) -> None:
    """Add the ``generate`` command to the ``planlab data`` group."""

    @data_app.command("generate")
    def generate(
        out: Path = typer.Option(
            ..., "--out", help="Dataset root to create (navsim_logs/, sensor_blobs/, maps/)."
        ),
        preset: str = typer.Option(
            "mini", "--preset", help="World preset (tiny, mini, small, medium) or a YAML file."
        ),
        seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives byte-identical files."),
        logs: int = typer.Option(None, "--logs", help="Number of logs (overrides the preset)."),
        workers: int = typer.Option(
            1, "--workers", help="Processes that make logs in parallel (same bytes)."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already at --out."),
        check: bool = typer.Option(
            False, "--check", help="Run the physical checks on every log and report them."
        ),
        no_sensors: bool = typer.Option(
            False, "--no-sensors", help="Logs and maps only (no camera/LiDAR files)."
        ),
        overrides: list[str] = typer.Argument(
            None, help="Config overrides key=value, e.g. sensors.width=1920."
        ),
    ) -> None:
        """Generate a synthetic driving dataset in the real NAVSIM/OpenScene and nuPlan-map formats."""
        from planlab.errors import ConfigError
        from planlab.world.config import load_world_config
        from planlab.world.generate import generate_dataset

        items = list(overrides or [])
        if logs is not None:
            if logs < 1:
                raise ConfigError(f"--logs must be ≥ 1, got {logs}")
            items.append(f"logs={logs}")
        if no_sensors:
            items.append("sensors.enabled=false")
        cfg = load_world_config(preset, items)
        console.print(
            f"generating [bold]{cfg.name}[/] (seed {seed}): {cfg.logs} logs × {cfg.frames} frames → {out}"
        )

        def progress(r: dict) -> None:
            extra = "" if "check" not in r else f"  check: {r['check']}"
            console.print(
                f"  {r['name']}  {r['split']:<5} {r['location']:<27} {r['scenario']:<13}"
                f"{r['frames']} frames{extra}"
            )

        summary = generate_dataset(
            out, cfg, seed=seed, workers=workers, overwrite=overwrite, check=check, progress=progress
        )
        from rich.table import Table

        table = Table("split", "logs", "frames", "scenes", "bytes")
        for name, s in summary["splits"].items():
            table.add_row(name, str(s["logs"]), str(s["frames"]), str(s["scenes"]), _human_bytes(s["bytes"]))
        table.add_row(
            "all",
            str(summary["logs"]),
            str(summary["frames"]),
            str(summary["scenes"]),
            _human_bytes(summary["bytes"]),
        )
        console.print(table)
        fps = summary["frames"] / max(summary["seconds"], 1e-9)
        console.print(
            f"{summary['seconds']:.1f} s ({fps:.1f} frames/s with {workers} worker(s)); "
            f"scenes = windows of 4 history + 10 future frames, one per frame"
        )
        if check:
            bad = [r for r in summary["log_list"] if not r.get("check_ok", True)]
            console.print(
                f"checks: {len(summary['log_list']) - len(bad)}/{len(summary['log_list'])} logs clean"
            )
