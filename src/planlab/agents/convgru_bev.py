"""BEV planner with temporal fusion (methods_facts §3; seed 003): LiDAR BEV of several history frames →
shared CNN encoder → ConvGRU whose state is warped by the ego motion at every step → fused BEV map in the
current frame → a transformer planning decoder (pose queries over 8×8 BEV tokens + an ego-status token) and
perception heads: dense agent detection, BEV semantics, occupancy and multi-modal forecasting.

``use_convgru=false`` is the single-frame ablation with the same parameters (current frame only, one GRU
step from a zero state). Perception metrics are accumulated every validation epoch
(:mod:`planlab.models.temporal.metrics_hook`) and by ``planlab eval perception``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from planlab.agents.temporal_config import LOSS_OF_HEAD, ConvGRUBEVConfig
from planlab.agents.torch_agent import TorchAgent
from planlab.features.base import FeatureBuilder, TargetBuilder
from planlab.features.ego import EGO_STATUS_DIM, EgoStatusFeatureBuilder
from planlab.features.perception import BEV_CLASSES, AgentBoxTargetBuilder, BEVSemanticTargetBuilder
from planlab.features.temporal import TemporalLidarBEVFeatureBuilder
from planlab.features.temporal_targets import AgentForecastTargetBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.models.heads import PoseQueryDecoder
from planlab.models.temporal.backbones import BEVEncoder, BEVTokenizer
from planlab.models.temporal.convgru import TemporalConvGRU
from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.metrics_hook import PerceptionMetricsMixin, to_numpy
from planlab.models.temporal.perception import (
    DenseDetectionHead,
    DenseForecastHead,
    LossWeighting,
    box_cells,
    conv_block,
    forecast_nll,
    occupancy_target,
    semantic_loss,
)
from planlab.scene import SensorConfig


class ConvGRUBEVAgent(PerceptionMetricsMixin, TorchAgent):
    """Temporal BEV fusion planner with perception heads."""

    config_class = ConvGRUBEVConfig
    registry_name = "convgru_bev"

    def __init__(self, config: Any = None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: ConvGRUBEVConfig = self.config
        self.slices = cfg.used_slices()
        lid = cfg.lidar
        self.input_grid = BEVGrid.square(lid.range_m, lid.size)
        self.encoder = BEVEncoder(2 if lid.use_ground else 1, cfg.encoder_channels, cfg.feature_dim)
        side = lid.size // self.encoder.stride
        self.feature_grid = self.input_grid.resized(side, side)
        hd = cfg.temporal_hidden_dim
        self.fusion = TemporalConvGRU(cfg.feature_dim, hd, self.feature_grid)
        self.neck = conv_block(hd, hd)
        self.tokenizer = BEVTokenizer(hd, side, cfg.d_model)
        self.ego_dim = EGO_STATUS_DIM + 3 * cfg.ego.history_poses
        self.planner = PoseQueryDecoder(
            cfg.d_model,
            self.ego_dim,
            cfg.trajectory.num_poses,
            cfg.d_model,
            cfg.num_layers,
            cfg.num_heads,
            cfg.ffn_dim,
            cfg.dropout,
        )
        heads = set(cfg.heads)
        n_sem = int(round(2 * lid.range_m / cfg.semantic_pixel_size))
        self.semantic_grid = BEVGrid.square(lid.range_m, n_sem)
        self.detection = DenseDetectionHead(hd, self.feature_grid) if "detection" in heads else None
        self.semantic = (
            nn.Sequential(conv_block(hd, hd), nn.Conv2d(hd, len(BEV_CLASSES), 1))
            if "semantic" in heads
            else None
        )
        self.occupancy = (
            nn.Sequential(conv_block(hd, hd), nn.Conv2d(hd, 1, 1)) if "occupancy" in heads else None
        )
        self.forecast = (
            DenseForecastHead(hd, cfg.forecast_modes, cfg.forecast_steps) if "forecast" in heads else None
        )
        losses = ["trajectory"] + [loss for h in cfg.heads for loss in LOSS_OF_HEAD[h]]
        self.weighting = LossWeighting({k: cfg.loss_weights[k] for k in losses}, cfg.uncertainty_weighting)

    # ------------------------------------------------------------------ builders and sensors
    def lidar_builder(self) -> TemporalLidarBEVFeatureBuilder:
        cfg, lid = self.config, self.config.lidar
        return TemporalLidarBEVFeatureBuilder(
            cfg.num_history_frames,
            self.slices,
            lid.range_m,
            lid.pixels_per_meter,
            lid.split_height,
            lid.max_height,
            lid.max_points_per_cell,
            lid.use_ground,
        )

    def get_sensor_config(self) -> SensorConfig:
        return self.lidar_builder().sensor_config()

    def get_feature_builders(self) -> list[FeatureBuilder]:
        return [self.lidar_builder(), EgoStatusFeatureBuilder(self.config.ego.history_poses)]

    def get_target_builders(self) -> list[TargetBuilder]:
        cfg = self.config
        t = cfg.trajectory
        out: list[TargetBuilder] = [TrajectoryTargetBuilder(t.num_poses, t.interval_length)]
        heads = set(cfg.heads)
        if heads & {"detection", "forecast"}:
            out.append(AgentBoxTargetBuilder(cfg.max_agents, cfg.lidar.range_m))
        if heads & {"semantic", "occupancy"}:
            g = self.semantic_grid
            out.append(BEVSemanticTargetBuilder(g.height, g.width, cfg.semantic_pixel_size, g.x_min))
        if "forecast" in heads:
            out.append(AgentForecastTargetBuilder(cfg.forecast_steps, cfg.max_agents, cfg.lidar.range_m))
        return out

    # ------------------------------------------------------------------ forward
    def fused_bev(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The ConvGRU output ``(B, temporal_hidden_dim, h, w)`` in the current frame (feature_grid)."""
        x = features["lidar_bev_seq"]
        b, t = x.shape[:2]
        f = self.encoder(x.flatten(0, 1))
        f = f.view(b, t, *f.shape[1:])
        return self.fusion(f, features["ego_motion"])

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        bev = self.neck(self.fused_bev(features))
        ego = features["ego_status"]
        if self.config.ego.history_poses:
            ego = torch.cat([ego, features["ego_history"].flatten(1)], 1)
        out: dict[str, torch.Tensor] = {"trajectory": self.planner(self.tokenizer(bev), ego)}
        size = (self.semantic_grid.height, self.semantic_grid.width)
        if self.detection is not None:
            out.update(self.detection(bev))
        if self.semantic is not None:
            out["bev_semantic"] = F.interpolate(
                self.semantic(bev), size=size, mode="bilinear", align_corners=False
            )
        if self.occupancy is not None:
            out["occupancy"] = F.interpolate(
                self.occupancy(bev), size=size, mode="bilinear", align_corners=False
            )[:, 0]
        if self.forecast is not None:
            out.update(self.forecast(bev))
        return out

    # ------------------------------------------------------------------ loss
    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        cfg = self.config
        losses: dict[str, torch.Tensor] = {
            # both in the current rear-axle frame (lesson C1)
            "trajectory": F.l1_loss(predictions["trajectory"], targets["trajectory"]),
        }
        if self.detection is not None:
            losses.update(self.detection.loss(predictions, targets["agent_states"], targets["agent_labels"]))
        if self.semantic is not None:
            losses["bev_semantic"] = semantic_loss(
                predictions["bev_semantic"], targets["bev_semantic_map"], cfg.semantic_loss
            )
        if self.occupancy is not None:
            occ = occupancy_target(targets["bev_semantic_map"])
            pos_weight = torch.tensor(cfg.occupancy_pos_weight, device=occ.device, dtype=occ.dtype)
            losses["occupancy"] = F.binary_cross_entropy_with_logits(
                predictions["occupancy"], occ, pos_weight=pos_weight
            )
        if self.forecast is not None:
            fc, inside = self._forecast_at_agents(predictions, targets)
            disp = targets["agent_future"] - targets["agent_states"][..., None, :2]
            losses["forecast"] = forecast_nll(
                fc["logits"], fc["mean"], fc["sigma"], disp, targets["agent_future_valid"], inside.float()
            )
        total, extra = self.weighting(losses)
        self.record_perception(predictions, targets)
        return {"loss": total, **{k: v.detach() for k, v in losses.items()}, **extra}

    def _forecast_at_agents(self, predictions, targets) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        assert self.forecast is not None
        row, col, inside = box_cells(targets["agent_states"], targets["agent_labels"], self.feature_grid)
        return self.forecast.at(predictions, row, col), inside

    # ------------------------------------------------------------------ perception outputs for the metrics
    def perception_outputs(self, predictions, targets) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "agent_states" in targets:
            states, labels = targets["agent_states"], targets["agent_labels"]
            _, _, inside = box_cells(states, labels, self.feature_grid)
            out["gt_boxes"], out["gt_valid"] = to_numpy(states), to_numpy(inside)
        if self.detection is not None:
            boxes, scores = self.detection.decode(predictions, self.config.detection_top_k)
            out["det_boxes"], out["det_scores"] = to_numpy(boxes), to_numpy(scores)
        if self.semantic is not None:
            out["sem_pred"] = to_numpy(predictions["bev_semantic"].argmax(1))
            out["sem_gt"] = to_numpy(targets["bev_semantic_map"])
        if self.occupancy is not None:
            out["occ_prob"] = to_numpy(torch.sigmoid(predictions["occupancy"]))
            out["occ_gt"] = to_numpy(occupancy_target(targets["bev_semantic_map"]))
        if self.forecast is not None:
            fc, _ = self._forecast_at_agents(predictions, targets)
            origin = targets["agent_states"][:, :, None, None, :2]
            out["fc_pred"] = to_numpy(fc["mean"] + origin)
            out["fc_prob"] = to_numpy(torch.softmax(fc["logits"], -1))
            out["fc_gt"] = to_numpy(targets["agent_future"])
            out["fc_valid"] = to_numpy(targets["agent_future_valid"])
        return out
