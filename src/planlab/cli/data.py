"""``planlab data …``: inspect a dataset root, audit it, split it by log, draw label-fraction subsets.

Other rooms add commands to this group with one line: put ``register(data_app)`` in their own module
``planlab/cli/<module>.py`` and list that module in ``_EXTRA_COMMAND_MODULES`` below.
Library imports happen inside the commands so ``planlab`` starts fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from planlab.cli._common import console, parse_float_list, parse_int_list, print_json

data_app = typer.Typer(
    name="data",
    help="Datasets in OpenScene/NAVSIM format: info, check, split, subsets, manifest.",
    no_args_is_help=True,
)

# Modules (under planlab.cli) that add commands to `planlab data`; each exposes register(data_app).
_EXTRA_COMMAND_MODULES: list[str] = ["viz", "world"]


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _scene_filter(history: int, future: int, frame_interval: int, has_route: bool):  # noqa: ANN202
    from planlab.errors import ConfigError
    from planlab.scene import SceneFilter

    try:
        return SceneFilter(
            num_history_frames=history,
            num_future_frames=future,
            frame_interval=frame_interval if frame_interval > 0 else None,
            has_route=has_route,
        )
    except ValueError as exc:
        raise ConfigError(f"scene filter: {exc}") from None


_HISTORY = typer.Option(4, "--history", help="History frames per scene (current frame included).")
_FUTURE = typer.Option(10, "--future", help="Future frames per scene.")
_INTERVAL = typer.Option(1, "--frame-interval", help="Window stride in frames (0 = non-overlapping windows).")
_ROUTE = typer.Option(True, "--has-route/--any-route", help="Drop scenes whose current frame has no route.")


@data_app.command("info")
def info(
    root: Path = typer.Argument(..., help="Dataset root (holds navsim_logs/, sensor_blobs/, maps/)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    history: int = _HISTORY,
    future: int = _FUTURE,
    frame_interval: int = _INTERVAL,
    has_route: bool = _ROUTE,
) -> None:
    """Per split: logs, frames, scenes, sensor files, bytes; and the maps found."""
    from planlab.data.info import dataset_info

    report = dataset_info(root, _scene_filter(history, future, frame_interval, has_route))
    if as_json:
        print_json(report)
        return
    from rich.table import Table

    f = report["scene_filter"]
    console.print(
        f"[bold]{report['root']}[/]  scenes: {f['num_history_frames']}+{f['num_future_frames']} frames, "
        f"interval {f['frame_interval'] or 'non-overlapping'}, has_route {f['has_route']}"
    )
    table = Table("split", "logs", "frames", "scenes", "cameras", "lidar", "locations", "bytes")
    for s in report["splits"]:
        counts = s["sensors"]["counts"]
        cams = sum(v for k, v in counts.items() if k.startswith("CAM_"))
        table.add_row(
            s["split"],
            str(s["logs"]),
            str(s["frames"]),
            str(s["scenes"]),
            str(cams) if s["sensors"]["present"] else "–",
            str(counts["MergedPointCloud"]) if s["sensors"]["present"] else "–",
            ", ".join(s["map_locations"]),
            _human_bytes(s["log_bytes"] + s["sensors"]["bytes"]),
        )
    console.print(table)
    maps = report["maps"]
    if maps["root"] is None:
        console.print("maps: none found (<root>/maps or NUPLAN_MAPS_ROOT)")
    else:
        found = [
            f"{loc} {m['version']}" + ("" if m["found"] else " (missing)")
            for loc, m in maps["locations"].items()
        ]
        text = "; ".join(found) or maps.get("error", "no locations")
        console.print(f"maps: {maps['root']}: {text}", markup=False, soft_wrap=True)
    console.print(f"total: {_human_bytes(report['bytes'])}")


@data_app.command("check")
def check(
    root: Path = typer.Argument(..., help="Dataset root."),
    split: str = typer.Option(
        None, "--split", help="Split directory under navsim_logs (default: the only one)."
    ),
    decode: bool = typer.Option(
        False, "--decode", help="Also decode every JPEG and strictly parse every PCD."
    ),
    sensors: bool = typer.Option(True, "--sensors/--no-sensors", help="Check that every sensor blob exists."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Audit a split: readable, conformant logs; unique tokens; every sensor blob; maps of its locations."""
    from planlab.data.check import check_dataset
    from planlab.errors import DataError

    report = check_dataset(root, split, sensors=sensors, decode=decode)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(
            f"split {report.split}: {report.logs} logs, {report.frames} frames, "
            f"{report.blobs_checked} blobs checked, {report.blobs_decoded} decoded"
        )
        for note in report.notes:
            console.print(f"note: {note}", markup=False, soft_wrap=True)
        for problem in report.problems:
            console.print(f"problem: {problem}", markup=False, soft_wrap=True)
    if not report.ok:
        more = "+" if report.truncated else ""
        raise DataError(f"check failed: {len(report.problems)}{more} problem(s); first: {report.problems[0]}")
    if not as_json:
        console.print("ok")


