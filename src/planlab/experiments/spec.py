"""Experiment specs and templates, resolved through the training config schema into one validated config.

An experiment is ``template + overrides + seed + cluster profile``. A template is one packaged YAML
(``planlab/configs/experiments/<name>.yaml``; adding a template is adding that file) with the sections

``train``      a training-config layer (``planlab.training.config.TrainConfig`` keys)
``eval``       evaluation settings (:class:`EvalSettings`: split, metric pdms/epdms, shards, checkpoint)
``resources``  overrides of the cluster profile's job resources (:class:`ResourceOverrides`)
``sweep``      a preset grid and seed list (sweep templates only)

plus ``description``, ``tags``, ``notes``, ``cluster`` and ``seeds``. Override keys are dotted: ``eval.*``
and ``resources.*`` address those sections, every other key the training config (``optim.lr=2e-4``). The
distributed layout (``trainer.num_nodes``/``devices``/``accelerator``) is derived from the resources, never
typed twice, so the Lightning settings and the SLURM allocation agree by construction (lessons S2, S4, S9).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.config import build_config, check_choice, config_hash, load_yaml, parse_overrides, to_dict
from planlab.errors import ConfigError
from planlab.experiments.cluster import ClusterProfile, JobResources, load_profile, mem_to_mb, tasks_per_node
from planlab.experiments.ids import check_id, check_tags

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "configs" / "experiments"

TEMPLATE_KEYS = ("description", "tags", "notes", "cluster", "seeds", "train", "eval", "resources", "sweep")
SEED_KEY = "trainer.seed"  # the training seed; everything else in the config defines the group
# Keys owned by the resources: setting them directly would let Lightning and SLURM disagree (lessons S9).
DERIVED_KEYS = ("trainer.num_nodes", "trainer.devices", "trainer.accelerator")
# CLI shortcuts (`planlab exp new --learning-rate 2e-4`) and the training-config keys they set.
SHORTCUTS = {
    "learning_rate": "optim.lr",
    "batch_size": "trainer.batch_size",
    "epochs": "trainer.max_epochs",
    "max_steps": "trainer.max_steps",
    "label_fraction": "data.label_fraction",
    "data_root": "data.root",
    "agent": "agent.name",
}


@dataclass
class EvalSettings:
    """How the trained agent is scored after training (planlab.evaluation)."""

    enabled: bool = True
    split: str = "test"  # navsim_logs/<split> of the data root
    metric: str = "pdms"  # pdms (NAVSIM v1.1) | epdms (NAVSIM v2 one-stage)
    shards: int = 1  # > 1: a SLURM array of shards plus a merge job
    checkpoint: str = "best"  # best | last
    data_root: str | None = None  # None: the training data root
    frame_interval: int | None = 1  # scene every frame (navtest style); None: non-overlapping windows
    max_scenes: int | None = None  # cap (smoke runs)
    workers: int | None = None  # scoring processes; None: the CPUs of the job (at most 8)
    cache_dir: str | None = None  # metric cache; None: shared under <experiments root>/_metric_cache/

    def validate(self) -> None:
        check_choice("eval.metric", self.metric, ("pdms", "epdms"))
        if self.metric != "pdms":  # ask the evaluator whether this build scores it (pdms always)
            from planlab.evaluation.runner import check_metric

            try:
                check_metric(self.metric)
            except ConfigError as exc:
                raise ConfigError(f"eval.metric: {exc}") from None
        check_choice("eval.checkpoint", self.checkpoint, ("best", "last"))
        check_id(self.split, "eval.split")
        if not 1 <= self.shards <= 1000:
            raise ConfigError(f"eval.shards must be in 1..1000, got {self.shards}")
        if self.max_scenes is not None and self.max_scenes < 1:
            raise ConfigError("eval.max_scenes must be >= 1")
        if self.frame_interval is not None and self.frame_interval < 1:
            raise ConfigError("eval.frame_interval must be >= 1 (or null for non-overlapping windows)")
        if self.workers is not None and self.workers < 1:
            raise ConfigError("eval.workers must be >= 1")


@dataclass
class JobResourceOverrides:
    """Per-experiment changes to one job kind's resources; None keeps the cluster profile's value."""

    nodes: int | None = None
    gpus_per_node: int | None = None
    cpu_tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    time: str | None = None


@dataclass
class ResourceOverrides:
    train: JobResourceOverrides = field(default_factory=JobResourceOverrides)
    eval: JobResourceOverrides = field(default_factory=JobResourceOverrides)


@dataclass
class ExperimentSpec:
    """What the user asked for; stored as ``<run_dir>/experiment.yaml`` and never rewritten."""

    exp_id: str
    template: str
    description: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    cluster: str = "local-slurm"
    seed: int = 0
    sweep: str | None = None
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ResolvedExperiment:
    """A spec resolved against its template, the training schema and the cluster profile."""

    spec: ExperimentSpec
    train: Any  # planlab.training.config.TrainConfig
    eval: EvalSettings
    profile: ClusterProfile
    train_resources: JobResources
    eval_resources: JobResources
    warnings: list[str] = field(default_factory=list)

    def config_dict(self) -> dict[str, Any]:
        """The hashed part of the resolved config: the ``train`` and ``eval`` sections."""
        return {"train": to_dict(self.train), "eval": to_dict(self.eval)}

    def stored_dict(self) -> dict[str, Any]:
        """What ``config.yaml`` holds: ``train`` + ``eval`` plus the job ``resources`` they were derived for
        (recorded, not hashed: the same config on another allocation shape is the same experiment)."""
        return {
            **self.config_dict(),
            "resources": {
                "cluster": self.profile.name,
                "train": dataclasses.asdict(self.train_resources),
                "eval": dataclasses.asdict(self.eval_resources),
            },
        }

    @property
    def config_hash(self) -> str:
        return experiment_hash(self.config_dict())

    @property
    def group_key(self) -> str:
        """Hash of the config without the training seed: runs differing only by seed aggregate together."""
        return group_key(self.config_dict())


HASHED_SECTIONS = ("train", "eval")


def experiment_hash(config: Mapping[str, Any]) -> str:
    """Hash of a stored ``config.yaml`` (its train and eval sections)."""
    return config_hash({k: config[k] for k in HASHED_SECTIONS if k in config})


def group_key(config: Mapping[str, Any], ignore: Sequence[str] = ()) -> str:
    """Config hash without the seed (and any ``ignore`` dotted keys, e.g. ``train.data.subset_seed``)."""
    hashed = {k: config[k] for k in HASHED_SECTIONS if k in config}
    return config_hash(hashed, exclude=(f"train.{SEED_KEY}", *ignore))


# --------------------------------------------------------------------------- templates


def list_templates() -> list[str]:
    """Names of the packaged experiment templates."""
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def template_path(name_or_path: str | os.PathLike) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"experiment template file not found: {p}")
        return p
    check_id(str(name_or_path), "template name")
    p = TEMPLATES_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ConfigError(
            f"unknown template {str(name_or_path)!r}; valid templates: {', '.join(list_templates())}"
        )
    return p


def load_template(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """A template's raw sections; unknown top-level keys are refused, naming the file and the key."""
    path = template_path(name_or_path)
    data = load_yaml(path)
    for key in data:
        if key not in TEMPLATE_KEYS:
            raise ConfigError(f"{path}: unknown template key {key!r}; valid keys: {', '.join(TEMPLATE_KEYS)}")
    for key in ("train", "eval", "resources", "sweep"):
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            raise ConfigError(f"{path}: {key!r} must be a mapping")
    return data


