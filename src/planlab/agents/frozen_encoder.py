"""Shared machinery of agents built on an image encoder (frozen by default, optionally partly fine-tuned).

The encoder is a sub-module from construction on (lesson C7: never attached lazily after DDP wraps the
model). ``forward`` accepts either the ``camera`` image (the encoder runs) or what the frozen-embedding cache
stores — ``camera_pooled`` [B, D] and/or ``camera_patches`` [B, N, D] — so training can skip the encoder
while ``compute_trajectory`` runs it on the image; both paths give the same numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from planlab.agents.torch_agent import TorchAgent
from planlab.errors import ConfigError, ContractError
from planlab.features.camera import CameraFeatureBuilder
from planlab.features.ego import EgoStatusFeatureBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.models.encoders import EmbeddingSpec, ImageEncoder, build_encoder
from planlab.models.pooling import build_pool
from planlab.scene import SensorConfig


class FrozenEncoderAgent(TorchAgent):
    """Base of encoder agents: camera builder, :class:`ImageEncoder`, pooling, parameter groups, caching hooks."""

    #: whether the head needs the patch grid (transformer heads, attention pooling) or only a pooled vector
    needs_patches: bool = False

    def uses_camera(self) -> bool:
        """Agents whose camera input is optional (the vocabulary scorer) override this."""
        return True

    def __init__(self, config: Any = None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg = self.config
        self._finetune_planned = False
        self.camera_builder: CameraFeatureBuilder | None = None
        self.encoder: ImageEncoder | None = None
        self.pool: nn.Module | None = None
        if not self.uses_camera():
            return
        cam, enc = cfg.camera, cfg.encoder
        self.camera_builder = CameraFeatureBuilder.from_config(cam, cam.history_index)
        self.encoder = self._build_encoder(cam, enc)
        # Heads over the patch grid pool nothing; a learned pool there would be an unused (DDP-breaking) module.
        self.pool = build_pool("mean" if self.needs_patches else enc.pooling, self.encoder.embed_dim)

    def _build_encoder(self, cam: Any, enc: Any) -> ImageEncoder:
        p = enc.patch_size
        if enc.kind == "vit" and not enc.path:
            for key, v in (("image_height", cam.image_height), ("image_width", cam.image_width)):
                if v % p:
                    raise ConfigError(
                        f"agent.camera.{key}={v} is not a multiple of agent.encoder.patch_size={p}"
                    )
        encoder = build_encoder(enc, (cam.image_height // p, cam.image_width // p))
        q = encoder.patch_size
        if cam.image_height % q or cam.image_width % q:
            raise ConfigError(
                f"agent.camera image {cam.image_height}x{cam.image_width} is not a multiple of the encoder's patch "
                f"size {q}"
            )
        return encoder

    # ------------------------------------------------------------------ builders and sensors
    def ego_builder(self) -> EgoStatusFeatureBuilder:
        return EgoStatusFeatureBuilder(self.config.ego.history_poses)

    def get_feature_builders(self) -> list:
        if self.camera_builder is None:
            return [self.ego_builder()]
        return [self.camera_builder, self.ego_builder()]

    def get_target_builders(self) -> list:
        t = self.config.trajectory
        return [TrajectoryTargetBuilder(t.num_poses, t.interval_length)]

    def get_sensor_config(self) -> SensorConfig:
        if self.camera_builder is None:
            return SensorConfig.build_no_sensors()
        return self.camera_builder.sensor_config()

    # ------------------------------------------------------------------ image features
    def ego_vector(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        x = features["ego_status"]
        if self.config.ego.history_poses:
            x = torch.cat([x, features["ego_history"].flatten(1)], dim=1)
        return x

    @property
    def ego_dim(self) -> int:
        return 8 + 3 * self.config.ego.history_poses

    def image_tokens(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """Patch tokens from the image (encoder runs) or from the embedding cache."""
        if self.encoder is None:
            raise ContractError(f"agent {self.name()!r} has no camera input")
        if "camera" in features:
            return self.encoder.tokens(features["camera"])
        if "camera_patches" in features:
            return features["camera_patches"]
        raise ContractError(f"agent {self.name()!r} needs 'camera' or cached 'camera_patches' features")

    def image_vector(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled image feature (mean or attention over patches; no CLS token exists)."""
        if "camera" not in features and "camera_pooled" in features and self.config.encoder.pooling == "mean":
            return features["camera_pooled"]
        return self.pool(self.image_tokens(features))

    # ------------------------------------------------------------------ optimisation
    def head_parameters(self) -> list[nn.Parameter]:
        if self.encoder is None:
            return list(self.parameters())
        enc = {id(p) for p in self.encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in enc]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {"head": self.head_parameters()}
        if self.encoder is not None and (not self.encoder.frozen or self._finetune_planned):
            groups["encoder"] = self.encoder.trainable_parameters()
        return groups

    def get_optimizers(self, optim: Any, total_steps: int) -> dict[str, Any]:
        ft = getattr(optim, "finetune", None)
        self._finetune_planned = bool(ft is not None and ft.unfreeze_at_epoch is not None)
        if self._finetune_planned and self.encoder is None:
            raise ConfigError(f"optim.finetune is set but agent {self.name()!r} has no image encoder")
        if self._finetune_planned and not self.encoder.frozen:
            raise ConfigError("optim.finetune needs agent.encoder.frozen=true (stage 1 trains the head only)")
        return super().get_optimizers(optim, total_steps)

    def set_trainable_encoder_blocks(self, k: int) -> None:
        if self.encoder is None:
            raise ConfigError(f"agent {self.name()!r} has no image encoder to fine-tune")
        self.encoder.set_trainable_blocks(k)

    # ------------------------------------------------------------------ checkpoints and caches
    def external_state(self) -> dict[str, dict[str, Any]]:
        """A fully frozen encoder loaded from a directory is stored by reference (path + fingerprint)."""
        if self.encoder is not None and self.encoder.source and self.encoder.fully_frozen:
            return {
                "encoder.": {
                    "path": self.encoder.source,
                    "kind": self.encoder.kind,
                    "fingerprint": self.encoder.fingerprint(),
                }
            }
        return {}

    def embedding_spec(self) -> Any:
        """What the frozen-embedding cache needs (None while any encoder block trains)."""
        if self.encoder is None or not self.encoder.fully_frozen:
            return None
        needs = self.needs_patches or self.config.encoder.pooling != "mean"
        return EmbeddingSpec(self.camera_builder, self.encoder, patches=needs)
