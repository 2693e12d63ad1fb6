"""Master CSV (stable columns), seed aggregates with bootstrap CIs, paired comparisons."""

from __future__ import annotations

import csv
import io
import json
import statistics

import numpy as np
import pytest

from planlab.experiments import registry
from planlab.experiments.export import (
    META_COLUMNS,
    METRIC_COLUMNS,
    aggregate,
    compare,
    config_diff,
    export_master,
)
from planlab.experiments.stats import bootstrap_ci, paired_bootstrap
from test_exp_registry import SCENES, make_run, score_of


def _mean_score(i: int) -> float:
    return sum(score_of(i, k) for k in range(SCENES)) / SCENES


@pytest.fixture()
def root(tmp_path):
    for i in range(12):
        make_run(tmp_path, i)
    make_run(tmp_path, 40, with_results=False)
    return tmp_path


def test_export_is_stable_and_complete(root, tmp_path_factory):
    out1 = root / "a.csv"
    n, ncols = export_master(root, out1)
    assert n == 13
    # Re-harvest in another order: identical bytes (stable column and row order).
    registry.reindex(root)
    out2 = root / "b.csv"
    export_master(root, out2)
    assert out1.read_bytes() == out2.read_bytes()
    rows = list(csv.DictReader(io.StringIO(out1.read_text())))
    header = out1.read_text().splitlines()[0].split(",")
    assert header[: len(META_COLUMNS)] == list(META_COLUMNS)
    assert header[len(META_COLUMNS) : len(META_COLUMNS) + len(METRIC_COLUMNS)] == list(METRIC_COLUMNS)
    hyper = header[len(META_COLUMNS) + len(METRIC_COLUMNS) :]
    assert hyper == sorted(hyper) and "train.optim.lr" in hyper and "train.trainer.seed" in hyper
    by_id = {r["exp_id"]: r for r in rows}
    r3 = by_id["r0003"]
    assert float(r3["pdms"]) == pytest.approx(_mean_score(3)) and r3["n_scenarios"] == str(SCENES)
    assert r3["tags"] == "bulk;mod3" and r3["git_sha"] == "abc" and r3["job_train"] == "1003"
    assert r3["status"] == "completed" and r3["eval_split"] == "test" and r3["n_failed"] == "0"
    assert float(r3["train.optim.lr"]) == pytest.approx(1e-4 * (3 % 3 + 1))
    empty = by_id["r0040"]
    assert empty["pdms"] == "" and empty["n_scenarios"] == "" and empty["exp_id"] == "r0040"


def test_aggregate_groups_by_config_without_seed(root):
    rows = registry.list_experiments(root, sort="exp_id")
    columns, groups = aggregate(rows)
    assert len(groups) == 3 and sum(g["n"] for g in groups) == 12  # lr in 3 values; r0040 has no result
    assert "train.optim.lr" in columns and "train.trainer.seed" not in columns
    for g in groups:
        members = [int(e[1:]) for e in g["exp_ids"].split(";")]
        assert len({i % 3 for i in members}) == 1  # one learning rate per group
        scores = [_mean_score(i) for i in members]
        assert g["score_mean"] == pytest.approx(statistics.mean(scores))
        assert g["score_std"] == pytest.approx(statistics.stdev(scores))
        assert g["score_ci_low"] <= g["score_mean"] <= g["score_ci_high"]
        assert min(scores) <= g["score_ci_low"] and g["score_ci_high"] <= max(scores)
    # ignoring the learning rate as well merges everything into one group
    _, one = aggregate(rows, ignore=["train.optim.lr"])
    assert len(one) == 1 and one[0]["n"] == 12


def test_compare_config_diff_and_paired_test(root):
    res = compare(root, "r0001", "r0002")
    keys = [k for k, _, _ in res["config_diff"]]
    assert keys == ["train.optim.lr", "train.trainer.seed"]
    t = res["test"]
    d = [score_of(1, k) - score_of(2, k) for k in range(SCENES)]
    assert t["n"] == SCENES and t["diff"] == pytest.approx(np.mean(d))
    assert t["ci_low"] <= t["diff"] <= t["ci_high"]
    none = compare(root, "r0001", "r0040")
    assert none["test"] is None and "no results for r0040" in none["note"]


def test_bootstrap_and_paired_statistics():
    s = bootstrap_ci([0.5])
    assert (s.n, s.mean, s.ci_low, s.ci_high) == (1, 0.5, 0.5, 0.5)
    assert bootstrap_ci([]).n == 0 and np.isnan(bootstrap_ci([float("nan")]).mean)
    rng = np.random.default_rng(1)
    small, big = rng.normal(0.8, 0.05, 5), rng.normal(0.8, 0.05, 500)
    a, b = bootstrap_ci(small), bootstrap_ci(big)
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low)
    assert b.ci_low < 0.8 < b.ci_high
    assert bootstrap_ci(small) == bootstrap_ci(small)  # deterministic
    base = {f"t{i}": float(v) for i, v in enumerate(rng.uniform(0.3, 0.9, 200))}
    better = {k: v + 0.02 + rng.normal(0, 0.01) for k, v in base.items()}
    t = paired_bootstrap(better, base)
    assert t.diff > 0 and t.ci_low > 0 and t.p_value < 0.01
    same = paired_bootstrap(base, dict(base))
    assert same.diff == 0 and same.p_value == 1.0
    noise = {k: v + rng.normal(0, 0.05) for k, v in base.items()}
    assert paired_bootstrap(noise, base).p_value > 0.01
    partial = paired_bootstrap({"a": 1.0, "b": 0.5}, {"b": 0.4, "c": 0.1})
    assert (partial.n, partial.only_a, partial.only_b) == (1, 1, 1)


def test_config_diff_handles_missing_and_nested():
    assert config_diff({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 3]}, "d": 0}) == [
        ("a.c", [1, 2], [1, 3]),
        ("d", None, 0),
    ]
    assert json.dumps(config_diff({}, {})) == "[]"
