"""``run_study``: the label-efficiency study from one command, resumable, locally or as SLURM job arrays.

Reads top to bottom:

1. the SSL encoder: an existing export, or ``planlab ssl pretrain`` into ``<out_dir>/pretrain`` (resumed if
   it stopped);
2. the experiments: one per arm × label fraction × seed (id ``<name>-<arm>-f<fraction>-s<seed>``), resolved
   by the experiment manager from the arm's template + the encoder + the shared and arm overrides + the run
   length of that fraction. An existing experiment is reused only if it still resolves to the same config;
3. the caches every run reads (feature cache; frozen embeddings of the train/val scenes for the arms that
   train on them), filled once before any run, so parallel array tasks never race to write them;
4. the runs: ``launcher="local"`` trains and evaluates every unfinished experiment in this process through
   the experiment job entry points (``planlab.experiments.job``: same run dirs, provenance and status as
   ``planlab exp submit``); frozen-encoder runs are scored from the embedding cache (parity-checked,
   :mod:`planlab.study.evaluate`). ``launcher="slurm"`` lists the unfinished experiments in a sweep file and
   submits them as one training array plus one evaluation array (``planlab.experiments.launch.submit_sweep``)
   and returns;
5. the results (:mod:`planlab.study.results`) from whatever runs have finished.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.errors import ConfigError, PlanlabError
from planlab.study.config import ArmConfig, StudyConfig

Echo = Callable[[str], None]
STUDY_FILE = "study.json"
CAMERA_KEYS = (
    "cameras",
    "image_height",
    "image_width",
    "crop_rows_fraction",
    "crop_side_fraction",
    "mean",
    "std",
)


def _quiet(_: str) -> None:
    pass


@dataclass
class StudyRun:
    arm: str
    fraction: float
    seed: int
    exp_id: str
    run_dir: Path


@dataclass
class StudyPlan:
    cfg: StudyConfig
    out_dir: Path
    exp_root: Path
    encoder_dir: Path | None
    runs: list[StudyRun] = field(default_factory=list)
    n_train: int | None = None  # scenes of the train split (100 %)

    def runs_of(self, arm: str) -> list[StudyRun]:
        return [r for r in self.runs if r.arm == arm]


# --------------------------------------------------------------------------- bookkeeping


def _read_study(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / STUDY_FILE).read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise PlanlabError(f"{out / STUDY_FILE}: not valid JSON") from None


def _update_study(out: Path, **values: Any) -> None:
    from planlab.atomic import atomic_write_text

    data = _read_study(out)
    for k, v in values.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k].update(v)
        else:
            data[k] = v
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / STUDY_FILE, json.dumps(data, indent=1, default=str) + "\n")


# --------------------------------------------------------------------------- 1. the encoder


def _data_root(cfg: StudyConfig) -> Path:
    from planlab.data.layout import dataset_root

    return Path(dataset_root(cfg.data.root)).absolute()


def _pretrain_files(name: str) -> list[Path]:
    from planlab.ssl.config import CONFIGS_DIR

    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"pretrain.config: file not found: {p}")
        return [p]
    packaged = CONFIGS_DIR / f"{name}.yaml"
    if not packaged.is_file():
        valid = ", ".join(sorted(q.stem for q in CONFIGS_DIR.glob("*.yaml")))
        raise ConfigError(f"pretrain.config {name!r} is not a packaged SSL config ({valid}) nor a YAML path")
    return [packaged]


def pretrain_config(cfg: StudyConfig) -> Any:
    """The pre-training config of the study: its data root and train split unless the overrides say otherwise."""
    from planlab.ssl.config import build_pretrain_config

    over = {
        "data.root": str(_data_root(cfg)),
        "data.split": cfg.data.train_split,
        "data.splits_file": cfg.data.splits_file,
        "data.maps_root": cfg.data.maps_root,
    }
    if cfg.data.val_split:
        over["probe.split"] = cfg.data.val_split
    from planlab.experiments.spec import flatten

    over.update(flatten(cfg.pretrain.overrides))
    return build_pretrain_config(_pretrain_files(cfg.pretrain.config), over)


def resolve_encoder(
    cfg: StudyConfig, out: Path, progress: bool, echo: Echo, allow_pretrain: bool = True
) -> Path:
    """The SSL encoder directory: the configured one, or the study's own pre-training (run or resumed)."""
    from planlab.models.vit import read_vit_config

    if cfg.pretrain.encoder:
        enc = Path(cfg.pretrain.encoder).expanduser().absolute()
        read_vit_config(enc)  # CheckpointError naming the file when it is not a planlab-vit directory
        return enc
    run = out / "pretrain"
    state = {}
    try:
        state = json.loads((run / "training.json").read_text())
    except (FileNotFoundError, ValueError):
        pass
    if state.get("state") == "completed" and (run / "encoder" / "config.json").is_file():
        return run / "encoder"
    if not allow_pretrain:
        raise PlanlabError(
            f"the study's encoder is not pre-trained yet ({run}); run `planlab ssl pretrain` there first "
            "(or the study with --launcher local once), or set pretrain.encoder"
        )
    from planlab.ssl.pretrain import run_pretraining

    echo(f"pre-training the I-JEPA encoder into {run}")
    t0 = time.perf_counter()
    result = run_pretraining(pretrain_config(cfg), run, resume="auto", progress=progress)
    if result.state != "completed":
        raise PlanlabError(
            f"pre-training stopped by {result.stopped_by_signal} at step {result.step}; rerun to resume"
        )
    _update_study(out, timings={"pretrain_s": round(time.perf_counter() - t0, 1)})
    assert result.encoder_dir is not None
    return result.encoder_dir


