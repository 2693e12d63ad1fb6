"""On the real local SLURM (slurm-local-up): chains, dependencies, arrays, requeue/resume, scancel, DDP.

Every job is a real planlab training run on the tiny synthetic world (``tiny_dataset``: 7 scenes per split)
or a real evaluation (its test split, or the 42-scene calibration set where sharding by log needs several
logs), kept to a few seconds of work. Jobs are submitted through the library the CLI
calls; states are polled with timeouts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from planlab.experiments import launch, registry, rundir, slurm

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

TIMEOUT = 240.0


def tiny(data: Path, **extra: Any) -> list[str]:
    """Overrides for a seconds-long training on the tiny world, scored on its test split."""
    over = {
        "data.root": str(data),
        "data.train_split": "train",
        "data.val_split": None,
        "data.num_workers": 0,
        "trainer.max_epochs": 1,
        "trainer.batch_size": 4,
        "trainer.log_every_n_steps": 1,
        "agent.hidden_dim": 16,
        "eval.split": "test",
        "eval.workers": 1,
        "logging.tensorboard": False,
    }
    over.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in over.items()]


def wait_for(
    predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition", every: float = 0.5
) -> Any:
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def state(run: Path) -> str:
    return rundir.read_status(run).get("state", "?")


def wait_state(run: Path, states: tuple[str, ...], timeout: float = TIMEOUT) -> str:
    def done() -> str | None:
        s = state(run)
        return s if s in states else None

    try:
        return wait_for(done, timeout, f"{run.name} to reach {states}")
    except AssertionError:
        logs = "\n".join(p.read_text()[-3000:] for p in sorted((run / "logs").glob("*.out")))
        raise AssertionError(f"{run.name} stuck in {state(run)}; logs:\n{logs}") from None


def scheduler_state(job_id: str) -> str | None:
    return slurm.combine(slurm.states_of(slurm.query([job_id]), job_id))


def squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], capture_output=True, text=True)
    return out.stdout.strip()


def job_ids_in_queue() -> set[str]:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("slurm_exps")


def test_dry_run_submits_nothing(root, tiny_dataset):
    launch.new_experiment(root, "dry", "ego_mlp", overrides=tiny(tiny_dataset), cluster="local-slurm")
    before = job_ids_in_queue()
    sub = launch.submit(root, "dry", dry_run=True)
    assert [p.name for p in sub.scripts] == ["train.sbatch", "eval.sbatch"] and not sub.jobs
    time.sleep(1.0)
    assert job_ids_in_queue() == before
    assert state(root / "dry") == "created"


def test_train_eval_chain_completes_and_is_harvested(root, tiny_dataset, calib_root):
    """train (tiny world, with validation) -> eval of the best checkpoint on the calibration set's 5 logs as
    a 2-shard array (afterok) -> merge (afterok on the array), then harvest."""
    run, _ = launch.new_experiment(
        root,
        "chain",
        "ego_mlp",
        overrides=tiny(
            tiny_dataset,
            **{
                "data.val_split": "val",
                "eval.shards": 2,
                "eval.split": "calib",
                "eval.data_root": str(calib_root),
            },
        ),
        cluster="local-slurm",
        description='chain "test" $(touch PWNED)',
    )
    sub = launch.submit(root, "chain")
    assert set(sub.jobs) == {"train", "eval", "merge"}
    assert wait_state(run, ("completed", "failed", "cancelled")) == "completed"
    assert wait_for(
        lambda: scheduler_state(sub.jobs["merge"]) == "completed", 60, "sacct to see the merge end"
    )
    assert scheduler_state(sub.jobs["eval"]) == "completed"
    shards = sorted((run / "eval" / "calib" / "shards").iterdir())
    assert [d.name for d in shards] == ["000-of-002", "001-of-002"]
    sizes = [len((d / "pdm_scores.csv").read_text().splitlines()) - 2 for d in shards]
    assert sum(sizes) == 42 and min(sizes) > 0  # split by log, disjoint, complete
    assert (run / "eval" / "calib" / "summary.json").is_file()
    rows = launch.refresh_status(root, ["chain"])
    assert rows[0]["state"] == "completed"
    row = registry.get_experiment(root, "chain")
    res = row["results"]["calib"]
    assert res["metric"] == "pdms" and res["n_scenarios"] == 42 and 0.0 <= res["score"] <= 1.0
    meta = json.loads((run / "meta.json").read_text())
    stages = [j["stage"] for j in meta["jobs"]]
    assert stages == ["train", "eval", "eval", "merge"] and all(
        j["state"] == "completed" for j in meta["jobs"]
    )
    assert sorted(j.get("shard") for j in meta["jobs"] if j["stage"] == "eval") == ["0/2", "1/2"]
    train_job = meta["jobs"][0]
    assert (
        train_job["job_id"] == sub.jobs["train"] and train_job["slurm"]["SLURM_JOB_ID"] == sub.jobs["train"]
    )
    assert meta["git"]["sha"] and "sha256" in meta["lock"] and meta["wall_time_s"] > 0
    assert row["checkpoint"].endswith(".ckpt") and Path(row["checkpoint"]).is_file()
    assert not list(Path.cwd().glob("PWNED"))


def test_failing_train_cancels_its_eval(root, tiny_dataset, tmp_path):
    run, _ = launch.new_experiment(root, "broken", "ego_mlp", overrides=tiny(tiny_dataset, **{"data.root": str(tmp_path / "missing")}),
                                   cluster="local-slurm")  # fmt: skip
    sub = launch.submit(root, "broken")
    assert wait_state(run, ("failed", "completed")) == "failed"
    assert "dataset root not found" in rundir.read_status(run)["reason"]
    # afterok + --kill-on-invalid-dep: the evaluation never runs
    assert wait_for(
        lambda: scheduler_state(sub.jobs["eval"]) == "cancelled", 60, "the eval job to be cancelled"
    )
    rows = launch.refresh_status(root, ["broken"])
    assert rows[0]["state"] == "failed" and rows[0]["reason"].startswith("train job")
    assert "dataset root not found" in rows[0]["reason"]  # the job's own message is kept
    assert not (run / "eval").exists()
    assert [j["stage"] for j in json.loads((run / "meta.json").read_text())["jobs"]] == ["train"]


def test_sweep_2x3_runs_as_one_array(root, tiny_dataset):
    sdir, ids = launch.new_sweep(root, "sw", "ego_mlp", grid=["optim.lr=1e-3,3e-3"], seeds=[0, 1, 2],
                                 overrides=tiny(tiny_dataset), cluster="local-slurm")  # fmt: skip
    assert len(ids) == 6
    sub = launch.submit_sweep(root, "sw")
    assert set(sub.jobs) == {"train", "eval"}
    for exp_id in ids:
        assert rundir.read_status(root / exp_id)["jobs"]["train"].startswith(f"{sub.jobs['train']}_")
    for exp_id in ids:
        assert wait_state(root / exp_id, ("completed", "failed", "cancelled")) == "completed"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", sub.jobs["train"], "-o", "JobID,State"],
        capture_output=True,
        text=True,
    )
    tasks = [ln.split("|") for ln in out.stdout.split()]
    assert sorted(t[0] for t in tasks) == [f"{sub.jobs['train']}_{i}" for i in range(6)]
    rows = registry.list_experiments(root, tags=["sw"], sort="exp_id")
    assert len(rows) == 6 and all(r["primary"] and r["primary"]["n_scenarios"] == 7 for r in rows)
    from planlab.experiments.export import aggregate

    _, groups = aggregate(rows)
    assert sorted(g["n"] for g in groups) == [3, 3]  # two learning rates, three seeds each
    # each task wrote its output into its own run dir
    assert all(list((root / e / "logs").glob("train-*.out")) for e in ids)


def _release(job: str) -> None:
    """A requeued job waits for a new begin time (about 2 minutes); start it now.

    The controller can set the begin time again while the old attempt is still completing, after our update
    (seen on a loaded CI machine: attempt 2 never started within 4 min), so keep moving it to "now" until the
    job has left the BeginTime wait."""
    wait_for(lambda: squeue_state(job) == "PENDING|BeginTime", 60, "the job to be pending again")

    def started() -> bool:
        if squeue_state(job) != "PENDING|BeginTime":
            return True
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)
        return False

    wait_for(started, TIMEOUT, "the requeued job to leave its begin-time wait", every=2.0)


def _finish_releasing(run: Path, job: str, timeout: float = TIMEOUT) -> str:
    """Wait for the run to end, starting its job whenever it waits for a begin time or is held (a requeue
    that lands after an earlier look at the queue); the last queue state is in the failure message."""
    seen: list[str] = []

    def ended() -> str | None:
        s = state(run)
        if s in ("completed", "failed"):
            return s
        q = squeue_state(job)
        seen.append(q)
        if q == "PENDING|BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=False)
        elif q.startswith("PENDING|") and "Held" in q:
            subprocess.run(["scontrol", "release", job], check=False)
        return None

    try:
        return wait_for(ended, timeout, f"{run.name} to end", every=2.0)
    except AssertionError:
        logs = "\n".join(p.read_text()[-3000:] for p in sorted((run / "logs").glob("*.out")))
        raise AssertionError(
            f"{run.name} stuck in {state(run)}; queue states seen {sorted(set(seen))}; logs:\n{logs}"
        ) from None


def test_requeue_resumes_from_checkpoint_in_the_same_run_dir(root, tiny_dataset):
    """Attempt 1 is requeued by `scontrol requeue`; attempt 2 gets SIGUSR1 (what --signal=SIGUSR1@grace sends
    before the time limit) and Lightning, its only owner, saves an hpc checkpoint and requeues the job
    itself; attempt 3 resumes from it and finishes the run in the same run dir."""
    over = {"trainer.max_epochs": 40, "checkpoint.every_n_train_steps": 5, "eval.enabled": False}
    run, _ = launch.new_experiment(
        root, "rq", "ego_mlp", cluster="local-slurm", overrides=tiny(tiny_dataset, **over)
    )
    job = launch.submit(root, "rq").jobs["train"]
    last = run / "checkpoints" / "last.ckpt"
    wait_for(last.is_file, TIMEOUT, "the first checkpoint")
    assert state(run) == "running"
    subprocess.run(["scontrol", "requeue", job], check=True)
    _release(job)
    # attempt 2: once it has written a checkpoint of its own, Lightning's handlers are installed
    wait_for(lambda: len(json.loads((run / "meta.json").read_text())["jobs"]) == 2, TIMEOUT, "attempt 2")
    started = time.time()
    wait_for(lambda: last.stat().st_mtime > started, TIMEOUT, "a checkpoint of attempt 2")
    subprocess.run(["scancel", "--signal=USR1", job], check=True)
    # Lightning requeues from inside the job, after saving its checkpoint: the requeue (and the begin time the
    # controller gives it) can come after any one look at the queue, so keep releasing until the run ends
    assert _finish_releasing(run, job) == "completed"
    meta = json.loads((run / "meta.json").read_text())
    trains = [j for j in meta["jobs"] if j["stage"] == "train"]
    assert [j["restart_count"] for j in trains] == [0, 1, 2] and {j["job_id"] for j in trains} == {job}
    assert [j["state"] for j in trains] == ["terminated", "terminated", "completed"]
    # attempt 3 resumes from the newest resume point in this run dir: Lightning's hpc_ckpt_N written on SIGUSR1,
    # or last.ckpt when attempt 2 went on to save a later step before the requeue stopped it
    resumed = trains[2]["train_stats"]["resumed_from"]
    assert resumed and Path(resumed).parent == run / "checkpoints"
    assert "hpc_ckpt" in Path(resumed).name or Path(resumed).name == "last.ckpt"
    # 7 scenes at batch 4: 2 steps per epoch; the full run, nothing lost, nothing repeated
    assert trains[2]["train_stats"]["global_step"] == 40 * 2
    history = [e["state"] for e in rundir.read_status(run)["history"]]
    assert history[-7:] == [
        "cancelled",
        "requeued",
        "running",
        "cancelled",
        "requeued",
        "running",
        "completed",
    ]
    training = json.loads((run / "training.json").read_text())
    assert [e["event"] for e in training["history"]].count("resume") == 2
    log = next((run / "logs").glob("train-*.out")).read_text()
    # Lightning handled SIGUSR1 (10) and requeued the job itself: the script has no trap of its own
    assert "Handling auto-requeue signal: 10" in log and f"Requeued SLURM job: {job}" in log


def test_scancel_gives_cancelled(root, tiny_dataset):
    run, _ = launch.new_experiment(root, "sc", "ego_mlp", cluster="local-slurm",
                                   overrides=tiny(tiny_dataset, **{"trainer.max_epochs": 500, "eval.enabled": False}))  # fmt: skip
    sub = launch.submit(root, "sc")
    wait_for(lambda: state(run) == "running", TIMEOUT, "the job to start")
    subprocess.run(["scancel", sub.jobs["train"]], check=True)
    assert (
        wait_state(run, ("cancelled", "failed", "completed"), 60) == "cancelled"
    )  # written by the job (SIGTERM)
    wait_for(lambda: scheduler_state(sub.jobs["train"]) == "cancelled", 60, "sacct to see CANCELLED")
    rows = launch.refresh_status(root, ["sc"])
    assert rows[0]["state"] == "cancelled" and "CANCELLED" in (rows[0]["reason"] or "")
    assert registry.get_experiment(root, "sc")["status"] == "cancelled"


def test_two_task_srun_ddp_on_cpu(root, tiny_dataset):
    run, r = launch.new_experiment(root, "ddp", "ego_mlp", cluster="local-slurm",
                                   overrides=tiny(tiny_dataset, **{"trainer.max_epochs": 2, "eval.enabled": False,
                                                                 "resources.train.cpu_tasks_per_node": 2}))  # fmt: skip
    assert (r.train.trainer.devices, r.train.trainer.strategy) == (2, "ddp")
    launch.submit(root, "ddp")
    assert wait_state(run, ("completed", "failed", "cancelled")) == "completed"
    log = next((run / "logs").glob("train-*.out")).read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log and "distributed_backend=gloo" in log
    meta = json.loads((run / "meta.json").read_text())
    assert meta["training"]["resolved"]["world_size"] == 2
    # 7 scenes over 2 ranks (4 each) at batch 4: 1 step per epoch
    assert meta["jobs"][-1]["train_stats"]["global_step"] == 2 * 1
