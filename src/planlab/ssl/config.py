"""The I-JEPA pre-training config schema (torch-free, so ``planlab ssl pretrain --dry-run`` is instant).

``build_pretrain_config(files, overrides)`` layers the dataclass defaults, the given YAML files
(e.g. ``planlab/configs/ssl/ijepa_small.yaml``) and ``key=value`` overrides; an unknown key or a wrong type is
a :class:`~planlab.errors.ConfigError` naming it. Defaults follow methods_facts §1 scaled to a ViT-Tiny on
CPU-sized driving images (§1.6: 4 targets of 15–20 %, context 85–100 %, EMA 0.996 → 1, warm-up ≈ 10 %,
cosine LR, weight decay 0.04 → 0.4).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.agents.learned_config import CameraFeatureConfig
from planlab.config import build_config, check_choice
from planlab.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "ssl"


def _range(key: str, values: Sequence[float], lo: float = 0.0, hi: float | None = None) -> None:
    if len(values) != 2 or not (lo < values[0] <= values[1]) or (hi is not None and values[1] > hi):
        bound = f" and <= {hi}" if hi is not None else ""
        raise ConfigError(f"{key} must be [low, high] with {lo} < low <= high{bound}, got {list(values)}")


@dataclass
class PretrainData:
    """Unlabelled frames: every frame of the split's logs (labelled or not), front cameras."""

    root: str | None = None  # dataset root; None: $OPENSCENE_DATA_ROOT
    # More unlabelled frames: the same ``split`` of further dataset roots (another world seed, more real logs),
    # appended to ``root``'s. The probes still use ``root`` only, so encoders stay comparable.
    extra_roots: list[str] = field(default_factory=list)
    maps_root: str | None = None
    split: str = "train"  # a navsim_logs/<split> directory or a part of the by-log split file
    splits_file: str | None = None
    frame_stride: int = 1  # 1: every frame of every log (2 Hz); 2: every other frame
    max_frames: int | None = None  # cap (smoke runs)
    # Frame images are decoded once into a float16 memory map here (None: <run_dir>/frames).
    cache_dir: str | None = None
    decode_threads: int = 4

    def validate(self) -> None:
        if self.frame_stride < 1:
            raise ConfigError("data.frame_stride must be >= 1")
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError("data.max_frames must be >= 2")
        if self.decode_threads < 1:
            raise ConfigError("data.decode_threads must be >= 1")
        if not isinstance(self.extra_roots, list) or not all(
            isinstance(r, str) and r for r in self.extra_roots
        ):
            raise ConfigError(f"data.extra_roots must be a list of dataset roots, got {self.extra_roots!r}")
        if len(set(self.extra_roots)) != len(self.extra_roots) or (
            self.root and self.root in self.extra_roots
        ):
            raise ConfigError(
                "data.extra_roots must not repeat a root (nor data.root): frames would count twice"
            )


@dataclass
class AugmentConfig:
    """Aspect-preserving random resized crop (I-JEPA's only augmentation, methods_facts §1.5): a window of
    ``crop_scale`` × the image area with the image's aspect ratio, resized back. [1, 1] switches it off."""

    crop_scale: list[float] = field(default_factory=lambda: [0.3, 1.0])

    def validate(self) -> None:
        _range("augment.crop_scale", self.crop_scale, 0.0, 1.0)


@dataclass
class EncoderSettings:
    """The ViT to pre-train (a ViT-Tiny by default: 192-d, 3 heads)."""

    patch_size: int = 16
    embed_dim: int = 192
    depth: int = 6
    num_heads: int = 3
    mlp_ratio: float = 4.0
    init_seed: int | None = None  # None: trainer.seed

    def validate(self) -> None:
        if self.patch_size < 1 or self.depth < 1:
            raise ConfigError("encoder.patch_size and encoder.depth must be >= 1")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"encoder.embed_dim ({self.embed_dim}) must be divisible by encoder.num_heads")
        if self.embed_dim % 4:
            raise ConfigError("encoder.embed_dim must be divisible by 4 (2-D sin-cos position embeddings)")


@dataclass
class PredictorSettings:
    """The narrow predictor (methods_facts §1.6: width ≤ the encoder's, depth 4–6)."""

    embed_dim: int = 96
    depth: int = 4
    num_heads: int = 3
    mlp_ratio: float = 4.0

    def validate(self) -> None:
        if self.embed_dim % self.num_heads or self.embed_dim % 4:
            raise ConfigError("predictor.embed_dim must be divisible by predictor.num_heads and by 4")
        if self.depth < 1:
            raise ConfigError("predictor.depth must be >= 1")


