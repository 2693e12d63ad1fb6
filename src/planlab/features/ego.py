"""Ego-status features (fact sheet §2.1): current velocity, acceleration and driving command, optionally
the recent past poses — everything in the current rear-axle frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ContractError
from planlab.features.base import FeatureBuilder, TensorSpec
from planlab.scene import AgentInput

EGO_STATUS_DIM = 8  # velocity (2) + acceleration (2) + driving command one-hot (4)


class EgoStatusFeatureBuilder(FeatureBuilder):
    """``ego_status`` = concat(velocity [m/s], acceleration [m/s²], command one-hot) of the current frame,
    the EgoStatusMLP input order (fact sheet §2.1); ``ego_history`` = the ``history_poses`` poses before the
    current one, oldest first, (x [m], y [m], heading [rad]) relative to the current pose."""

    def __init__(self, history_poses: int = 0) -> None:
        self.history_poses = int(history_poses)

    def get_unique_name(self) -> str:
        return "ego_status"

    def settings(self) -> dict[str, Any]:
        return {"history_poses": self.history_poses}

    def specs(self) -> dict[str, TensorSpec]:
        specs = {"ego_status": TensorSpec((EGO_STATUS_DIM,), "float32", description="v(2), a(2), command(4)")}
        if self.history_poses:
            specs["ego_history"] = TensorSpec((self.history_poses, 3), "float32", description="past poses")
        return specs

    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]:
        cur = agent_input.ego_statuses[-1]
        status = np.concatenate(
            [cur.ego_velocity, cur.ego_acceleration, np.asarray(cur.driving_command, dtype=np.float64)]
        )
        out = {"ego_status": torch.from_numpy(status.astype(np.float32))}
        if self.history_poses:
            past = agent_input.ego_statuses[:-1]
            if len(past) < self.history_poses:
                raise ContractError(
                    f"builder 'ego_status' needs {self.history_poses} past poses, the input has {len(past)} "
                    "(raise data.num_history_frames)"
                )
            poses = np.stack([s.ego_pose for s in past[-self.history_poses :]]).astype(np.float32)
            out["ego_history"] = torch.from_numpy(poses)
        return out