def template_seeds(template: Mapping[str, Any]) -> list[int]:
    seeds = template.get("seeds") or [0]
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"template seeds must be a list of integers, got {seeds!r}")
    return seeds


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and empty mappings are values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{full}."))
        else:
            out[full] = copy.deepcopy(value)
    return out


def normalize_overrides(items: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` strings or a mapping -> {dotted key: value}."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return parse_overrides(items)


def _split_sections(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    train: dict[str, Any] = {}
    ev: dict[str, Any] = {}
    res: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, rest = key.partition(".")
        if head == "eval" and rest:
            ev[rest] = value
        elif head == "resources" and rest:
            res[rest] = value
        elif head in ("eval", "resources"):
            raise ConfigError(f"override key {key!r} needs a sub-key, e.g. {head}.split=test")
        else:
            train[key] = value
    return train, ev, res


def _apply_resources(base: JobResources, over: JobResourceOverrides) -> JobResources:
    values = {k: v for k, v in dataclasses.asdict(over).items() if v is not None}
    return dataclasses.replace(base, **values)


def worker_budget(requested: int, res: JobResources, profile: ClusterProfile) -> int:
    """DataLoader workers per training process that fit the node's CPUs and host RAM (lessons M1).

    Each task gets ``mem / tasks`` of host RAM; the process itself needs ``process_mem_gb`` and every
    worker ``worker_mem_gb``; at most ``cpus_per_task - 1`` workers (one core feeds the model).
    """
    per_task_gb = mem_to_mb(res.mem) / 1024.0 / tasks_per_node(res)
    by_mem = int((per_task_gb - profile.process_mem_gb) // profile.worker_mem_gb)
    by_cpu = res.cpus_per_task - 1
    return max(0, min(requested, by_mem, by_cpu))


def resolve(spec: ExperimentSpec, template: Mapping[str, Any] | None = None) -> ResolvedExperiment:
    """Validate ``spec`` against its template, the training schema and its cluster profile.

    Raises ConfigError naming the offending key (and the valid keys) for anything unknown or mistyped.
    """
    from planlab.training.config import build_train_config

    check_id(spec.exp_id)
    spec.tags = check_tags(spec.tags)
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int):
        raise ConfigError(f"seed must be an integer, got {spec.seed!r}")
    if template is None:
        template = load_template(spec.template)
    tmpl_train = flatten(template.get("train") or {})
    tmpl_eval = dict(template.get("eval") or {})
    tmpl_res = dict(template.get("resources") or {})
    user_train, user_eval, user_res = _split_sections(spec.overrides)
    for key in DERIVED_KEYS:
        if key in user_train or key in tmpl_train:
            raise ConfigError(
                f"{key} is derived from the cluster resources; set resources.train.nodes / gpus_per_node / "
                "cpu_tasks_per_node instead"
            )
    if SEED_KEY in user_train or SEED_KEY in tmpl_train:
        raise ConfigError(f"{SEED_KEY} is the experiment's seed; use --seed (or the sweep's --seeds) instead")

    profile = load_profile(spec.cluster)
    try:
        res_over = build_config(ResourceOverrides, tmpl_res, overrides=user_res)
    except ConfigError as exc:
        raise ConfigError(f"resources: {exc}") from None
    train_res = _apply_resources(profile.train, res_over.train)
    eval_res = _apply_resources(profile.eval, res_over.eval)
    probe = dataclasses.replace(profile, train=train_res, eval=eval_res, merge=profile.merge)
    probe.validate()

    try:
        ev = build_config(EvalSettings, tmpl_eval, overrides=user_eval)
    except ConfigError as exc:
        raise ConfigError(f"eval: {exc}") from None

    devices = tasks_per_node(train_res)
    derived = {
        "trainer.num_nodes": train_res.nodes,
        "trainer.devices": devices,
        "trainer.accelerator": "gpu" if train_res.gpus_per_node > 0 else "cpu",
        SEED_KEY: spec.seed,
    }
    merged = {**tmpl_train, **user_train, **derived}
    if devices * train_res.nodes > 1 and merged.get("trainer.strategy", "auto") == "auto":
        merged["trainer.strategy"] = "ddp"
    train = build_train_config(overrides=merged)

    warnings: list[str] = []
    budget = worker_budget(train.data.num_workers, train_res, profile)
    if budget < train.data.num_workers:
        warnings.append(
            f"data.num_workers {train.data.num_workers} -> {budget}: {devices} task(s)/node × workers must fit "
            f"mem={train_res.mem} at {profile.worker_mem_gb} GB/worker and cpus_per_task={train_res.cpus_per_task}"
        )
        train = build_train_config(overrides={**merged, "data.num_workers": budget})
    return ResolvedExperiment(spec, train, ev, profile, train_res, eval_res, warnings)


def make_spec(
    exp_id: str,
    template: str,
    *,
    description: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    tags: Sequence[str] | str | None = None,
    notes: str | None = None,
    cluster: str | None = None,
    seed: int | None = None,
    sweep: str | None = None,
    created: str = "",
) -> tuple[ExperimentSpec, dict[str, Any]]:
    """Build a spec from CLI-style inputs, filling gaps from the template. Returns (spec, template)."""
    check_id(exp_id)
    tmpl = load_template(template)
    over = normalize_overrides(overrides)
    tmpl_tags = check_tags(tmpl.get("tags"))
    spec = ExperimentSpec(
        exp_id=exp_id,
        template=template,
        description=description if description is not None else str(tmpl.get("description") or ""),
        overrides=over,
        tags=check_tags([*tmpl_tags, *check_tags(tags)]),
        notes=notes if notes is not None else str(tmpl.get("notes") or ""),
        cluster=cluster or str(tmpl.get("cluster") or "local-slurm"),
        seed=seed if seed is not None else template_seeds(tmpl)[0],
        sweep=sweep,
        created=created,
    )
    return spec, tmpl


def spec_from_dict(data: Mapping[str, Any], source: str = "experiment.yaml") -> ExperimentSpec:
    """Read a stored spec back; unknown keys name the file."""
    names = {f.name for f in dataclasses.fields(ExperimentSpec)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(sorted(names))}")
    try:
        spec = ExperimentSpec(**dict(data))
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if not isinstance(spec.overrides, dict):
        raise ConfigError(f"{source}: overrides must be a mapping")
    return spec


def from_stored(
    spec: ExperimentSpec, config: Mapping[str, Any], source: str = "config.yaml"
) -> ResolvedExperiment:
    """Rebuild a :class:`ResolvedExperiment` from a run dir's stored spec and ``config.yaml``.

    The stored config is what runs (a template edited later changes nothing); the cluster profile is
    re-read for site settings (partition, account, setup lines) while node and task counts come from the
    stored resources, so the allocation still matches the config's ``trainer.num_nodes``/``devices``.
    """
    from planlab.training.config import train_config_from_dict

    if "train" not in config or "eval" not in config:
        raise ConfigError(f"{source}: needs train and eval sections")
    train = train_config_from_dict(config["train"])
    ev = build_config(EvalSettings, config["eval"])
    profile = load_profile(spec.cluster)
    stored = config.get("resources") or {}
    train_res = build_config(JobResources, stored.get("train") or dataclasses.asdict(profile.train))
    eval_res = build_config(JobResources, stored.get("eval") or dataclasses.asdict(profile.eval))
    ntasks = tasks_per_node(train_res)
    if (train.trainer.num_nodes, train.trainer.devices) != (train_res.nodes, ntasks):
        raise ConfigError(
            f"{source}: trainer.num_nodes={train.trainer.num_nodes}/devices={train.trainer.devices} do not match "
            f"the recorded allocation {train_res.nodes} node(s) × {ntasks} task(s)"
        )
    return ResolvedExperiment(spec, train, ev, profile, train_res, eval_res)
