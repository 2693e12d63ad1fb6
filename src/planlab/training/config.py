"""The training config schema: agent, data, optimiser, trainer, checkpoint and logging settings.

``build_train_config`` layers, in order: the dataclass defaults, the agent's packaged YAML
(``planlab/configs/agents/<agent>.yaml``), the given YAML files (e.g. ``planlab/configs/train/*.yaml``) and
``key=value`` overrides. The ``agent:`` section is typed by the agent's own schema
(:data:`planlab.agents.learned_config.AGENT_CONFIG_SCHEMAS`), so a bad key anywhere — ``trainer.max_epoch``,
``agent.hiden_dim`` — is a :class:`~planlab.errors.ConfigError` naming it. Nothing here imports torch.

The resolved config is written to ``<run_dir>/config.yaml``; :func:`load_train_config` reads it back.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from planlab.config import build_config, check_choice, load_yaml, parse_overrides
from planlab.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"
AGENT_CONFIGS_DIR = CONFIGS_DIR / "agents"
TRAIN_CONFIGS_DIR = CONFIGS_DIR / "train"

DEFAULT_AGENT = "ego_status_mlp"


@dataclass
class CacheConfig:
    """On-disk caches. Feature cache: one safetensors file per (builder hash, token). Embedding cache: the
    frozen encoder's pooled vectors / patch grids per token, so head training never reruns the encoder."""

    path: str | None = None  # feature-cache directory; None: features are computed by the DataLoader workers
    embeddings: str | None = None  # frozen-embedding cache directory (encoder agents with a frozen encoder)
    embeddings_dtype: str = "float32"  # float32 (exact) | float16 (half the disk)
    build_workers: int = 0  # processes that fill missing cache entries before training (0: this process)
    rebuild: bool = False  # recompute every entry even if present and valid


