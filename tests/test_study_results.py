"""Study statistics: hierarchical bootstrap CIs, paired differences, labels-to-reach, aggregation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from planlab.study.config import build_study_config
from planlab.study.results import (
    RunResult,
    StudyTable,
    aggregate,
    hierarchical_ci,
    labels_to_reach,
    paired_difference,
)


def test_hierarchical_ci_brackets_the_mean_and_widens_with_seed_spread():
    rng = np.random.default_rng(0)
    scenes = rng.uniform(0.4, 1.0, size=200)
    same = np.stack([scenes, scenes, scenes])
    lo, hi = hierarchical_ci(same, resamples=2000)
    assert lo < same.mean() < hi
    spread = np.stack([scenes - 0.1, scenes, scenes + 0.1])
    lo2, hi2 = hierarchical_ci(spread, resamples=2000)
    assert lo2 < spread.mean() < hi2 and (hi2 - lo2) > (hi - lo) * 1.5  # seed variance counts
    const = np.full((3, 50), 0.7)
    assert hierarchical_ci(const, resamples=500) == pytest.approx((0.7, 0.7))
    with_nan = spread.copy()
    with_nan[0, :10] = np.nan  # scenes a run failed are skipped, not counted as zero
    assert all(math.isfinite(v) for v in hierarchical_ci(with_nan, resamples=500))


def test_paired_difference_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 1.0, size=(3, 150))
    better = base + 0.05 + rng.normal(0, 0.01, size=base.shape)
    d = paired_difference(better, base, resamples=2000)
    assert d["diff"] == pytest.approx(0.05, abs=0.005) and d["ci_low"] > 0 and d["p_value"] < 0.01
    noise = base + rng.normal(0, 0.05, size=base.shape)
    d2 = paired_difference(noise, base, resamples=2000)
    assert d2["ci_low"] < 0 < d2["ci_high"] and d2["p_value"] > 0.05
    d3 = paired_difference(base[:, :0], base[:, :0])
    assert d3["scenes"] == 0 and math.isnan(d3["diff"])


def _row(frac, labels, pdms):
    return {"fraction": frac, "labels": labels, "pdms_mean": pdms}


def test_labels_to_reach():
    rows = [_row(0.01, 39, 0.5), _row(0.1, 390, 0.7), _row(1.0, 3900, 0.8)]
    r = labels_to_reach(rows, 0.9)  # target 0.72: between 390 (0.7) and 3900 (0.8)
    assert r["first_fraction"] == 1.0 and r["target"] == pytest.approx(0.72)
    assert r["interpolated_labels"] == pytest.approx(math.exp(math.log(390) + 0.2 * math.log(10)), rel=1e-9)
    early = labels_to_reach([_row(0.01, 39, 0.79), _row(1.0, 3900, 0.8)], 0.9)
    assert early["first_fraction"] == 0.01 and early["at_or_below"] and early["interpolated_labels"] is None
    assert labels_to_reach([], 0.9) == {}
    # an arm whose 100 % runs did not finish has no full-data reference (not its largest finished fraction)
    assert labels_to_reach([_row(0.01, 39, 0.5), _row(0.5, 1950, 0.7)], 0.9) == {"full_missing": True}


def _run(arm, frac, seed, scores, labels):
    toks = {f"t{i}": s for i, s in enumerate(scores)}
    return RunResult(f"le-{arm}-f{frac:g}-s{seed}", arm, frac, seed, Path("/x"), float(np.mean(scores)),
                     {"ego_progress": 0.5}, toks, len(scores), 0, labels, "sha", "agent", None, 10.0, 2.0)  # fmt: skip


def test_aggregate_groups_by_arm_and_fraction():
    cfg = build_study_config([], {"arms": [{"name": "a"}, {"name": "b"}], "fractions": [0.5, 1.0],
                                  "results": {"resamples": 500}})  # fmt: skip
    table = StudyTable("pdms", "test")
    for seed, shift in enumerate((0.0, 0.02, 0.04)):
        for frac, labels in ((0.5, 50), (1.0, 100)):
            r = _run("a", frac, seed, [0.6 + shift + 0.1 * frac] * 10, labels)
            table.completed[r.exp_id] = r
    rows = aggregate(SimpleNamespace(cfg=cfg), table)
    assert [(r["arm"], r["fraction"]) for r in rows] == [("a", 0.5), ("a", 1.0)]  # arm b has no runs
    full = rows[1]
    assert (
        full["n"] == 3
        and full["pdms_mean"] == pytest.approx(0.72)
        and full["pdms_std"] == pytest.approx(0.02)
    )
    assert full["ci_low"] <= 0.72 <= full["ci_high"] and full["labels"] == 100
    assert full["pdms_per_1k_labels"] == pytest.approx(0.72 / 0.1)
    assert full["exp_ids"] == "le-a-f1-s0;le-a-f1-s1;le-a-f1-s2"


def test_pretrain_curve_reads_loss_and_target_std(tmp_path):
    from planlab.study.results import pretrain_curve

    path = tmp_path / "metrics.csv"
    lines = ["step,epoch,monitor/target_std,train/loss,probe/ssl_rankme"]
    lines.append("0,,,,11.5")  # a probe row: no loss, skipped
    for i, step in enumerate(range(10, 90, 10)):
        lines.append(f"{step},0,{0.7 - 0.01 * i},{0.4 - 0.04 * i},")
    path.write_text("\n".join(lines) + "\n")
    c = pretrain_curve(path)
    assert c["logged"] == 8 and (c["step_first"], c["step_last"]) == (10, 80)
    assert c["loss_first"] == pytest.approx(0.4) and c["loss_last"] == pytest.approx(0.12)
    assert c["loss_first_quarter"] == pytest.approx(0.38) and c["loss_last_quarter"] == pytest.approx(0.14)
    assert c["target_std_min"] == pytest.approx(0.63) == c["target_std_last"]
    assert pretrain_curve(tmp_path / "missing.csv") == {}


def test_written_results_carry_the_derived_figures(tmp_path):
    """write_results on a synthetic table: the aggregate CSV's labels-to-90 % and PDMS per 1k labels, the
    markdown's derived-figures row, the notes and each arm's run length, and the learning-curve PNG."""
    import csv as csv_mod

    from planlab.study.results import write_results

    cfg = build_study_config([], {
        "name": "syn", "fractions": [0.1, 0.5, 1.0], "seeds": [0, 1],
        "arms": [{"name": "a", "label": "Arm A"},
                 {"name": "b", "label": "Arm B", "schedule": {"epochs": 2, "min_steps": 5, "max_steps": 40}}],
        "results": {"dir": str(tmp_path / "res"), "name": "le", "resamples": 200, "compare": [["a", "b"]],
                    "notes": ["image arms capped at 40 steps (CPU budget)"]},
    })  # fmt: skip
    table = StudyTable("pdms", "test")
    curve_a = {0.1: 0.5, 0.5: 0.7, 1.0: 0.8}  # a reaches 0.72 between 50 and 100 labels
    curve_b = {0.1: 0.75, 0.5: 0.78, 1.0: 0.8}  # b is already above 0.72 at the smallest fraction
    for arm, curve in (("a", curve_a), ("b", curve_b)):
        for frac, pdms in curve.items():
            for seed in (0, 1):
                r = _run(arm, frac, seed, [pdms + 0.01 * seed] * 20, int(100 * frac))
                table.completed[r.exp_id] = r
    plan = SimpleNamespace(cfg=cfg, out_dir=tmp_path / "study", exp_root=tmp_path / "study" / "experiments",
                           encoder_dir=None, runs=[])  # fmt: skip
    plan.out_dir.mkdir()
    (plan.out_dir / "study.json").write_text(json.dumps({
        "timings": {"caches_s": 90.0, "runs_s": 600.0},
        "last_run": {"seconds": 930.0, "launcher": "local", "completed": 12}}))  # fmt: skip
    (plan.out_dir / "probe.json").write_text(json.dumps({"seconds": 240.0}))
    paths = write_results(plan, table, command="planlab study label-efficiency --config syn.yaml")
    rows = {(r["arm"], float(r["fraction"])): r for r in csv_mod.DictReader(paths["csv"].open())}
    a_full = rows[("a", 1.0)]
    assert float(a_full["pdms_mean"]) == pytest.approx(0.805)
    assert float(a_full["pdms_per_1k_labels"]) == pytest.approx(0.805 / 0.1)
    # target 0.9 x 0.805 = 0.7245 between 50 labels (0.705) and 100 labels (0.805), log-linear
    w = (0.7245 - 0.705) / 0.1
    expect = math.exp(math.log(50) + w * math.log(2))
    assert float(a_full["labels_to_reach"]) == pytest.approx(expect, rel=1e-6)
    assert float(rows[("b", 0.1)]["labels_to_reach"]) == 10  # reached at the first fraction: its labels
    md = paths["md"].read_text()
    assert f"| Arm A | 0.805 | 0.725 | 100 % | 100 | {expect:.0f} |" in md
    assert "| Arm B | 0.805 | 0.725 | 10 % | 10 | ≤ 10 |" in md
    assert "image arms capped at 40 steps (CPU budget)" in md and "≥ 2 epochs, ≥ 5 steps, ≤ 40 steps" in md
    assert "| Arm A | Arm B | 10 % | -0.2500 |" in md  # the paired difference at 10 %
    assert "- runs of the last invocation: 10.0 min" in md and "(`probe.json`, when computed): 4.0 min" in md
    assert "previous invocation of this command (local launcher, 12 runs complete at its end): 15.5 min" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
