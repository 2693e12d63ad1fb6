"""NAVSIM's constant-velocity baseline: straight ahead at the current speed (fact sheet §2.1)."""

from __future__ import annotations

import numpy as np

from planlab.agents.base import Agent
from planlab.scene import AgentInput, Scene, SensorConfig, Trajectory, TrajectorySampling
from planlab.scene.dataclasses import DEFAULT_SAMPLING


class ConstantVelocityAgent(Agent):
    """Poses ((k+1)·dt·|v|, 0, 0) for k = 0..N-1, |v| from the current ego status (float32 like NAVSIM)."""

    def __init__(self, trajectory_sampling: TrajectorySampling = DEFAULT_SAMPLING) -> None:
        super().__init__(trajectory_sampling)

    def name(self) -> str:
        return "constant_velocity"

    def get_sensor_config(self) -> SensorConfig:
        return SensorConfig.build_no_sensors()

    def compute_trajectory(self, agent_input: AgentInput, scene: Scene | None = None) -> Trajectory:
        velocity = np.asarray(agent_input.ego_statuses[-1].ego_velocity, dtype=np.float32)
        # NAVSIM ran on numpy 1.x: squares and sum stay float32, but ``float32_scalar ** 0.5`` and the
        # products with Python floats were float64 (legacy scalar promotion); only the result is float32.
        speed = float((velocity**2).sum(-1)) ** 0.5
        n = self.trajectory_sampling.num_poses
        dt = self.trajectory_sampling.interval_length
        poses = np.array([[(k + 1) * dt * speed, 0.0, 0.0] for k in range(n)], dtype=np.float32)
        return Trajectory(poses, self.trajectory_sampling)
