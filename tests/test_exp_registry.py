"""The SQLite index: concurrent harvesters lose and duplicate nothing; kill -9 during reindex is harmless."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from planlab.experiments import registry, rundir
from planlab.experiments.harvest import V1_SUBSCORES

SCENES = 20


def score_of(i: int, k: int) -> float:
    return round(((i * 7 + k * 3) % 100) / 100.0, 2)


def make_run(root: Path, i: int, *, with_results: bool = True) -> Path:
    """A run dir as the launcher and an evaluation job leave it (files only; no training needed here)."""
    exp_id = f"r{i:04d}"
    run = root / exp_id
    (run / "eval" / "test").mkdir(parents=True)
    spec = {"exp_id": exp_id, "template": "ego_mlp", "description": f"run {i}", "overrides": {"optim.lr": 1e-4 * (i % 3 + 1)},
            "tags": ["bulk", f"mod{i % 5}"], "notes": "", "cluster": "local", "seed": i % 4, "sweep": None,
            "created": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}+00:00"}  # fmt: skip
    (run / "experiment.yaml").write_text(yaml.safe_dump(spec))
    cfg = {
        "train": {"optim": {"lr": 1e-4 * (i % 3 + 1)}, "trainer": {"seed": i % 4}},
        "eval": {"split": "test"},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "status.json").write_text(json.dumps({"state": "completed", "jobs": {"train": str(1000 + i)},
                                                 "history": [{"state": "completed", "time": "t"}]}))  # fmt: skip
    (run / "meta.json").write_text(json.dumps({"git": {"sha": "abc", "dirty": False}, "wall_time_s": 1.0}))
    if with_results:
        lines = [",token,valid," + ",".join(V1_SUBSCORES) + ",score"]
        for k in range(SCENES):
            s = score_of(i, k)
            lines.append(f"{k},tok{k:03d},True,1.0,1.0,{s},1.0,1.0,1.0,{s}")
        (run / "eval" / "test" / "pdm_scores.csv").write_text("\n".join(lines) + "\n")
    return run


def make_runs(root: Path, start: int, stop: int) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    return [make_run(root, i).name for i in range(start, stop)]


def test_harvest_list_filters_and_sort(tmp_path):
    make_runs(tmp_path, 0, 12)
    make_run(tmp_path, 99, with_results=False)
    recs = registry.harvest(tmp_path, None)
    assert len(recs) == 13
    rows = registry.list_experiments(tmp_path, tags=["mod1"], sort="exp_id")
    assert [r["exp_id"] for r in rows] == ["r0001", "r0006", "r0011"]
    rows = registry.list_experiments(tmp_path, sort="score", descending=True)
    scores = [r["primary"]["score"] for r in rows if r["primary"]]
    assert scores == sorted(scores, reverse=True) and rows[-1]["exp_id"] == "r0099"
    assert rows[-1]["primary"] is None  # "no results", not a crash
    assert [r["exp_id"] for r in registry.list_experiments(tmp_path, text="run 1")] == [
        "r0001",
        "r0010",
        "r0011",
    ]
    row = registry.get_experiment(tmp_path, "r0003")
    assert row["primary"]["n_scenarios"] == SCENES and row["git_sha"] == "abc"
    assert registry.scene_scores(tmp_path, "r0003", "test")["tok005"] == score_of(3, 5)
    # sync notices new, changed and removed run dirs without a full rebuild
    make_run(tmp_path, 50)
    (tmp_path / "r0002" / "status.json").write_text(json.dumps({"state": "failed", "reason": "boom"}))
    import shutil

    shutil.rmtree(tmp_path / "r0004")
    assert registry.sync(tmp_path) == 2
    ids = {r["exp_id"]: r for r in registry.list_experiments(tmp_path)}
    assert "r0050" in ids and "r0004" not in ids and ids["r0002"]["status"] == "failed"


def test_corrupt_run_dir_does_not_block_the_others(tmp_path):
    make_runs(tmp_path, 0, 3)
    (tmp_path / "r0001" / "status.json").write_text("{not json")
    recs = {r.exp["exp_id"]: r for r in registry.reindex(tmp_path)}
    assert "status.json: not readable JSON" in recs["r0001"].exp["error"]
    assert recs["r0000"].exp["error"] is None and registry.counts(tmp_path)["experiments"] == 3


_HARVESTER = textwrap.dedent(
    """
    import random, sys
    from planlab.experiments import registry
    root, seed = sys.argv[1], int(sys.argv[2])
    ids = [f"r{i:04d}" for i in range(500)]
    random.Random(seed).shuffle(ids)
    registry.harvest(root, ids, batch=25)
    """
)


@pytest.mark.slow
def test_eight_concurrent_harvesters_lose_and_duplicate_nothing(tmp_path):
    make_runs(tmp_path, 0, 500)
    procs = [
        subprocess.Popen([sys.executable, "-c", _HARVESTER, str(tmp_path), str(seed)]) for seed in range(8)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0
    c = registry.counts(tmp_path)
    assert c == {"experiments": 500, "tags": 1000, "results": 500, "scenes": 500 * SCENES}
    conn = sqlite3.connect(registry.index_path(tmp_path))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        dup = conn.execute(
            "SELECT exp_id, split, token, COUNT(*) c FROM scenes GROUP BY 1, 2, 3 HAVING c > 1"
        ).fetchall()
        assert dup == []
        for exp_id, score in conn.execute("SELECT exp_id, score FROM results"):
            i = int(exp_id[1:])
            assert score == pytest.approx(sum(score_of(i, k) for k in range(SCENES)) / SCENES)
    finally:
        conn.close()


_REINDEXER = textwrap.dedent(
    """
    import sys
    from planlab.experiments import registry
    registry.reindex(sys.argv[1])
    """
)


def _check_db(root: Path) -> int:
    conn = sqlite3.connect(registry.index_path(root))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = conn.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
        m = conn.execute("SELECT COUNT(*) FROM scenes").fetchone()[0]
        assert m == n * SCENES  # never a half-written experiment
        return n
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_during_reindex_leaves_old_or_new_index(tmp_path):
    make_runs(tmp_path, 0, 300)
    registry.reindex(tmp_path)
    assert _check_db(tmp_path) == 300
    make_runs(tmp_path, 300, 400)
    tmp_glob = f".{rundir.INDEX_NAME}.tmp-*"
    killed_mid_build = 0
    for delay in (0.0, 0.2, 0.5, 1.0, None):
        p = subprocess.Popen([sys.executable, "-c", _REINDEXER, str(tmp_path)])
        t0 = time.monotonic()
        if delay is None:  # kill the moment the temporary database appears
            while not list(tmp_path.glob(tmp_glob)) and p.poll() is None and time.monotonic() - t0 < 60:
                time.sleep(0.005)
        else:
            time.sleep(delay)
        if list(tmp_path.glob(tmp_glob)):
            killed_mid_build += 1
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert _check_db(tmp_path) in (300, 400)  # the old index or the new one, never a broken one
    assert killed_mid_build >= 1, "no kill landed while the new index was being built"
    registry.reindex(tmp_path)
    assert _check_db(tmp_path) == 400
    assert not list(tmp_path.glob(tmp_glob))  # leftovers of the killed builds are gone
