"""The human expert: replays the logged future (NAVSIM's ``HumanAgent``, privileged)."""

from __future__ import annotations

from planlab.agents.base import Agent
from planlab.errors import ContractError
from planlab.scene import AgentInput, Scene, SensorConfig, Trajectory, TrajectorySampling
from planlab.scene.dataclasses import DEFAULT_SAMPLING


class LogReplayAgent(Agent):
    """``scene.get_future_trajectory(num_poses)`` — needs the scene, so it is a reference, not a submission."""

    requires_scene = True

    def __init__(self, trajectory_sampling: TrajectorySampling = DEFAULT_SAMPLING) -> None:
        super().__init__(trajectory_sampling)

    def name(self) -> str:
        return "log_replay"

    def get_sensor_config(self) -> SensorConfig:
        return SensorConfig.build_no_sensors()

    def compute_trajectory(self, agent_input: AgentInput, scene: Scene | None = None) -> Trajectory:
        if scene is None:
            raise ContractError("log_replay needs the privileged scene (requires_scene=True)")
        return scene.get_future_trajectory(self.trajectory_sampling.num_poses)
