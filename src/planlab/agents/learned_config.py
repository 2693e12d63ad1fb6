"""Settings schemas of the learned agents, torch-free so that configs validate in a fast CLI process.

Each learned agent takes one of these dataclasses as its ``config``; the packaged YAML
``planlab/configs/agents/<name>.yaml`` holds its defaults. ``planlab.training.config`` uses
:data:`AGENT_CONFIG_SCHEMAS` to type the ``agent:`` section of a training config, so an unknown or
mistyped agent key is an error that names ``agent.<key>`` before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planlab.config import check_choice
from planlab.errors import ConfigError

CAMERA_FIELDS = ("cam_f0", "cam_l0", "cam_l1", "cam_l2", "cam_r0", "cam_r1", "cam_r2", "cam_b0")
ENCODER_KINDS = ("vit", "ijepa")
POOLINGS = ("mean", "attention")
SUB_SCORES = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "ego_progress",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
)


@dataclass
class TrajectoryConfig:
    """Output sampling: ``num_poses`` poses every ``interval_length`` seconds (NAVSIM: 8 × 0.5 s)."""

    num_poses: int = 8
    interval_length: float = 0.5

    def validate(self, prefix: str = "agent.trajectory") -> None:
        if self.num_poses < 1:
            raise ConfigError(f"{prefix}.num_poses must be >= 1, got {self.num_poses}")
        if self.interval_length <= 0:
            raise ConfigError(f"{prefix}.interval_length must be > 0, got {self.interval_length}")


@dataclass
class EgoFeatureConfig:
    """Ego-status input: velocity (2), acceleration (2), command one-hot (4) of the current frame, and
    optionally the ``history_poses`` past poses (x, y, heading) in the current frame."""

    history_poses: int = 0

    def validate(self, prefix: str) -> None:
        if self.history_poses < 0:
            raise ConfigError(f"{prefix}.history_poses must be >= 0, got {self.history_poses}")


@dataclass
class CameraFeatureConfig:
    """Front cameras stitched left to right with TransFuser's crops (fact sheet §2.1), then resized with
    one scale factor (aspect ratio kept) and centre-padded to ``image_height`` × ``image_width``."""

    cameras: list[str] = field(default_factory=lambda: ["cam_l0", "cam_f0", "cam_r0"])
    image_height: int = 128
    image_width: int = 512
    # TransFuser crops at 1920×1080, scaled to the actual resolution: 28 rows top and bottom of every
    # camera, 416 columns on each side of the side cameras (fact sheet §2.1).
    crop_rows_fraction: float = 28 / 1080
    crop_side_fraction: float = 416 / 1920
    # Normalisation applied once to the [0, 1] image (ImageNet statistics by default, as I-JEPA's training).
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    # History frame whose images are used: 3 = the current frame with NAVSIM's 4 history frames (§2.1).
    history_index: int = 3

    def validate(self, prefix: str) -> None:
        if not self.cameras:
            raise ConfigError(f"{prefix}.cameras must name at least one camera")
        if self.history_index < 0:
            raise ConfigError(f"{prefix}.history_index must be >= 0")
        for cam in self.cameras:
            check_choice(f"{prefix}.cameras", cam, CAMERA_FIELDS)
        if self.image_height < 8 or self.image_width < 8:
            raise ConfigError(f"{prefix}.image_height/image_width must be >= 8")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"{prefix}.mean/std need 3 values each (std > 0)")
        for key in ("crop_rows_fraction", "crop_side_fraction"):
            v = getattr(self, key)
            if not 0 <= v < 0.5:
                raise ConfigError(f"{prefix}.{key} must be in [0, 0.5), got {v}")


@dataclass
class EncoderConfig:
    """Image encoder: a plain-torch ViT (random init, or an SSL export directory) or transformers'
    IJepaModel from a local directory. Patch tokens are pooled by mean or attention (no CLS exists)."""

    kind: str = "vit"
    # vit: directory with config.json + model.safetensors (planlab.models.vit format); None = random init.
    # ijepa: a local transformers directory (config.json + model.safetensors), e.g. facebook/ijepa_vith14_1k.
    path: str | None = None
    # Architecture of a randomly initialised ViT (a saved directory's own config wins).
    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0
    init_seed: int = 0
    pooling: str = "mean"
    # Frozen encoders run under no_grad and can be served from the frozen-embedding cache.
    frozen: bool = True

    def validate(self, prefix: str) -> None:
        check_choice(f"{prefix}.kind", self.kind, ENCODER_KINDS)
        check_choice(f"{prefix}.pooling", self.pooling, POOLINGS)
        if self.kind == "ijepa" and not self.path:
            raise ConfigError(f"{prefix}.path must name a local IJepaModel directory when kind=ijepa")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"{prefix}.embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.patch_size < 1 or self.depth < 1:
            raise ConfigError(f"{prefix}.patch_size and depth must be >= 1")


@dataclass
class EgoStatusMLPConfig:
    """NAVSIM's EgoStatusMLP (fact sheet §2.1): 8 → hidden ×3 (ReLU) → num_poses·3, L1 to the future poses."""

    hidden_dim: int = 512
    num_hidden_layers: int = 3
    # Inputs and outputs in fixed physical units, L1 in those units (planlab.models.scaling); False is
    # NAVSIM's raw-unit network and loss.
    normalize: bool = True
    ego: EgoFeatureConfig = field(default_factory=EgoFeatureConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def validate(self, prefix: str = "agent") -> None:
        if self.hidden_dim < 1 or self.num_hidden_layers < 1:
            raise ConfigError(f"{prefix}.hidden_dim and num_hidden_layers must be >= 1")
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")


@dataclass
class EncoderMLPConfig:
    """Frozen image encoder, pooled patch tokens (+ ego status) → MLP head → trajectory."""

    camera: CameraFeatureConfig = field(default_factory=CameraFeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ego: EgoFeatureConfig = field(default_factory=EgoFeatureConfig)
    use_ego_status: bool = True
    hidden_dim: int = 512
    num_hidden_layers: int = 2
    dropout: float = 0.0
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def validate(self, prefix: str = "agent") -> None:
        self.camera.validate(f"{prefix}.camera")
        self.encoder.validate(f"{prefix}.encoder")
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")
        if self.hidden_dim < 1 or self.num_hidden_layers < 1:
            raise ConfigError(f"{prefix}.hidden_dim and num_hidden_layers must be >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{prefix}.dropout must be in [0, 1)")


@dataclass
class EncoderTransformerConfig:
    """Frozen image encoder; a transformer decoder whose pose queries attend to the patch tokens and an
    ego-status token (TransFuser-style planning decoder over ViT patches)."""

    camera: CameraFeatureConfig = field(default_factory=CameraFeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ego: EgoFeatureConfig = field(default_factory=EgoFeatureConfig)
    d_model: int = 256
    num_layers: int = 3
    num_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.0
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def validate(self, prefix: str = "agent") -> None:
        self.camera.validate(f"{prefix}.camera")
        self.encoder.validate(f"{prefix}.encoder")
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"{prefix}.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.num_layers < 1:
            raise ConfigError(f"{prefix}.num_layers must be >= 1")


@dataclass
class VocabScorerConfig:
    """Hydra-MDP-style scorer (methods_facts §2): a k-means trajectory vocabulary, an imitation head
    (soft targets, temperature ``sigma``) and one BCE head per PDM sub-score; weighted-confidence
    inference picks the vocabulary entry with the best combined log-score."""

    # npy file (K, num_poses, 3) in the rear-axle frame; built by `planlab cache vocabulary` (k-means).
    vocabulary_path: str | None = None
    vocabulary_size: int = 256
    # Metric cache of the training splits (planlab eval cache): the per-candidate PDM sub-score targets are
    # scored against it once per token and kept in the feature cache (data.cache.path).
    metric_cache: str | None = None
    use_camera: bool = True
    camera: CameraFeatureConfig = field(default_factory=CameraFeatureConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    ego: EgoFeatureConfig = field(default_factory=EgoFeatureConfig)
    d_model: int = 256
    num_layers: int = 2
    num_heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.0
    # Imitation soft-target temperature over the summed squared pose error (methods_facts §2.3: σ = 0.5).
    sigma: float = 0.5
    sub_scores: list[str] = field(
        default_factory=lambda: [
            "no_at_fault_collisions",
            "drivable_area_compliance",
            "ego_progress",
            "time_to_collision_within_bound",
            "comfort",
        ]
    )
    # Loss weights (methods_facts §2.3: imitation 1, NC 3, DAC 3, TTC 4, EP 2 or 50 with regression).
    imitation_weight: float = 1.0
    sub_score_weights: dict[str, float] = field(
        default_factory=lambda: {
            "no_at_fault_collisions": 3.0,
            "drivable_area_compliance": 3.0,
            "ego_progress": 2.0,
            "time_to_collision_within_bound": 4.0,
            "comfort": 1.0,
            "driving_direction_compliance": 1.0,
        }
    )
    # EP regression variant (methods_facts §2.5): MSE(sigmoid, EP) with weight 50 instead of BCE.
    ep_regression: bool = False
    ep_regression_weight: float = 50.0
    # Weighted-confidence inference (methods_facts §2.4, paper eq. 11):
    # cost = -(w_im log S_im + w_nc log S_NC + w_dac log S_DAC + w_mix log(5 S_TTC + 2 S_C + 5 S_EP)).
    inference_weights: dict[str, float] = field(
        default_factory=lambda: {
            "imitation": 0.05,
            "no_at_fault_collisions": 0.5,
            "drivable_area_compliance": 0.5,
            "mix": 5.0,
        }
    )
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)

    def validate(self, prefix: str = "agent") -> None:
        if self.use_camera:
            self.camera.validate(f"{prefix}.camera")
            self.encoder.validate(f"{prefix}.encoder")
        self.ego.validate(f"{prefix}.ego")
        self.trajectory.validate(f"{prefix}.trajectory")
        if self.vocabulary_size < 2:
            raise ConfigError(f"{prefix}.vocabulary_size must be >= 2")
        if self.sigma <= 0:
            raise ConfigError(f"{prefix}.sigma must be > 0")
        if self.d_model % self.num_heads:
            raise ConfigError(
                f"{prefix}.d_model ({self.d_model}) must be divisible by num_heads ({self.num_heads})"
            )
        if not self.sub_scores:
            raise ConfigError(f"{prefix}.sub_scores must name at least one sub-score")
        for s in self.sub_scores:
            check_choice(f"{prefix}.sub_scores", s, SUB_SCORES)
            if s not in self.sub_score_weights:
                raise ConfigError(f"{prefix}.sub_score_weights has no weight for {s!r}")
        for k in self.inference_weights:
            check_choice(f"{prefix}.inference_weights", k, ("imitation", "mix", *SUB_SCORES))
            if k not in ("imitation", "mix") and k not in self.sub_scores:
                raise ConfigError(
                    f"{prefix}.inference_weights.{k} weighs a sub-score that has no head ({prefix}.sub_scores)"
                )
        if self.inference_weights.get("mix"):
            need = [
                s
                for s in ("time_to_collision_within_bound", "comfort", "ego_progress")
                if s not in self.sub_scores
            ]
            if need:
                raise ConfigError(
                    f"{prefix}.inference_weights.mix needs sub-score heads for {', '.join(need)}"
                )


#: agent registry name -> settings schema (learned agents only).
AGENT_CONFIG_SCHEMAS: dict[str, type] = {
    "ego_status_mlp": EgoStatusMLPConfig,
    "encoder_mlp": EncoderMLPConfig,
    "encoder_transformer": EncoderTransformerConfig,
    "vocab_scorer": VocabScorerConfig,
}

# Temporal-fusion agents (room temporal): schemas in planlab.agents.temporal_config, reusing the classes above.
from planlab.agents.temporal_config import TEMPORAL_AGENT_CONFIG_SCHEMAS  # noqa: E402

AGENT_CONFIG_SCHEMAS.update(TEMPORAL_AGENT_CONFIG_SCHEMAS)
