"""Will this job survive? ``planlab smoke``: a short real run with a pre-flight job's success criteria.

Seed 003's checklist, automated and run in minutes before a long job is queued:

1. **shapes**: every feature/target builder's contract on real scenes (a list where a tensor belongs is
   named by builder and key, lesson V1), a batched forward giving ``[B, num_poses, 3]`` and a scalar loss;
2. **completes**: ``run_training`` for a few optimizer steps on a small subset, validation included;
3. **checkpoint**: the checkpoints it wrote pass ``planlab ckpt validate``;
4. **host_memory** / **gpu_memory**: peak PSS of the process tree (workers included) and peak CUDA
   allocation under their budgets;
5. **loss_decreases**: the mean loss over the smoke run's training samples, before and after the run;
6. **finite**: no NaN/Inf in the logged metrics or the checkpoint;
7. **evaluation**: the agent loaded from the smoke checkpoint exactly as ``planlab eval run --checkpoint``
   loads it, scored by the real evaluation runner on 5 scenes, every scene valid.

The smoke run is a single-device run of the same config (batch size, workers, precision, learning rate), so
its memory and speed speak for one rank of the real job. Results: ``smoke.json`` and ``smoke.md`` in its run
directory.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.errors import ContractError, PlanlabError

EVAL_FUTURE_FRAMES = 10  # PDMS v1.1 needs a 5 s future at 2 Hz (fact sheet §1.2); `planlab eval run` default
_SHAPE_ERROR = re.compile(r"shape|size mismatch|mat1 and mat2|must match the size|dimension", re.IGNORECASE)


@dataclass
class SmokeOptions:
    """How small the smoke run is and what it must stay under."""

    steps: int = 10  # optimizer steps
    scenes: int = 64  # scenes per split (train and validation)
    eval_scenes: int = 5
    host_budget: int | None = None  # bytes, per rank (one smoke process stands for one rank)
    gpu_budget: int | None = None  # bytes
    evaluate: bool = True
    eval_cache: str | None = None  # a metric-cache directory to reuse (default: inside the run dir)
    overrides: dict[str, Any] = field(default_factory=dict)  # further key=value settings for the run


@dataclass
class Criterion:
    """One success criterion: status pass, fail or skip, with the measured value and the limit."""

    name: str
    status: str
    measured: str = ""
    limit: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


CRITERIA = (
    "shapes",
    "completes",
    "checkpoint",
    "host_memory",
    "gpu_memory",
    "loss_decreases",
    "finite",
    "evaluation",
)
REQUIRED = ("shapes", "completes", "checkpoint", "loss_decreases", "finite")


@dataclass
class SmokeReport:
    """Everything the smoke run measured; ``passed`` is the verdict."""

    run_dir: Path
    agent: str
    criteria: dict[str, Criterion] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    losses: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    def set(self, name: str, status: str, measured: str = "", limit: str = "", detail: str = "") -> None:
        self.criteria[name] = Criterion(name, status, measured, limit, detail)

    @property
    def passed(self) -> bool:
        if any(c.status == "fail" for c in self.criteria.values()):
            return False
        return all(self.criteria.get(n) is not None and self.criteria[n].status == "pass" for n in REQUIRED)

    @property
    def failures(self) -> list[Criterion]:
        return [c for c in self.criteria.values() if c.status == "fail"]

    def ordered(self) -> list[Criterion]:
        return [self.criteria[n] for n in CRITERIA if n in self.criteria]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "agent": self.agent,
            "run_dir": str(self.run_dir),
            "seconds": self.seconds,
            "error": self.error,
            "criteria": [c.to_dict() for c in self.ordered()],
            "overrides": self.overrides,
            "memory": self.memory,
            "losses": self.losses,
            "checkpoint": self.checkpoint,
            "evaluation": self.evaluation,
        }

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        n_pass = sum(1 for c in self.criteria.values() if c.status == "pass")
        lines = [
            f"# Smoke run of {self.agent}: {verdict} ({n_pass}/{len(self.criteria)} criteria passed)",
            "",
            f"Run directory: `{self.run_dir}` ({self.seconds:.0f} s).",
            "",
            "| criterion | result | measured | limit | detail |",
            "|---|---|---|---|---|",
        ]
        for c in self.ordered():
            cells = [c.name, c.status.upper(), c.measured, c.limit, c.detail]
            lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
        lines.append("")
        if self.error:
            lines += [f"**Error:** `{self.error}`", ""]
        if self.overrides:
            lines.append("Smoke settings: " + ", ".join(f"`{k}={v}`" for k, v in self.overrides.items()))
            lines.append("")
        return "\n".join(lines)

    def write(self) -> None:
        import json

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(
            self.run_dir / "smoke.json", json.dumps(self.to_dict(), indent=2, default=str) + "\n"
        )
        atomic_write_text(self.run_dir / "smoke.md", self.to_markdown())


# --------------------------------------------------------------------------------------------- config
def smoke_overrides(cfg: Any, opts: SmokeOptions) -> dict[str, Any]:
    """The settings that make ``cfg`` a smoke run (single device, few steps, small subset, logged every step).

    The batch size, workers, precision and learning rate stay as configured; a warm-up longer than the run
    is shortened so the loss can move at all.
    """
    steps = max(int(opts.steps), 1)
    over: dict[str, Any] = {
        "trainer.devices": 1,
        "trainer.num_nodes": 1,
        "trainer.strategy": "auto",
        "trainer.max_steps": steps,
        "trainer.max_epochs": steps,
        "trainer.num_sanity_val_steps": 0,
        "trainer.log_every_n_steps": 1,
        "trainer.check_val_every_n_epoch": 1,
        "trainer.progress_bar": False,
        "data.max_scenes": max(int(opts.scenes), 1),
        "checkpoint.every_n_train_steps": 0,
        "logging.csv": True,
        "logging.tensorboard": True,
    }
    if cfg.optim.warmup_steps > steps // 5:
        over["optim.warmup_steps"] = steps // 5
    over.update(opts.overrides)
    return over


def build_smoke_config(cfg: Any, opts: SmokeOptions) -> tuple[Any, dict[str, Any]]:
    from planlab.config import build_config, to_dict

    over = smoke_overrides(cfg, opts)
    return build_config(type(cfg), to_dict(cfg), overrides=over), over


# --------------------------------------------------------------------------------------------- stages
def _to_device(obj: Any, device: Any) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def check_shapes(cfg: Any, report: SmokeReport, n: int = 2) -> bool:
    """Builders on real scenes (contract-checked), then a batched forward and the loss, before any training."""
    import torch
    from torch.utils.data import default_collate

    from planlab.agents.registry import build_agent
    from planlab.features.base import check_unique_names, compute_features, compute_targets
    from planlab.features.trajectory import check_trajectory_target
    from planlab.scene import SensorConfig
    from planlab.training.data import load_split

    agent = build_agent(cfg.agent_name, config=cfg.agent_settings())
    sensors = agent.get_sensor_config()
    split = load_split(cfg, cfg.data.train_split, sensors)
    tokens = split.tokens[:n]
    fbs, tbs = agent.get_feature_builders(), agent.get_target_builders()
    check_unique_names([*fbs, *tbs])
    samples = []
    for token in tokens:
        feats = compute_features(fbs, split.loader.get_agent_input_from_token(token, sensors))
        scene = split.loader.get_scene_from_token(token, SensorConfig.build_no_sensors())
        targs = compute_targets(tbs, scene)
        if "trajectory" in targs:
            check_trajectory_target("targets", targs["trajectory"], scene)
        samples.append((feats, targs))
    features, targets = default_collate(samples)
    agent.train()
    predictions = agent(features)
    traj = predictions.get("trajectory") if isinstance(predictions, Mapping) else None
    want = (len(samples), agent.trajectory_sampling.num_poses, 3)
    if not isinstance(traj, torch.Tensor) or tuple(traj.shape) != want:
        got = tuple(traj.shape) if isinstance(traj, torch.Tensor) else type(traj).__name__
        raise ContractError(f"agent {agent.name()!r} forward returned trajectory {got}, expected {want}")
    losses = agent.compute_loss(features, targets, predictions)
    if not isinstance(losses, Mapping) or not isinstance(losses.get("loss"), torch.Tensor):
        raise ContractError(f"agent {agent.name()!r} compute_loss must return a dict with a 'loss' tensor")
    if losses["loss"].numel() != 1:
        raise ContractError(
            f"agent {agent.name()!r} loss has shape {tuple(losses['loss'].shape)}, expected a scalar"
        )
    shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in features.items())
    report.set(
        "shapes",
        "pass",
        measured=shapes,
        detail=f"{len(fbs)} feature and {len(tbs)} target builder(s) contract-checked on {len(samples)} scenes; "
        f"forward gives {tuple(traj.shape)}",
    )
    return True


def subset_loss_callback(batch_size: int, max_samples: int = 256) -> Any:
    """A Lightning callback measuring the mean loss over the smoke run's training samples (at most
    ``max_samples``) at the start and at the end of the run, in eval mode without gradients.

    This is the objective the few steps optimise, so it falls under any sane learning rate, while the
    per-step training loss of a handful of different batches mostly shows their differences."""
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import default_collate

    class SubsetLoss(pl.Callback):
        def __init__(self) -> None:
            self.batches: list[Any] = []
            self.size = 0
            self.before: float | None = None
            self.after: float | None = None

        def _loss(self, pl_module: Any) -> float:
            agent = pl_module.agent
            was = agent.training
            agent.eval()
            total = 0.0
            try:
                with torch.no_grad():
                    for batch in self.batches:
                        feats, targs = _to_device(batch, pl_module.device)
                        n = int(next(iter(feats.values())).shape[0])
                        total += float(agent.compute_loss(feats, targs, agent(feats))["loss"]) * n
            finally:
                agent.train(was)
            return total / max(self.size, 1)

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            ds = trainer.datamodule.data.train_set
            self.size = min(len(ds), max_samples)
            self.batches = [
                default_collate([ds[i] for i in range(lo, min(lo + batch_size, self.size))])
                for lo in range(0, self.size, batch_size)
            ]
            self.before = self._loss(pl_module)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.batches:
                self.after = self._loss(pl_module)

    return SubsetLoss()


def _train(cfg: Any, run_dir: Path, report: SmokeReport, opts: SmokeOptions) -> Any:
    """``run_training`` under the memory monitor; criteria completes / host & GPU memory / loss."""
    from planlab.diagnostics.memory import MemoryMonitor, gib
    from planlab.training.module import TrainingDiverged
    from planlab.training.train import run_training

    probe = subset_loss_callback(int(cfg.trainer.batch_size))
    result = None
    t0 = time.perf_counter()
    with MemoryMonitor() as mon:
        try:
            result = run_training(cfg, run_dir, progress=False, callbacks=[probe])
        except TrainingDiverged as exc:
            report.set("finite", "fail", measured="loss not finite", detail=str(exc))
            report.set("completes", "fail", detail="stopped by the NaN guard")
            report.error = str(exc)
        except ContractError as exc:
            report.set("shapes", "fail", detail=str(exc))
            report.set("completes", "fail", detail="contract violation during training")
            report.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of the run is the verdict, in one line
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            line = f"{type(exc).__name__}: {text}"
            report.error = line
            if "OutOfMemoryError" in type(exc).__name__ or "out of memory" in text.lower():
                report.set("gpu_memory", "fail", detail=line)
            elif _SHAPE_ERROR.search(text):
                report.set("shapes", "fail", detail=line)
            report.set("completes", "fail", detail=line)
    peak = mon.peak
    report.memory = peak.to_dict()
    seconds = time.perf_counter() - t0
    if result is not None:
        report.set(
            "completes",
            "pass",
            measured=f"{result.global_step} steps, {result.epoch} epoch(s) in {seconds:.1f} s",
            detail=f"run_training finished ({result.state})",
        )
    budget = opts.host_budget
    ok = budget is None or peak.host_bytes <= budget
    report.set(
        "host_memory",
        "pass" if ok else "fail",
        measured=f"{gib(peak.host_bytes)} (RSS sum {gib(peak.host_rss_bytes)})",
        limit=gib(budget) if budget else "no budget",
        detail=f"peak PSS of the process tree, up to {peak.max_processes} process(es)",
    )
    if peak.gpu_bytes is not None:
        gb = opts.gpu_budget
        ok = gb is None or peak.gpu_bytes <= gb
        report.set(
            "gpu_memory",
            "pass" if ok else "fail",
            measured=gib(peak.gpu_bytes),
            limit=gib(gb) if gb else f"device {gib(peak.gpu_total_bytes)}",
            detail="torch.cuda.max_memory_allocated",
        )
    elif "gpu_memory" not in report.criteria:
        report.set("gpu_memory", "skip", detail="no CUDA device")
    before, after = probe.before, probe.after
    report.losses["train_subset"] = {"before": before, "after": after, "samples": probe.size}
    if result is not None and before is not None and after is not None:
        change = (after - before) / abs(before) * 100 if before else 0.0
        good = math.isfinite(after) and after < before
        report.set(
            "loss_decreases",
            "pass" if good else "fail",
            measured=f"{before:.5g} → {after:.5g} ({change:+.2g}%)",
            detail=f"mean loss over the {probe.size} training samples, before and after the run",
        )
    return result


def _check_outputs(run_dir: Path, report: SmokeReport) -> None:
    """checkpoint + finite criteria from the run dir (checkpoints and metrics.csv)."""
    from planlab.diagnostics.checkpoint import validate
    from planlab.diagnostics.logs import nonfinite_occurrences, read_metrics_csv

    val = validate(run_dir)
    ck = list(val.checkpoints)
    if not ck and report.criteria.get("completes", Criterion("", "")).status == "fail":
        return  # training stopped before its first checkpoint: "not reached", not a second failure
    report.checkpoint = {
        "verdict": val.verdict,
        "exit_code": val.exit_code,
        "files": [{"name": r.path.name, "verdict": r.verdict, "diagnosis": r.diagnosis} for r in ck],
    }
    if val.exit_code == 0:
        report.set(
            "checkpoint",
            "pass",
            measured=", ".join(r.path.name for r in ck),
            detail="planlab ckpt validate: every checkpoint valid",
        )
    else:
        bad = next((r for r in ck if not r.ok), None)
        report.set(
            "checkpoint",
            "fail",
            measured=val.verdict,
            detail=f"{bad.path.name}: {bad.diagnosis}" if bad else "; ".join(c.detail for c in val.checks),
        )
    if "finite" in report.criteria:
        return
    bad_metrics = []
    if (run_dir / "metrics.csv").is_file():
        series = read_metrics_csv(run_dir / "metrics.csv")
        bad_metrics = nonfinite_occurrences(series)
        steps = [p.value for p in series.get("train/loss_step", [])]
        if steps:
            report.losses["train_loss_step"] = {"first": steps[0], "last": steps[-1], "points": len(steps)}
    bad_ckpt = [r.path.name for r in ck if any(c.name == "finite" and c.status == "fail" for c in r.checks)]
    if bad_metrics or bad_ckpt:
        what = [f"{b['metric']} ×{b['count']}" for b in bad_metrics] + [f"NaN/Inf in {n}" for n in bad_ckpt]
        report.set(
            "finite", "fail", measured="; ".join(what), detail="NaN/Inf in logged metrics or checkpoint"
        )
    else:
        report.set("finite", "pass", measured="no NaN/Inf", detail="metrics.csv and every checkpoint tensor")


def eval_loader(cfg: Any, n: int) -> Any:
    """The first ``n`` scenes of the validation split (else the training split), with ``planlab eval run``'s
    scene filter (the config's history, a 5 s future, a scene at every frame)."""
    from planlab.data.layout import dataset_root
    from planlab.data.loader import SceneLoader
    from planlab.data.subsets import resolve_split
    from planlab.scene import SceneFilter

    root = dataset_root(cfg.data.root)
    split = cfg.data.val_split or cfg.data.train_split
    source = resolve_split(root, split, cfg.data.splits_file)
    scene_filter = SceneFilter(
        num_history_frames=cfg.data.num_history_frames,
        num_future_frames=EVAL_FUTURE_FRAMES,
        frame_interval=1,
        log_names=source.log_names,
        max_scenes=n,
    )
    return SceneLoader(root, source.data_split, scene_filter, maps_root=cfg.data.maps_root)


def _evaluate(cfg: Any, run_dir: Path, report: SmokeReport, opts: SmokeOptions) -> None:
    """The exact path of ``planlab eval run --checkpoint RUN_DIR``: load (fail fast), factory, runner."""
    from planlab.evaluation.runner import AgentFactory, evaluate_agent
    from planlab.training.checkpoint import load_agent_from_checkpoint

    out = run_dir / "smoke_eval"
    try:
        load_agent_from_checkpoint(str(run_dir))
        factory = AgentFactory(load_agent_from_checkpoint, (str(run_dir),), {}, label=f"checkpoint:{run_dir}")
        loader = eval_loader(cfg, opts.eval_scenes)
        result = evaluate_agent(factory, loader, out, "pdms", opts.eval_cache, workers=1, progress=False)
    except PlanlabError as exc:
        report.set("evaluation", "fail", detail=str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the smoke verdict is the product
        report.set("evaluation", "fail", detail=f"{type(exc).__name__}: {str(exc)[:300]}")
        return
    s = result.summary
    report.evaluation = {
        "out_dir": str(out),
        "num_scenes": s.get("num_scenes"),
        "num_valid": s.get("num_valid"),
        "score": s.get("score"),
        "failures": s.get("failures", {}),
    }
    n, valid = int(s.get("num_scenes") or 0), int(s.get("num_valid") or 0)
    score = s.get("score")
    measured = f"{valid}/{n} scenes valid" + (
        f", PDMS {score:.3f}" if isinstance(score, (int, float)) else ""
    )
    if n > 0 and valid == n:
        report.set(
            "evaluation", "pass", measured=measured, detail="planlab eval run --checkpoint (real runner)"
        )
    else:
        reason = next(iter(s.get("failures", {}).values()), "no scenes scored")
        if _SHAPE_ERROR.search(str(reason)) or "ContractError" in str(reason) or "builder" in str(reason):
            report.set("shapes", "fail", detail=f"at evaluation: {reason}")
        report.set("evaluation", "fail", measured=measured, detail=str(reason)[:300])


def run_smoke(cfg: Any, run_dir: str | Path, opts: SmokeOptions | None = None) -> SmokeReport:
    """Run the smoke test of training config ``cfg`` in the new directory ``run_dir``; writes smoke.json/.md."""
    opts = opts or SmokeOptions()
    t0 = time.perf_counter()
    run = Path(run_dir).expanduser().absolute()
    smoke_cfg, over = build_smoke_config(cfg, opts)
    report = SmokeReport(run, smoke_cfg.agent_name, overrides=over)
    try:
        ok = check_shapes(smoke_cfg, report)
    except PlanlabError as exc:
        report.set("shapes", "fail", detail=str(exc))
        report.error = str(exc)
        ok = False
    except Exception as exc:  # noqa: BLE001 - e.g. a forward that cannot take the batch
        line = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:300]}"
        report.set("shapes", "fail", detail=line)
        report.error = line
        ok = False
    if ok:
        result = _train(smoke_cfg, run, report, opts)
        if (run / "checkpoints").is_dir():
            _check_outputs(run, report)
        checkpoint_ok = "checkpoint" in report.criteria and report.criteria["checkpoint"].status == "pass"
        if result is not None and opts.evaluate and checkpoint_ok:
            _evaluate(smoke_cfg, run, report, opts)
    for name in REQUIRED + (("evaluation",) if opts.evaluate else ()):
        if name not in report.criteria:
            report.set(name, "skip", detail="not reached: an earlier stage failed")
    if not opts.evaluate:
        report.set("evaluation", "skip", detail="--no-eval")
    report.seconds = time.perf_counter() - t0
    with contextlib.suppress(OSError):
        report.write()
    return report