PROBE_FILE = "probe.json"


def study_probe(cfg: StudyConfig, out: Path, encoder_dir: Path, progress: bool, echo: Echo) -> dict[str, Any]:
    """``<out>/probe.json``: linear probes of the study's SSL encoder against the random-init encoders of the
    ``random`` arms (the same seeds, hence the same weights), fitted on the train split's frames and scored on
    the validation split's (held-out logs), with paired log-bootstrap CIs. Reused while the encoder's weights
    and the probe settings are unchanged (the key hashes both)."""
    import hashlib

    from planlab.ssl.probe import probe_encoder

    pc = pretrain_config(cfg)
    settings = {"split": cfg.data.val_split or pc.probe.split, "train_split": cfg.data.train_split,
                "max_train_frames": pc.probe.max_train_frames, "random_seeds": list(cfg.seeds),
                "lead_range": list(pc.probe.lead_range), "lead_half_width": pc.probe.lead_half_width}  # fmt: skip
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for f in sorted(encoder_dir.glob("*.safetensors")) + [encoder_dir / "config.json"]:
        h.update(f.read_bytes())
    key = h.hexdigest()[:16]
    path = out / PROBE_FILE
    try:
        old = json.loads(path.read_text())
        if old.get("key") == key:
            return old
    except (FileNotFoundError, ValueError):
        pass
    from planlab.training.rundir import write_json

    echo(f"linear probes of {encoder_dir} vs random init (seeds {settings['random_seeds']})")
    t0 = time.perf_counter()
    cache_root = Path(pc.data.cache_dir) if pc.data.cache_dir else out / "pretrain" / "frames"
    result = probe_encoder(str(encoder_dir), str(_data_root(cfg)), settings["split"], str(cache_root),
                           train_split=settings["train_split"], max_train_frames=settings["max_train_frames"],
                           lead_range=tuple(settings["lead_range"]), lead_half_width=settings["lead_half_width"],
                           random_seeds=settings["random_seeds"], splits_file=cfg.data.splits_file,
                           progress=progress)  # fmt: skip
    result.update({"key": key, "settings": settings, "seconds": round(time.perf_counter() - t0, 1)})
    write_json(path, result)
    return result


