"""``planlab data …`` as a user runs it (subprocess): good output, and bad input as one line, exit != 0."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from planlab.data.subsets import load_subset


def _planlab(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("planlab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "planlab.cli.main"]
    full_env = dict(os.environ, COLUMNS="200", **(env or {}))
    return subprocess.run([*cmd, "data", *args], capture_output=True, text=True, timeout=120, env=full_env)


def _assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode != 0, res.stdout
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def calib_copy(calib_root, tmp_path) -> Path:
    root = tmp_path / "calib_copy"
    shutil.copytree(calib_root / "navsim_logs", root / "navsim_logs")
    shutil.copytree(calib_root / "sensor_blobs", root / "sensor_blobs")
    return root


def test_info_json_on_calibration(calib_root):
    res = _planlab("info", str(calib_root), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    (split,) = report["splits"]
    assert (split["split"], split["logs"], split["frames"], split["scenes"]) == ("calib", 5, 107, 42)
    assert (
        split["sensors"]["counts"]["CAM_F0"] == 107 and split["sensors"]["counts"]["MergedPointCloud"] == 107
    )
    assert split["map_locations"] == ["us-pa-pittsburgh-hazelwood"]
    assert report["maps"]["locations"]["us-pa-pittsburgh-hazelwood"] == {
        "version": "9.17.1937",
        "found": True,
        "bytes": (calib_root / "maps/us-pa-pittsburgh-hazelwood/9.17.1937/map.gpkg").stat().st_size,
    }
    table = _planlab("info", str(calib_root))
    assert table.returncode == 0 and "calib" in table.stdout and "42" in table.stdout


def test_info_missing_root(tmp_path):
    _assert_one_line_error(_planlab("info", str(tmp_path / "nope")), str(tmp_path / "nope"), "not found")


def test_truncated_pickle(calib_copy):
    log = calib_copy / "navsim_logs" / "calib" / "calib_03_right_turn_green.pkl"
    log.write_bytes(log.read_bytes()[:5000])
    _assert_one_line_error(_planlab("info", str(calib_copy)), str(log), "truncated")


def test_unsafe_pickle_is_refused_and_not_run(calib_copy, tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    log = calib_copy / "navsim_logs" / "calib" / "calib_02_follow_lead.pkl"
    log.write_bytes(pickle.dumps([Evil()]))
    line = _assert_one_line_error(_planlab("check", str(calib_copy), "--split", "calib"), str(log), "system")
    assert "refused" in line
    assert not marker.exists()


def test_missing_sensor_blob(calib_copy):
    blob = calib_copy / "sensor_blobs/calib/calib_04_red_light_stop/CAM_L1/92c3e9231a63f3d3.jpg"
    blob.unlink()
    res = _planlab("check", str(calib_copy), "--split", "calib")
    _assert_one_line_error(res, str(blob), "92c3e9231a63f3d3")
    assert "problem:" in res.stdout and str(blob) in res.stdout
    ok = _planlab("check", str(calib_copy), "--no-sensors")
    assert ok.returncode == 0 and "ok" in ok.stdout


def test_bad_pcd_found_by_decode(calib_copy):
    pcd = calib_copy / "sensor_blobs/calib/calib_01_scurve_free/MergedPointCloud/db943659b6c760ec.pcd"
    pcd.write_bytes(pcd.read_bytes().replace(b"VIEWPOINT 0 0 0 1 0 0 0", b"VIEWPOINT 0 0 0 1.0 0 0 0"))
    assert _planlab("check", str(calib_copy)).returncode == 0  # present: fine without --decode
    _assert_one_line_error(
        _planlab("check", str(calib_copy), "--decode"), str(pcd), "VIEWPOINT", "db943659b6c760ec"
    )


def test_unknown_split_and_bad_fractions(calib_copy):
    _assert_one_line_error(_planlab("subsets", str(calib_copy), "--split", "train"), "train", "calib")
    _assert_one_line_error(
        _planlab("subsets", str(calib_copy), "--split", "calib", "--fractions", "0.5,2"), "2"
    )
    _assert_one_line_error(
        _planlab("subsets", str(calib_copy), "--split", "calib", "--seeds", "a"), "--seeds"
    )


def test_split_then_subsets(calib_copy):
    res = _planlab("split", str(calib_copy), "--fractions", "train=0.6,val=0.2,test=0.2", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert (calib_copy / "splits.json").is_file() and "train: 3 logs" in res.stdout
    res = _planlab(
        "subsets", str(calib_copy), "--split", "train", "--fractions", "0.1,0.5,1", "--seeds", "0,1"
    )
    assert res.returncode == 0, res.stderr
    files = sorted((calib_copy / "subsets" / "train").glob("*.json"))
    assert len(files) == 6
    subsets = [load_subset(f) for f in files]
    assert {s.seed for s in subsets} == {0, 1}
    for s in subsets:
        assert s.sha256[:16] in res.stdout
    manifest = _planlab("manifest", str(calib_copy))
    assert manifest.returncode == 0 and "5 logs, 107 tokens" in manifest.stdout