@data_app.command("split")
def split_cmd(
    root: Path = typer.Argument(..., help="Dataset root."),
    data_split: str = typer.Option(
        None, "--data-split", help="Split directory to divide (default: the only one)."
    ),
    fractions: str = typer.Option(
        "train=0.8,val=0.1,test=0.1", "--fractions", help="part=fraction,… summing to 1."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the by-log assignment."),
    out: Path = typer.Option(None, "--out", help="Output JSON (default <root>/splits.json)."),
) -> None:
    """Divide a split's logs into parts (train/val/test by default), deterministically per seed."""
    from planlab.data.layout import DatasetLayout, list_log_files
    from planlab.data.manifest import build_manifest
    from planlab.data.splits import make_log_split
    from planlab.errors import ConfigError

    parts: dict[str, float] = {}
    for item in fractions.split(","):
        name, sep, value = item.partition("=")
        try:
            parts[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--fractions: expected part=fraction, got {item!r}") from None
        if not sep:
            raise ConfigError(f"--fractions: expected part=fraction, got {item!r}")
    layout = DatasetLayout.resolve(root, data_split)
    manifest = build_manifest(layout.split or "", list_log_files(layout.log_dir))
    result = make_log_split(manifest.log_names, parts, seed, layout.split or "", manifest.hash)
    path = result.write(out if out is not None else Path(root) / "splits.json")
    for name, logs in result.parts.items():
        console.print(f"{name}: {len(logs)} logs")
    console.print(f"wrote {path} (sha256 {result.sha256[:16]}…, manifest {manifest.hash[:16]}…)")


@data_app.command("subsets")
def subsets(
    root: Path = typer.Argument(..., help="Dataset root."),
    split: str = typer.Option("train", "--split", help="A split directory, or a part of <root>/splits.json."),
    fractions: str = typer.Option(
        "0.01,0.05,0.1,0.25,0.5,1.0", "--fractions", help="Comma-separated in (0, 1]."
    ),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated subset seeds."),
    out: Path = typer.Option(None, "--out", help="Output directory (default <root>/subsets/<split>)."),
    splits_file: Path = typer.Option(
        None, "--splits-file", help="By-log split file (default <root>/splits.json)."
    ),
    history: int = _HISTORY,
    future: int = _FUTURE,
    frame_interval: int = _INTERVAL,
    has_route: bool = _ROUTE,
) -> None:
    """Write nested label-fraction subsets (token lists with sha256) for each seed; print a table."""
    from rich.table import Table

    from planlab.data.subsets import write_subsets
    from planlab.errors import ConfigError

    try:
        fracs = parse_float_list(fractions) or []
        seed_list = parse_int_list(seeds) or []
    except ValueError:
        raise ConfigError(
            f"--fractions/--seeds: not a comma-separated number list ({fractions!r}, {seeds!r})"
        ) from None
    written = write_subsets(
        root,
        split,
        fracs,
        seed_list,
        out,
        splits_file,
        _scene_filter(history, future, frame_interval, has_route),
    )
    table = Table("seed", "fraction", "tokens", "of", "sha256", "file")
    for subset, path in written:
        table.add_row(
            str(subset.seed),
            f"{subset.fraction:g}",
            str(len(subset.tokens)),
            str(subset.num_available),
            subset.sha256[:16],
            str(path),
        )
    console.print(table)
    if written:
        console.print(f"manifest of split {split}: {written[0][0].manifest_hash}")


@data_app.command("manifest")
def manifest(
    root: Path = typer.Argument(..., help="Dataset root."),
    split: str = typer.Option(
        None, "--split", help="Split directory under navsim_logs (default: the only one)."
    ),
    out: Path = typer.Option(None, "--out", help="Also write the manifest JSON here."),
) -> None:
    """Print the manifest hash of a split (sha256 over its logs' names, contents and token counts)."""
    from planlab.data.layout import DatasetLayout, list_log_files
    from planlab.data.manifest import build_manifest

    layout = DatasetLayout.resolve(root, split)
    m = build_manifest(layout.split or "", list_log_files(layout.log_dir))
    if out is not None:
        m.write(out)
    console.print(f"{m.name}: {len(m.logs)} logs, {m.num_tokens} tokens, manifest {m.hash}")


@data_app.command("tokens")
def tokens(
    root: Path = typer.Argument(..., help="Dataset root."),
    split: str = typer.Option(
        None, "--split", help="Split directory under navsim_logs (default: the only one)."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Print at most this many tokens."),
    every: int = typer.Option(1, "--every", min=1, help="Print every N-th token (spread over the logs)."),
    history: int = _HISTORY,
    future: int = _FUTURE,
    frame_interval: int = _INTERVAL,
) -> None:
    """Print scene tokens of a split, one per line (in the loader's order), e.g. to pick scenes for `data viz`."""
    from planlab.data.loader import SceneLoader

    loader = SceneLoader(root, split, _scene_filter(history, future, frame_interval, True), load_maps=False)
    chosen = loader.tokens[::every]
    for token in chosen[:limit] if limit else chosen:
        typer.echo(token)


def register(app: typer.Typer) -> None:
    """Attach the ``data`` group (and the commands other rooms contribute to it) to the root app."""
    import importlib

    for module_name in _EXTRA_COMMAND_MODULES:
        importlib.import_module(f"planlab.cli.{module_name}").register(data_app)
    app.add_typer(data_app, name="data")
