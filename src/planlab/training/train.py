"""``run_training``: one training run in its own run directory — the function ``planlab train`` calls.

Reads top to bottom: decide fresh start or resume (rank 0), record provenance, seed, build the agent and
the data (filling caches), assemble Lightning (loggers, checkpoints, precision, DDP), fit, record the end.
Under DDP the other ranks (started by Lightning's launcher or by ``srun``) wait until rank 0 has prepared
the run directory and the caches, then join with the same resume checkpoint.
"""

from __future__ import annotations

import math
import os
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.errors import PlanlabError
from planlab.training.rundir import RunDir, merge_json, read_json, write_json

ATTEMPT_ENV = "PLANLAB_TRAIN_ATTEMPT"
PREPARED_FILE = ".prepared.json"


@dataclass
class TrainResult:
    run_dir: Path
    state: str
    global_step: int
    epoch: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    resumed_from: Path | None
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    rank: int = 0


def global_rank_from_env() -> int:
    """This process's rank before Lightning starts: srun's SLURM_PROCID, else RANK / NODE_RANK+LOCAL_RANK."""
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return int(os.environ["SLURM_PROCID"])
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    return int(os.environ.get("LOCAL_RANK", "0")) + int(os.environ.get("NODE_RANK", "0")) * 10_000


def _attempt_id() -> str:
    if ATTEMPT_ENV in os.environ:
        return os.environ[ATTEMPT_ENV]
    if "SLURM_JOB_ID" in os.environ:
        parts = [os.environ.get(k, "") for k in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_STEP_ID")]
        return "slurm-" + "-".join(parts)
    return uuid.uuid4().hex


def _wait_prepared(run: RunDir, attempt: str, timeout: float = 3600.0) -> dict[str, Any]:
    t0 = time.monotonic()
    while True:
        data = read_json(run.path / PREPARED_FILE)
        if data is not None and data.get("attempt") == attempt:
            if data.get("error"):
                raise PlanlabError(f"rank 0 failed to prepare the run: {data['error']}")
            return data
        if time.monotonic() - t0 > timeout:
            raise PlanlabError(f"timed out waiting for rank 0 to prepare {run.path}")
        time.sleep(0.5)


def resolve_accelerator(cfg: Any) -> tuple[str, int | str, str, str]:
    """(accelerator, devices, strategy, precision) from the config's "auto" values and the machine."""
    import torch

    t = cfg.trainer
    accel = t.accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    if accel == "cuda":
        accel = "gpu"
    if accel == "gpu" and not torch.cuda.is_available():
        raise PlanlabError("trainer.accelerator=gpu but no CUDA device is visible")
    devices: int | str = t.devices
    if devices == -1:
        devices = torch.cuda.device_count() if accel == "gpu" else 1
    world = int(devices) * t.num_nodes
    strategy = t.strategy
    if strategy == "auto":
        strategy = "ddp" if world > 1 else "auto"
    precision = t.precision
    if precision == "auto":
        if accel == "gpu":
            precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            precision = "32-true"
    if precision == "32":
        precision = "32-true"
    return accel, devices, strategy, precision


def _meta(
    cfg: Any, run: RunDir, attempt: str, data_summary: dict[str, Any], resolved: dict[str, Any]
) -> dict[str, Any]:
    from planlab.training.provenance import git_state, host_info, lock_hash, package_versions, slurm_env

    git, diff = git_state()
    if diff:
        atomic_write_text(run.path / "git.diff", diff)
        git["diff_file"] = "git.diff"
    return {
        "git": git,
        "lock": lock_hash(),
        "host": host_info(),
        "packages": package_versions(),
        "slurm": slurm_env(),
        "seeds": {"trainer.seed": cfg.trainer.seed, "data.subset_seed": cfg.data.subset_seed},
        "data": data_summary,
        "training": {"attempt": attempt, "agent": cfg.agent_name, "resolved": resolved},
    }


def run_training(
    cfg: Any,
    run_dir: str | os.PathLike,
    resume: bool | str = False,
    *,
    write_config: bool = True,
    manage_status: bool = True,
    progress: bool | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train ``cfg`` (a :class:`~planlab.training.config.TrainConfig`) into ``run_dir``.

    ``resume``: False (the run dir must be new), True (continue the unfinished run there), ``"auto"``
    (continue if there is one, else start). After a SLURM requeue (``SLURM_RESTART_COUNT`` > 0) an
    unfinished run is always continued. ``write_config=False`` leaves ``config.yaml`` to the caller and
    ``manage_status=False`` leaves ``status.json`` to it (experiment run directories). ``callbacks``: extra
    Lightning callbacks (run after planlab's own).
    """
    import lightning.pytorch as pl
    import torch

    from planlab.agents.registry import build_agent
    from planlab.training.callbacks import (
        CsvMetricsLogger,
        LastCheckpoint,
        SelectiveFinetune,
        ThroughputMonitor,
        TopKCheckpoint,
    )
    from planlab.training.data import (
        PlanningDataModule,
        ResumePosition,
        batches_per_epoch,
        optimizer_steps,
        prepare_training_data,
    )
    from planlab.training.module import AgentLightningModule, TrainingDiverged

    t_start = time.perf_counter()
    run = RunDir(run_dir)
    rank = global_rank_from_env()
    attempt = _attempt_id()
    os.environ[ATTEMPT_ENV] = attempt  # inherited by the ranks Lightning launches
    show = (cfg.trainer.progress_bar if progress is None else progress) and rank == 0

    # 1. The run directory (rank 0 decides; the others follow what it wrote).
    if rank == 0:
        plan = run.plan(cfg, resume, write_config=write_config)
        resume_from = plan.resume_from
    else:
        prepared = _wait_prepared(run, attempt)
        resume_from = Path(prepared["resume_from"]) if prepared.get("resume_from") else None
        plan = None

    position = None
    resume_step = None
    if resume_from is not None:
        from planlab.agents.checkpoint_io import read_checkpoint

        meta = read_checkpoint(resume_from).get("planlab") or {}
        pos = meta.get("position") or {}
        position = ResumePosition(int(pos.get("epoch", 0)), int(pos.get("batches_done", 0)))
        resume_step = int(meta.get("global_step", 0))

    # 2. Seed, agent, data.
    pl.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    if cfg.trainer.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    agent = build_agent(cfg.agent_name, config=cfg.agent_settings())
    accel, devices, strategy, precision = resolve_accelerator(cfg)
    world = int(devices) * cfg.trainer.num_nodes
    try:
        if rank == 0:
            assert plan is not None
            run.start(cfg, plan, write_config, {"attempt_id": attempt, "rank0_host": os.uname().nodename})
            if manage_status:
                run.set_status(
                    "running", attempt=attempt, resume_from=str(resume_from) if resume_from else None
                )
        data = prepare_training_data(cfg, agent, run.path, build_caches=(rank == 0), progress=show)
    except BaseException as exc:
        if rank == 0:
            write_json(run.path / PREPARED_FILE, {"attempt": attempt, "error": str(exc)})
            run.finish("failed", reason=str(exc))
            if manage_status:
                run.set_status("failed", reason=str(exc))
        raise

    total_steps = optimizer_steps(cfg, len(data.train_set), world)
    resolved = {
        "accelerator": accel,
        "devices": devices,
        "strategy": strategy,
        "precision": precision,
        "world_size": world,
        "total_optimizer_steps": total_steps,
        "train_samples": len(data.train_set),
        "val_samples": len(data.val_set) if data.val_set else 0,
    }
    if rank == 0:
        merge_json(run.path, "meta.json", _meta(cfg, run, attempt, data.summary(), resolved))
        write_json(
            run.path / PREPARED_FILE,
            {"attempt": attempt, "resume_from": str(resume_from) if resume_from else None},
        )

    # 3. Lightning.
    run_info = {"run_dir": str(run.path), "attempt": attempt}
    module = AgentLightningModule(agent, cfg, total_steps, run_info)
    module.batches_per_epoch = batches_per_epoch(len(data.train_set), cfg.trainer.batch_size, world)
    datamodule = PlanningDataModule(data, cfg, position)
    extra_callbacks = list(callbacks or [])
    callbacks = [
        LastCheckpoint(run.checkpoints, cfg.checkpoint.every_n_train_steps),
        ThroughputMonitor(cfg.trainer.log_every_n_steps),
    ]
    has_val = data.val_set is not None and len(data.val_set) > 0
    if has_val and cfg.checkpoint.save_top_k > 0:
        callbacks.append(
            TopKCheckpoint(
                run.checkpoints, cfg.checkpoint.monitor, cfg.checkpoint.mode, cfg.checkpoint.save_top_k
            )
        )
    ft = cfg.optim.finetune
    if ft.unfreeze_at_epoch is not None:
        callbacks.append(SelectiveFinetune(ft.unfreeze_at_epoch, ft.unfreeze_last_k))
    callbacks.extend(agent.get_training_callbacks())
    callbacks.extend(extra_callbacks)
    loggers: list[Any] = []
    if cfg.logging.csv:
        loggers.append(CsvMetricsLogger(run.metrics_csv, resume_step=resume_step))
    if cfg.logging.tensorboard:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(save_dir=str(run.path), name="tb", version="", default_hp_metric=False)
        )
    if show:
        from lightning.pytorch.callbacks import TQDMProgressBar

        callbacks.append(TQDMProgressBar(refresh_rate=max(1, cfg.trainer.log_every_n_steps // 2)))
    plugins = []
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect():
        # SIGUSR1 before the time limit: save hpc_ckpt_N into checkpoints/ and requeue; the requeued job
        # resumes in this run dir (RunDir.plan sees SLURM_RESTART_COUNT > 0).
        plugins.append(SLURMEnvironment(auto_requeue=True))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        # A frozen encoder is deliberately in eval mode while its head trains.
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")
        trainer = pl.Trainer(
            default_root_dir=str(run.checkpoints),
            accelerator=accel,
            devices=devices,
            num_nodes=cfg.trainer.num_nodes,
            strategy=strategy,
            precision=precision,
            max_epochs=cfg.trainer.max_epochs,
            max_steps=cfg.trainer.max_steps,
            accumulate_grad_batches=cfg.trainer.accumulate_grad_batches,
            gradient_clip_val=cfg.trainer.gradient_clip_val or None,
            gradient_clip_algorithm="norm",
            deterministic=cfg.trainer.deterministic,
            check_val_every_n_epoch=cfg.trainer.check_val_every_n_epoch,
            log_every_n_steps=cfg.trainer.log_every_n_steps,
            num_sanity_val_steps=cfg.trainer.num_sanity_val_steps,
            limit_val_batches=1.0 if has_val else 0,
            enable_progress_bar=show,
            enable_model_summary=False,
            enable_checkpointing=any(isinstance(cb, TopKCheckpoint) for cb in callbacks),
            use_distributed_sampler=False,
            callbacks=callbacks,
            logger=loggers or False,
            plugins=plugins or None,
        )
        # 4. Fit.
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from) if resume_from else None)
        except TrainingDiverged as exc:
            if rank == 0:
                run.finish("failed", reason=str(exc), global_step=int(trainer.global_step))
                if manage_status:
                    run.set_status("failed", reason=str(exc))
            last = run.last_ckpt if run.last_ckpt.is_file() else None
            where = f"last good checkpoint: {last}" if last else "no checkpoint was written before"
            raise TrainingDiverged(f"{exc}; {where}") from None
        except BaseException as exc:
            if rank == 0:
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                # Ctrl-C (Lightning turns it into SystemExit) and SIGTERM (preemption) leave a resumable run.
                stopped = (
                    isinstance(exc, (KeyboardInterrupt, SystemExit))
                    or type(exc).__name__ == "SIGTERMException"
                )
                run.finish("interrupted" if stopped else "failed", reason=reason)
                if manage_status:
                    run.set_status("failed", reason=reason)
            raise

    # 5. Record the end.
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if hasattr(v, "numel") and v.numel() == 1
    }
    metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
    best = None
    for cb in callbacks:
        if isinstance(cb, TopKCheckpoint) and cb.best_model_path:
            best = Path(cb.best_model_path)
    if rank == 0:
        for hpc in run.checkpoints.glob("hpc_ckpt_*.ckpt"):
            hpc.unlink(missing_ok=True)  # superseded by last.ckpt of the finished run
        run.finish(
            "completed",
            global_step=int(trainer.global_step),
            epoch=int(trainer.current_epoch),
            metrics=metrics,
            best_checkpoint=best.name if best else None,
        )
        if manage_status:
            run.set_status("completed", global_step=int(trainer.global_step))
        (run.path / PREPARED_FILE).unlink(missing_ok=True)
    return TrainResult(
        run_dir=run.path,
        state="completed",
        global_step=int(trainer.global_step),
        epoch=int(trainer.current_epoch),
        last_checkpoint=run.last_ckpt if run.last_ckpt.is_file() else None,
        best_checkpoint=best,
        resumed_from=resume_from,
        seconds=time.perf_counter() - t_start,
        metrics=metrics,
        rank=rank,
    )