@dataclass
class MaskSettings:
    """Multi-block masks (methods_facts §1.2); ``context_aspect`` is relative to the image's aspect."""

    num_targets: int = 4
    target_scale: list[float] = field(default_factory=lambda: [0.15, 0.2])
    target_aspect: list[float] = field(default_factory=lambda: [0.75, 1.5])
    context_scale: list[float] = field(default_factory=lambda: [0.85, 1.0])
    context_aspect: list[float] = field(default_factory=lambda: [1.0, 1.0])
    min_keep: int = 10

    def validate(self) -> None:
        if self.num_targets < 1 or self.min_keep < 1:
            raise ConfigError("masks.num_targets and masks.min_keep must be >= 1")
        _range("masks.target_scale", self.target_scale, 0.0, 1.0)
        _range("masks.context_scale", self.context_scale, 0.0, 1.0)
        _range("masks.target_aspect", self.target_aspect)
        _range("masks.context_aspect", self.context_aspect)


@dataclass
class PretrainOptim:
    """AdamW (no decay on biases/norms), warm-up + cosine LR, cosine weight decay, linear EMA momentum."""

    lr: float = 1.0e-3
    start_lr: float = 2.0e-4
    final_lr: float = 1.0e-6
    warmup_fraction: float = 0.1  # of all optimiser steps
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    ema: list[float] = field(default_factory=lambda: [0.996, 1.0])
    grad_clip: float = 0.0  # max gradient norm; 0 = off

    def validate(self) -> None:
        if self.lr <= 0 or self.start_lr < 0 or self.final_lr < 0:
            raise ConfigError("optim.lr must be > 0 and optim.start_lr/final_lr >= 0")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError("optim.warmup_fraction must be in [0, 1)")
        if self.weight_decay < 0 or self.final_weight_decay < 0 or self.grad_clip < 0:
            raise ConfigError("optim weight decays and grad_clip must be >= 0")
        if len(self.betas) != 2:
            raise ConfigError("optim.betas needs two values")
        if len(self.ema) != 2 or not 0 <= self.ema[0] <= self.ema[1] <= 1:
            raise ConfigError(f"optim.ema must be [start, end] with 0 <= start <= end <= 1, got {self.ema}")


@dataclass
class RegularizerSettings:
    """Optional variance-covariance regularisation of the context encoder (VICReg's two anti-collapse terms),
    **not** part of the I-JEPA recipe and off by default (weights 0).

    Applied to the mean-pooled context tokens of each image (``z``, ``[B, D]``): ``variance`` weights the
    hinge ``mean_d relu(target_std − std_b(z_d))``; ``covariance`` weights the sum of squared off-diagonal
    covariances divided by D. A remedy to try when the pooled features lose rank during pre-training
    (RankMe falling), at the cost of leaving the published recipe.
    """

    variance: float = 0.0
    covariance: float = 0.0
    target_std: float = 1.0

    def validate(self) -> None:
        if self.variance < 0 or self.covariance < 0 or self.target_std <= 0:
            raise ConfigError("reg.variance and reg.covariance must be >= 0 and reg.target_std > 0")

    @property
    def enabled(self) -> bool:
        return self.variance > 0 or self.covariance > 0


@dataclass
class PretrainTrainer:
    epochs: int = 30
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto: bf16 autocast on a GPU that has it, else fp32 | 32 | bf16
    threads: int | None = None  # torch CPU threads (None: torch's default)
    checkpoint_every_n_steps: int = 200  # also at every epoch end and on SIGUSR1/SIGTERM
    log_every_n_steps: int = 10
    progress_bar: bool = True

    def validate(self) -> None:
        check_choice("trainer.device", self.device, ("auto", "cpu", "cuda"))
        check_choice("trainer.precision", self.precision, ("auto", "32", "bf16"))
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("trainer.epochs must be >= 1 and trainer.batch_size >= 2")
        if self.checkpoint_every_n_steps < 0 or self.log_every_n_steps < 1:
            raise ConfigError("trainer.checkpoint_every_n_steps must be >= 0 and log_every_n_steps >= 1")