def encoder_settings(encoder_dir: Path) -> tuple[Any, dict[str, Any]]:
    """(ViTConfig, camera settings) of an encoder directory (camera from ``planlab.json`` when present)."""
    from planlab.models.vit import read_vit_config
    from planlab.ssl.convert import INFO_FILE

    vit = read_vit_config(encoder_dir)
    camera: dict[str, Any] = {}
    info = encoder_dir / INFO_FILE
    if info.is_file():
        camera = {
            k: v for k, v in (json.loads(info.read_text()).get("camera") or {}).items() if k in CAMERA_KEYS
        }
    camera.setdefault("image_height", vit.grid_height * vit.patch_size)
    camera.setdefault("image_width", vit.grid_width * vit.patch_size)
    return vit, camera


def random_encoder(out: Path, encoder_dir: Path, seed: int) -> Path:
    """``<out>/random_encoders/seed<s>``: the SSL encoder's architecture at the initialisation pre-training
    starts from (:class:`planlab.ssl.encoder.JepaViT`: fixed sin-cos positions, truncated-normal weights),
    drawn with ``seed`` — the "no pre-training" control. With the pre-training's own seed it *is* the
    pre-training's starting point (the encoder the linear probes compare against)."""
    import shutil
    import tempfile

    import torch

    from planlab.models.vit import save_vit
    from planlab.ssl.convert import INFO_FILE, _publish
    from planlab.ssl.encoder import JepaViT

    target = out / "random_encoders" / f"seed{seed}"
    if (target / "config.json").is_file():
        return target
    vit_cfg, camera = encoder_settings(encoder_dir)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        vit = JepaViT(vit_cfg)
    finally:
        torch.random.set_rng_state(state)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_vit(vit, tmp)
        info = {"camera": camera, "source": "random_init", "seed": seed, "architecture_of": str(encoder_dir)}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --------------------------------------------------------------------------- 2. the experiments


def run_overrides(
    cfg: StudyConfig, arm: ArmConfig, seed: int, out: Path, encoder_dir: Path | None
) -> dict[str, Any]:
    """The dotted experiment overrides of one arm and seed (everything but the label fraction)."""
    from planlab.experiments.spec import flatten

    over: dict[str, Any] = {}
    if arm.encoder != "none":
        if encoder_dir is None:
            raise ConfigError(f"arm {arm.name!r} needs the SSL encoder (for its architecture and camera)")
        _, camera = encoder_settings(encoder_dir)
        over.update({f"agent.camera.{k}": v for k, v in camera.items()})
        if arm.encoder == "ssl":
            over.update({"agent.encoder.kind": "vit", "agent.encoder.path": str(encoder_dir)})
        else:  # the pre-training's architecture and initialisation scheme, one random draw per seed
            over.update(
                {
                    "agent.encoder.kind": "vit",
                    "agent.encoder.path": str(random_encoder(out, encoder_dir, seed)),
                }
            )
        if arm.embeddings:
            over["data.cache.embeddings"] = str(out / "cache" / "embeddings")
    over["data.cache.path"] = str(out / "cache" / "features")
    over.update(flatten(cfg.train))
    over.update(flatten(arm.overrides))
    d, e = cfg.data, cfg.eval
    over.update({
        "data.root": str(_data_root(cfg)), "data.maps_root": d.maps_root, "data.train_split": d.train_split,
        "data.val_split": d.val_split, "data.splits_file": d.splits_file, "data.subset_seed": seed,
        "eval.split": e.split, "eval.metric": e.metric, "eval.checkpoint": e.checkpoint,
        "eval.frame_interval": e.frame_interval, "eval.max_scenes": e.max_scenes, "eval.workers": e.workers,
    })  # fmt: skip
    return over


def exp_id(cfg: StudyConfig, arm: str, fraction: float, seed: int) -> str:
    from planlab.experiments.ids import check_id

    return check_id(f"{cfg.name}-{arm}-f{fraction:g}-s{seed}", "experiment id")


