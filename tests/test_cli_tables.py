"""`planlab eval table` and `planlab data tokens`: small front-door commands used by the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from planlab.errors import DataError
from planlab.evaluation.table import render_markdown, summary_rows


def _summary(tmp_path, name, metric="pdms", score=0.5, agent="a"):
    d = tmp_path / name
    d.mkdir()
    means = {
        "no_at_fault_collisions": 1.0,
        "drivable_area_compliance": 0.75,
        "ego_progress": score,
        "score": score,
    }
    (d / "summary.json").write_text(
        json.dumps(
            {
                "metric": metric,
                "means": means,
                "num_valid": 3,
                "num_scenes": 4,
                "score": score,
                "agent": agent,
                "split": "test",
            }
        )
    )
    return d


def test_table_rows_and_markdown(tmp_path):
    a = _summary(tmp_path, "a", score=0.5, agent="cv")
    b = _summary(tmp_path, "b", score=0.9, agent="human")
    rows = summary_rows([a, b])
    md = render_markdown(rows)
    assert "| cv | 100.0 | 75.0 | 50.0 | – |" in md
    assert "**90.0**" in md and "3/4" in md


def test_table_refuses_mixed_metrics_and_missing(tmp_path):
    a = _summary(tmp_path, "a")
    b = _summary(tmp_path, "b", metric="epdms")
    with pytest.raises(DataError, match="different metrics"):
        summary_rows([a, b])
    with pytest.raises(DataError, match="no summary.json"):
        summary_rows([tmp_path / "missing"])


def test_cli_table_and_tokens(tmp_path, calib_root):
    a = _summary(tmp_path, "a")
    out = tmp_path / "t.md"
    r = subprocess.run(
        [sys.executable, "-m", "planlab.cli.main", "eval", "table", str(a), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith("| agent |")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "planlab.cli.main",
            "data",
            "tokens",
            str(calib_root),
            "--split",
            "calib",
            "--limit",
            "3",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3f7ab572500ee6d5", "1eb6316b5c5ab172", "db943659b6c760ec"]
    r = subprocess.run(
        [sys.executable, "-m", "planlab.cli.main", "eval", "table", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr and "no summary.json" in r.stderr
