"""The trajectory target: the logged future in the **current** rear-axle frame (DESIGN.md, Contracts).

Lesson C1: an earlier workspace made the loss relative to the first future waypoint, so every plan was
shifted back by one step. Here the target is exactly ``scene.get_future_trajectory(n).poses`` (origin = the
current pose), and :func:`check_trajectory_target` lets dataset construction verify any builder that
emits a ``trajectory`` key against that definition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ConfigError, ContractError
from planlab.features.base import TargetBuilder, TensorSpec
from planlab.scene import NAVSIM_INTERVAL_LENGTH, Scene


class TrajectoryTargetBuilder(TargetBuilder):
    """``trajectory`` (num_poses, 3): future (x [m], y [m], heading [rad]) at 0.5 s steps, origin = current pose."""

    def __init__(self, num_poses: int = 8, interval_length: float = NAVSIM_INTERVAL_LENGTH) -> None:
        if abs(interval_length - NAVSIM_INTERVAL_LENGTH) > 1e-9:
            # Logged frames are 2 Hz (fact sheet §3.3); other spacings would need resampling of the log.
            raise ConfigError(
                f"agent.trajectory.interval_length={interval_length} is not supported for training targets; "
                f"the logs are sampled every {NAVSIM_INTERVAL_LENGTH} s"
            )
        self.num_poses = int(num_poses)

    def get_unique_name(self) -> str:
        return "trajectory"

    def settings(self) -> dict[str, Any]:
        return {"num_poses": self.num_poses}

    def specs(self) -> dict[str, TensorSpec]:
        return {
            "trajectory": TensorSpec(
                (self.num_poses, 3), "float32", description="x, y, heading; current frame"
            )
        }

    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]:
        poses = scene.get_future_trajectory(self.num_poses).poses
        return {"trajectory": torch.from_numpy(np.asarray(poses, dtype=np.float32))}


def check_trajectory_target(
    builder_name: str, target: torch.Tensor, scene: Scene, atol: float = 1e-3
) -> None:
    """ContractError unless ``target`` is the scene's future in the current rear-axle frame.

    Catches a target expressed relative to the first future waypoint (lesson C1), a shifted or reversed one.
    """
    n = int(target.shape[0])
    truth = np.asarray(scene.get_future_trajectory(n).poses, dtype=np.float64)
    got = target.detach().cpu().double().numpy()
    dev = np.abs(got - truth)
    dev[:, 2] = np.abs(np.arctan2(np.sin(got[:, 2] - truth[:, 2]), np.cos(got[:, 2] - truth[:, 2])))
    worst = float(dev.max())
    if worst > atol:
        hint = ""
        rel_first = truth - truth[:1]
        if np.allclose(got[0], 0.0, atol=atol) and np.linalg.norm(truth[0, :2]) > atol:
            hint = "; its first pose is (0, 0, 0): it looks relative to the first future waypoint, not the current pose"
        elif np.abs(got - rel_first).max() < 10 * atol:
            hint = "; it equals the future relative to the first waypoint"
        raise ContractError(
            f"builder {builder_name!r} key 'trajectory' differs from the future in the current rear-axle frame "
            f"by up to {worst:.3g} (token {scene.token}){hint}"
        )
