"""Submission logic that needs no cluster: lifecycle reconciliation from scheduler states, the runtime
estimate from earlier runs (lessons S8), resubmission rules and the job's status bookkeeping."""

from __future__ import annotations

import json

import pytest
import yaml

from planlab.errors import PlanlabError
from planlab.experiments import launch, rundir, slurm
from planlab.experiments.job import job_ended, job_started
from planlab.experiments.slurm import JobState


def S(job_id: str, state: str, exit_code: str = "0:0", restarts: int = 0) -> JobState:
    return JobState(job_id, state, exit_code, "", restarts)


def status(jobs: dict[str, str], state: str = "running") -> dict:
    return {"state": state, "jobs": jobs, "stages": list(jobs), "launcher": "slurm"}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({"1": S("1", "COMPLETED"), "2": S("2", "COMPLETED")}, ("completed", None)),
        (
            {"1": S("1", "TIMEOUT", "0:15"), "2": S("2", "CANCELLED")},
            ("failed", "train job 1 TIMEOUT (exit 0:15)"),
        ),
        (
            {"1": S("1", "OUT_OF_MEMORY", "0:125"), "2": S("2", "CANCELLED")},
            ("failed", "train job 1 OUT_OF_MEMORY (exit 0:125)"),
        ),
        ({"1": S("1", "CANCELLED"), "2": S("2", "CANCELLED")}, ("cancelled", "train job 1 CANCELLED")),
        (
            {"1": S("1", "COMPLETED"), "2": S("2", "FAILED", "1:0")},
            ("failed", "eval job 2 FAILED (exit 1:0)"),
        ),
        ({"1": S("1", "RUNNING"), "2": S("2", "PENDING")}, ("running", None)),
        ({"1": S("1", "PENDING", restarts=1), "2": S("2", "PENDING")}, ("requeued", None)),
        ({"1": S("1", "COMPLETED"), "2": S("2", "PENDING")}, ("submitted", None)),
        ({}, None),
    ],
)
def test_derive_state(states, expected):
    assert launch.derive_state(status({"train": "1", "eval": "2"}), states) == expected


def test_array_tasks_combine():
    states = {f"7_{i}": S(f"7_{i}", "COMPLETED") for i in range(4)}
    assert slurm.combine(slurm.states_of(states, "7")) == "completed"
    states["7_2"] = S("7_2", "FAILED", "1:0")
    assert slurm.combine(slurm.states_of(states, "7")) == "failed"
    assert slurm.combine(slurm.states_of({"7_[0-3]": S("7_[0-3]", "PENDING")}, "7")) == "submitted"
    assert slurm.states_of(states, "8") == [] and slurm.combine([]) is None


def _earlier_run(root, calib_root, samples_per_s: float, train_samples: int):
    run, _ = launch.new_experiment(
        root, "old", "ego_mlp", overrides=[f"data.root={calib_root}"], cluster="local-slurm"
    )
    meta = {"jobs": [{"stage": "train", "end": "2026-01-01T00:00:00+00:00",
                      "train_stats": {"samples_per_s": samples_per_s, "global_step": 10}}],
            "training": {"resolved": {"train_samples": train_samples}}}  # fmt: skip
    (run / "meta.json").write_text(json.dumps(meta))
    return run


def test_time_limit_warning_from_earlier_throughput(tmp_path, calib_root):
    _earlier_run(tmp_path, calib_root, samples_per_s=10.0, train_samples=1000)
    # 20 epochs x 1000 samples at 10 samples/s = 2000 s > 00:20:00 (1200 s)
    _, r = launch.new_experiment(
        tmp_path, "new", "ego_mlp", overrides=[f"data.root={calib_root}"], cluster="local-slurm"
    )
    seconds, why = launch.estimate_train_seconds(tmp_path, r)
    assert seconds == pytest.approx(2000.0) and "measured in old" in why
    warn = launch.time_warning(tmp_path, r)
    assert warn and "00:20:00 is below the estimated training time 00:33:20" in warn
    # a tenth of the labels takes a tenth of the time: no warning
    _, r2 = launch.new_experiment(tmp_path, "small", "ego_mlp", cluster="local-slurm",
                                  overrides=[f"data.root={calib_root}", "data.label_fraction=0.1"])  # fmt: skip
    assert launch.estimate_train_seconds(tmp_path, r2)[0] == pytest.approx(200.0)
    assert launch.time_warning(tmp_path, r2) is None
    # another dataset: no estimate at all
    _, r3 = launch.new_experiment(
        tmp_path, "other", "ego_mlp", overrides=["data.root=/elsewhere"], cluster="local-slurm"
    )
    assert launch.estimate_train_seconds(tmp_path, r3) is None
    # the warning reaches the submission (dry run)
    out: list[str] = []
    sub = launch.submit(tmp_path, "new", dry_run=True, echo=out.append)
    assert sub.warnings and any(line.startswith("warning: time limit") for line in out)


