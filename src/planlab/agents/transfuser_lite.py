"""TransFuser-style single-frame baseline, small enough to train on a CPU (methods_facts §4, fact sheet §2.1).

Inputs: the stitched front cameras (L0 | F0 | R0 with TransFuser's crops), the LiDAR BEV histogram of the
current frame and the ego status (command, velocity, acceleration). Two conv branches fused by GPT-style
transformers at 4 scales; the LiDAR branch's last map gives 8×8 BEV tokens which, with one status token and
learned positional embeddings, are the keys/values of a transformer decoder whose queries are one trajectory
query and ``num_agent_queries`` agent queries. Heads: trajectory (x, y, heading = tanh·π), agent boxes
(x, y = tanh·range, heading = tanh·π, size) + existence, BEV semantics on the top-down map (7 classes over the
forward half, x ∈ [0, range], y ∈ ±range).

Loss (methods_facts §4): 10·L1(trajectory) + 10·BCE(agent existence) + 1·L1(matched agent boxes) +
10·CE(BEV semantics), agents matched by the Hungarian algorithm on 10·CE + 1·L1(centre).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from planlab.agents.temporal_config import LOSS_OF_HEAD, TransFuserLiteConfig
from planlab.agents.torch_agent import TorchAgent
from planlab.features.base import FeatureBuilder, TargetBuilder
from planlab.features.camera import CameraFeatureBuilder
from planlab.features.ego import EGO_STATUS_DIM, EgoStatusFeatureBuilder
from planlab.features.lidar import LidarBEVFeatureBuilder
from planlab.features.perception import BEV_CLASSES, AgentBoxTargetBuilder, BEVSemanticTargetBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.models.heads import MLP
from planlab.models.temporal.backbones import TransFuserLiteBackbone
from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.metrics_hook import PerceptionMetricsMixin, to_numpy
from planlab.models.temporal.perception import (
    OCCUPIED_CLASSES,
    LossWeighting,
    QueryDetectionHead,
    conv_block,
    occupancy_target,
    semantic_loss,
)
from planlab.scene import SensorConfig


class TransFuserLiteAgent(PerceptionMetricsMixin, TorchAgent):
    """Camera + LiDAR fusion planner with detection and BEV-semantic auxiliary heads."""

    config_class = TransFuserLiteConfig
    registry_name = "transfuser_lite"

    def __init__(self, config: Any = None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: TransFuserLiteConfig = self.config
        lid = cfg.lidar
        self.backbone = TransFuserLiteBackbone(
            2 if lid.use_ground else 1,
            cfg.channels,
            tuple(cfg.image_anchor),
            tuple(cfg.lidar_anchor),
            cfg.fusion_layers,
            cfg.fusion_heads,
            cfg.top_down_dim,
        )
        d = cfg.d_model
        self.bev_proj = nn.Conv2d(self.backbone.out_channels, d, 1)
        self.ego_dim = EGO_STATUS_DIM + 3 * cfg.ego.history_poses
        self.status_proj = nn.Linear(self.ego_dim, d)
        self.key_pos = nn.Parameter(torch.zeros(8 * 8 + 1, d))  # 64 BEV tokens + 1 status token
        heads = set(cfg.heads)
        n_agents = cfg.num_agent_queries if "detection" in heads else 0
        self.queries = nn.Parameter(torch.zeros(1 + n_agents, d))
        nn.init.trunc_normal_(self.key_pos, std=0.02)
        nn.init.trunc_normal_(self.queries, std=0.02)
        layer = nn.TransformerDecoderLayer(
            d, cfg.num_heads, cfg.ffn_dim, cfg.dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.decoder = nn.TransformerDecoder(layer, cfg.num_layers, norm=nn.LayerNorm(d))
        self.trajectory_head = MLP(d, d, cfg.trajectory.num_poses * 3, 1)
        self.agent_head = QueryDetectionHead(d, lid.range_m) if "detection" in heads else None
        td = cfg.top_down_dim
        self.semantic_head = (
            nn.Sequential(conv_block(td, td), nn.Conv2d(td, len(BEV_CLASSES), 1))
            if "semantic" in heads
            else None
        )
        self.semantic_grid = BEVGrid.forward(
            lid.range_m,
            lid.range_m,
            int(round(lid.range_m / cfg.semantic_pixel_size)),
            int(round(2 * lid.range_m / cfg.semantic_pixel_size)),
        )
        losses = ["trajectory"] + [loss for h in cfg.heads for loss in LOSS_OF_HEAD[h]]
        self.weighting = LossWeighting({k: cfg.loss_weights[k] for k in losses}, cfg.uncertainty_weighting)

    # ------------------------------------------------------------------ builders and sensors
    def camera_builder(self) -> CameraFeatureBuilder:
        return CameraFeatureBuilder.from_config(self.config.camera, self.config.camera.history_index)

    def lidar_builder(self) -> LidarBEVFeatureBuilder:
        lid = self.config.lidar
        return LidarBEVFeatureBuilder(
            lid.range_m,
            lid.pixels_per_meter,
            lid.split_height,
            lid.max_height,
            lid.max_points_per_cell,
            lid.use_ground,
            self.config.lidar_history_index,
        )

    def get_sensor_config(self) -> SensorConfig:
        cams = self.camera_builder().sensor_config()
        return SensorConfig(
            **{
                k: getattr(cams, k)
                for k in ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0")
            },
            lidar_pc=[self.config.lidar_history_index],
        )

    def get_feature_builders(self) -> list[FeatureBuilder]:
        return [
            self.camera_builder(),
            self.lidar_builder(),
            EgoStatusFeatureBuilder(self.config.ego.history_poses),
        ]

    def get_target_builders(self) -> list[TargetBuilder]:
        cfg = self.config
        t = cfg.trajectory
        out: list[TargetBuilder] = [TrajectoryTargetBuilder(t.num_poses, t.interval_length)]
        if self.agent_head is not None:
            out.append(AgentBoxTargetBuilder(cfg.num_agent_queries, cfg.lidar.range_m))
        if self.semantic_head is not None:
            g = self.semantic_grid
            out.append(BEVSemanticTargetBuilder(g.height, g.width, cfg.semantic_pixel_size, g.x_min))
        return out

    # ------------------------------------------------------------------ forward
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        bev, top_down = self.backbone(features["camera"], features["lidar_bev"])
        ego = features["ego_status"]
        if self.config.ego.history_poses:
            ego = torch.cat([ego, features["ego_history"].flatten(1)], 1)
        keys = torch.cat(
            [self.bev_proj(bev).flatten(2).transpose(1, 2), self.status_proj(ego).unsqueeze(1)], 1
        )
        queries = self.queries.unsqueeze(0).expand(keys.shape[0], -1, -1)
        q = self.decoder(queries, keys + self.key_pos)
        traj = self.trajectory_head(q[:, 0]).view(-1, self.config.trajectory.num_poses, 3)
        out = {"trajectory": torch.cat([traj[..., :2], torch.tanh(traj[..., 2:]) * torch.pi], -1)}
        if self.agent_head is not None:
            out.update(self.agent_head(q[:, 1:]))
        if self.semantic_head is not None:
            logits = self.semantic_head(top_down)
            # the top-down map covers x ∈ ±range with row 0 ahead: its first half of rows is x ∈ [0, range]
            half = logits[:, :, : logits.shape[2] // 2]
            g = self.semantic_grid
            out["bev_semantic"] = F.interpolate(
                half, size=(g.height, g.width), mode="bilinear", align_corners=False
            )
        return out

    # ------------------------------------------------------------------ loss
    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        losses: dict[str, torch.Tensor] = {
            "trajectory": F.l1_loss(predictions["trajectory"], targets["trajectory"])
        }
        if self.agent_head is not None:
            losses.update(self.agent_head.loss(predictions, targets["agent_states"], targets["agent_labels"]))
        if self.semantic_head is not None:
            losses["bev_semantic"] = semantic_loss(
                predictions["bev_semantic"], targets["bev_semantic_map"], self.config.semantic_loss
            )
        total, extra = self.weighting(losses)
        self.record_perception(predictions, targets)
        return {"loss": total, **{k: v.detach() for k, v in losses.items()}, **extra}

    # ------------------------------------------------------------------ perception outputs for the metrics
    def perception_outputs(self, predictions, targets) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if self.agent_head is not None:
            out["det_boxes"] = to_numpy(predictions["agent_boxes"])
            out["det_scores"] = to_numpy(torch.sigmoid(predictions["agent_logits"]))
            out["gt_boxes"] = to_numpy(targets["agent_states"])
            out["gt_valid"] = to_numpy(targets["agent_labels"] > 0.5)
        if self.semantic_head is not None:
            probs = torch.softmax(predictions["bev_semantic"], 1)
            out["sem_pred"] = to_numpy(probs.argmax(1))
            out["sem_gt"] = to_numpy(targets["bev_semantic_map"])
            # occupancy read off the semantic head: P(static object) + P(vehicle) + P(pedestrian)
            out["occ_prob"] = to_numpy(probs[:, list(OCCUPIED_CLASSES)].sum(1))
            out["occ_gt"] = to_numpy(occupancy_target(targets["bev_semantic_map"]))
        return out