@dataclass
class DataConfig:
    """Which scenes train and validate, and how they are loaded (fact sheet §2.2 scene filter)."""

    root: str | None = None  # dataset root (navsim_logs/, sensor_blobs/, maps/); None: $OPENSCENE_DATA_ROOT
    maps_root: str | None = None  # None: $NUPLAN_MAPS_ROOT, else <root>/maps
    # A split is a directory navsim_logs/<split> or a part (train/val/test) of the by-log split file
    # (planlab.data.subsets.resolve_split; default file <root>/splits.json).
    train_split: str = "train"
    val_split: str | None = "val"  # None: no validation (then no top-k by a validation metric)
    splits_file: str | None = None
    # Label efficiency: a saved, hashed, nested token list (planlab.data.subsets), never limit_train_batches.
    # Looked up as <root>/subsets/<train_split>/<train_split>_frac<f>_seed<s>.json, else drawn the same way
    # and saved into the run directory.
    label_fraction: float = 1.0
    subset_seed: int = 0
    subset_file: str | None = None  # explicit subset file; overrides label_fraction/subset_seed
    num_history_frames: int = 4
    num_future_frames: int = 10
    frame_interval: int | None = 1
    has_route: bool = True
    max_scenes: int | None = None  # cap per split (smoke runs); applied after the subset
    cache: CacheConfig = field(default_factory=CacheConfig)
    num_workers: int = 2
    pin_memory: bool = False
    persistent_workers: bool = False
    prefetch_factor: int = 2

    def validate(self) -> None:
        check_choice("data.cache.embeddings_dtype", self.cache.embeddings_dtype, ("float32", "float16"))
        if not 0.0 < self.label_fraction <= 1.0:
            raise ConfigError(f"data.label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.val_split is not None and self.val_split == self.train_split:
            raise ConfigError(f"data.val_split must differ from data.train_split ({self.train_split!r})")
        if self.num_history_frames < 1:
            raise ConfigError("data.num_history_frames must be >= 1")
        if self.num_workers < 0 or self.cache.build_workers < 0:
            raise ConfigError("data.num_workers and data.cache.build_workers must be >= 0")
        if self.prefetch_factor < 1:
            raise ConfigError("data.prefetch_factor must be >= 1")


@dataclass
class FinetuneConfig:
    """Selective fine-tuning: stage 1 trains the head on a frozen encoder; from ``unfreeze_at_epoch`` the last
    ``unfreeze_last_k`` encoder blocks train too, at ``encoder_lr_scale`` × the base learning rate."""

    unfreeze_at_epoch: int | None = None
    unfreeze_last_k: int = 0
    encoder_lr_scale: float = 0.1

    def validate(self) -> None:
        if self.unfreeze_at_epoch is not None and (self.unfreeze_at_epoch < 0 or self.unfreeze_last_k < 1):
            raise ConfigError("optim.finetune: unfreeze_at_epoch must be >= 0 and unfreeze_last_k >= 1")
        if self.encoder_lr_scale <= 0:
            raise ConfigError("optim.finetune.encoder_lr_scale must be > 0")


@dataclass
class OptimConfig:
    """AdamW (or Adam) with linear warm-up then cosine decay, per-group learning-rate scales."""

    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    scheduler: str = "cosine"  # cosine | constant (both after the linear warm-up)
    warmup_steps: int = 0  # optimizer steps
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of each group's peak
    # {parameter group name: lr multiplier}; group names come from the agent's ``parameter_groups()``.
    group_lr_scale: dict[str, float] = field(default_factory=dict)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def validate(self) -> None:
        check_choice("optim.optimizer", self.optimizer, ("adamw", "adam"))
        check_choice("optim.scheduler", self.scheduler, ("cosine", "constant"))
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be > 0, got {self.lr}")
        if len(self.betas) != 2:
            raise ConfigError("optim.betas needs two values")
        if self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("optim.warmup_steps must be >= 0 and optim.min_lr_ratio in [0, 1]")
        for name, scale in self.group_lr_scale.items():
            if scale < 0:
                raise ConfigError(f"optim.group_lr_scale.{name} must be >= 0")
        self.finetune.validate()


@dataclass
class TrainerConfig:
    """Lightning Trainer settings; ``batch_size`` is per device (global = batch × devices × nodes × accum)."""

    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int = 1  # per node; -1: all visible
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp
    # auto: bf16-mixed on a GPU that supports it, 16-mixed on other GPUs, 32-true on CPU
    precision: str = "auto"
    max_epochs: int = 20
    max_steps: int = -1  # -1: no step limit
    batch_size: int = 64
    val_batch_size: int | None = None  # None: batch_size
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 0.0  # 0: no clipping (norm clipping otherwise)
    seed: int = 0
    deterministic: bool = False
    check_val_every_n_epoch: int = 1
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 0
    progress_bar: bool = True

    def validate(self) -> None:
        check_choice("trainer.accelerator", self.accelerator, ("auto", "cpu", "gpu", "cuda"))
        check_choice("trainer.strategy", self.strategy, ("auto", "ddp", "ddp_find_unused_parameters_true"))
        check_choice("trainer.precision", self.precision, ("auto", "32", "32-true", "16-mixed", "bf16-mixed"))
        if self.devices == 0 or self.devices < -1:
            raise ConfigError(f"trainer.devices must be >= 1 or -1, got {self.devices}")
        if self.num_nodes < 1:
            raise ConfigError("trainer.num_nodes must be >= 1")
        if self.batch_size < 1 or (self.val_batch_size is not None and self.val_batch_size < 1):
            raise ConfigError("trainer.batch_size must be >= 1")
        if self.accumulate_grad_batches < 1:
            raise ConfigError("trainer.accumulate_grad_batches must be >= 1")
        if self.max_epochs < 1 and self.max_steps < 1:
            raise ConfigError("trainer.max_epochs or trainer.max_steps must be >= 1")
        if self.gradient_clip_val < 0:
            raise ConfigError("trainer.gradient_clip_val must be >= 0")


@dataclass
class CheckpointConfig:
    """``checkpoints/last.ckpt`` (every epoch, and every ``every_n_train_steps`` steps if > 0) plus the
    ``save_top_k`` best by ``monitor`` (a logged validation metric)."""

    monitor: str = "val/loss"
    mode: str = "min"
    save_top_k: int = 1
    every_n_train_steps: int = 0

    def validate(self) -> None:
        check_choice("checkpoint.mode", self.mode, ("min", "max"))
        if self.save_top_k < 0 or self.every_n_train_steps < 0:
            raise ConfigError("checkpoint.save_top_k and checkpoint.every_n_train_steps must be >= 0")


@dataclass
class LoggingConfig:
    csv: bool = True  # <run_dir>/metrics.csv
    tensorboard: bool = True  # <run_dir>/tb/


@dataclass
class AgentSection:
    """The ``agent:`` section: the registry name plus that agent's own settings (typed per agent)."""

    name: str = DEFAULT_AGENT


@dataclass
class TrainConfig:
    """A complete, validated training configuration (written resolved to ``<run_dir>/config.yaml``)."""

    agent: Any = field(default_factory=AgentSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def validate(self) -> None:
        agent_validate = getattr(self.agent, "validate", None)
        if callable(agent_validate):
            agent_validate("agent")
        self.data.validate()
        camera = getattr(self.agent, "camera", None)
        if camera is not None and camera.history_index >= self.data.num_history_frames:
            raise ConfigError(
                f"agent.camera.history_index={camera.history_index} but data.num_history_frames="
                f"{self.data.num_history_frames} (the current frame is index num_history_frames-1)"
            )
        self.optim.validate()
        self.trainer.validate()
        self.checkpoint.validate()

    @property
    def agent_name(self) -> str:
        return self.agent.name

    def agent_settings(self) -> dict[str, Any]:
        """The agent's own settings as plain data (the ``agent:`` section without ``name``)."""
        from planlab.config import to_dict

        data = to_dict(self.agent)
        data.pop("name", None)
        return data


def trainable_agents() -> list[str]:
    """Names of the agents ``planlab train`` can train (registered and with a settings schema)."""
    from planlab.agents.learned_config import AGENT_CONFIG_SCHEMAS
    from planlab.agents.registry import AGENTS

    return [n for n, spec in AGENTS.items() if spec.trainable and n in AGENT_CONFIG_SCHEMAS]


def agent_schema(name: str) -> type:
    """The settings dataclass of trainable agent ``name``; ConfigError listing the valid names otherwise."""
    from planlab.agents.learned_config import AGENT_CONFIG_SCHEMAS
    from planlab.agents.registry import AGENTS, get_spec

    get_spec(name)  # unknown name: error listing every registered agent
    if name not in AGENT_CONFIG_SCHEMAS or not AGENTS[name].trainable:
        valid = ", ".join(trainable_agents()) or "(none registered)"
        raise ConfigError(f"agent {name!r} is not trainable; trainable agents: {valid}")
    return AGENT_CONFIG_SCHEMAS[name]


@cache
def _schema_for(name: str) -> type:
    """A TrainConfig subclass whose ``agent`` field is typed by the agent's settings schema."""
    settings = agent_schema(name)
    hints = typing.get_type_hints(settings)
    fields_: list[tuple[str, Any, Any]] = [("name", str, field(default=name))]
    for f in dataclasses.fields(settings):
        default = (
            field(default_factory=f.default_factory)
            if f.default_factory is not dataclasses.MISSING
            else field(default=f.default)
        )
        fields_.append((f.name, hints[f.name], default))
    # ``name`` first (so config.yaml reads agent: name: ...), then the agent's own settings.
    section = dataclasses.make_dataclass(
        f"{settings.__name__}Section",
        fields_,
        namespace={"validate": settings.validate},
    )
    return dataclasses.make_dataclass(
        f"TrainConfig_{name}",
        [("agent", section, field(default_factory=section))],
        bases=(TrainConfig,),
    )


def packaged_agent_yaml(name: str) -> Path:
    return AGENT_CONFIGS_DIR / f"{name}.yaml"


def _agent_name_in(layer: Mapping[str, Any]) -> str | None:
    agent = layer.get("agent")
    if isinstance(agent, Mapping) and agent.get("name") is not None:
        return str(agent["name"])
    return None


def build_train_config(
    agent: str | None = None,
    config_files: Sequence[str | os.PathLike] = (),
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a training config: defaults < agent YAML < ``config_files`` < ``overrides``.

    ``agent`` (the CLI's ``--agent``) must agree with any ``agent.name`` set in the files or overrides;
    without it the last ``agent.name`` given wins, else :data:`DEFAULT_AGENT`.
    """
    if overrides is None:
        over: dict[str, Any] = {}
    elif isinstance(overrides, Mapping):
        over = dict(overrides)
    else:
        over = parse_overrides(overrides)
    layers: list[tuple[str, dict[str, Any]]] = [(str(p), load_yaml(p)) for p in config_files]
    named = [(src, n) for src, layer in layers if (n := _agent_name_in(layer)) is not None]
    if "agent.name" in over:
        named.append(("override agent.name", str(over["agent.name"])))
    name = agent if agent is not None else (named[-1][1] if named else DEFAULT_AGENT)
    for src, n in named:
        if n != name:
            raise ConfigError(f"agent {name!r} conflicts with agent.name={n!r} from {src}")
    schema = _schema_for(name)
    packaged = packaged_agent_yaml(name)
    agent_defaults = {"agent": load_yaml(packaged)} if packaged.is_file() else {}
    if isinstance(agent_defaults.get("agent"), dict):
        agent_defaults["agent"].pop("name", None)
    return build_config(schema, agent_defaults, *(layer for _, layer in layers), overrides=over)


def load_train_config(path: str | os.PathLike) -> TrainConfig:
    """Read a resolved ``config.yaml`` (as written into a run directory) back into a validated TrainConfig."""
    return build_train_config(config_files=[path])


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from plain data (e.g. the copy stored inside a checkpoint)."""
    name = _agent_name_in(data) or DEFAULT_AGENT
    return build_config(_schema_for(name), dict(data))


def packaged_train_configs() -> list[Path]:
    """Every shipped training YAML (``planlab/configs/train/*.yaml``)."""
    return sorted(TRAIN_CONFIGS_DIR.glob("*.yaml"))