def train_split_size(cfg: StudyConfig, probe: Any) -> int:
    """Scenes of the train split under the training scene filter (what a label fraction is a fraction of)."""
    from planlab.scene import SensorConfig
    from planlab.training.data import load_split

    return len(load_split(probe, probe.data.train_split, SensorConfig.build_no_sensors()).tokens)


def schedule_overrides(
    cfg: StudyConfig, arm: ArmConfig, fraction: float, n_train: int, batch: int
) -> dict[str, Any]:
    """Run length of one fraction: ``schedule.epochs``, raised so every run makes at least ``min_steps``
    optimiser steps (small subsets get more epochs), validated about ``val_checks`` times; ``max_steps`` caps
    the steps (for a fine-tuning arm: the steps after unfreezing, which happens at an epoch boundary)."""
    from planlab.data.subsets import subset_size

    sch = arm.schedule or cfg.schedule
    n = subset_size(fraction, n_train) if fraction < 1 else n_train
    per_epoch = max(1, math.ceil(n / batch))
    epochs = max(sch.epochs, math.ceil(sch.min_steps / per_epoch))
    over: dict[str, Any] = {"trainer.max_epochs": epochs,
                            "trainer.check_val_every_n_epoch": max(1, epochs // max(sch.val_checks, 1))}  # fmt: skip
    if arm.finetune_at is not None:
        unfreeze = max(1, int(round(arm.finetune_at * epochs)))
        over["optim.finetune.unfreeze_at_epoch"] = unfreeze
        if sch.max_steps is not None:
            # the whole frozen stage, then at most max_steps with the last blocks trainable
            over["trainer.max_epochs"] = max(epochs, unfreeze + math.ceil(sch.max_steps / per_epoch))
            over["trainer.max_steps"] = unfreeze * per_epoch + sch.max_steps
    elif sch.max_steps is not None:
        over["trainer.max_steps"] = sch.max_steps
    return over


def plan_study(cfg: StudyConfig, out: Path, encoder_dir: Path | None, create: bool = True) -> StudyPlan:
    """Create (or verify and reuse) one experiment per arm × label fraction × seed."""
    from planlab.experiments import launch, rundir
    from planlab.experiments.spec import load_template, make_spec, resolve

    exp_root = out / "experiments"
    plan = StudyPlan(cfg, out, exp_root, encoder_dir)
    n_train: int | None = None
    for arm in cfg.arms:
        tmpl = load_template(arm.template)
        desc = f"{arm.label or arm.name} (study {cfg.name})"
        for seed in cfg.seeds:
            base = run_overrides(cfg, arm, seed, out, encoder_dir)
            probe_spec, _ = make_spec(exp_id(cfg, arm.name, 1.0, seed), arm.template,
                                      overrides={**base, "data.label_fraction": 1.0}, seed=seed, cluster=cfg.cluster)  # fmt: skip
            probe = resolve(probe_spec, tmpl).train
            if n_train is None:
                n_train = train_split_size(cfg, probe)
            for frac in cfg.fractions:
                eid = exp_id(cfg, arm.name, frac, seed)
                over = {**base, "data.label_fraction": frac,
                        **schedule_overrides(cfg, arm, frac, n_train, probe.trainer.batch_size)}  # fmt: skip
                run = rundir.run_dir(exp_root, eid)
                if not run.exists():
                    if not create:
                        raise PlanlabError(f"experiment {eid} does not exist under {exp_root}")
                    launch.new_experiment(exp_root, eid, arm.template, description=f"{desc} [{frac:g}, seed {seed}]",
                                          overrides=over, tags=[cfg.name, arm.name], cluster=cfg.cluster, seed=seed)  # fmt: skip
                spec, _ = make_spec(eid, arm.template, overrides=over, seed=seed, cluster=cfg.cluster)
                want = resolve(spec, tmpl).config_hash
                run, have = launch.load(exp_root, eid)
                if have.config_hash != want:
                    raise PlanlabError(
                        f"experiment {eid} was made from another study config; use a new study name or out_dir "
                        "(or delete that experiment to redo it)"
                    )
                plan.runs.append(StudyRun(arm.name, float(frac), int(seed), eid, run))
    plan.n_train = n_train
    return plan


# --------------------------------------------------------------------------- 3. caches


def prepare_caches(plan: StudyPlan, progress: bool, echo: Echo) -> dict[str, Any]:
    """Fill the feature cache and the frozen-embedding caches for the train/val scenes of every arm."""
    from planlab.experiments import launch
    from planlab.training.cache_jobs import cache_embeddings, cache_features

    t0 = time.perf_counter()
    done: dict[str, Any] = {}
    seen: set[str] = set()
    full = max(plan.cfg.fractions)
    for run in plan.runs:
        if run.fraction != full:
            continue
        _, resolved = launch.load(plan.exp_root, run.exp_id)
        cfg = resolved.train
        key = json.dumps(
            [cfg.agent_name, cfg.agent_settings(), cfg.data.cache.embeddings], sort_keys=True, default=str
        )
        if key in seen:
            continue
        seen.add(key)
        if cfg.data.cache.embeddings:
            # the head trains on the embeddings; its small ego/target entries are filled by the run itself
            echo(f"frozen embeddings for {run.arm} (seed {run.seed})")
            done[run.exp_id] = cache_embeddings(cfg, progress=progress)
        else:
            echo(f"feature cache for {run.arm} (seed {run.seed})")
            done[run.exp_id] = cache_features(cfg, progress=progress)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "caches": done}


# --------------------------------------------------------------------------- 4. runs


def _uses_cached_eval(plan: StudyPlan, run: StudyRun) -> bool:
    arm = plan.cfg.arm(run.arm)
    mode = plan.cfg.eval.mode
    if mode == "agent":
        return False
    frozen = arm.encoder != "none" and arm.embeddings
    if mode == "cached" and not frozen:
        return False
    return frozen


def run_local(plan: StudyPlan, echo: Echo, only: set[str] | None = None) -> dict[str, Any]:
    """Train and evaluate every unfinished run in this process; returns {exp_id: outcome}."""
    outcomes: dict[str, Any] = {}
    todo = [r for r in plan.runs if (only is None or r.exp_id in only)]
    with _quiet_lightning():
        for n, run in enumerate(todo, 1):
            _run_one(plan, run, n, len(todo), echo, outcomes)
    return outcomes


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer banners and hints, a hundred times over, would bury the study's own progress."""
    names = ("lightning.pytorch", "lightning.fabric", "lightning")
    levels = {n: logging.getLogger(n).level for n in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*srun.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*limit_val_batches.*")
        for n in names:
            logging.getLogger(n).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)


def _run_one(
    plan: StudyPlan, run: StudyRun, n: int, total: int, echo: Echo, outcomes: dict[str, Any]
) -> None:
    from planlab.experiments import job, local, registry, rundir

    status = rundir.read_status(run.run_dir)
    if status.get("state") == "completed":
        outcomes[run.exp_id] = "completed"
        return
    stages = ["train", "eval"]
    done = set(status.get("done") or [])
    if _training_finished(run.run_dir):
        done.add("train")  # a finished training is never redone (e.g. after a failed evaluation)
    if status.get("launcher") != "local" or status.get("state") in ("failed", "cancelled", "created", None):
        rundir.record_jobs(run.run_dir, local.local_job_ids(stages), "local", stages)
        for stage in sorted(done):
            rundir.stage_done(run.run_dir, stage)
        status = rundir.read_status(run.run_dir)
    ids = status.get("jobs") or local.local_job_ids(stages)
    echo(f"[{n}/{total}] {run.exp_id}: {run.arm}, fraction {run.fraction:g}, seed {run.seed}")
    try:
        if "train" not in done:
            os.environ["PLANLAB_LOCAL_JOB_ID"] = ids.get("train", "local-train")
            code = job.main(["train", "--run-dir", str(run.run_dir)])
            if code != 0:
                raise PlanlabError(f"training failed (exit {code}); see {run.run_dir / 'status.json'}")
        if "eval" not in done:
            os.environ["PLANLAB_LOCAL_JOB_ID"] = ids.get("eval", "local-eval")
            if _uses_cached_eval(plan, run):
                _eval_cached_stage(plan, run)
            else:
                code = job.main(["eval", "--run-dir", str(run.run_dir)])
                if code != 0:
                    raise PlanlabError(f"evaluation failed (exit {code}); see {run.run_dir / 'status.json'}")
        outcomes[run.exp_id] = "completed"
    except PlanlabError as exc:
        outcomes[run.exp_id] = f"failed: {exc}"
        echo(f"  failed: {exc}")
    finally:
        os.environ.pop("PLANLAB_LOCAL_JOB_ID", None)
        registry.harvest(plan.exp_root, [run.exp_id])


def _training_finished(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "training.json").read_text()).get("state") == "completed"
    except (FileNotFoundError, ValueError):
        return False


