"""``run_pretraining``: I-JEPA pre-training of a ViT on unlabelled driving frames, in its own run directory.

Reads top to bottom: plan the run dir (fresh or resume, the training room's rules), decode the frames once,
build the model, restore the last checkpoint, then the loop — per step: images of the seeded epoch order,
aspect-preserving random crops, multi-block masks, the I-JEPA loss, AdamW with the scheduled lr and weight
decay, the EMA update of the target encoder. Every ``log_every_n_steps`` the loss and the collapse monitors go
to ``metrics.csv``; every ``probe.every_n_epochs`` linear probes compare the target encoder with the same
architecture at initialisation. At the end the target encoder (the evaluation convention, methods_facts §1.6)
is exported as ``<run_dir>/encoder/`` (``planlab-vit/1`` + ``planlab.json`` with the camera settings), the
directory ``encoder.kind=vit encoder.path=...`` of the encoder agents reads.

Everything random is drawn from generators seeded by (seed, epoch) or (seed, step), so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have (up to float non-associativity across
thread counts). SIGUSR1 (SLURM's warning before the time limit) saves a checkpoint and requeues the job when
it runs under SLURM; SIGTERM saves one and stops. A requeued job resumes automatically.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.config import config_hash, to_dict
from planlab.errors import CheckpointError, PlanlabError
from planlab.training.rundir import RESUMABLE_KEYS, RunDir, merge_json, write_json

CKPT_FORMAT = "planlab-ijepa-ckpt/1"
LAST = "last.pt"


class PretrainingDiverged(PlanlabError):
    """The loss became NaN/Inf."""


@dataclass
class PretrainResult:
    run_dir: Path
    state: str
    step: int
    epoch: int
    encoder_dir: Path | None
    seconds: float
    resumed_from: Path | None = None
    probe: dict[str, Any] = field(default_factory=dict)
    stopped_by_signal: str | None = None


class PretrainRunDir(RunDir):
    """A training-style run dir whose resume point is ``checkpoints/last.pt`` (torch, weights-only)."""

    @property
    def last_pt(self) -> Path:
        return self.checkpoints / LAST

    @property
    def encoder_dir(self) -> Path:
        return self.path / "encoder"

    def newest_checkpoint(self) -> Path | None:
        return self.last_pt if self.last_pt.is_file() else None


def resolve_device(cfg: Any) -> tuple[str, str]:
    import torch

    device = cfg.trainer.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise PlanlabError("trainer.device=cuda but no CUDA device is visible")
    precision = cfg.trainer.precision
    if precision == "auto":
        precision = "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "32"
    return device, precision


def build_model(cfg: Any) -> Any:
    """The I-JEPA model of ``cfg`` at its initialisation (a function of ``encoder.init_seed`` alone)."""
    import torch

    from planlab.models.vit import ViTConfig
    from planlab.ssl.ijepa import IJepa

    e, p = cfg.encoder, cfg.predictor
    gh, gw = cfg.grid
    vit = ViTConfig(e.patch_size, e.embed_dim, e.depth, e.num_heads, e.mlp_ratio, gh, gw)
    seed = cfg.trainer.seed if e.init_seed is None else e.init_seed
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        r = cfg.reg
        return IJepa(
            vit, p.embed_dim, p.depth, p.num_heads, p.mlp_ratio, (r.variance, r.covariance, r.target_std)
        )
    finally:
        torch.random.set_rng_state(state)


def random_crop(images: Any, scale: tuple[float, float], gen: Any) -> Any:
    """Aspect-preserving random resized crop of every image: a window of ``s`` × the image area (``s`` uniform in
    ``scale``, the image's own aspect ratio, a uniform position) resampled bilinearly back to full size."""
    import torch
    import torch.nn.functional as F

    lo, hi = scale
    if lo >= 1.0:
        return images
    b = images.shape[0]
    side = torch.sqrt(lo + (hi - lo) * torch.rand(b, generator=gen))  # window side / image side
    centre = (1.0 - side)[:, None] * (
        2.0 * torch.rand(b, 2, generator=gen) - 1.0
    )  # normalised [-1, 1] coords
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = side
    theta[:, 1, 1] = side
    theta[:, :, 2] = centre
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid.to(images.device), mode="bilinear", padding_mode="border", align_corners=False
    )