@dataclass
class ProbeSettings:
    """Periodic linear probes of frozen, mean-pooled target-encoder features against a random-init encoder.

    Tasks (labels from the logs, never used for pre-training): ego speed (ridge regression, R²), driving
    command (logistic regression, balanced accuracy) and lead vehicle — a vehicle box whose centre lies
    ``lead_range`` metres ahead within ``lead_half_width`` metres of the ego axis (balanced accuracy).
    ``fit_on: pretrain`` (the usual linear evaluation): the probes are fitted on up to ``max_train_frames``
    pre-training frames and scored on the ``split`` frames (held-out logs); ``fit_on: split``: the ``split``
    frames are divided by log (``test_fraction`` of the logs scored). Penalties are chosen among
    ``ridge_alphas`` / ``logistic_cs`` by cross-validation over probe-train logs. Probe settings are monitoring
    only: a run may be resumed with different ones.
    """

    enabled: bool = True
    split: str = "val"
    fit_on: str = "pretrain"
    every_n_epochs: int = 5
    max_frames: int = 1500
    max_train_frames: int = 3000
    frame_stride: int = 1
    test_fraction: float = 0.3
    lead_range: list[float] = field(default_factory=lambda: [2.0, 30.0])
    lead_half_width: float = 2.0
    ridge_alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])
    logistic_cs: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0])

    def validate(self) -> None:
        check_choice("probe.fit_on", self.fit_on, ("pretrain", "split"))
        if self.every_n_epochs < 1 or self.max_frames < 10 or self.max_train_frames < 10:
            raise ConfigError(
                "probe.every_n_epochs must be >= 1, probe.max_frames and probe.max_train_frames >= 10"
            )
        if not 0 < self.test_fraction < 1:
            raise ConfigError("probe.test_fraction must be in (0, 1)")
        _range("probe.lead_range", self.lead_range, -1e9)
        if self.lead_half_width <= 0:
            raise ConfigError("probe.lead_half_width must be > 0")
        if not self.ridge_alphas or not self.logistic_cs or min(self.ridge_alphas + self.logistic_cs) <= 0:
            raise ConfigError("probe.ridge_alphas and probe.logistic_cs need values > 0")


@dataclass
class PretrainLogging:
    csv: bool = True  # <run_dir>/metrics.csv
    tensorboard: bool = False  # <run_dir>/tb/


@dataclass
class PretrainConfig:
    """A complete I-JEPA pre-training configuration (written resolved to ``<run_dir>/config.yaml``)."""

    data: PretrainData = field(default_factory=PretrainData)
    camera: CameraFeatureConfig = field(
        default_factory=lambda: CameraFeatureConfig(image_height=64, image_width=256, history_index=0)
    )
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    predictor: PredictorSettings = field(default_factory=PredictorSettings)
    masks: MaskSettings = field(default_factory=MaskSettings)
    optim: PretrainOptim = field(default_factory=PretrainOptim)
    reg: RegularizerSettings = field(default_factory=RegularizerSettings)
    trainer: PretrainTrainer = field(default_factory=PretrainTrainer)
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    logging: PretrainLogging = field(default_factory=PretrainLogging)

    def validate(self) -> None:
        self.data.validate()
        self.camera.validate("camera")
        if self.camera.history_index != 0:
            raise ConfigError("camera.history_index must be 0: pre-training reads single frames")
        p = self.encoder.patch_size
        for key in ("image_height", "image_width"):
            v = getattr(self.camera, key)
            if v % p:
                raise ConfigError(f"camera.{key}={v} is not a multiple of encoder.patch_size={p}")
        self.augment.validate()
        self.encoder.validate()
        self.predictor.validate()
        self.masks.validate()
        self.optim.validate()
        self.reg.validate()
        self.trainer.validate()
        self.probe.validate()
        grid = (self.camera.image_height // p) * (self.camera.image_width // p)
        if self.masks.min_keep > grid:
            raise ConfigError(f"masks.min_keep={self.masks.min_keep} exceeds the {grid} patches of the image")

    @property
    def grid(self) -> tuple[int, int]:
        p = self.encoder.patch_size
        return self.camera.image_height // p, self.camera.image_width // p


def build_pretrain_config(
    config_files: Sequence[str | os.PathLike] = (),
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> PretrainConfig:
    """defaults < ``config_files`` (in order) < ``overrides``; validated."""
    return build_config(PretrainConfig, *config_files, overrides=overrides)


def load_pretrain_config(path: str | os.PathLike) -> PretrainConfig:
    """A resolved ``config.yaml`` of a pre-training run dir, validated again."""
    return build_pretrain_config([path])


def packaged_configs() -> list[Path]:
    return sorted(CONFIGS_DIR.glob("*.yaml"))
