"""The code that runs inside a job: ``python -m planlab.experiments.job {train,eval,merge}``.

Started by ``srun`` (SLURM) or by the local launcher, it works only inside the run dir: it records the
job's provenance in ``meta.json`` (job ids, SLURM variables, host, timestamps, wall time, GPU-hours,
checkpoints; training adds git sha/diff and the lock hash), moves ``status.json`` through the lifecycle
(running → completed/failed; ``cancelled`` when SLURM's SIGTERM arrives; ``requeued`` when a restarted
job begins), and calls the library: :func:`planlab.training.train.run_training` (resuming in the same run
dir after a requeue) and the evaluation runner. It never touches the SQLite index (DESIGN.md).
SIGUSR1 is not handled here: Lightning's SLURM environment owns it (checkpoint + requeue).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from planlab.errors import PlanlabError
from planlab.experiments import rundir
from planlab.experiments.ids import check_id
from planlab.experiments.provenance import git_info, host_info, job_identity, slurm_env

STAGES = ("train", "eval", "merge")


def global_rank() -> int:
    """Rank of this process among the job's srun tasks (0 when not under a multi-task srun)."""
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    return int(os.environ.get("RANK", "0") or 0)


def read_array_map(path: Path, index: int) -> Path:
    """The run dir of array task ``index`` from a sweep's ``array_map.tsv`` (index, exp id, run dir)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PlanlabError(f"{path}: cannot read the array map ({exc})") from None
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise PlanlabError(f"{path}: bad line {line!r} (want index<TAB>exp_id<TAB>run_dir)")
        if parts[0] == str(index):
            exp_id = check_id(parts[1])
            run = Path(parts[2])
            if run.name != exp_id:
                raise PlanlabError(f"{path}: run dir {run} does not belong to experiment {exp_id!r}")
            return run
    raise PlanlabError(f"{path}: no entry for array index {index}")


def _attempt_key(ident: dict[str, Any], stage: str) -> str:
    jid = ident.get("job_id")
    if ident.get("array_job_id") is not None:
        jid = f"{ident['array_job_id']}_{ident.get('array_task_id')}"
    return f"{stage}:{jid}:{ident.get('restart_count', 0)}"


def _totals(meta: dict[str, Any]) -> None:
    jobs = meta.get("jobs") or []
    meta["wall_time_s"] = round(sum(float(j.get("wall_s") or 0.0) for j in jobs), 3)
    meta["gpu_hours"] = round(sum(float(j.get("gpu_hours") or 0.0) for j in jobs), 6)


def job_started(run: Path, stage: str, ident: dict[str, Any], **info: Any) -> str:
    """Record this job attempt in meta.json and set status running (after ``requeued`` on a restart)."""
    key = _attempt_key(ident, stage)
    git = git_info(with_diff=False)  # the training stage also stores the full diff (git.diff)
    entry = {
        "key": key,
        "stage": stage,
        **ident,
        "start": rundir.now_iso(),
        "host": host_info(),
        "git": {k: git.get(k) for k in ("sha", "branch", "dirty")},
        "slurm": slurm_env(),
        **info,
    }

    def apply(meta: dict[str, Any]) -> None:
        meta.setdefault("experiment", run.name)
        meta.setdefault("jobs", []).append(entry)
        _totals(meta)

    rundir.update_json(run, "meta.json", apply)
    if ident.get("restart_count", 0) > 0:
        rundir.set_status(
            run, "requeued", phase=stage, job_id=ident.get("job_id"), restart=ident["restart_count"]
        )
    rundir.set_status(run, "running", phase=stage, job_id=ident.get("job_id"), host=entry["host"]["host"])
    return key


def job_ended(
    run: Path,
    key: str,
    state: str,
    t0: float,
    ident: dict[str, Any],
    lock_timeout: float | None = None,
    **info: Any,
) -> None:
    """Close this attempt's meta.json entry: end time, wall time, GPU-hours (allocation-based)."""
    wall = time.time() - t0
    gpus = int(ident.get("nodes", 1)) * int(ident.get("gpus_per_node", 0))

    def apply(meta: dict[str, Any]) -> None:
        for entry in reversed(meta.get("jobs") or []):
            if entry.get("key") == key:
                entry.update(end=rundir.now_iso(), state=state, wall_s=round(wall, 3),
                             gpu_hours=round(wall * gpus / 3600.0, 6), **info)  # fmt: skip
                break
        _totals(meta)

    rundir.update_json(run, "meta.json", apply, lock_timeout)


# --------------------------------------------------------------------------- stages


def _config(run: Path) -> dict[str, Any]:
    cfg = rundir.read_config(run)
    if "train" not in cfg or "eval" not in cfg:
        raise PlanlabError(f"{run / 'config.yaml'}: not an experiment config (needs train and eval sections)")
    return cfg


