"""Memory diagnostics: process-tree peaks (workers included), the linear fit and the advice, and a real
``planlab memory estimate`` on the ego MLP."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

import pytest
from typer.testing import CliRunner

from planlab.diagnostics.memory import (
    MemoryModel,
    MemoryMonitor,
    MemoryPoint,
    fit,
    parse_size,
    process_tree,
    recommend,
    tree_memory,
)
from planlab.errors import ConfigError, PlanlabError

GiB = 2**30


def test_parse_size():
    assert parse_size("64G") == 64 * GiB and parse_size("400GB") == 400 * GiB
    assert parse_size("512M") == 512 * 2**20 and parse_size("1.5T") == int(1.5 * 2**40)
    assert parse_size("16GiB") == 16 * GiB and parse_size("4096") == 4 * GiB  # bare number: MiB, as --mem
    with pytest.raises(ConfigError, match="'lots' is not a memory size"):
        parse_size("lots")


def _hold(n_bytes: int, seconds: float) -> None:
    block = bytearray(n_bytes)  # touched pages: really resident
    for i in range(0, n_bytes, 4096):
        block[i] = 1
    time.sleep(seconds)


def test_monitor_counts_children_like_dataloader_workers():
    ctx = mp.get_context("fork")
    with MemoryMonitor(interval=0.02) as mon:
        procs = [ctx.Process(target=_hold, args=(64 * 2**20, 1.0)) for _ in range(2)]
        for p in procs:
            p.start()
        time.sleep(0.6)
        pids = process_tree(mon.pid)
        assert all(p.pid in pids for p in procs)
        for p in procs:
            p.join()
    peak = mon.peak
    # two children holding 64 MiB each: the tree's peak is at least their private memory above the parent
    assert peak.max_processes >= 3
    assert peak.host_bytes >= 128 * 2**20
    assert peak.host_rss_bytes >= peak.host_bytes * 0.9  # RSS sums count shared pages more than once
    pss, rss, n = tree_memory(mon.pid)
    assert n >= 1 and 0 < pss <= rss


def test_fit_recovers_a_known_model_and_recommends():
    truth = MemoryModel(a=2 * GiB, b=50 * 2**20, c=1 * GiB, d=10 * 2**20)
    pts = [
        MemoryPoint(b, w, host_bytes=int(truth.host(b, w)), gpu_bytes=int(1 * GiB + b * 300 * 2**20))
        for b in (8, 16, 32)
        for w in (0, 2)
    ]
    pts.append(MemoryPoint(64, 4, error="boom"))  # failed measurements are left out of the fit
    model = fit(pts)
    for key in "abcd":
        assert getattr(model, key) == pytest.approx(getattr(truth, key), rel=1e-6)
    assert model.gpu(32) == pytest.approx(1 * GiB + 32 * 300 * 2**20, rel=1e-6)
    # 64 GiB per node, 4 ranks: 16 GiB per rank; at batch 32 each worker costs 1.31 GiB
    rec = recommend(model, batch_size=32, budget_per_node=64 * GiB, ranks_per_node=4, max_workers=16)
    per_rank = 0.9 * 16 * GiB
    assert model.host(32, rec.num_workers) <= per_rank < model.host(32, rec.num_workers + 1)
    assert rec.batch_size == 32 and rec.accumulate_grad_batches == 1 and rec.fits
    assert rec.host_bytes_per_node == pytest.approx(4 * model.host(32, rec.num_workers))
    assert [r["fits"] for r in rec.table][: rec.num_workers + 1] == [True] * (rec.num_workers + 1)
    # a 10 GiB GPU cannot take batch 32 (10.4 GiB > 0.9 x 10): batch 16 with 2x accumulation
    rec = recommend(model, 32, 64 * GiB, 4, gpu_budget=10 * GiB, max_workers=16)
    assert (rec.batch_size, rec.accumulate_grad_batches) == (16, 2)
    assert any("accumulate_grad_batches=2" in n for n in rec.notes)
    # nothing fits in 1 GiB
    assert not recommend(model, 32, 1 * GiB, 1).fits


def test_fit_drops_terms_the_grid_cannot_determine():
    pts = [MemoryPoint(b, 0, host_bytes=GiB + b * 2**20) for b in (4, 8)]
    model = fit(pts)
    assert model.c == 0 and model.d == 0 and model.b == pytest.approx(2**20)
    with pytest.raises(PlanlabError, match="at least 2 successful runs"):
        fit([MemoryPoint(4, 0, host_bytes=GiB), MemoryPoint(8, 0, error="x")])


@pytest.mark.slow
def test_memory_estimate_cli_on_the_ego_mlp(calib_root, tmp_path):
    from planlab.cli.main import app

    args = [
        "memory", "estimate", "--agent", "ego_status_mlp", "--budget", "8G", "--gpus-per-node", "2",
        "--batch-sizes", "4,16", "--workers", "0,1", "--steps", "2", "--workdir", str(tmp_path), "--json",
        f"data.root={calib_root}", "data.train_split=calib", "data.val_split=null", "agent.hidden_dim=32", "trainer.batch_size=16",
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output[res.output.index("{") :])
    pts = out["points"]
    assert [(p["batch_size"], p["num_workers"]) for p in pts] == [(4, 0), (4, 1), (16, 0), (16, 1)]
    assert all(p["error"] is None and p["host_bytes"] > 100 * 2**20 for p in pts)
    # a DataLoader worker is a process of its own: it shows up in the tree and costs memory
    assert all(p["processes"] >= 2 for p in pts if p["num_workers"] == 1)
    assert out["model"]["c"] > 0
    # the fit reproduces the measured points (4 points, 4 parameters)
    m = MemoryModel(**{k: out["model"][k] for k in ("a", "b", "c", "d")})
    for p in pts:
        assert m.host(p["batch_size"], p["num_workers"]) == pytest.approx(p["host_bytes"], rel=1e-6)
    rec = out["recommendation"]
    assert rec["budget_per_rank"] == 4 * GiB and rec["fits"] and rec["batch_size"] == 16  # configured batch
    assert rec["host_bytes_per_rank"] <= 0.9 * 4 * GiB
    assert out["profile"]["worker_mem_gb"] > 0