def test_resubmission_rules(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(
        slurm,
        "sbatch",
        lambda path, dependency=None: calls.append((path.name, dependency)) or str(100 + len(calls)),
    )
    launch.new_experiment(tmp_path, "e", "ego_mlp", cluster="local-slurm")
    sub = launch.submit(tmp_path, "e")
    assert calls == [("train.sbatch", None), ("eval.sbatch", "afterok:101")]
    assert sub.jobs == {"train": "101", "eval": "102"}
    st = rundir.read_status(tmp_path / "e")
    assert st["state"] == "submitted" and st["jobs"] == sub.jobs and st["stages"] == ["train", "eval"]
    with pytest.raises(PlanlabError, match="is submitted"):
        launch.submit(tmp_path, "e")
    launch.submit(tmp_path, "e", force=True)
    assert calls[-2:] == [("train.2.sbatch", None), ("eval.2.sbatch", "afterok:103")]
    rundir.set_status(tmp_path / "e", "completed")
    with pytest.raises(PlanlabError, match="is completed"):
        launch.submit(tmp_path, "e")
    launch.submit(tmp_path, "e", only=["eval"])
    assert calls[-1] == ("eval.3.sbatch", None)


def test_failed_sbatch_cancels_what_was_submitted(tmp_path, monkeypatch):
    cancelled = []

    def fake_sbatch(path, dependency=None):
        if path.name.startswith("eval"):
            raise PlanlabError("sbatch eval.sbatch failed: Invalid partition name specified")
        return "55"

    monkeypatch.setattr(slurm, "sbatch", fake_sbatch)
    monkeypatch.setattr(slurm, "scancel", lambda ids: cancelled.extend(ids))
    launch.new_experiment(tmp_path, "e", "ego_mlp", cluster="local-slurm")
    with pytest.raises(PlanlabError, match="Invalid partition"):
        launch.submit(tmp_path, "e")
    assert cancelled == ["55"] and rundir.read_status(tmp_path / "e")["state"] == "created"


def test_job_bookkeeping_stages_and_totals(tmp_path, monkeypatch):
    run, _ = launch.new_experiment(
        tmp_path, "e", "ego_mlp", cluster="local-slurm", overrides=["eval.shards=2"]
    )
    rundir.record_jobs(run, {"train": "1", "eval": "2", "merge": "3"}, "slurm", ["train", "eval", "merge"])
    ident = {"scheduler": "slurm", "job_id": "1", "restart_count": 0, "nodes": 2, "gpus_per_node": 4}
    key = job_started(run, "train", ident)
    assert rundir.read_status(run)["state"] == "running"
    job_ended(run, key, "completed", 0.0, ident)
    meta = json.loads((run / "meta.json").read_text())
    j = meta["jobs"][0]
    assert (
        j["gpu_hours"] == pytest.approx(j["wall_s"] * 8 / 3600, rel=1e-3)
        and meta["gpu_hours"] == j["gpu_hours"]
    )
    rundir.stage_done(run, "train")
    st = rundir.read_status(run)
    assert st["state"] == "running" and st["phase"] == "waiting for eval"
    rundir.stage_done(run, "eval")
    rundir.stage_done(run, "merge")
    assert rundir.read_status(run)["state"] == "completed"
    # a restarted job records `requeued` before `running`
    key2 = job_started(run, "train", {**ident, "restart_count": 1})
    assert [e["state"] for e in rundir.read_status(run)["history"]][-2:] == ["requeued", "running"]
    assert key2 != key
    assert yaml.safe_load((run / "config.yaml").read_text())["resources"]["train"]["nodes"] == 1


def test_status_refresh_is_one_batched_scheduler_call(tmp_path, monkeypatch):
    """Five submitted experiments, one sacct call; a TIMEOUT and an OOM become `failed` with the reason."""
    import subprocess

    for i in range(5):
        run, _ = launch.new_experiment(tmp_path, f"e{i}", "ego_mlp", cluster="local-slurm")
        rundir.record_jobs(run, {"train": str(10 + i), "eval": str(20 + i)}, "slurm", ["train", "eval"])
    answer = "\n".join(
        ["10|COMPLETED|0:0|None", "20|COMPLETED|0:0|None", "11|TIMEOUT|0:15|TimeLimit", "21|CANCELLED|0:0|Dependency",
         "12|OUT_OF_MEMORY|0:125|None", "22|CANCELLED|0:0|Dependency", "13|RUNNING|0:0|None", "23|PENDING|0:0|Dependency",
         "14|REQUEUED|0:0|None", "14|PENDING|0:0|BeginTime", "24|PENDING|0:0|Dependency"]
    )  # fmt: skip
    calls = []

    def fake_run(argv, timeout=60.0):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, answer + "\n", "")

    monkeypatch.setattr(slurm, "_run", fake_run)
    monkeypatch.setattr(slurm, "available", lambda: True)
    rows = {r["exp_id"]: r for r in launch.refresh_status(tmp_path)}
    assert len(calls) == 1 and calls[0][0] == "sacct" and "-j" in calls[0]
    assert set(calls[0][calls[0].index("-j") + 1].split(",")) == {
        str(n) for n in (*range(10, 15), *range(20, 25))
    }
    assert rows["e0"]["state"] == "completed"
    assert rows["e1"]["state"] == "failed" and "TIMEOUT" in rows["e1"]["reason"]
    assert rows["e2"]["state"] == "failed" and "OUT_OF_MEMORY" in rows["e2"]["reason"]
    assert rows["e3"]["state"] == "submitted"  # running per sacct; the job itself records `running`
    assert rows["e4"]["state"] == "requeued"
    assert rundir.read_status(tmp_path / "e1")["state"] == "failed"  # written into the run dir


