"""Scoring runs end to end on the calibration set: CSV format, determinism, shards, workers, bad input, CLI."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from planlab.agents.registry import build_agent
from planlab.data import SceneLoader
from planlab.evaluation.cache import MetricCache, MetricCacheEntry, build_cache
from planlab.evaluation.runner import (
    AgentFactory,
    evaluate_agent,
    evaluate_trajectory_file,
    merge_results,
    parse_shard,
    shard_logs,
)
from planlab.scene import SceneFilter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loader(calib_root: Path) -> SceneLoader:
    return SceneLoader(
        calib_root, "calib", SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1)
    )


@pytest.fixture(scope="module")
def cache_dir(loader: SceneLoader, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("metric_cache")
    report = build_cache(loader, root, workers=1, progress=False)
    assert len(report.built) == 42 and not report.failed
    return root


def _cv() -> AgentFactory:
    return AgentFactory(build_agent, ("constant_velocity",), {}, label="constant_velocity")


def test_csv_has_navsims_columns_and_closing_row(calib_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    result = evaluate_trajectory_file(calib_root / "trajectories" / "human.json", cache_dir, tmp_path)
    ours = (tmp_path / "pdm_scores.csv").read_text().splitlines()
    theirs = (calib_root / "expected" / "human.csv").read_text().splitlines()
    assert ours[0] == theirs[0]  # unnamed index column, identical column names and order
    assert len(ours) == len(theirs) == 44
    assert ours[-1].split(",")[:3] == ["42", "average", "True"]
    expected = {r["token"]: r for r in csv.DictReader(open(calib_root / "expected" / "human.csv"))}
    for row in csv.DictReader(open(tmp_path / "pdm_scores.csv")):
        for col in ("ego_progress", "score"):
            assert float(row[col]) == pytest.approx(float(expected[row["token"]][col]), abs=1e-6)
    assert result.summary["num_valid"] == 42
    assert json.loads((tmp_path / "summary.json").read_text())["score"] == pytest.approx(0.9018164255154411)


def test_same_inputs_give_byte_identical_csvs(calib_root: Path, cache_dir: Path, tmp_path: Path) -> None:
    traj = calib_root / "trajectories" / "stop.json"
    evaluate_trajectory_file(traj, cache_dir, tmp_path / "a")
    evaluate_trajectory_file(traj, cache_dir, tmp_path / "b")
    assert (tmp_path / "a" / "pdm_scores.csv").read_bytes() == (
        tmp_path / "b" / "pdm_scores.csv"
    ).read_bytes()


def test_agent_run_matches_navsim_and_is_reproducible(
    calib_root: Path, loader, cache_dir: Path, tmp_path: Path
) -> None:
    a = evaluate_agent(_cv(), loader, tmp_path / "a", cache_dir=cache_dir, progress=False)
    b = evaluate_agent(_cv(), loader, tmp_path / "b", cache_dir=cache_dir, progress=False)
    assert (tmp_path / "a" / "pdm_scores.csv").read_bytes() == (
        tmp_path / "b" / "pdm_scores.csv"
    ).read_bytes()
    assert [r.token for r in a.rows] == loader.tokens  # loader order
    expected = {
        r["token"]: r for r in csv.DictReader(open(calib_root / "expected" / "constant_velocity.csv"))
    }
    for r in b.rows:
        assert r.values["score"] == pytest.approx(float(expected[r.token]["score"]), abs=1e-6)


@pytest.mark.slow
def test_two_workers_equal_one(loader, cache_dir: Path, tmp_path: Path) -> None:
    evaluate_agent(_cv(), loader, tmp_path / "w1", cache_dir=cache_dir, workers=1, progress=False)
    evaluate_agent(_cv(), loader, tmp_path / "w2", cache_dir=cache_dir, workers=2, progress=False)
    assert (tmp_path / "w1" / "pdm_scores.csv").read_bytes() == (
        tmp_path / "w2" / "pdm_scores.csv"
    ).read_bytes()


@pytest.mark.slow
def test_cache_built_by_two_workers_equals_one(loader, cache_dir: Path, tmp_path: Path) -> None:
    report = build_cache(loader, tmp_path / "w2", workers=2, progress=False)
    assert len(report.built) == 42 and not report.failed
    one, two = MetricCache(cache_dir), MetricCache(tmp_path / "w2")
    assert one.order == two.order
    for token in one.tokens:
        a, b = one.load(token).to_arrays(), two.load(token).to_arrays()
        assert a.keys() == b.keys()
        for key in a:
            assert np.array_equal(a[key], b[key]), (token, key)
    # CPU accounting: the pool's workers are counted once each, this process on top
    assert 1 <= len(report.worker_cpu_seconds) <= 2 and os.getpid() not in report.worker_cpu_seconds
    assert report.cpu_seconds == pytest.approx(
        report.parent_cpu_seconds + sum(report.worker_cpu_seconds.values())
    )
    assert report.parent_cpu_seconds < report.critical_path_cpu_seconds < report.cpu_seconds


def test_cache_cpu_is_not_counted_twice_when_a_single_job_runs_in_process(loader, tmp_path: Path) -> None:
    report = build_cache(loader, tmp_path / "c", workers=2, tokens=loader.tokens[:1], progress=False)
    assert len(report.built) == 1
    assert report.worker_cpu_seconds == {}
    assert report.cpu_seconds == report.parent_cpu_seconds > 0


def test_two_shards_merged_equal_one_process(loader, cache_dir: Path, tmp_path: Path) -> None:
    full = evaluate_agent(_cv(), loader, tmp_path / "full", cache_dir=cache_dir, progress=False)
    s0 = evaluate_agent(_cv(), loader, tmp_path / "s0", cache_dir=cache_dir, shard=(0, 2), progress=False)
    s1 = evaluate_agent(_cv(), loader, tmp_path / "s1", cache_dir=cache_dir, shard=(1, 2), progress=False)
    # shards are disjoint sets of whole logs
    logs0 = {loader._refs[r.token].log_name for r in s0.rows}
    logs1 = {loader._refs[r.token].log_name for r in s1.rows}
    assert logs0 and logs1 and not logs0 & logs1
    assert len(s0.rows) + len(s1.rows) == len(full.rows)
    merge_results([tmp_path / "s1", tmp_path / "s0"], tmp_path / "merged")
    assert (tmp_path / "merged" / "pdm_scores.csv").read_bytes() == (
        tmp_path / "full" / "pdm_scores.csv"
    ).read_bytes()


def test_shard_parsing_and_assignment() -> None:
    assert parse_shard("1/4") == (1, 4)
    assert parse_shard(None) is None
    per_log = {"b": ["1"], "a": ["2"], "c": ["3"]}
    assert shard_logs(per_log, (0, 2)) == ["a", "c"]
    assert shard_logs(per_log, (1, 2)) == ["b"]
    for bad in ("2/2", "x", "1/0", "-1/3"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)


def test_bad_trajectories_are_invalid_rows_and_the_rest_is_scored(
    calib_root: Path, cache_dir: Path, tmp_path: Path
) -> None:
    data = json.loads((calib_root / "trajectories" / "human.json").read_text())
    tokens = list(data)
    data[tokens[0]][3][1] = float("nan")
    data[tokens[1]] = [[1.0, 2.0]] * 8  # (8, 2)
    data["ffffffffffffffff"] = data[tokens[2]]
    del data[tokens[3]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data).replace("NaN", "NaN"))
    result = evaluate_trajectory_file(path, cache_dir, tmp_path / "out")
    rows = {r.token: r for r in result.rows}
    assert not rows[tokens[0]].valid and "NaN" in rows[tokens[0]].reason
    assert not rows[tokens[1]].valid and "shape (8, 2)" in rows[tokens[1]].reason
    assert not rows["ffffffffffffffff"].valid and "unknown token" in rows["ffffffffffffffff"].reason
    assert not rows[tokens[3]].valid and "no trajectory" in rows[tokens[3]].reason
    assert result.summary["num_valid"] == 42 - 3 and result.summary["num_failed"] == 4
    failures = list(csv.DictReader(open(tmp_path / "out" / "failures.csv")))
    assert {f["token"] for f in failures} == {tokens[0], tokens[1], tokens[3], "ffffffffffffffff"}
    lines = (tmp_path / "out" / "pdm_scores.csv").read_text().splitlines()
    assert any(line.split(",")[1:3] == [tokens[0], "False"] and line.endswith(",,,,,,,") for line in lines)
    assert lines[-1].split(",")[2] == "False"  # closing row: valid = all rows valid


def test_corrupt_cache_entry_is_reported_by_path_then_rebuilt(
    loader, cache_dir: Path, tmp_path: Path, calib_root: Path
) -> None:
    cache_copy = tmp_path / "cache"
    shutil.copytree(cache_dir, cache_copy)
    cache = MetricCache(cache_copy)
    token = cache.tokens[5]
    path = cache.path_of(token)
    path.write_bytes(b"not an npz file")
    result = evaluate_trajectory_file(
        calib_root / "trajectories" / "human.json", cache_copy, tmp_path / "out"
    )
    row = next(r for r in result.rows if r.token == token)
    assert not row.valid and str(path) in row.reason and "unreadable" in row.reason
    assert sum(r.valid for r in result.rows) == 41
    # an outdated entry (other scorer version) is detected as well
    other = cache.tokens[6]
    arrays = dict(np.load(cache.path_of(other)))
    meta = json.loads(bytes(arrays["meta"]).decode())
    meta["scorer_version"] = "old"
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(cache.path_of(other), "wb") as fh:
        np.savez(fh, **arrays)
    with pytest.raises(Exception, match="rebuild"):
        MetricCacheEntry.load(cache.path_of(other))
    report = build_cache(loader, cache_copy, progress=False)
    assert sorted(report.built) == sorted([token, other]) and len(report.reused) == 40
    MetricCacheEntry.load(path)  # readable again


def _cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "planlab.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path: Path, cache_dir: Path, calib_root: Path) -> None:
    msg = _one_line_error(
        _cli(
            "eval",
            "score",
            "--trajectories",
            str(tmp_path / "nope.json"),
            "--cache",
            str(cache_dir),
            "--out",
            str(tmp_path),
        )
    )
    assert "nope.json" in msg and "not found" in msg
    (tmp_path / "bad.json").write_text("[1, 2")
    msg = _one_line_error(
        _cli(
            "eval",
            "score",
            "--trajectories",
            str(tmp_path / "bad.json"),
            "--cache",
            str(cache_dir),
            "--out",
            str(tmp_path),
        )
    )
    assert "bad.json" in msg
    msg = _one_line_error(
        _cli(
            "eval",
            "score",
            "--trajectories",
            str(calib_root / "trajectories" / "stop.json"),
            "--cache",
            str(tmp_path / "nocache"),
            "--out",
            str(tmp_path),
        )
    )
    assert "index" in msg
    data = ["--data", str(calib_root), "--split", "calib", "--out", str(tmp_path / "o")]
    assert "--agent" in _one_line_error(_cli("eval", "run", *data))
    assert "valid agents" in _one_line_error(_cli("eval", "run", "--agent", "no_such_agent", *data))
    assert "shard" in _one_line_error(
        _cli("eval", "run", "--agent", "constant_velocity", "--shard", "3/2", *data)
    )
    assert "metric" in _one_line_error(
        _cli("eval", "run", "--agent", "constant_velocity", "--metric", "foo", *data)
    )
    assert "split" in _one_line_error(
        _cli("eval", "cache", "--data", str(calib_root), "--split", "nosplit", "--out", str(tmp_path / "c"))
    )


def test_cli_score_and_agents_list(tmp_path: Path, cache_dir: Path, calib_root: Path) -> None:
    proc = _cli(
        "eval",
        "score",
        "--trajectories",
        str(calib_root / "trajectories" / "constant_velocity.json"),
        "--cache",
        str(cache_dir),
        "--out",
        str(tmp_path),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["num_valid"] == 42 and summary["score"] == pytest.approx(0.7217808746135168, abs=1e-9)
    proc = _cli("agents", "list")
    assert proc.returncode == 0
    for name in ("constant_velocity", "log_replay", "pdm_closed"):
        assert name in proc.stdout
    listed = json.loads(_cli("agents", "list", "--json").stdout)
    assert {"name": "log_replay", "trainable": False, "privileged": True}.items() <= next(
        a for a in listed if a["name"] == "log_replay"
    ).items()


def test_eval_cli_does_not_import_torch() -> None:
    code = "import sys, planlab.cli.main; print('torch' in sys.modules, 'pandas' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


@pytest.mark.slow
def test_epdms_run_on_the_calibration_set(loader, tmp_path: Path) -> None:
    factory = AgentFactory(build_agent, ("log_replay",), {}, label="log_replay")
    result = evaluate_agent(
        factory, loader, tmp_path / "out", metric="epdms", cache_dir=tmp_path / "cache", progress=False
    )
    header = (tmp_path / "out" / "pdm_scores.csv").read_text().splitlines()[0].split(",")
    assert header[1:] == [
        "token",
        "valid",
        "no_at_fault_collisions",
        "drivable_area_compliance",
        "driving_direction_compliance",
        "traffic_light_compliance",
        "ego_progress",
        "time_to_collision_within_bound",
        "lane_keeping",
        "history_comfort",
        "two_frame_extended_comfort",
        "score",
    ]
    assert (tmp_path / "out" / "pdm_scores.csv").read_text().splitlines()[-1].split(",")[
        1
    ] == "average_all_frames"
    assert result.summary["num_valid"] == 42
    first_of_log = {}
    for r in result.rows:
        first_of_log.setdefault(r.log_name, r.token)
        ec = r.values["two_frame_extended_comfort"]
        assert np.isnan(ec) == (first_of_log[r.log_name] == r.token)  # no predecessor → EC NaN
        # the expert never runs a red light, leaves the road or drives against traffic
        assert r.values["traffic_light_compliance"] == r.values["drivable_area_compliance"] == 1.0
    assert result.summary["score"] > 0.85
    # the same cache also serves PDMS and reproduces NAVSIM v1.1
    traj = tmp_path / "h.json"
    shutil.copy(ROOT / "tests" / "data" / "navsim_calibration" / "trajectories" / "human.json", traj)
    v11 = evaluate_trajectory_file(traj, tmp_path / "cache", tmp_path / "v11")
    assert v11.summary["score"] == pytest.approx(0.9018164255154411, abs=1e-9)
