"""Forecasting targets: where the agents of the detection target are over the next seconds.

``agent_future`` (N, F, 2) = (x, y) [m] of agent n at future step f (0.5 s apart, step 0 = +0.5 s) in the
**current** rear-axle frame, and ``agent_future_valid`` (N, F) = 1 where that agent's track (its
``track_token``) appears in the logged future frame. Row n is the same agent as row n of
:class:`~planlab.features.perception.AgentBoxTargetBuilder`'s ``agent_states`` (the builder is run and its
boxes are matched back to the annotations), so detection, forecasting and their metrics share one agent list.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ContractError
from planlab.features.base import TargetBuilder, TensorSpec
from planlab.features.perception import AgentBoxTargetBuilder
from planlab.geometry import se2
from planlab.scene import Scene

MATCH_TOLERANCE_M = 1e-3  # agent_states are float32 copies of the float64 annotation boxes


class AgentForecastTargetBuilder(TargetBuilder):
    """Future centres of the detection target's agents, with a validity mask per step."""

    def __init__(
        self,
        num_future: int = 8,
        max_agents: int = 30,
        range_m: float = 32.0,
        classes: tuple[str, ...] = ("vehicle",),
    ) -> None:
        if num_future < 1:
            raise ValueError("num_future must be >= 1")
        self.num_future = int(num_future)
        self.boxes = AgentBoxTargetBuilder(max_agents, range_m, tuple(classes))

    def get_unique_name(self) -> str:
        return "agent_forecast"

    def settings(self) -> dict[str, Any]:
        return {"num_future": self.num_future, **self.boxes.settings(), "boxes_version": self.boxes.version}

    def specs(self) -> dict[str, TensorSpec]:
        n, f = self.boxes.max_agents, self.num_future
        return {
            "agent_future": TensorSpec((n, f, 2), "float32", description="future x, y in the current frame"),
            "agent_future_valid": TensorSpec((n, f), "float32", (0.0, 1.0), "1 = track logged at that step"),
        }

    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]:
        h = scene.current_index
        available = len(scene.frames) - h - 1
        if available < self.num_future:
            raise ContractError(
                f"builder 'agent_forecast' needs {self.num_future} future frames, scene {scene.token} has "
                f"{available} (raise data.num_future_frames)"
            )
        ref = self.boxes.compute_targets(scene)
        states, labels = ref["agent_states"].numpy(), ref["agent_labels"].numpy()
        ann = scene.current_frame.annotations
        boxes = np.asarray(ann.boxes, dtype=np.float64).reshape(-1, 7)
        tracks: list[str | None] = []
        for n in range(len(states)):
            if labels[n] < 0.5:
                tracks.append(None)
                continue
            d = (
                np.hypot(boxes[:, 0] - states[n, 0], boxes[:, 1] - states[n, 1])
                if len(boxes)
                else np.array([])
            )
            cand = [i for i in np.flatnonzero(d < MATCH_TOLERANCE_M) if ann.names[i] in self.boxes.classes]
            if not cand:
                raise ContractError(
                    f"builder 'agent_forecast': agent {n} of the box target matches no annotation (token {scene.token})"
                )
            tracks.append(ann.track_tokens[cand[0]])
        origin = scene.current_frame.ego_status.ego_pose
        future = np.zeros((len(states), self.num_future, 2), np.float32)
        valid = np.zeros((len(states), self.num_future), np.float32)
        for f in range(self.num_future):
            frame = scene.frames[h + 1 + f]
            fa = frame.annotations
            index = {t: i for i, t in enumerate(fa.track_tokens)}
            fb = np.asarray(fa.boxes, dtype=np.float64).reshape(-1, 7)
            for n, track in enumerate(tracks):
                i = index.get(track) if track is not None else None
                if i is None:
                    continue
                glob = se2.transform_points(
                    frame.ego_status.ego_pose, fb[i, :2]
                )  # that frame's ego -> global
                local = se2.transform_points(se2.invert(origin), glob)  # global -> current ego frame
                future[n, f] = local
                valid[n, f] = 1.0
        return {"agent_future": torch.from_numpy(future), "agent_future_valid": torch.from_numpy(valid)}
