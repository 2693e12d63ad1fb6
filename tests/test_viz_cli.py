"""``planlab data viz`` as a user runs it: a PNG for a calibration token; bad input as one line, no file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image


def _planlab(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("planlab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "planlab.cli.main"]
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([*cmd, "data", "viz", *args], capture_output=True, text=True, timeout=180, env=env)


def _one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr + res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.slow
def test_viz_writes_a_png_for_a_calibration_token(calib_root, tmp_path):
    out = tmp_path / "figs" / "scene.png"
    res = _planlab(str(calib_root), "--split", "calib", "--token", "f04ee12b6b32d799", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert str(out) in res.stdout
    img = Image.open(out)
    assert img.format == "PNG" and img.size == (1600, 600)
    # BEV only.
    res = _planlab(
        str(calib_root), "--split", "calib", "--token", "f04ee12b6b32d799", "--out", str(out), "--no-cameras"
    )
    assert res.returncode == 0, res.stderr
    assert Image.open(out).size == (700, 700)


@pytest.mark.slow
def test_viz_bad_input_is_one_line_and_writes_nothing(calib_root, tmp_path):
    out = tmp_path / "x.png"
    res = _planlab(str(calib_root), "--split", "calib", "--token", "0000000000000000", "--out", str(out))
    _one_line_error(res, "0000000000000000", "calib")
    # A real frame token that cannot be a 4+10 scene's current frame (frame 0 of its log).
    res = _planlab(str(calib_root), "--split", "calib", "--token", "d8d83b0ed7f00920", "--out", str(out))
    _one_line_error(res, "d8d83b0ed7f00920")
    res = _planlab(str(calib_root), "--split", "nope", "--token", "f04ee12b6b32d799", "--out", str(out))
    _one_line_error(res, "nope")
    res = _planlab(
        str(calib_root), "--split", "calib", "--token", "f04ee12b6b32d799", "--out", str(tmp_path / "x.jpg")
    )
    _one_line_error(res, "png")
    assert not any(tmp_path.iterdir())