def _step_generator(seed: int, step: int) -> Any:
    import torch

    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + 17) % (2**63 - 1))


def _epoch_order(seed: int, epoch: int, n: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed((seed * 1_000_033 + epoch * 104_729 + 1) % (2**63 - 1))
    return torch.randperm(n, generator=gen)


def _meta(cfg: Any, run: RunDir, info: dict[str, Any]) -> dict[str, Any]:
    from planlab.atomic import atomic_write_text
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
        "seeds": {"trainer.seed": cfg.trainer.seed, "encoder.init_seed": cfg.encoder.init_seed},
        "pretraining": info,
    }


class _Signals:
    """SIGUSR1 → checkpoint (+ requeue under SLURM); SIGTERM → checkpoint and stop. Installed in the main
    thread only; the previous handlers come back on exit."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGUSR1, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def save_checkpoint(path: Path, model: Any, optimizer: Any, state: dict[str, Any], cfg_hash: str) -> None:
    import torch

    from planlab.atomic import atomic_path

    payload = {
        "format": CKPT_FORMAT,
        "config_hash": cfg_hash,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        **state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A pre-training checkpoint (``torch.load(weights_only=True)``; plain data only)."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - one line for any unreadable file
        raise CheckpointError(
            f"{path}: cannot read the pre-training checkpoint ({str(exc).splitlines()[0][:160]})"
        ) from None
    if not isinstance(data, dict) or data.get("format") != CKPT_FORMAT:
        raise CheckpointError(f"{path}: not a planlab I-JEPA checkpoint")
    return data


def export_encoder(model: Any, cfg: Any, out: Path, info: dict[str, Any]) -> Path:
    """The target encoder as ``planlab-vit/1`` + ``planlab.json`` (camera settings, provenance), atomically."""
    import shutil
    import tempfile

    from planlab.models.vit import save_vit
    from planlab.ssl.convert import INFO_FILE, _publish

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_vit(model.target_encoder.plain(), tmp)
        meta = {"camera": to_dict(cfg.camera), "source": "target_encoder", **info}
        (tmp / INFO_FILE).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def snapshot_encoder(run_dir: Path, out: Path) -> Path:
    """Export the target encoder of a pre-training run's newest checkpoint (finished or not) to ``out``, so a
    run can be probed or used mid-way without stopping it. The checkpoint is read with weights only."""
    run = PretrainRunDir(run_dir)
    ckpt = run.newest_checkpoint()
    config = run.path / "config.yaml"
    if ckpt is None or not config.is_file():
        raise CheckpointError(
            f"{run.path}: no pre-training checkpoint ({LAST}) and config.yaml to export from"
        )
    from planlab.ssl.config import build_pretrain_config

    cfg = build_pretrain_config([config])
    data = load_checkpoint(ckpt)
    model = build_model(cfg)
    model.load_state_dict(data["model"])
    info = {"run_dir": str(run.path), "step": int(data["step"]), "epoch": int(data["epoch"]),
            "checkpoint": str(ckpt), "snapshot": True}  # fmt: skip
    return export_encoder(model, cfg, Path(out), info)


def _requeue() -> bool:
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        return (
            subprocess.run(
                ["scontrol", "requeue", job], capture_output=True, timeout=60, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_pretraining(
    cfg: Any, run_dir: str | os.PathLike, resume: bool | str = False, *, progress: bool | None = None
) -> PretrainResult:
    """Pre-train ``cfg`` (a :class:`~planlab.ssl.config.PretrainConfig`) into ``run_dir``.

    ``resume``: False (the run dir must be new), True (continue the unfinished run), ``"auto"`` (continue if
    there is one, else start). After a SLURM requeue an unfinished run is always continued.
    """
    import numpy as np
    import torch
    from tqdm import tqdm

    from planlab.ssl import probe as probes
    from planlab.ssl.frames import ConcatImages, build_frames
    from planlab.ssl.masks import MaskSpec, MultiBlockMasks
    from planlab.ssl.schedules import lr_at, momentum_at, weight_decay_at
    from planlab.training.callbacks import CsvMetricsLogger

    t_start = time.perf_counter()
    show = cfg.trainer.progress_bar if progress is None else progress
    run = PretrainRunDir(run_dir)
    plan = run.plan(cfg, resume)
    # what may not change across a resume (the training room's rule); probes only monitor, so not them
    cfg_hash = config_hash(cfg, exclude=(*RESUMABLE_KEYS, "probe"))
    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    device, precision = resolve_device(cfg)
    run.start(cfg, plan, True, {"kind": "ijepa-pretrain", "device": device, "host": os.uname().nodename})
    run.set_status("running", resume_from=str(plan.resume_from) if plan.resume_from else None)
    try:
        # 1. Frames (decoded once) and the probe frames.
        cache_root = Path(cfg.data.cache_dir) if cfg.data.cache_dir else run.path / "frames"
        d = cfg.data
        frames = build_frames(d.root, d.split, cfg.camera, cache_root, stride=d.frame_stride,
                              max_frames=d.max_frames, splits_file=d.splits_file, maps_root=d.maps_root,
                              threads=d.decode_threads, progress=show)  # fmt: skip
        # more unlabelled frames from further roots (same split and camera settings); probes use d.root only
        extra = [build_frames(r, d.split, cfg.camera, cache_root, stride=d.frame_stride, splits_file=d.splits_file,
                              threads=d.decode_threads, progress=show) for r in d.extra_roots]  # fmt: skip
        images_all = ConcatImages([frames.images] + [e.images for e in extra]) if extra else frames.images
        sources = [{"root": str(root or "$OPENSCENE_DATA_ROOT"), "count": len(f), "manifest_hash": f.info["manifest_hash"]}
                   for root, f in zip([d.root, *d.extra_roots], [frames, *extra], strict=True)]  # fmt: skip
        pr = cfg.probe
        probe_set = None
        if pr.enabled:

            def probe_frames_of(split: str, stride: int, max_frames: int | None) -> Any:
                return build_frames(d.root, split, cfg.camera, cache_root, stride=stride, max_frames=max_frames,
                                    splits_file=d.splits_file, maps_root=d.maps_root, threads=d.decode_threads,
                                    lead_range=tuple(pr.lead_range), lead_half_width=pr.lead_half_width,
                                    progress=show)  # fmt: skip

            held_out = probe_frames_of(pr.split, pr.frame_stride, pr.max_frames)
            # fit on the pre-training frames (their labels, never used by pre-training) unless told otherwise;
            # with the default lead settings this is the cache just built above
            fit = probe_frames_of(d.split, d.frame_stride, d.max_frames) if pr.fit_on == "pretrain" else None
            probe_set = probes.ProbeSet(held_out, fit, pr.max_train_frames, pr.test_fraction)
        n, batch = len(images_all), cfg.trainer.batch_size
        steps_per_epoch = n // batch  # drop_last: every step has a full batch (masks stack)
        if steps_per_epoch < 1:
            raise PlanlabError(f"{n} frames in split {d.split!r} < trainer.batch_size={batch}")
        total = steps_per_epoch * cfg.trainer.epochs
        warmup = int(round(cfg.optim.warmup_fraction * total))

        # 2. Model, optimiser, masks; restore.
        model = build_model(cfg).to(device)
        optimizer = torch.optim.AdamW(
            model.param_groups(),
            lr=cfg.optim.lr,
            betas=tuple(cfg.optim.betas),
            weight_decay=cfg.optim.weight_decay,
        )
        m = cfg.masks
        masker = MultiBlockMasks(cfg.grid, MaskSpec(m.num_targets, tuple(m.target_scale), tuple(m.target_aspect),
                                                    tuple(m.context_scale), tuple(m.context_aspect), m.min_keep))  # fmt: skip
        step, epoch, batch_in_epoch = 0, 0, 0
        probe_history: list[dict[str, Any]] = []
        if plan.resume_from is not None:
            ck = load_checkpoint(plan.resume_from)
            if ck.get("config_hash") != cfg_hash:
                raise CheckpointError(
                    f"{plan.resume_from}: written by a different config; choose another --run-dir"
                )
            model.load_state_dict(ck["model"])
            optimizer.load_state_dict(ck["optimizer"])
            step, epoch, batch_in_epoch = int(ck["step"]), int(ck["epoch"]), int(ck["batch_in_epoch"])
            probe_history = list(ck.get("probe_history") or [])
        merge_json(run.path, "meta.json", _meta(cfg, run, {
            "frames": {"split": d.split, "count": n, "cache": str(frames.dir), "manifest_hash": frames.info["manifest_hash"], "sources": sources},
            "probe_frames": None if probe_set is None else {"split": pr.split, "count": len(probe_set.test_frames), "cache": str(probe_set.test_frames.dir), "protocol": probe_set.protocol, "n_train": int((~probe_set.is_test).sum())},
            "steps_per_epoch": steps_per_epoch, "total_steps": total, "warmup_steps": warmup,
            "device": device, "precision": precision, "torch_threads": torch.get_num_threads(),
        }))  # fmt: skip
        logger = (
            CsvMetricsLogger(run.metrics_csv, resume_step=step if plan.resume_from else None)
            if cfg.logging.csv
            else None
        )
        tb = None
        if cfg.logging.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(run.tb_dir), purge_step=step if plan.resume_from else None)

        def log(values: dict[str, float], at: int) -> None:
            if logger is not None:
                logger.log_metrics(values, at)
                logger.save()
            if tb is not None:
                for k, v in values.items():
                    if v is not None and math.isfinite(v):
                        tb.add_scalar(k, v, at)

        # 3. Probes: the random-init encoder (same architecture and init) once, the target encoder periodically.
        random_probe: dict[str, Any] | None = None
        random_preds: dict[str, Any] | None = None

        def probe_scores(encoder: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            assert probe_set is not None
            feats = probe_set.features(encoder, batch, device)
            preds = probes.probe_predictions(feats, probe_set.labels, probe_set.is_test, pr.ridge_alphas,
                                             pr.logistic_cs, probe_set.logs)  # fmt: skip
            scores = probes.run_probes(feats, probe_set.labels, probe_set.is_test, logs=probe_set.logs,
                                       predictions=preds)  # fmt: skip
            return scores, preds

        if probe_set is not None:
            init = build_model(cfg).target_encoder.to(device)
            random_probe, random_preds = probe_scores(init)
            del init

        def do_probe(at_epoch: int) -> dict[str, Any]:
            assert probe_set is not None and random_probe is not None and random_preds is not None
            ssl, preds = probe_scores(model.target_encoder)
            ci = probes.paired_bootstrap(
                preds, [random_preds], probe_set.test_labels, probe_set.test_logs, 500
            )
            entry = {"epoch": at_epoch, "step": step, "protocol": probe_set.protocol, "ssl": ssl,
                     "random_init": random_probe, "ssl_minus_random": probes.compare(ssl, random_probe),
                     "ssl_minus_random_ci": ci}  # fmt: skip
            values = {f"probe/ssl_{k}": v for k, v in ssl.items() if isinstance(v, float)}
            values.update({f"probe/random_{k}": v for k, v in random_probe.items() if isinstance(v, float)})
            log({k: float(v) for k, v in values.items()}, step)
            return entry

        if probe_set is not None and not probe_history:
            probe_history.append(do_probe(0))  # epoch 0 = the initial weights: both encoders start equal

        def checkpoint() -> None:
            save_checkpoint(run.last_pt, model, optimizer,
                            {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                             "probe_history": probe_history, "total_steps": total}, cfg_hash)  # fmt: skip

        # 4. The loop.
        autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if precision == "bf16" else None
        model.train()
        stopped: str | None = None
        seed = cfg.trainer.seed
        bar = tqdm(total=total, initial=step, desc="ijepa", unit="step", disable=not show, leave=False)
        t_log, n_log = time.perf_counter(), 0
        with _Signals() as signals:
            while epoch < cfg.trainer.epochs and stopped is None:
                order = _epoch_order(seed, epoch, n)
                while batch_in_epoch < steps_per_epoch:
                    idx = order[batch_in_epoch * batch : (batch_in_epoch + 1) * batch].sort().values.numpy()
                    images = torch.from_numpy(np.asarray(images_all[idx], dtype=np.float32))
                    gen = _step_generator(seed, step)
                    images = random_crop(images, tuple(cfg.augment.crop_scale), gen).to(device)
                    masks = masker(batch, gen)
                    masks.context, masks.targets = masks.context.to(device), masks.targets.to(device)
                    lr = lr_at(step, total, warmup, cfg.optim.start_lr, cfg.optim.lr, cfg.optim.final_lr)
                    wd = weight_decay_at(step, total, cfg.optim.weight_decay, cfg.optim.final_weight_decay)
                    for g in optimizer.param_groups:
                        g["lr"] = lr
                        if g.get("wd_schedule"):
                            g["weight_decay"] = wd
                    if autocast is not None:
                        with autocast:
                            stats = model(images, masks)
                    else:
                        stats = model(images, masks)
                    if not torch.isfinite(stats.loss):
                        raise PretrainingDiverged(
                            f"loss became {float(stats.loss.detach())} at step {step} (epoch {epoch})"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    stats.loss.backward()
                    if cfg.optim.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(
                            [p for g in optimizer.param_groups for p in g["params"]], cfg.optim.grad_clip
                        )
                    optimizer.step()
                    momentum = momentum_at(step, total, cfg.optim.ema[0], cfg.optim.ema[1])
                    model.update_target(momentum)
                    step += 1
                    batch_in_epoch += 1
                    n_log += batch
                    bar.update(1)
                    if step % cfg.trainer.log_every_n_steps == 0 or step == total:
                        now = time.perf_counter()
                        log({"train/loss": float(stats.loss.detach()), "train/lr": lr, "train/weight_decay": wd,
                             "train/ema_momentum": momentum, "monitor/target_std": stats.target_std,
                             "monitor/pooled_std": stats.pooled_std, "monitor/pred_std": stats.pred_std,
                             **({"train/reg": stats.reg} if cfg.reg.enabled else {}),
                             "perf/images_per_s": n_log / max(now - t_log, 1e-9), "epoch": float(epoch)}, step)  # fmt: skip
                        bar.set_postfix(
                            loss=f"{float(stats.loss.detach()):.4f}", std=f"{stats.target_std:.3f}"
                        )
                        t_log, n_log = now, 0
                    every = cfg.trainer.checkpoint_every_n_steps
                    if signals.received or (every and step % every == 0):
                        checkpoint()
                    if signals.received:
                        stopped = signals.received
                        break
                if stopped is not None:
                    break
                epoch += 1
                batch_in_epoch = 0
                if probe_set is not None and (epoch % pr.every_n_epochs == 0 or epoch == cfg.trainer.epochs):
                    probe_history.append(do_probe(epoch))
                checkpoint()
        bar.close()
        if tb is not None:
            tb.close()

        if stopped is not None:
            requeued = stopped == "SIGUSR1" and _requeue()
            run.finish("interrupted", reason=f"{stopped} at step {step}", global_step=step, requeued=requeued)
            run.set_status("interrupted" if not requeued else "requeued", reason=f"{stopped} at step {step}")
            return PretrainResult(run.path, "interrupted", step, epoch, None, time.perf_counter() - t_start,
                                  plan.resume_from, {}, stopped)  # fmt: skip

        # 5. Export the target encoder and record the end.
        final_probe = probe_history[-1] if probe_history else {}
        write_json(run.path / "probe.json", {"history": probe_history, "final": final_probe})
        export_encoder(model, cfg, run.encoder_dir, {
            "run_dir": str(run.path), "step": step, "epochs": cfg.trainer.epochs, "config_hash": cfg_hash,
            "frames": {"split": d.split, "count": n, "manifest_hash": frames.info["manifest_hash"], "sources": sources},
            "probe": final_probe,
        })  # fmt: skip
        seconds = time.perf_counter() - t_start
        run.finish(
            "completed",
            global_step=step,
            epoch=epoch,
            encoder=str(run.encoder_dir),
            seconds=round(seconds, 1),
        )
        run.set_status("completed", global_step=step)
        return PretrainResult(
            run.path, "completed", step, epoch, run.encoder_dir, seconds, plan.resume_from, final_probe
        )
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, PlanlabError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        run.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", reason=reason)
        run.set_status("failed", reason=reason)
        raise
