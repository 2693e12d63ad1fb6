"""Image encoders for planning agents: the plain-torch ViT or transformers' ``IJepaModel`` (local directory).

:class:`ImageEncoder` exposes patch tokens ``[B, N, D]`` and a mean-pooled vector (I-JEPA has no CLS token and
no trained pooler; its intended global feature is the mean over patch tokens — methods_facts §1.7, lesson
C2). It handles freezing: a frozen encoder runs in eval mode under ``no_grad``; for selective fine-tuning the
last ``k`` blocks run with gradients while the rest stays frozen. ``fingerprint()`` identifies architecture
+ weights, keying the frozen-embedding cache and checkpoint references.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from planlab.errors import CheckpointError, ConfigError


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _weights_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.safetensors"))
    if not files:
        files = sorted(directory.glob("*.bin"))
    return files


class ImageEncoder(nn.Module):
    """Backbone + freezing policy. ``kind`` is ``"vit"`` or ``"ijepa"``."""

    def __init__(self, kind: str, backbone: nn.Module, source: str | None, frozen: bool = True) -> None:
        super().__init__()
        self.kind = kind
        self.backbone = backbone
        self.source = source
        self.frozen = frozen
        self._trainable_blocks = 0
        self._fingerprint: str | None = None
        self._apply_freeze()

    # ------------------------------------------------------------------ structure
    @property
    def embed_dim(self) -> int:
        if self.kind == "vit":
            return self.backbone.embed_dim
        return int(self.backbone.config.hidden_size)

    @property
    def patch_size(self) -> int:
        if self.kind == "vit":
            return self.backbone.patch_size
        return int(self.backbone.config.patch_size)

    def blocks(self) -> list[nn.Module]:
        """The transformer blocks, input to output."""
        if self.kind == "vit":
            return list(self.backbone.blocks)
        layers = getattr(self.backbone, "layers", None)
        if layers is None:  # older transformers: model.encoder.layer
            layers = self.backbone.encoder.layer
        return list(layers)

    def _final_norm(self) -> nn.Module:
        return self.backbone.norm if self.kind == "vit" else self.backbone.layernorm

    # ------------------------------------------------------------------ freezing
    def _apply_freeze(self) -> None:
        if not self.frozen:
            self.backbone.requires_grad_(True)
            return
        self.backbone.requires_grad_(False)
        blocks = self.blocks()
        k = self._trainable_blocks
        if k > 0:
            for b in blocks[len(blocks) - k :]:
                b.requires_grad_(True)
            self._final_norm().requires_grad_(True)

    def set_trainable_blocks(self, k: int) -> None:
        """Selective fine-tuning: train the last ``k`` blocks (and the final norm); 0 = fully frozen."""
        n = len(self.blocks())
        if not 0 <= k <= n:
            raise ConfigError(f"optim.finetune.unfreeze_last_k={k} but the encoder has {n} blocks")
        self._trainable_blocks = int(k)
        self._apply_freeze()

    @property
    def fully_frozen(self) -> bool:
        return self.frozen and self._trainable_blocks == 0

    def train(self, mode: bool = True) -> ImageEncoder:
        # A frozen encoder stays in eval mode (no dropout) even while the head trains.
        super().train(mode)
        if self.fully_frozen:
            self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters that may ever train: all if not frozen, else the blocks/norm fine-tuning can unfreeze."""
        if not self.frozen:
            return list(self.backbone.parameters())
        params = [p for b in self.blocks() for p in b.parameters()]
        return params + list(self._final_norm().parameters())

    # ------------------------------------------------------------------ forward
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        if self.kind == "vit":
            return self.backbone.embed(images)
        # Non-native (4:1) inputs: interpolate the position embeddings, never squash the image (lesson C4).
        return self.backbone.embeddings(images, interpolate_pos_encoding=True)

    def _run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "vit":
            return block(x)
        out = block(x, None)
        return out[0] if isinstance(out, tuple) else out

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``[B, N, D]`` (row-major over the patch grid)."""
        blocks = self.blocks()
        n_frozen = len(blocks) - self._trainable_blocks if self.frozen else 0
        grad = torch.is_grad_enabled()
        # The frozen prefix (patch embedding + first blocks) never builds a graph.
        with torch.set_grad_enabled(grad and n_frozen == 0):
            x = self._embed(images)
            for b in blocks[:n_frozen]:
                x = self._run_block(b, x)
        with torch.set_grad_enabled(grad and not self.fully_frozen):
            for b in blocks[n_frozen:]:
                x = self._run_block(b, x)
            return self._final_norm()(x)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean-pooled ``[B, D]``, patch tokens ``[B, N, D]``): what the embedding cache stores."""
        tokens = self.tokens(images)
        return tokens.mean(dim=1), tokens

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tokens(images)

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """sha256 (16 hex) of architecture + weights: the source files when loaded from a directory, else the
        current parameter values."""
        if self._fingerprint is not None and self.fully_frozen:
            return self._fingerprint
        h = hashlib.sha256(self.kind.encode())
        cfg = self.backbone.config
        cfg_dict = cfg.to_dict() if hasattr(cfg, "to_dict") else getattr(cfg, "__dict__", {})
        h.update(json.dumps(cfg_dict, sort_keys=True, default=str).encode())
        if self.source and self.fully_frozen:
            for f in _weights_files(Path(self.source)):
                h.update(_sha256_file(f).encode())
        else:
            for k, v in sorted(self.backbone.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        fp = h.hexdigest()[:16]
        if self.fully_frozen:
            self._fingerprint = fp
        return fp

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "embed_dim": self.embed_dim,
            "patch_size": self.patch_size,
            "blocks": len(self.blocks()),
            "fingerprint": self.fingerprint(),
        }


