"""``planlab data generate``: presets and overrides, split by log, byte-identical output for a seed (also with
parallel workers), clear one-line errors, and a dataset that never looks complete while it is half written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from planlab.cli.main import main as cli_main
from planlab.errors import ConfigError, DataError
from planlab.world.config import PRESETS_DIR, load_world_config, preset_names
from planlab.world.generate import MARKER, SUMMARY, generate_dataset, plan_logs


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_presets_load_and_start_with_their_command():
    assert set(preset_names()) >= {"tiny", "mini", "small", "medium"}
    for name in preset_names():
        text = (PRESETS_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# planlab data generate --out "), name
        assert f"--preset {name}" in text.splitlines()[0]
        cfg = load_world_config(name)
        assert cfg.name == name and cfg.frames >= 14
    small = load_world_config("small")
    scenes = small.logs * (small.frames - 13)
    assert scenes >= 3000, "several thousand scenes for label-efficiency studies"


def test_overrides_and_errors():
    cfg = load_world_config(
        "mini", ["logs=3", "sensors.width=1920", "sensors.height=1080", "scenarios={merge: 1}"]
    )
    assert cfg.logs == 3 and cfg.sensors.width == 1920 and cfg.scenarios == {"merge": 1.0}
    with pytest.raises(ConfigError, match="bogus"):
        load_world_config("mini", ["bogus=1"])
    with pytest.raises(ConfigError, match="scenarios"):
        load_world_config("mini", ["scenarios={flying: 1}"])
    with pytest.raises(ConfigError, match="frames"):
        load_world_config("mini", ["frames=5"])
    with pytest.raises(ConfigError, match="unknown world preset"):
        load_world_config("enormous")


def test_split_by_log_is_deterministic_and_complete():
    cfg = load_world_config("small")
    a, b = plan_logs(cfg, 0), plan_logs(cfg, 0)
    assert a == b
    splits = {p.split for p in a}
    assert splits == {"train", "val", "test"}
    assert sum(p.split == "train" for p in a) == round(0.7 * cfg.logs)
    assert plan_logs(cfg, 1) != a
    assert len({p.name for p in a}) == cfg.logs


@pytest.mark.slow
def test_same_seed_same_bytes_with_parallel_workers(tiny_dataset: Path, tmp_path: Path):
    cfg = load_world_config("tiny")
    again = tmp_path / "again"
    generate_dataset(again, cfg, seed=0, workers=2)
    assert _tree(again) == _tree(tiny_dataset)


@pytest.mark.slow
def test_different_seed_different_data(tiny_dataset: Path, tmp_path: Path):
    cfg = load_world_config("tiny", ["sensors.enabled=false"])
    other = tmp_path / "other"
    generate_dataset(other, cfg, seed=1)
    a, b = _tree(tiny_dataset), _tree(other)
    pickles_a = {k: v for k, v in a.items() if k.endswith(".pkl")}
    pickles_b = {k: v for k, v in b.items() if k.endswith(".pkl")}
    assert set(pickles_a.values()).isdisjoint(pickles_b.values())
    maps_a = {k: v for k, v in a.items() if k.endswith(".gpkg")}
    maps_b = {k: v for k, v in b.items() if k.endswith(".gpkg")}
    assert set(maps_a.values()).isdisjoint(maps_b.values())


def test_existing_dataset_is_not_overwritten(tiny_dataset: Path, tmp_path: Path, capsys):
    with pytest.raises(DataError, match="--overwrite"):
        generate_dataset(tiny_dataset, load_world_config("tiny"), seed=0)
    # through the CLI: one line on stderr, non-zero exit, no traceback
    with pytest.raises(SystemExit) as exc:
        cli_main(["data", "generate", "--out", str(tiny_dataset), "--preset", "tiny"])
    assert exc.value.code != 0
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err


def test_cli_rejects_bad_input(tmp_path: Path, capsys):
    for argv, needle in (
        (["--preset", "enormous"], "unknown world preset"),
        (["--logs", "0"], "--logs"),
        (["--preset", "tiny", "sensors.width=-3"], "sensors.width"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli_main(["data", "generate", "--out", str(tmp_path / "x"), *argv])
        assert exc.value.code != 0
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err
        assert not (tmp_path / "x" / SUMMARY).exists()


@pytest.mark.slow
def test_cli_generates_and_summarises(tmp_path: Path, capsys):
    out = tmp_path / "ds"
    cli_main_args = [
        "data",
        "generate",
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--logs",
        "1",
        "--no-sensors",
        "--check",
        "frames=16",
    ]
    with pytest.raises(SystemExit) as exc:
        cli_main(cli_main_args)
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "checks: 1/1 logs clean" in text
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["logs"] == 1 and summary["frames"] == 16 and summary["scenes"] == 3
    assert not (out / MARKER).exists()
    assert not (out / "sensor_blobs").exists()
