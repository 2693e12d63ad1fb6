"""Perception metrics during validation: agents with perception heads accumulate decoded outputs while a
validation epoch runs and the callback logs ``val/perception/<group>/<metric>`` at its end.

The accumulation happens inside the agent's ``compute_loss`` (validation already runs the forward there), so
metrics cost no second forward pass. It is active only between :meth:`start_perception_metrics` and
:meth:`finish_perception_metrics` and only in eval mode, so training steps and other eval-mode loss
evaluations (the smoke run's subset loss) are not counted. Under DDP each rank accumulates its own shard and
the logged values are averaged across ranks (``sync_dist``) — an approximation of the pooled metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from planlab.features.perception import BEV_CLASSES
from planlab.metrics.perception import PerceptionMetrics


class PerceptionMetricsMixin:
    """For agents with perception heads: ``perception_outputs`` (to implement) plus the accumulation."""

    def perception_outputs(
        self, predictions: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> dict[str, np.ndarray]:
        """Decoded batch for :class:`~planlab.metrics.perception.PerceptionMetrics.update` (numpy arrays)."""
        raise NotImplementedError

    def new_perception_metrics(self) -> PerceptionMetrics:
        return PerceptionMetrics(BEV_CLASSES)

    def start_perception_metrics(self) -> None:
        self._perception_metrics = self.new_perception_metrics()

    def finish_perception_metrics(self) -> dict[str, float]:
        acc = getattr(self, "_perception_metrics", None)
        self._perception_metrics = None
        return acc.compute() if acc is not None and acc.num_scenes else {}

    def record_perception(
        self, predictions: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> None:
        """Called from ``compute_loss``: accumulate when a validation epoch is collecting."""
        acc = getattr(self, "_perception_metrics", None)
        if acc is None or getattr(self, "training", False):
            return
        with torch.no_grad():
            acc.update(self.perception_outputs(predictions, targets))

    def get_training_callbacks(self) -> list[Any]:
        return [perception_metrics_callback()]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32 if t.is_floating_point() else t.dtype).numpy()


def perception_metrics_callback() -> Any:
    """The Lightning callback that starts the accumulation with each validation epoch and logs the result."""
    import lightning.pytorch as pl

    class PerceptionMetricsCallback(pl.Callback):
        def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.sanity_checking:
                pl_module.agent.start_perception_metrics()

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            results = pl_module.agent.finish_perception_metrics()
            for key, value in sorted(results.items()):
                # a metric without ground truth (no agent in the split) is NaN: not logged, not a divergence
                if key.endswith("num_gt") or key.endswith("num_agents") or not math.isfinite(value):
                    continue
                pl_module.log(f"val/perception/{key}", float(value), sync_dist=trainer.world_size > 1)

    return PerceptionMetricsCallback()
