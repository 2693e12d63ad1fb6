"""The planner interface, with NAVSIM's AbstractAgent semantics (fact sheet §2.1).

An agent has a unique ``name()``, declares the sensors it needs (``get_sensor_config()``), is
``initialize()``-d once per worker before first use (load weights there), and maps an
:class:`~planlab.scene.AgentInput` (history only) to a :class:`~planlab.scene.Trajectory` of poses in the
current rear-axle frame. Privileged agents (``requires_scene=True``: log replay, PDM-Closed) also receive
the :class:`~planlab.scene.Scene`; they are references, not submissions.

Learned agents additionally implement the training hooks (feature/target builders, forward, loss,
optimisers); see ``planlab.agents.torch_agent``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from planlab.scene import AgentInput, Scene, SensorConfig, Trajectory, TrajectorySampling
from planlab.scene.dataclasses import DEFAULT_SAMPLING


class Agent(ABC):
    """Base class of every planner."""

    #: whether ``compute_trajectory`` needs the privileged :class:`Scene` (future frames, map)
    requires_scene: bool = False
    #: whether the agent has weights that come from training (``planlab train``)
    trainable: bool = False

    def __init__(self, trajectory_sampling: TrajectorySampling = DEFAULT_SAMPLING) -> None:
        self._trajectory_sampling = trajectory_sampling

    @property
    def trajectory_sampling(self) -> TrajectorySampling:
        return self._trajectory_sampling

    @abstractmethod
    def name(self) -> str:
        """Unique name (used in CSV/experiment names)."""

    @abstractmethod
    def get_sensor_config(self) -> SensorConfig:
        """The sensors (and history indices) the agent reads; the loader loads only these."""

    def initialize(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Called once per worker before the first ``compute_trajectory`` (load weights here)."""

    @abstractmethod
    def compute_trajectory(self, agent_input: AgentInput, scene: Scene | None = None) -> Trajectory:
        """Plan from the history; privileged agents (``requires_scene``) also get the scene."""

    def describe(self) -> dict[str, Any]:
        """Plain-data description for run metadata and ``planlab agents list``."""
        return {
            "name": self.name(),
            "requires_scene": self.requires_scene,
            "trainable": self.trainable,
            "trajectory_sampling": {
                "num_poses": self._trajectory_sampling.num_poses,
                "interval_length": self._trajectory_sampling.interval_length,
            },
        }
