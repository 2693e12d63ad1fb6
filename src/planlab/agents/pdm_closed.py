"""PDM-Closed as an agent: NAVSIM's privileged rule-based planner run on the scene (fact sheet §1.9).

The same planner the metric cache uses (route correction, IDM proposals, LQR/bicycle simulation,
selection with the v1.1 scorer against its constant-velocity forecast); its 5 s trajectory is sampled
at the agent's pose times and expressed in the current rear-axle frame.
"""

from __future__ import annotations

import numpy as np

from planlab.agents.base import Agent
from planlab.errors import ContractError, DataError
from planlab.evaluation.scoring import pdm_closed_score_fn_v11
from planlab.geometry.se2 import absolute_to_relative
from planlab.scene import AgentInput, Scene, SensorConfig, Trajectory, TrajectorySampling
from planlab.scene.dataclasses import DEFAULT_SAMPLING
from planlab.sim.pdm_closed.planner import PDMClosedPlanner, PlannerInput
from planlab.sim.pdm_closed.world import objects_to_global
from planlab.sim.resample import interpolate_poses
from planlab.sim.vehicle import rear_axle_roundtrip


class PDMClosedAgent(Agent):
    """Plans with PDM-Closed on the privileged scene (current frame objects, route, lights, map)."""

    requires_scene = True

    def __init__(self, trajectory_sampling: TrajectorySampling = DEFAULT_SAMPLING) -> None:
        super().__init__(trajectory_sampling)
        self._planner = PDMClosedPlanner()

    def name(self) -> str:
        return "pdm_closed"

    def get_sensor_config(self) -> SensorConfig:
        return SensorConfig.build_no_sensors()

    def compute_trajectory(self, agent_input: AgentInput, scene: Scene | None = None) -> Trajectory:
        if scene is None:
            raise ContractError("pdm_closed needs the privileged scene (requires_scene=True)")
        if scene.map_api is None:
            raise DataError(
                f"token {scene.token}: pdm_closed needs the map of {scene.scene_metadata.map_name!r}"
            )
        frame = scene.current_frame
        pose = np.asarray(frame.ego_status.ego_pose, dtype=np.float64)
        rx, ry = rear_axle_roundtrip(pose[0], pose[1], pose[2])
        anns = frame.annotations
        objects = objects_to_global(
            np.array([rx, ry, pose[2]]), anns.boxes, anns.velocity_3d, anns.names, anns.track_tokens
        )
        inp = PlannerInput(
            ego_pose=pose,
            ego_velocity=np.asarray(frame.ego_status.ego_velocity, dtype=np.float64),
            ego_acceleration=np.asarray(frame.ego_status.ego_acceleration, dtype=np.float64),
            t0_us=int(frame.timestamp),
            route_roadblock_ids=[str(i) for i in frame.roadblock_ids],
            traffic_lights=[(int(c), bool(r)) for c, r in frame.traffic_lights],
            objects=objects,
        )
        plan = self._planner.plan(inp, scene.map_api, pdm_closed_score_fn_v11)
        sampling = self.trajectory_sampling
        steps = sampling.step_times / 0.1  # plan states are 0.1 s apart
        index = np.round(steps).astype(np.int64)
        if np.allclose(steps, index) and index.max() < len(plan.poses):
            poses = plan.poses[index]
        else:  # an off-grid sampling: interpolate (held at the last pose beyond 5 s)
            query = plan.times_us[0] + np.round(sampling.step_times * 1e6).astype(np.int64)
            query = np.clip(query, plan.times_us[0], plan.times_us[-1])
            poses = interpolate_poses(plan.times_us[None], plan.poses[None], query[None])[0]
        local = absolute_to_relative(pose, poses)
        return Trajectory(local, sampling)
