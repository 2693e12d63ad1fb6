"""Settings schemas of the temporal-fusion agents (``convgru_bev``) and the TransFuser-style baseline
(``transfuser_lite``); torch-free, like :mod:`planlab.agents.learned_config`, whose
``AGENT_CONFIG_SCHEMAS`` lists them.

Import note: ``learned_config`` imports this module at its end (to register these schemas) and these schemas
reuse its ``TrajectoryConfig`` / ``EgoFeatureConfig`` / ``CameraFeatureConfig``. Those names are therefore
imported at the *bottom* of this file and only referenced lazily (default factories, string annotations), so
either module may be imported first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planlab.config import check_choice
from planlab.errors import ConfigError

CONVGRU_HEADS = ("detection", "semantic", "occupancy", "forecast")
TRANSFUSER_HEADS = ("detection", "semantic")
SEMANTIC_LOSSES = ("bce_dice", "ce")
# loss component -> the head that produces it (trajectory is always on)
LOSS_OF_HEAD = {
    "detection": ("agent_class", "agent_box"),
    "semantic": ("bev_semantic",),
    "occupancy": ("occupancy",),
    "forecast": ("forecast",),
}


@dataclass
class LidarBEVConfig:
    """LiDAR point histogram per frame (fact sheet §2.1 TransFuser recipe, at a coarser default resolution):
    ±``range_m`` around the ego at ``pixels_per_meter``, points above ``split_height`` (plus a ground channel
    with ``use_ground``), at most ``max_points_per_cell`` per cell, scaled to [0, 1]."""

    range_m: float = 32.0
    pixels_per_meter: float = 2.0
    split_height: float = 0.2
    max_height: float = 100.0
    max_points_per_cell: int = 5
    use_ground: bool = False

    @property
    def size(self) -> int:
        return int(round(2 * self.range_m * self.pixels_per_meter))

    def validate(self, prefix: str, stride: int) -> None:
        """``stride``: the backbone's downsampling; the feature map must then be 8·2^k cells wide."""
        raw = 2 * self.range_m * self.pixels_per_meter
        if self.range_m <= 0 or self.pixels_per_meter <= 0 or abs(raw - round(raw)) > 1e-6:
            raise ConfigError(f"{prefix}: 2·range_m·pixels_per_meter must be a positive integer, got {raw:g}")
        side = self.size // stride
        if self.size % stride or side < 8 or side % 8 or (side // 8) & (side // 8 - 1):
            raise ConfigError(
                f"{prefix}: the BEV size {self.size} (2·range_m·pixels_per_meter) must be {stride}·8·2^k cells "
                f"for this backbone (e.g. {stride * 8} or {stride * 16})"
            )
        if self.max_points_per_cell < 1:
            raise ConfigError(f"{prefix}.max_points_per_cell must be >= 1")


def _check_weights(prefix: str, heads: list[str], weights: dict[str, float]) -> None:
    need = ["trajectory"] + [loss for h in heads for loss in LOSS_OF_HEAD[h]]
    missing = [k for k in need if k not in weights]
    if missing:
        raise ConfigError(f"{prefix}.loss_weights has no weight for {', '.join(missing)}")
    for k, v in weights.items():
        if v < 0:
            raise ConfigError(f"{prefix}.loss_weights.{k} must be >= 0, got {v}")


def _check_decoder(prefix: str, d_model: int, num_heads: int, num_layers: int) -> None:
    if d_model % num_heads:
        raise ConfigError(f"{prefix}.d_model ({d_model}) must be divisible by num_heads ({num_heads})")
    if num_layers < 1:
        raise ConfigError(f"{prefix}.num_layers must be >= 1")


@dataclass
class ConvGRUBEVConfig:
    """BEV planner with temporal fusion (methods_facts §3): per-frame LiDAR BEV → shared CNN encoder → ConvGRU
    over the history (state warped by the ego motion) → planning decoder + perception heads.

    ``use_convgru=false`` is the single-frame ablation: only the current frame is loaded and the ConvGRU runs
    one step from a zero state — the same parameters, no history.
    """

    num_history_frames: int = 4
    slice_indices: list[int] | None = None  # None: every history frame, oldest first
    use_convgru: bool = True
    temporal_hidden_dim: int = 16
    lidar: LidarBEVConfig = field(default_factory=LidarBEVConfig)
    encoder_channels: list[int] = field(default_factory=lambda: [16, 32])  # strided stages (×2 down each)
    feature_dim: int = 16  # per-frame BEV feature channels fed to the ConvGRU
    ego: EgoFeatureConfig = field(default_factory=lambda: EgoFeatureConfig())
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.0
    heads: list[str] = field(default_factory=lambda: list(CONVGRU_HEADS))
    semantic_pixel_size: float = 1.0  # [m] BEV semantic / occupancy target cells over the LiDAR square
    semantic_loss: str = "bce_dice"
    # BCE weight of occupied cells: objects cover well under 1 % of the cells, and unweighted BCE then keeps
    # every cell below 0.5 (a head that never calls a cell occupied)
    occupancy_pos_weight: float = 5.0
    max_agents: int = 30
    detection_top_k: int = 30
    forecast_modes: int = 3
    forecast_steps: int = 8  # 0.5 s apart
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {
            "trajectory": 10.0,
            "agent_class": 10.0,
            "agent_box": 1.0,
            "bev_semantic": 10.0,
            "occupancy": 1.0,
            "forecast": 1.0,
        }
    )
    uncertainty_weighting: bool = False
    trajectory: TrajectoryConfig = field(default_factory=lambda: TrajectoryConfig())

    def validate(self, prefix: str = "agent") -> None:
        from planlab.features.temporal import resolve_slice_indices

        try:
            resolve_slice_indices(self.num_history_frames, self.slice_indices)
        except ConfigError as exc:
            raise ConfigError(f"{prefix}.{exc}") from None
        if self.temporal_hidden_dim < 1 or self.feature_dim < 1 or not self.encoder_channels:
            raise ConfigError(
                f"{prefix}.temporal_hidden_dim, feature_dim and encoder_channels must be positive"
            )
        self.lidar.validate(f"{prefix}.lidar", 2 ** len(self.encoder_channels))
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")
        _check_decoder(prefix, self.d_model, self.num_heads, self.num_layers)
        for h in self.heads:
            check_choice(f"{prefix}.heads", h, CONVGRU_HEADS)
        check_choice(f"{prefix}.semantic_loss", self.semantic_loss, SEMANTIC_LOSSES)
        cells = 2 * self.lidar.range_m / self.semantic_pixel_size if self.semantic_pixel_size > 0 else 0.5
        if abs(cells - round(cells)) > 1e-6:
            raise ConfigError(f"{prefix}.semantic_pixel_size must divide 2·lidar.range_m")
        if self.occupancy_pos_weight <= 0:
            raise ConfigError(f"{prefix}.occupancy_pos_weight must be > 0, got {self.occupancy_pos_weight}")
        if (
            self.max_agents < 1
            or self.detection_top_k < 1
            or self.forecast_modes < 1
            or self.forecast_steps < 1
        ):
            raise ConfigError(
                f"{prefix}.max_agents, detection_top_k, forecast_modes and forecast_steps must be >= 1"
            )
        _check_weights(prefix, list(self.heads), self.loss_weights)

    def used_slices(self) -> list[int]:
        """The history frames loaded: all configured slices, or only the current frame without the ConvGRU."""
        from planlab.features.temporal import resolve_slice_indices

        if not self.use_convgru:
            return [self.num_history_frames - 1]
        return resolve_slice_indices(self.num_history_frames, self.slice_indices)