def _eval_cached_stage(plan: StudyPlan, run: StudyRun) -> None:
    """The evaluation stage of one experiment, scored from the embedding cache, with the job bookkeeping of
    ``planlab.experiments.job`` (meta.json job entry, status lifecycle)."""
    from planlab.experiments import job, rundir
    from planlab.experiments.provenance import job_identity
    from planlab.study.evaluate import evaluate_cached

    ident = job_identity()
    t0 = time.time()
    key = job.job_started(run.run_dir, "eval", ident, features="embedding_cache")
    try:
        config = rundir.read_config(run.run_dir)
        info = evaluate_cached(run.run_dir, config, str(plan.out_dir / "cache" / "embeddings"),
                               plan.cfg.eval.parity_scenes)  # fmt: skip
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, PlanlabError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        job.job_ended(run.run_dir, key, "failed", t0, ident, reason=reason)
        rundir.set_status(run.run_dir, "failed", phase="eval", reason=reason, job_id=ident.get("job_id"))
        if isinstance(exc, PlanlabError):
            raise
        raise PlanlabError(f"evaluation failed: {reason}") from exc
    job.job_ended(run.run_dir, key, "completed", t0, ident, **info)
    rundir.stage_done(run.run_dir, "eval")


def submit_slurm(
    plan: StudyPlan, echo: Echo, dry_run: bool = False, max_parallel: int | None = None
) -> list[str]:
    """Submit every experiment not yet submitted or finished as one SLURM training array + evaluation array
    (the experiment manager's sweep machinery: a sweep file listing them, ``submit_sweep``)."""
    from planlab.experiments import launch, rundir

    todo, busy = [], []
    for r in plan.runs:
        state = rundir.read_status(r.run_dir).get("state") or "created"
        if state == "completed":
            continue
        (busy if state in ("submitted", "running", "requeued") else todo).append(r)
    if busy:
        echo(f"{len(busy)} experiment(s) already submitted or running; not resubmitted")
    if not todo:
        return []
    n = 1 + len(list(rundir.sweep_dir(plan.exp_root, "x").parent.glob(f"{plan.cfg.name}-batch*")))
    sid = f"{plan.cfg.name}-batch{n}"
    sdir = rundir.sweep_dir(plan.exp_root, sid)
    sdir.mkdir(parents=True)
    ids = [r.exp_id for r in todo]
    rundir.write_yaml(sdir / "sweep.yaml", {
        "sweep_id": sid, "template": None, "grid": {"data.label_fraction": list(plan.cfg.fractions)},
        "seeds": list(plan.cfg.seeds), "overrides": {}, "created": rundir.now_iso(), "experiments": ids,
        "study": plan.cfg.name,
    })  # fmt: skip
    lines = ["# index\texp_id\trun_dir"] + [f"{i}\t{r.exp_id}\t{r.run_dir}" for i, r in enumerate(todo)]
    rundir.write_new_file(sdir / "array_map.tsv", "\n".join(lines) + "\n", mode=0o644)
    sub = launch.submit_sweep(plan.exp_root, sid, launcher="slurm", dry_run=dry_run, max_parallel=max_parallel,
                              echo=echo)  # fmt: skip
    if not dry_run:
        echo(f"{sid}: {len(ids)} experiments, jobs {sub.jobs}")
    return [sid]


