"""The label-efficiency study config (torch-free): data, encoder pre-training, fractions, seeds, arms.

An arm is an experiment template plus training-config overrides plus what fills its image encoder: the
study's pre-trained I-JEPA encoder (``ssl``), a randomly initialised ViT of the same architecture
(``random``) or none (ego status only). Every run is one experiment (planlab.experiments) per
(arm, label fraction, seed): seed ``s`` sets both the training seed and the subset seed, so the runs of a seed
train on nested subsets (1 % ⊂ 5 % ⊂ … ⊂ 100 %) and different seeds draw different subsets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.config import build_config, check_choice
from planlab.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs" / "study"
ENCODER_SOURCES = ("ssl", "random", "none")
EVAL_MODES = ("auto", "agent", "cached")


@dataclass
class StudyData:
    root: str | None = None  # dataset root; None: $OPENSCENE_DATA_ROOT
    maps_root: str | None = None
    train_split: str = "train"
    val_split: str | None = "val"  # model selection (best checkpoint by val loss); None: last checkpoint
    splits_file: str | None = None


@dataclass
class StudyPretrain:
    """The SSL encoder: an existing ``planlab-vit/1`` directory, or pre-trained here from ``config``."""

    encoder: str | None = None
    config: str = "ijepa_small"  # a packaged planlab/configs/ssl/<name>.yaml or a YAML path
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted pre-training overrides


@dataclass
class StudySchedule:
    """Run length per fraction: ``epochs`` at least, more on small subsets so that every run makes at least
    ``min_steps`` optimiser steps; about ``val_checks`` validations per run (model selection)."""

    epochs: int = 20
    min_steps: int = 300
    val_checks: int = 20
    # A cap on optimiser steps per run (None: none), for arms that run the encoder on images under a compute
    # budget. For a selective fine-tuning arm it caps the steps *after* unfreezing: the frozen stage keeps
    # its whole epochs, so every run of the arm is two-stage whatever its fraction.
    max_steps: int | None = None

    def validate(self) -> None:
        if self.epochs < 1 or self.min_steps < 0 or self.val_checks < 1:
            raise ConfigError("schedule.epochs and schedule.val_checks must be >= 1, schedule.min_steps >= 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"schedule.max_steps must be >= 1 or null, got {self.max_steps}")


@dataclass
class ArmConfig:
    name: str = ""
    label: str = ""  # legend text; default: the name
    template: str = "ego_mlp"  # experiment template the arm's runs are made from
    encoder: str = "none"  # ssl | random | none
    # Train the head on the frozen-embedding cache (frozen encoders only); else images go through the encoder.
    embeddings: bool = False
    # Selective fine-tuning: unfreeze the last k blocks (optim.finetune.unfreeze_last_k in the overrides) after
    # this fraction of each run's epochs (runs of small subsets have more epochs).
    finetune_at: float | None = None
    # The arm's own run length (e.g. fewer steps for arms that run the encoder on images); None: the study's.
    schedule: StudySchedule | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted training-config overrides

    def validate(self, prefix: str) -> None:
        from planlab.experiments.ids import check_id

        check_id(self.name, f"{prefix}.name")
        check_choice(f"{prefix}.encoder", self.encoder, ENCODER_SOURCES)
        if self.embeddings and self.encoder == "none":
            raise ConfigError(f"{prefix}.embeddings needs an image encoder (encoder: ssl or random)")
        if self.finetune_at is not None and (not 0 < self.finetune_at < 1 or self.embeddings):
            raise ConfigError(f"{prefix}.finetune_at must be in (0, 1) and needs embeddings: false (images)")
        if self.schedule is not None:
            self.schedule.validate()


@dataclass
class StudyEval:
    """Scoring of every run's checkpoint on one split with one evaluator (planlab.evaluation)."""

    split: str = "test"
    metric: str = "pdms"
    checkpoint: str = "best"  # best (by val loss; needs data.val_split) | last
    frame_interval: int | None = 1  # a scene every frame (navtest style)
    max_scenes: int | None = None
    workers: int | None = 1  # scoring processes
    # auto: runs whose encoder is fully frozen are scored from the embedding cache (checked against the
    # image path on `parity_scenes` scenes first); every other run through the agent on images.
    mode: str = "auto"
    parity_scenes: int = 4

    def validate(self) -> None:
        check_choice("eval.metric", self.metric, ("pdms", "epdms"))
        check_choice("eval.checkpoint", self.checkpoint, ("best", "last"))
        check_choice("eval.mode", self.mode, EVAL_MODES)
        if self.parity_scenes < 1:
            raise ConfigError("eval.parity_scenes must be >= 1")