@dataclass
class TransFuserLiteConfig:
    """TransFuser-style single-frame baseline (methods_facts §4, fact sheet §2.1), small enough for a CPU:
    stitched front cameras + LiDAR BEV, fused at 4 scales; a transformer decoder with one trajectory query and
    agent queries over 8×8 BEV tokens + a status token; agent-detection and BEV-semantic auxiliary heads."""

    camera: CameraFeatureConfig = field(
        default_factory=lambda: CameraFeatureConfig(image_height=64, image_width=256)
    )
    lidar: LidarBEVConfig = field(default_factory=LidarBEVConfig)
    lidar_history_index: int = 3  # the current frame with 4 history frames (TransFuser: include=[3])
    ego: EgoFeatureConfig = field(default_factory=lambda: EgoFeatureConfig())
    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    image_anchor: list[int] = field(default_factory=lambda: [2, 8])
    lidar_anchor: list[int] = field(default_factory=lambda: [4, 4])
    fusion_layers: int = 1
    fusion_heads: int = 4
    top_down_dim: int = 32
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 128
    dropout: float = 0.0
    num_agent_queries: int = 30  # = the box target's max_agents
    heads: list[str] = field(default_factory=lambda: list(TRANSFUSER_HEADS))
    semantic_pixel_size: float = 0.5  # [m]; the target covers x ∈ [0, range], y ∈ ±range (TransFuser's half)
    semantic_loss: str = "ce"  # TransFuser: cross-entropy
    # fact sheet §2.1 / methods_facts §4: trajectory 10, agent class 10, agent box 1, BEV semantic 10
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {
            "trajectory": 10.0,
            "agent_class": 10.0,
            "agent_box": 1.0,
            "bev_semantic": 10.0,
        }
    )
    uncertainty_weighting: bool = False
    trajectory: TrajectoryConfig = field(default_factory=lambda: TrajectoryConfig())

    def validate(self, prefix: str = "agent") -> None:
        self.camera.validate(f"{prefix}.camera")
        self.lidar.validate(f"{prefix}.lidar", 16)
        if self.lidar.size != 128:
            raise ConfigError(
                f"{prefix}.lidar: the BEV size {self.lidar.size} (2·range_m·pixels_per_meter) must be 128: "
                "8×8 BEV tokens after the 4 stages"
            )
        if self.lidar_history_index < 0:
            raise ConfigError(f"{prefix}.lidar_history_index must be >= 0")
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")
        _check_decoder(prefix, self.d_model, self.num_heads, self.num_layers)
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise ConfigError(f"{prefix}.channels needs 4 positive stage widths")
        for ch in self.channels:
            if ch % self.fusion_heads:
                raise ConfigError(
                    f"{prefix}.channels ({ch}) must be divisible by fusion_heads ({self.fusion_heads})"
                )
        if len(self.image_anchor) != 2 or len(self.lidar_anchor) != 2:
            raise ConfigError(f"{prefix}.image_anchor and lidar_anchor are (rows, cols)")
        for h in self.heads:
            check_choice(f"{prefix}.heads", h, TRANSFUSER_HEADS)
        check_choice(f"{prefix}.semantic_loss", self.semantic_loss, SEMANTIC_LOSSES)
        cells = self.lidar.range_m / self.semantic_pixel_size if self.semantic_pixel_size > 0 else 0.5
        if abs(cells - round(cells)) > 1e-6:
            raise ConfigError(f"{prefix}.semantic_pixel_size must divide lidar.range_m")
        if self.num_agent_queries < 1:
            raise ConfigError(f"{prefix}.num_agent_queries must be >= 1")
        _check_weights(prefix, list(self.heads), self.loss_weights)


#: registered by planlab.agents.learned_config (AGENT_CONFIG_SCHEMAS)
TEMPORAL_AGENT_CONFIG_SCHEMAS: dict[str, type] = {
    "convgru_bev": ConvGRUBEVConfig,
    "transfuser_lite": TransFuserLiteConfig,
}

# Bottom import (see the module docstring): the shared sub-configs of the learned agents.
from planlab.agents.learned_config import (  # noqa: E402
    CameraFeatureConfig,
    EgoFeatureConfig,
    TrajectoryConfig,
)

__all__ = [
    "CameraFeatureConfig",
    "ConvGRUBEVConfig",
    "EgoFeatureConfig",
    "LidarBEVConfig",
    "TEMPORAL_AGENT_CONFIG_SCHEMAS",
    "TrajectoryConfig",
    "TransFuserLiteConfig",
]
