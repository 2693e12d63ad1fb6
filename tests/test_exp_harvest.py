"""Harvesting score CSVs: NAVSIM v1.1 (real files from the calibration set), v2 one-stage and two-stage."""

from __future__ import annotations

import csv
import math
import shutil

import pytest

from planlab.errors import DataError
from planlab.experiments.harvest import (
    V1_SUBSCORES,
    V2_SUBSCORES,
    harvest_run,
    import_csv,
    read_score_csv,
)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("family", ["human", "constant_velocity", "offroad_swerve", "stop"])
def test_navsim_v11_csv_from_the_calibration_set(calib_root, family):
    path = calib_root / "expected" / f"{family}.csv"
    res = read_score_csv(path, "calib")
    rows = _rows(path)
    avg = next(r for r in rows if r["token"] == "average")
    scenes = [r for r in rows if r["token"] != "average"]
    assert res.format == "navsim-v1.1" and res.metric == "pdms"
    assert res.n_scenarios == 42 == len(scenes) and res.n_valid == 42
    assert res.score == float(avg["score"])  # NAVSIM's own number, bit for bit
    for name in V1_SUBSCORES:
        assert res.subscores[name] == float(avg[name])
    by_token = {s.token: s for s in res.scenes}
    for r in scenes:
        assert by_token[r["token"]].score == float(r["score"])
        assert by_token[r["token"]].subscores["ego_progress"] == float(r["ego_progress"])
    # the average row is the mean of the per-scene scores (what a missing summary row falls back to)
    assert res.score == pytest.approx(sum(float(r["score"]) for r in scenes) / 42, abs=1e-12)


def _write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_v11_failed_scenes_and_missing_summary_row(tmp_path):
    header = ["", "token", "valid", *V1_SUBSCORES, "score"]
    rows = [
        [0, "a", "True", 1, 1, 0.5, 1, 1, 1, 0.75],
        [1, "b", "False", "", "", "", "", "", "", ""],
        [2, "c", "True", 1, 0, 1, 1, 1, 1, 0.0],
    ]
    _write(tmp_path / "x.csv", header, rows)
    res = read_score_csv(tmp_path / "x.csv")
    assert res.n_scenarios == 3 and res.n_valid == 2 and res.n_failed == 1
    assert res.score == pytest.approx(0.375)  # failed scenes excluded, as NAVSIM's NaN-skipping mean
    assert res.subscores["drivable_area_compliance"] == pytest.approx(0.5)
    assert math.isnan(next(s for s in res.scenes if s.token == "b").score)


def test_v2_one_stage(tmp_path):
    header = ["", "token", "valid", *V2_SUBSCORES, "score"]
    rows = [
        [0, "a", True, 1, 1, 1, 1, 0.9, 1, 1, 1, 1, 0.95],
        [1, "b", True, 1, 1, 1, 1, 0.5, 1, 1, 1, "", 0.8],
        [2, "average_all_frames", True, 1, 1, 1, 1, 0.7, 1, 1, 1, 1.0, 0.875],
    ]
    _write(tmp_path / "2025.01.01.00.00.00.csv", header, rows)
    res = read_score_csv(tmp_path / "2025.01.01.00.00.00.csv", "navtest")
    assert res.format == "navsim-v2-one-stage" and res.metric == "epdms"
    assert res.score == 0.875 and res.n_scenarios == 2
    assert res.subscores["two_frame_extended_comfort"] == 1.0 and res.subscores["ego_progress"] == 0.7
    assert math.isnan(next(s for s in res.scenes if s.token == "b").subscores["two_frame_extended_comfort"])


def test_v2_two_stage(tmp_path):
    subs = ["no_at_fault_collisions", "ego_progress"]
    header = ["token", "valid", *[f"{m}_stage_one" for m in subs], *[f"{m}_stage_two" for m in subs], "score"]
    rows = [
        ["t1", True, 1, 0.8, "", "", 0.8],
        ["t2", True, "", "", 1, 0.6, 0.6],
        ["extended_pdm_score_stage_one", True, 1, 0.8, "", "", 0.8],
        ["extended_pdm_score_stage_two", True, "", "", 1, 0.6, 0.6],
        ["extended_pdm_score_combined", True, "", "", "", "", 0.48],
    ]
    _write(tmp_path / "two.csv", header, rows)
    res = read_score_csv(tmp_path / "two.csv", "navhard")
    assert res.format == "navsim-v2-two-stage" and res.score == 0.48 and res.n_scenarios == 2
    assert res.extra == {"extended_pdm_score_stage_one": 0.8, "extended_pdm_score_stage_two": 0.6}


def test_bad_csvs_name_the_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty.csv: empty CSV"):
        read_score_csv(tmp_path / "empty.csv")
    (tmp_path / "cols.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="cols.csv: not a PDM-score CSV"):
        read_score_csv(tmp_path / "cols.csv")
    (tmp_path / "short.csv").write_text("token,valid,score\na,True\n")
    with pytest.raises(DataError, match="short.csv: line 2 has 2 cells"):
        read_score_csv(tmp_path / "short.csv")
    (tmp_path / "nan.csv").write_text("token,valid,score\na,True,high\n")
    with pytest.raises(DataError, match="nan.csv: line 2 has a non-numeric score"):
        read_score_csv(tmp_path / "nan.csv")
    with pytest.raises(DataError, match="not found"):
        read_score_csv(tmp_path / "nope.csv")


def test_harvest_run_and_import(tmp_path, calib_root):
    run = tmp_path / "e1"
    (run / "eval" / "calib").mkdir(parents=True)
    assert harvest_run(tmp_path / "nothing") == []
    shutil.copy(calib_root / "expected" / "human.csv", run / "eval" / "calib" / "pdm_scores.csv")
    (run / "eval" / "calib" / "summary.json").write_text('{"evaluator": "planlab"}')
    dest = import_csv(run, calib_root / "expected" / "stop.csv", "navtest")
    assert dest == run / "eval" / "navtest" / "stop.csv"
    assert import_csv(run, calib_root / "expected" / "stop.csv", "navtest") == dest  # same content: fine
    other = tmp_path / "stop.csv"
    shutil.copy(calib_root / "expected" / "human.csv", other)
    with pytest.raises(DataError, match="already exists with different content"):
        import_csv(run, other, "navtest")
    results = {r.split: r for r in harvest_run(run)}
    assert set(results) == {"calib", "navtest"}
    assert results["calib"].extra["summary"] == {"evaluator": "planlab"}
    assert results["navtest"].score == float(_rows(calib_root / "expected" / "stop.csv")[-1]["score"])
    (tmp_path / "bad.csv").write_text("a,b\n")
    with pytest.raises(DataError):
        import_csv(run, tmp_path / "bad.csv", "x")
    assert not (run / "eval" / "x").exists()