@dataclass
class StudyResults:
    dir: str = "results"  # results/<name>.{md,csv,png}
    name: str = "label_efficiency"
    reach: float = 0.9  # "labels needed to reach 90 % of the arm's full-data PDMS"
    confidence: float = 0.95
    resamples: int = 10000
    # Paired comparisons [A, B] at every fraction: the difference A − B over the same seeds (same subsets)
    # and the same test scenes, with a hierarchical bootstrap CI and p-value.
    compare: list[list[str]] = field(default_factory=list)
    # Free-text lines for the report's "Scale and budget" section (why this run length, what was measured).
    notes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not 0 < self.reach <= 1 or not 0 < self.confidence < 1 or self.resamples < 100:
            raise ConfigError(
                "results.reach in (0, 1], results.confidence in (0, 1), results.resamples >= 100"
            )
        for pair in self.compare:
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ConfigError(f"results.compare entries are two different arm names, got {pair}")


@dataclass
class StudyConfig:
    name: str = "le"  # prefix of every experiment id of the study
    out_dir: str = "studies/label_efficiency"  # experiments root, caches, the pre-training run
    cluster: str = "local"  # cluster profile of the experiments (planlab exp clusters)
    data: StudyData = field(default_factory=StudyData)
    pretrain: StudyPretrain = field(default_factory=StudyPretrain)
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.05, 0.1, 0.25, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    train: dict[str, Any] = field(default_factory=dict)  # dotted overrides shared by every arm
    schedule: StudySchedule = field(default_factory=StudySchedule)
    arms: list[ArmConfig] = field(default_factory=list)
    eval: StudyEval = field(default_factory=StudyEval)
    results: StudyResults = field(default_factory=StudyResults)

    def validate(self) -> None:
        from planlab.experiments.ids import check_id

        check_id(self.name, "name")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise ConfigError(f"fractions must be in (0, 1], got {self.fractions}")
        if sorted(set(self.fractions)) != list(self.fractions):
            raise ConfigError("fractions must be increasing and distinct")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if not self.arms:
            raise ConfigError("arms: the study needs at least one arm")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ConfigError(f"arms: duplicate arm names in {names}")
        for i, arm in enumerate(self.arms):
            arm.validate(f"arms[{i}]")
        from planlab.experiments.spec import flatten

        owned = ("trainer.seed", "trainer.max_epochs", "trainer.max_steps", "trainer.check_val_every_n_epoch",
                 "data.label_fraction", "data.subset_seed")  # fmt: skip
        for source, layer in [("train", self.train)] + [
            (f"arms[{i}].overrides", a.overrides) for i, a in enumerate(self.arms)
        ]:
            for key in flatten(layer):
                if key.split(".")[0] in ("eval", "resources") or key in owned:
                    raise ConfigError(
                        f"{source}: {key} is set by the study (eval.*, schedule.*, fractions, seeds)"
                    )
        self.schedule.validate()
        if self.eval.checkpoint == "best" and not self.data.val_split:
            raise ConfigError("eval.checkpoint=best needs data.val_split (or use eval.checkpoint=last)")
        self.eval.validate()
        self.results.validate()
        for pair in self.results.compare:
            for name in pair:
                self.arm(name)

    def arm(self, name: str) -> ArmConfig:
        for a in self.arms:
            if a.name == name:
                return a
        raise ConfigError(f"unknown arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")


def packaged_study(name: str) -> Path:
    return CONFIGS_DIR / f"{name}.yaml"


def build_study_config(
    config_files: Sequence[str | os.PathLike] = (),
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
) -> StudyConfig:
    """defaults < ``config_files`` < ``overrides`` (a file may be a packaged study name)."""
    files = []
    for f in config_files:
        p = Path(f)
        if p.suffix not in (".yaml", ".yml") and packaged_study(str(f)).is_file():
            p = packaged_study(str(f))
        files.append(p)
    return build_config(StudyConfig, *files, overrides=overrides)


def packaged_configs() -> list[Path]:
    return sorted(CONFIGS_DIR.glob("*.yaml"))
