"""``TorchAgent``: the base of every learned planner (an :class:`Agent` that is also an ``nn.Module``).

Subclasses declare their builders, ``forward`` and ``compute_loss``; the base supplies NAVSIM's default
``compute_trajectory`` done right (lessons V1–V4): builders run and are contract-checked, the batch dim is
added to tensors only, inputs move to the model's device, forward runs in eval mode under ``no_grad``, and
the plan comes back as CPU numpy in a :class:`Trajectory`. ``compute_loss`` returns a dict whose ``"loss"``
is the total; the training wrapper logs every other entry as a component (lesson C5).
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from planlab.agents.base import Agent
from planlab.config import build_config, to_dict
from planlab.errors import CheckpointError, ContractError
from planlab.features.base import FeatureBuilder, TargetBuilder, check_unique_names, compute_features
from planlab.scene import AgentInput, Scene, SensorConfig, Trajectory, TrajectorySampling


class TorchAgent(nn.Module, Agent):
    """A trainable agent. ``config`` is the agent's settings (its ``config_class``) as a dataclass or dict."""

    trainable = True
    #: the agent's settings schema (a dataclass from planlab.agents.learned_config)
    config_class: ClassVar[type]
    #: the registry name (``planlab train --agent <registry_name>``)
    registry_name: ClassVar[str]
    #: settings added after checkpoints existed: the value that reproduces what a checkpoint recorded without
    #: them was trained with (applied by ``load_agent_from_checkpoint``; new checkpoints record every setting)
    legacy_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any = None, checkpoint_path: str | None = None) -> None:
        nn.Module.__init__(self)
        if config is None or isinstance(config, Mapping):
            cfg = build_config(self.config_class, dict(config or {}))
        elif isinstance(config, self.config_class):
            cfg = config
        elif dataclasses.is_dataclass(config):
            cfg = build_config(self.config_class, {k: v for k, v in to_dict(config).items() if k != "name"})
        else:
            raise TypeError(f"{type(self).__name__} config must be a dict or {self.config_class.__name__}")
        validate = getattr(cfg, "validate", None)
        if callable(validate):
            validate("agent")
        self.config = cfg
        traj = getattr(cfg, "trajectory", None)
        sampling = (
            TrajectorySampling(num_poses=traj.num_poses, interval_length=traj.interval_length)
            if traj is not None
            else TrajectorySampling(num_poses=8, interval_length=0.5)
        )
        Agent.__init__(self, sampling)
        self._checkpoint_path = checkpoint_path

    # ----------------------------------------------------------------- identity and sensors
    def name(self) -> str:
        return self.registry_name

    def settings(self) -> dict[str, Any]:
        """The agent's settings as plain data (stored in checkpoints to rebuild the agent)."""
        return to_dict(self.config)

    def get_sensor_config(self) -> SensorConfig:
        return SensorConfig.build_no_sensors()

    def initialize(self) -> None:
        """Load weights from ``checkpoint_path`` when one was given (evaluation workers call this once)."""
        if self._checkpoint_path:
            from planlab.agents.checkpoint_io import load_agent_weights

            load_agent_weights(self, self._checkpoint_path)
        self.eval()

    # ----------------------------------------------------------------- training hooks
    @abstractmethod
    def get_feature_builders(self) -> list[FeatureBuilder]:
        """Builders of the model inputs (history only)."""

    @abstractmethod
    def get_target_builders(self) -> list[TargetBuilder]:
        """Builders of the training targets (may use the future and the map)."""

    @abstractmethod
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Batched features → predictions with ``"trajectory"`` of shape [B, num_poses, 3]."""

    @abstractmethod
    def compute_loss(
        self,
        features: dict[str, torch.Tensor],
        targets: dict[str, torch.Tensor],
        predictions: dict[str, torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """``{"loss": total, <component>: value, ...}``; every component is logged by the wrapper."""

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Named parameter groups (each may get its own lr via ``optim.group_lr_scale``).

        Default: one group ``"head"`` with every parameter. Encoder agents add ``"encoder"``.
        """
        return {"head": list(self.parameters())}

    def get_optimizers(self, optim: Any, total_steps: int) -> dict[str, Any]:
        """AdamW/Adam over :meth:`parameter_groups` with warm-up + cosine, stepped every optimizer step.

        ``optim`` is a :class:`planlab.training.config.OptimConfig` (or anything with its attributes).
        """
        from planlab.models.optim import build_optimizer, build_scheduler

        lr_scale = dict(getattr(optim, "group_lr_scale", {}) or {})
        finetune = getattr(optim, "finetune", None)
        if finetune is not None and "encoder" in self.parameter_groups() and "encoder" not in lr_scale:
            lr_scale["encoder"] = finetune.encoder_lr_scale
        opt = build_optimizer(
            self.parameter_groups(),
            optimizer=optim.optimizer,
            lr=optim.lr,
            weight_decay=optim.weight_decay,
            betas=optim.betas,
            eps=optim.eps,
            lr_scale=lr_scale,
        )
        sched = build_scheduler(opt, total_steps, optim.warmup_steps, optim.min_lr_ratio, optim.scheduler)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def get_training_callbacks(self) -> list[Any]:
        """Extra Lightning callbacks this agent needs (default none)."""
        return []

    # ----------------------------------------------------------------- checkpoint layout
    def external_state(self) -> dict[str, dict[str, Any]]:
        """Sub-modules whose weights are *not* stored in checkpoints: {state-dict prefix: source description}.

        A frozen encoder loaded from a local directory (e.g. a 2.5 GB I-JEPA ViT-H) is recorded by path and
        fingerprint instead of being copied into every checkpoint; loading verifies the fingerprint.
        """
        return {}

    def check_external_state(self, recorded: Mapping[str, Mapping[str, Any]]) -> None:
        """CheckpointError unless this agent's external sub-modules match what the checkpoint recorded."""
        mine = self.external_state()
        for prefix, rec in recorded.items():
            cur = mine.get(prefix)
            if cur is None:
                raise CheckpointError(
                    f"checkpoint expects weights under {prefix!r} from {rec.get('path')!r}, "
                    "but this agent did not load them from a source"
                )
            if rec.get("fingerprint") and cur.get("fingerprint") != rec.get("fingerprint"):
                raise CheckpointError(
                    f"weights under {prefix!r} come from {cur.get('path')!r} whose fingerprint "
                    f"{cur.get('fingerprint')} differs from the one trained with ({rec.get('fingerprint')})"
                )

    # ----------------------------------------------------------------- inference
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def compute_trajectory(self, agent_input: AgentInput, scene: Scene | None = None) -> Trajectory:
        """Plan for one scene: builders (contract-checked) → batch of one → forward (eval, no_grad) → CPU numpy."""
        builders = self.get_feature_builders()
        check_unique_names(builders)
        features = compute_features(builders, agent_input)
        device = self.device
        # Only tensors reach this point (the contract check refuses anything else): add the batch dim to each.
        batch = {k: v.unsqueeze(0).to(device) for k, v in features.items()}
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                predictions = self.forward(batch)
        finally:
            self.train(was_training)
        traj = predictions.get("trajectory") if isinstance(predictions, Mapping) else None
        n = self.trajectory_sampling.num_poses
        if not isinstance(traj, torch.Tensor) or tuple(traj.shape) != (1, n, 3):
            got = tuple(traj.shape) if isinstance(traj, torch.Tensor) else type(traj).__name__
            raise ContractError(
                f"agent {self.name()!r} forward returned trajectory {got}, expected (1, {n}, 3)"
            )
        poses = traj[0].detach().to("cpu", torch.float64).numpy()
        return Trajectory(poses, self.trajectory_sampling)