def stage_train(run: Path) -> dict[str, Any]:
    """Train (or resume) into the run dir; returns what meta.json records about it."""
    from planlab.training.config import train_config_from_dict
    from planlab.training.train import run_training

    cfg = train_config_from_dict(_config(run)["train"])
    result = run_training(cfg, run, resume="auto", write_config=False, manage_status=False, progress=False)
    t = cfg.trainer
    world = int(t.devices if t.devices > 0 else 1) * t.num_nodes
    samples = result.global_step * t.batch_size * world * t.accumulate_grad_batches
    return {
        "checkpoints": {
            "best": str(result.best_checkpoint) if result.best_checkpoint else None,
            "last": str(result.last_checkpoint) if result.last_checkpoint else None,
        },
        "train_stats": {
            "global_step": result.global_step,
            "epoch": result.epoch,
            "seconds": round(result.seconds, 3),
            "samples": samples,
            "samples_per_s": round(samples / result.seconds, 3) if result.seconds > 0 else None,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
            "metrics": result.metrics,
        },
    }


def stage_eval(run: Path, shard: tuple[int, int] | None) -> dict[str, Any]:
    """Score the trained agent on the configured split into ``<run>/eval/<split>/`` (or one shard of it)."""
    from planlab.experiments.evaluate import evaluate_run

    return evaluate_run(run, _config(run), shard=shard)


def stage_merge(run: Path) -> dict[str, Any]:
    """Merge the evaluation shards into ``pdm_scores.csv`` + ``summary.json``."""
    from planlab.experiments.evaluate import merge_run

    return merge_run(run, _config(run))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise PlanlabError(f"--shard {text!r} is not I/N") from None
    if not (n >= 1 and 0 <= i < n):
        raise PlanlabError(f"--shard {text!r}: need 0 <= I < N")
    return i, n


def _redirect_output(run: Path, stage: str, ident: dict[str, Any]) -> None:
    """Array tasks: after one pointer line in the sweep log, write this task's output into its run dir."""
    jid = ident.get("job_id")
    if ident.get("array_job_id") is not None:
        jid = f"{ident['array_job_id']}_{ident.get('array_task_id')}"
    log = run / "logs" / f"{stage}-{jid}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"planlab: {stage} output of {run.name} -> {log}", flush=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m planlab.experiments.job", description=__doc__.splitlines()[0]
    )
    parser.add_argument("stage", choices=STAGES)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run-dir", type=Path)
    where.add_argument("--array-map", type=Path, help="sweep map; the task's index is SLURM_ARRAY_TASK_ID")
    parser.add_argument("--shard", help="evaluation shard I/N")
    args = parser.parse_args(argv)

    ident = job_identity()
    try:
        if args.array_map is not None:
            index = int(os.environ.get("SLURM_ARRAY_TASK_ID", "-1"))
            run = read_array_map(args.array_map, index)
        else:
            run = args.run_dir
        run = run.expanduser().absolute()
        if not (run / "experiment.yaml").is_file():
            raise PlanlabError(f"{run}: not an experiment run dir (no experiment.yaml)")
        shard = parse_shard(args.shard)
    except PlanlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.array_map is not None:
        _redirect_output(run, args.stage, ident)

    rank = global_rank()
    t0 = time.time()
    key = None
    if rank == 0:
        extra = {"shard": f"{shard[0]}/{shard[1]}"} if shard else {}
        key = job_started(run, args.stage, ident, **extra)

    def on_sigterm(signum: int, frame: Any) -> None:
        # scancel, the time limit and a requeue all arrive as SIGTERM; sacct tells them apart later
        # (`planlab exp status`), and a requeued job records `requeued` when it starts again.
        if rank == 0 and key is not None:
            try:
                job_ended(run, key, "terminated", t0, ident, lock_timeout=2.0)
                rundir.set_status(run, "cancelled", phase=args.stage, reason=f"SIGTERM during {args.stage}",
                                  job_id=ident.get("job_id"), lock_timeout=2.0)  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - dying anyway; never mask the signal
                print(f"planlab: could not record SIGTERM ({exc})", file=sys.stderr, flush=True)
        print(f"planlab: {args.stage} of {run.name} received SIGTERM", file=sys.stderr, flush=True)
        os._exit(143)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if args.stage == "train":
            info = stage_train(run)
        elif args.stage == "eval":
            info = stage_eval(run, shard)
        else:
            info = stage_merge(run)
    except BaseException as exc:  # noqa: BLE001 - every failure is recorded, then re-signalled by exit code
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        reason = str(exc) if isinstance(exc, PlanlabError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        if not isinstance(exc, PlanlabError):
            traceback.print_exc()
        print(f"error: {reason}", file=sys.stderr, flush=True)
        if rank == 0 and key is not None:
            job_ended(run, key, "failed", t0, ident, reason=reason)
            rundir.set_status(run, "failed", phase=args.stage, reason=reason, job_id=ident.get("job_id"))
        return 1
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if rank == 0 and key is not None:
        checkpoints = info.pop("checkpoints", None)
        job_ended(run, key, "completed", t0, ident, **{k: v for k, v in info.items() if k != "done"})
        if checkpoints is not None:
            rundir.update_json(run, "meta.json", lambda m: m.__setitem__("checkpoints", checkpoints))
        if args.stage == "eval" and shard is not None and shard[1] > 1:
            pass  # the merge job completes the evaluation stage
        elif args.stage == "merge":
            rundir.stage_done(run, "eval")
            rundir.stage_done(run, "merge")
        else:
            rundir.stage_done(run, args.stage)
    return 0


if __name__ == "__main__":
    sys.exit(main())