def test_job_side_never_imports_the_index():
    """Compute nodes never write the SQLite index: the job entry and its stages do not even import it."""
    import subprocess
    import sys

    code = (
        "import sys, planlab.experiments.job, planlab.experiments.evaluate, planlab.experiments.local;"
        "print('planlab.experiments.registry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_vanished_local_job_is_marked_failed(tmp_path):
    """A foreground local run killed without a trace (kill -9, closed terminal) does not stay `running`."""
    import socket
    import subprocess
    import sys

    run, _ = launch.new_experiment(tmp_path, "e", "ego_mlp", cluster="local")
    rundir.record_jobs(run, {"train": "local-x-train"}, "local", ["train"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ident = {
        "scheduler": "local",
        "job_id": "local-x-train",
        "restart_count": 0,
        "nodes": 1,
        "gpus_per_node": 0,
    }
    job_started(run, "train", ident)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["jobs"][0]["host"]["host"] == socket.gethostname()
    meta["jobs"][0]["host"]["pid"] = dead.pid  # the job process that died
    (run / "meta.json").write_text(json.dumps(meta))
    (row,) = launch.refresh_status(tmp_path, ["e"])
    assert row["state"] == "failed" and f"pid {dead.pid}" in row["reason"]
    # a live job is left alone
    run2, _ = launch.new_experiment(tmp_path, "f", "ego_mlp", cluster="local")
    rundir.record_jobs(run2, {"train": "local-y-train"}, "local", ["train"])
    job_started(run2, "train", {**ident, "job_id": "local-y-train"})  # pid = this test process
    (row2,) = launch.refresh_status(tmp_path, ["f"])
    assert row2["state"] == "running"
