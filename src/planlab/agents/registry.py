"""The explicit agent registry: one entry per planner, listed by ``planlab agents list``.

Entries name their class as ``module:Class`` so that listing agents never imports torch. To add an
agent, add one :class:`AgentSpec` line to ``AGENTS`` (and its packaged YAML under
``planlab/configs/agents/`` when it takes settings).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from planlab.errors import ConfigError


@dataclass(frozen=True)
class AgentSpec:
    name: str
    target: str  # "package.module:ClassName"
    description: str
    trainable: bool = False
    privileged: bool = False  # requires the Scene (reference planners, not submissions)

    def load_class(self) -> type:
        module_name, _, cls_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), cls_name)


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in [
        # Agents are added here by the rooms that implement them (evaluation: references; training: learned).
        AgentSpec(
            "constant_velocity",
            "planlab.agents.constant_velocity:ConstantVelocityAgent",
            "NAVSIM baseline: straight ahead at the current speed",
        ),
        AgentSpec(
            "log_replay",
            "planlab.agents.log_replay:LogReplayAgent",
            "the human expert: replays the logged future (reference)",
            privileged=True,
        ),
        AgentSpec(
            "pdm_closed",
            "planlab.agents.pdm_closed:PDMClosedAgent",
            "PDM-Closed rule-based planner on the privileged scene (reference)",
            privileged=True,
        ),
        AgentSpec(
            "ego_status_mlp",
            "planlab.agents.ego_mlp:EgoStatusMLPAgent",
            "NAVSIM ego-status MLP: v, a, command -> 8 poses (L1)",
            trainable=True,
        ),
        AgentSpec(
            "encoder_mlp",
            "planlab.agents.encoder_mlp:EncoderMLPAgent",
            "frozen ViT/I-JEPA encoder, mean/attention-pooled patches + ego status -> MLP -> 8 poses",
            trainable=True,
        ),
        AgentSpec(
            "encoder_transformer",
            "planlab.agents.encoder_transformer:EncoderTransformerAgent",
            "frozen ViT/I-JEPA encoder, pose queries attend to patch tokens + ego token (transformer decoder)",
            trainable=True,
        ),
        AgentSpec(
            "vocab_scorer",
            "planlab.agents.vocab_scorer:VocabScorerAgent",
            "Hydra-MDP-style scorer: k-means vocabulary, imitation + PDM sub-score heads, weighted confidence",
            trainable=True,
        ),
        AgentSpec(
            "convgru_bev",
            "planlab.agents.convgru_bev:ConvGRUBEVAgent",
            "LiDAR-BEV history fused by an ego-motion-warped ConvGRU; planning + detection/semantics/occupancy/forecast heads",
            trainable=True,
        ),
        AgentSpec(
            "transfuser_lite",
            "planlab.agents.transfuser_lite:TransFuserLiteAgent",
            "TransFuser-style single-frame baseline: front cameras + LiDAR BEV fused at 4 scales, detection + BEV semantics",
            trainable=True,
        ),
    ]
}


def list_agents() -> list[AgentSpec]:
    """All registered agents, in registry order."""
    return list(AGENTS.values())


def get_spec(name: str) -> AgentSpec:
    """The spec of ``name``; a ConfigError lists the valid names otherwise."""
    try:
        return AGENTS[name]
    except KeyError:
        valid = ", ".join(AGENTS) or "(none registered)"
        raise ConfigError(f"unknown agent {name!r}; valid agents: {valid}") from None


def build_agent(name: str, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Instantiate agent ``name``; ``config`` (plain dict) is passed to agents that take settings."""
    cls = get_spec(name).load_class()
    if config is not None:
        return cls(config=config, **kwargs)
    return cls(**kwargs)
