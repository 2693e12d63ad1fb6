"""``planlab logs analyze``: a real planlab run's losses reproduced from metrics.csv (and TensorBoard), progress
bars of a text log, and the failure signatures of hand-written SLURM/Lightning/NCCL logs (tests/data/logs)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planlab.diagnostics.logs import analyze, parse_progress_bars, read_metrics_csv, read_tensorboard
from planlab.diagnostics.signatures import scan_text
from planlab.errors import DataError

LOGS = Path(__file__).resolve().parent / "data" / "logs"


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory) -> Path:
    """A real planlab run of the ego MLP on the tiny synthetic world, with validation, 3 epochs, logging
    every step."""
    from planlab.training.config import build_train_config
    from planlab.training.train import run_training

    root = tmp_path_factory.mktemp("diag_logs")
    cfg = build_train_config(
        "ego_status_mlp",
        overrides={
            "data.root": str(tiny_dataset),
            "data.train_split": "train",
            "data.val_split": "val",
            "data.num_workers": 0,
            "trainer.max_epochs": 3,
            "trainer.batch_size": 2,
            "trainer.log_every_n_steps": 1,
            "trainer.progress_bar": False,
            "optim.lr": 3e-3,
            "agent.hidden_dim": 32,
        },
    )
    return run_training(cfg, root / "run", progress=False).run_dir


def csv_column(path: Path, key: str) -> list[tuple[int, int, float]]:
    with open(path, newline="") as fh:
        return [(int(r["step"]), int(r["epoch"]), float(r[key])) for r in csv.DictReader(fh) if r.get(key)]


@pytest.mark.slow
def test_real_run_losses_are_reproduced_from_metrics_csv(run):
    rep = analyze(run)
    rows = {r.metric: r for r in rep.rows}
    assert {"train/loss", "train/trajectory_l1", "val/loss", "val/ade", "val/fde"} <= set(rows)
    steps = csv_column(run / "metrics.csv", "train/loss_step")
    epochs = csv_column(run / "metrics.csv", "train/loss_epoch")
    val = csv_column(run / "metrics.csv", "val/loss")
    assert len(epochs) == len(val) == 3 and rep.epochs == 3
    tl = rows["train/loss"]
    assert tl.first == steps[0][2] and tl.first_step == steps[0][0]
    assert tl.epoch0_end == epochs[0][2]
    assert tl.last == epochs[-1][2] and tl.last_epoch == 2
    assert tl.best == min(v for _, _, v in epochs)
    assert tl.improvement_pct == pytest.approx((steps[0][2] - epochs[-1][2]) / steps[0][2] * 100)
    vl = rows["val/loss"]
    assert (vl.epoch0_end, vl.last, vl.best) == (val[0][2], val[-1][2], min(v for _, _, v in val))
    assert vl.best_epoch == min(val, key=lambda x: x[2])[1]
    gap = {g.component: g for g in rep.gaps}["loss"]
    assert gap.absolute == pytest.approx(val[-1][2] - epochs[-1][2])
    # speed from TensorBoard wall times; one epoch time per epoch
    assert rep.speed.source == "tensorboard wall times" and rep.speed.it_per_s["last"] > 0
    assert len(rep.speed.epoch_seconds) == 3 and all(s > 0 for s in rep.speed.epoch_seconds)
    assert len(rep.speed.it_per_s_by_epoch) == 3 and all(r > 0 for r in rep.speed.it_per_s_by_epoch)
    assert rep.run["state"] == "completed" and rep.run["agent"] == "ego_status_mlp"
    assert not rep.findings and not rep.nonfinite
    md = rep.to_markdown()
    assert "| Metric | Epoch 0 Start | Epoch 0 End | Best | Epoch 2 End | Improvement |" in md
    assert "| train/loss |" in md and "Training speed (it/s)" in md


@pytest.mark.slow
def test_tensorboard_alone_gives_the_same_losses(run):
    from_csv = read_metrics_csv(run / "metrics.csv")
    from_tb = read_tensorboard(run / "tb")
    for key in ("train/loss_step", "train/loss_epoch", "val/loss"):
        a = [(p.step, p.value) for p in from_csv[key]]
        b = [(p.step, p.value) for p in sorted(from_tb[key], key=lambda p: p.step)]
        assert [s for s, _ in a] == [s for s, _ in b]
        assert all(math.isclose(x, y, rel_tol=1e-6) for (_, x), (_, y) in zip(a, b, strict=True))
    tb_file = next((run / "tb").glob("events.out.tfevents.*"))
    rows = {r.metric: r for r in analyze(tb_file).rows}
    assert rows["val/loss"].last == pytest.approx(from_csv["val/loss"][-1].value, rel=1e-6)


@pytest.mark.slow
def test_run_dir_with_a_slurm_log_reports_metrics_and_the_failure(run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "logs").mkdir(exist_ok=True)
    shutil.copy(LOGS / "slurm-273202-val_oom.out", copy / "logs" / "train-273202.out")
    rep = analyze(copy)
    assert {r.metric for r in rep.rows} >= {"train/loss", "val/loss"}
    assert [f.id for f in rep.findings] == ["host_oom_kill"] and rep.failed


EXPECTED = {
    "slurm-269582-oom_kill.out": {"host_oom_kill", "nccl_timeout"},
    "slurm-273202-val_oom.out": {"host_oom_kill"},
    "slurm-268815-rendezvous.out": {"ddp_rendezvous_timeout", "srun_not_used", "missing_ranks"},
    "slurm-268798-ntasks.err": {"ntasks_devices_mismatch"},
    "slurm-271044-nccl.out": {"nccl_timeout"},
    "slurm-300843-time_limit.out": {"time_limit"},
    "slurm-271990-preempt.out": {"preempted"},
    "slurm-274410-cuda_oom.err": {"cuda_oom"},
    "slurm-259993-no_module.err": {"module_not_found"},
    "slurm-296969-list_features.err": {"feature_contract"},
    "slurm-273697-complete.out": set(),
}


def test_every_fixture_log_has_an_expectation():
    assert {p.name for p in LOGS.glob("slurm-*")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_log_signatures(name):
    found = {f.id for f in scan_text((LOGS / name).read_text(encoding="utf-8"), name).findings}
    expected = EXPECTED[name]
    assert expected <= found, (name, found)
    errors = {f.id for f in scan_text((LOGS / name).read_text(), name).findings if f.severity == "error"}
    if not expected:
        assert not found
    else:  # nothing unrelated is reported as an error
        assert errors <= expected | {"cancelled"}, (name, errors)


def test_signature_details_and_last_exception():
    scan = scan_text((LOGS / "slurm-268815-rendezvous.out").read_text(), "x")
    by = {f.id: f for f in scan.findings}
    assert "only 1 of 16" in by["ddp_rendezvous_timeout"].detail
    assert by["missing_ranks"].detail == "1 of 16 processes printed 'Initializing distributed'"
    assert scan.last_exception.startswith("torch.distributed.DistStoreError: Timed out after 3601 seconds")
    oom = {f.id: f for f in scan_text((LOGS / "slurm-269582-oom_kill.out").read_text()).findings}
    assert (
        oom["host_oom_kill"].count == 5
        and "3 oom_kill event(s) in StepId=269582.0" in oom["host_oom_kill"].detail
    )
    cuda = {f.id: f for f in scan_text((LOGS / "slurm-274410-cuda_oom.err").read_text()).findings}
    assert cuda["cuda_oom"].detail == "tried to allocate 2.25 GiB, GPU capacity 44.42 GiB"
    nt = scan_text((LOGS / "slurm-268798-ntasks.err").read_text())
    assert nt.findings[0].detail == "devices=4, --ntasks-per-node=1"
    assert nt.last_exception.startswith("ValueError: You set `devices=4`")
    # torch.distributed's "[rank0]: " prefixes do not hide the exception
    cu = scan_text((LOGS / "slurm-274410-cuda_oom.err").read_text())
    assert cu.last_exception.startswith("torch.OutOfMemoryError: CUDA out of memory")
    nm = scan_text((LOGS / "slurm-259993-no_module.err").read_text())
    assert nm.findings[0].detail == "module 'navsim'"
    nccl = {f.id: f for f in scan_text((LOGS / "slurm-271044-nccl.out").read_text()).findings}
    assert nccl["nccl_timeout"].detail == "ALLREDUCE timed out after 1800 s"


def test_progress_bars_of_a_text_log_give_the_table():
    text = (LOGS / "slurm-273697-complete.out").read_text(encoding="utf-8")
    series, bars = parse_progress_bars(text)
    assert [b.epoch for b in bars] == [0, 1, 2, 3] and all(b.n == b.total == 242 for b in bars)
    # val/loss is shown again during the next epoch; it counts once per validation
    assert [(p.epoch, p.value) for p in series["val/loss"]] == [(0, 15.9), (1, 14.1), (2, 13.2), (3, 13.3)]
    rep = analyze(LOGS / "slurm-273697-complete.out")
    rows = {r.metric: r for r in rep.rows}
    t = rows["train/loss"]
    assert (t.first, t.epoch0_end, t.best, t.best_epoch, t.last) == (21.3, 11.2, 4.03, 3, 4.03)
    assert t.improvement_pct == pytest.approx((21.3 - 4.03) / 21.3 * 100)
    v = rows["val/loss"]
    assert (v.epoch0_end, v.best, v.best_epoch, v.last) == (15.9, 13.2, 2, 13.3)
    assert rep.speed.it_per_s == {"start": 0.02, "epoch0_end": 0.21, "last": 0.19}
    assert rep.speed.it_per_s_by_epoch == [0.21, 0.19, 0.19, 0.19]
    assert rep.speed.epoch_seconds == [19 * 60 + 12, 21 * 60 + 1, 21 * 60 + 10, 21 * 60 + 15]
    md = rep.to_markdown()
    assert "| train/loss | 21.3 | 11.2 | 4.03 (ep 3) | 4.03 | 81.1% ↓ |" in md
    assert "| Training speed (it/s) | 0.02 | 0.21 | - | 0.19 | Stable |" in md
    assert "| Epoch time | - | 19m12s | 19m12s | 21m15s |  |" in md


def test_nan_in_metrics_and_cli_check(tmp_path):
    (tmp_path / "metrics.csv").write_text(
        "step,epoch,train/loss_step,train/loss_epoch,val/loss\n"
        "0,0,3.5,,\n1,0,2.9,,\n1,0,,3.2,3.4\n2,1,nan,,\n3,1,inf,,\n3,1,,nan,nan\n"
    )
    rep = analyze(tmp_path)
    bad = {n["metric"]: n for n in rep.nonfinite}
    assert bad["train/loss_step"]["count"] == 2 and bad["train/loss_step"]["first_step"] == 2
    assert bad["train/loss_step"]["nan"] == 1 and bad["train/loss_step"]["inf"] == 1
    assert {r.metric: r.last for r in rep.rows}["val/loss"] == 3.4  # the finite values still summarise
    from planlab.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["logs", "analyze", str(tmp_path), "--check"])
    assert res.exit_code == 1 and "NaN/Inf" in res.output
    res = runner.invoke(app, ["logs", "analyze", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["nonfinite"][0]["metric"] == "train/loss_epoch"
    out = tmp_path / "progress.md"
    res = runner.invoke(
        app, ["logs", "analyze", str(LOGS / "slurm-269582-oom_kill.out"), "--md", "--out", str(out)]
    )
    assert res.exit_code == 0 and "host RAM exhausted" in res.output and out.read_text() == res.output


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="no such run directory or log"):
        analyze(tmp_path / "missing")
    bad = tmp_path / "metrics.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no 'step' column"):
        analyze(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no metrics.csv, TensorBoard events or text logs"):
        analyze(tmp_path / "empty")


def test_keyword_prefilter_finds_what_a_full_scan_finds(monkeypatch):
    from planlab.diagnostics import signatures

    assert set(signatures.KEYWORDS) == {s.id for s in signatures.SIGNATURES}
    texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(LOGS.glob("slurm-*"))}
    fast = {
        n: [(f.id, f.line_no, f.count, f.detail) for f in scan_text(t, n).findings] for n, t in texts.items()
    }
    monkeypatch.setattr(signatures, "KEYWORDS", {})
    full = {
        n: [(f.id, f.line_no, f.count, f.detail) for f in scan_text(t, n).findings] for n, t in texts.items()
    }
    assert fast == full and sum(len(v) for v in full.values()) >= 12