@dataclass
class EmbeddingSpec:
    """What the frozen-embedding cache needs from an agent: its camera builder, its (fully frozen) encoder,
    and whether the head needs the patch grid or only the mean-pooled vector."""

    camera_builder: Any  # planlab.features.camera.CameraFeatureBuilder
    encoder: ImageEncoder
    patches: bool
    feature_key: str = "camera"


def load_ijepa_backbone(path: str | os.PathLike) -> nn.Module:
    """transformers' IJepaModel from a local directory (no hub access; ``local_files_only=True``)."""
    p = Path(path)
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p}: not a transformers model directory (no config.json)")
    from transformers import IJepaModel

    try:
        model = IJepaModel.from_pretrained(str(p), local_files_only=True, add_pooling_layer=False)
    except Exception as exc:  # noqa: BLE001 - transformers raises many types; report one line
        raise CheckpointError(f"{p}: cannot load IJepaModel ({str(exc).splitlines()[0][:160]})") from None
    return model


def build_encoder(cfg: Any, grid: tuple[int, int]) -> ImageEncoder:
    """An :class:`ImageEncoder` from :class:`planlab.agents.learned_config.EncoderConfig`.

    ``grid``: the patch grid of the camera images it will see (native grid of a randomly initialised ViT).
    """
    if cfg.kind == "vit":
        from planlab.models.vit import ViT, ViTConfig, load_vit

        if cfg.path:
            return ImageEncoder("vit", load_vit(cfg.path), str(cfg.path), cfg.frozen)
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.init_seed)  # the random encoder is a function of its settings only
        try:
            vit = ViT(
                ViTConfig(
                    cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio, grid[0], grid[1]
                )
            )
        finally:
            torch.random.set_rng_state(gen_state)
        return ImageEncoder("vit", vit, None, cfg.frozen)
    if cfg.kind == "ijepa":
        return ImageEncoder("ijepa", load_ijepa_backbone(cfg.path), str(cfg.path), cfg.frozen)
    raise ConfigError(f"unknown encoder kind {cfg.kind!r}")