# --------------------------------------------------------------------------- the command


@dataclass
class StudyOutcome:
    out_dir: Path
    plan: StudyPlan
    results: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_study(
    cfg: StudyConfig,
    *,
    launcher: str = "local",
    collect_only: bool = False,
    dry_run: bool = False,
    progress: bool = True,
    config_files: list[str] | None = None,
    overrides: list[str] | None = None,
    echo: Echo = _quiet,
) -> StudyOutcome:
    """Run (or continue, or only collect) the study of ``cfg``; writes the results of the finished runs."""
    from planlab.config import to_dict
    from planlab.experiments import registry
    from planlab.study.results import collect, write_results

    if launcher not in ("local", "slurm"):
        raise ConfigError(f"launcher={launcher!r} is not valid; choose local or slurm")
    t0 = time.perf_counter()
    out = Path(cfg.out_dir).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    previous = _read_study(out)
    if previous.get("config") and previous["config"].get("name") != cfg.name:
        raise PlanlabError(f"{out} holds study {previous['config'].get('name')!r}, not {cfg.name!r}")
    _update_study(out, config=to_dict(cfg), config_files=[str(p) for p in config_files or []],
                  overrides=list(overrides or []))  # fmt: skip
    needs_encoder = any(a.encoder != "none" for a in cfg.arms)
    encoder = None
    if needs_encoder:
        encoder = resolve_encoder(
            cfg, out, progress, echo, allow_pretrain=(launcher == "local" and not collect_only)
        )
    _update_study(out, encoder=str(encoder) if encoder else None)
    if encoder is not None and any(a.encoder == "ssl" for a in cfg.arms) and not dry_run:
        if not collect_only:  # --collect only reads what is there
            study_probe(cfg, out, encoder, progress, echo)
    plan = plan_study(cfg, out, encoder, create=not collect_only)
    outcome = StudyOutcome(out, plan)
    if not collect_only:
        if dry_run:
            if launcher == "slurm":
                submit_slurm(plan, echo, dry_run=True)
            else:
                echo(f"dry run: {len(plan.runs)} runs in {plan.exp_root}")
            return outcome
        caches = prepare_caches(plan, progress, echo)
        _update_study(out, timings={"caches_s": round(caches["seconds"], 1)})
        if launcher == "local":
            t_runs = time.perf_counter()
            outcomes = run_local(plan, echo)
            _update_study(out, timings={"runs_s": round(time.perf_counter() - t_runs, 1)})
            outcome.failed = {k: v for k, v in outcomes.items() if v != "completed"}
        else:
            outcome.submitted = submit_slurm(plan, echo)
    registry.harvest(plan.exp_root, [r.exp_id for r in plan.runs])
    table = collect(plan)
    outcome.pending = [r.exp_id for r in plan.runs if r.exp_id not in table.completed]
    if table.completed:
        outcome.results = write_results(plan, table, command=_command(cfg, config_files, launcher, overrides))
    outcome.seconds = time.perf_counter() - t0
    _update_study(out, last_run={"seconds": round(outcome.seconds, 1), "launcher": launcher,
                                 "completed": len(table.completed), "pending": len(outcome.pending),
                                 "failed": outcome.failed})  # fmt: skip
    return outcome


def _command(
    cfg: StudyConfig, files: list[str] | None, launcher: str, overrides: list[str] | None = None
) -> str:
    """The command line that regenerates the results (config files, launcher and key=value overrides)."""
    import shlex

    parts = ["planlab study label-efficiency"] + [f"--config {shlex.quote(str(f))}" for f in files or []]
    if launcher != "local":
        parts.append(f"--launcher {launcher}")
    parts += [shlex.quote(o) for o in overrides or []]
    return " ".join(parts)
