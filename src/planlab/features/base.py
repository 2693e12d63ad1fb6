"""The feature/target builder protocol and its contract check (DESIGN.md, Contracts: Features).

A feature builder maps an :class:`~planlab.scene.AgentInput` (history only) to ``Dict[str, torch.Tensor]``;
a target builder maps a :class:`~planlab.scene.Scene` to the same. Tensors carry **no batch dimension**.
Each builder declares a :class:`TensorSpec` per key (shape with symbolic dims, dtype, value range) and has a
unique name plus a hash of its settings, which keys the on-disk caches. :func:`check_contract` enforces the
declaration — a list where a tensor belongs, a wrong dtype or shape, a NaN, a value outside the declared
range — with a :class:`~planlab.errors.ContractError` naming builder, key and what it got, before training or
evaluation starts (lessons V1–V3: list-valued features that crashed evaluation after training).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from planlab.errors import ContractError
from planlab.scene import AgentInput, Scene

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "int64": torch.int64,
    "int32": torch.int32,
    "uint8": torch.uint8,
    "bool": torch.bool,
}


@dataclass(frozen=True)
class TensorSpec:
    """What one key of a builder's output must be.

    ``shape``: an int is a fixed size, a string a symbolic size (any size; the same symbol must have the same
    size everywhere in one builder's output). ``value_range``: inclusive bounds every element must lie in.
    """

    shape: tuple[int | str, ...]
    dtype: str = "float32"
    value_range: tuple[float, float] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "value_range": list(self.value_range) if self.value_range is not None else None,
        }


class Builder(ABC):
    """Common part of feature and target builders: name, settings, specs, hash."""

    #: bump when the computation changes without a settings change, to invalidate caches
    version: ClassVar[int] = 1
    #: costly outputs (e.g. simulating a whole vocabulary) that training must read from the feature cache
    expensive: ClassVar[bool] = False

    @abstractmethod
    def get_unique_name(self) -> str:
        """A name unique among the builders an agent uses (e.g. ``"ego_status"``)."""

    @abstractmethod
    def specs(self) -> dict[str, TensorSpec]:
        """The declared output: key → spec."""

    def settings(self) -> dict[str, Any]:
        """Plain-data settings that change the output (part of the cache key)."""
        return {}

    def config_hash(self) -> str:
        """16 hex digits over class, version, name, settings and specs: equal hash ⇒ interchangeable output."""
        blob = json.dumps(
            {
                "class": f"{type(self).__module__}.{type(self).__qualname__}",
                "version": self.version,
                "name": self.get_unique_name(),
                "settings": self.settings(),
                "specs": {k: v.to_dict() for k, v in sorted(self.specs().items())},
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def cache_key(self) -> str:
        """Directory name of this builder's entries in the feature cache."""
        return f"{self.get_unique_name()}-{self.config_hash()}"


class FeatureBuilder(Builder):
    """AgentInput → ``Dict[str, Tensor]`` (no batch dim); sees only the history (what a submission sees)."""

    @abstractmethod
    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]: ...


class TargetBuilder(Builder):
    """Scene → ``Dict[str, Tensor]`` (no batch dim); may use the future and the map (training only)."""

    @abstractmethod
    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]: ...


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"torch.Tensor[{str(value.dtype).replace('torch.', '')}]"
    return type(value).__name__


def check_contract(
    builder: Builder | str,
    output: Any,
    specs: Mapping[str, TensorSpec] | None = None,
    batched: bool = False,
) -> dict[str, torch.Tensor]:
    """Return ``output`` if it satisfies the builder's declared specs, else raise :class:`ContractError`.

    ``batched=True`` checks a collated batch (one extra leading dim of any size).
    """
    name = builder if isinstance(builder, str) else builder.get_unique_name()
    if specs is None:
        if isinstance(builder, str):
            raise ValueError("check_contract needs specs when given a builder name")
        specs = builder.specs()
    if not isinstance(output, Mapping):
        raise ContractError(
            f"builder {name!r} returned {type(output).__name__}, expected Dict[str, torch.Tensor]"
        )
    missing = [k for k in specs if k not in output]
    if missing:
        raise ContractError(
            f"builder {name!r} did not return declared key(s) {', '.join(map(repr, missing))}"
        )
    extra = [k for k in output if k not in specs]
    if extra:
        raise ContractError(
            f"builder {name!r} returned undeclared key(s) {', '.join(map(repr, map(str, extra)))}"
        )
    sizes: dict[str, int] = {}
    for key, spec in specs.items():
        value = output[key]
        if not isinstance(value, torch.Tensor):
            raise ContractError(
                f"builder {name!r} key {key!r} returned {_kind(value)}, expected torch.Tensor"
            )
        if value.dtype != spec.torch_dtype:
            raise ContractError(
                f"builder {name!r} key {key!r} has dtype {str(value.dtype).replace('torch.', '')}, declared {spec.dtype}"
            )
        shape = tuple(value.shape[1:]) if batched else tuple(value.shape)
        declared = "(" + ", ".join(map(str, spec.shape)) + ")"
        if len(shape) != len(spec.shape):
            raise ContractError(
                f"builder {name!r} key {key!r} has shape {tuple(value.shape)}, declared {declared}"
                + (" after a batch dim" if batched else " (no batch dim)")
            )
        for got, want in zip(shape, spec.shape, strict=True):
            if isinstance(want, str):
                if sizes.setdefault(want, got) != got:
                    raise ContractError(
                        f"builder {name!r} key {key!r} has {want}={got} but another key has {want}={sizes[want]}"
                    )
            elif got != want:
                raise ContractError(
                    f"builder {name!r} key {key!r} has shape {tuple(value.shape)}, declared {declared}"
                )
        if value.numel() == 0:
            continue
        if value.is_floating_point():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                n_nan = int(torch.isnan(value).sum())
                n_inf = int((~finite).sum()) - n_nan
                raise ContractError(
                    f"builder {name!r} key {key!r} has non-finite values ({n_nan} NaN, {n_inf} Inf)"
                )
        if spec.value_range is not None and value.dtype != torch.bool:
            lo, hi = spec.value_range
            vmin, vmax = float(value.min()), float(value.max())
            tol = 1e-5 * max(1.0, abs(lo), abs(hi))
            if vmin < lo - tol or vmax > hi + tol:
                raise ContractError(
                    f"builder {name!r} key {key!r} has values in [{vmin:.4g}, {vmax:.4g}], declared range [{lo:g}, {hi:g}]"
                )
    return dict(output)


def _merge(
    builders: Iterable[Builder], outputs: Iterable[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    merged: dict[str, torch.Tensor] = {}
    owner: dict[str, str] = {}
    for builder, out in zip(builders, outputs, strict=True):
        for key, value in out.items():
            if key in merged:
                raise ContractError(
                    f"builders {owner[key]!r} and {builder.get_unique_name()!r} both return key {key!r}"
                )
            merged[key] = value
            owner[key] = builder.get_unique_name()
    return merged


def compute_features(builders: Iterable[FeatureBuilder], agent_input: AgentInput) -> dict[str, torch.Tensor]:
    """Run every feature builder on ``agent_input``, contract-check each, merge (duplicate keys are an error)."""
    builders = list(builders)
    outputs = [check_contract(b, b.compute_features(agent_input)) for b in builders]
    return _merge(builders, outputs)


def compute_targets(builders: Iterable[TargetBuilder], scene: Scene) -> dict[str, torch.Tensor]:
    """Run every target builder on ``scene``, contract-check each, merge."""
    builders = list(builders)
    outputs = [check_contract(b, b.compute_targets(scene)) for b in builders]
    return _merge(builders, outputs)


def builder_record(builder: Builder) -> dict[str, Any]:
    """What a feature-cache directory records about the builder that fills it (``builder.json``): name, config
    hash, settings, declared specs and class. One definition, so training, evaluation and scripts agree."""
    return {
        "name": builder.get_unique_name(),
        "hash": builder.config_hash(),
        "settings": builder.settings(),
        "specs": {k: spec.to_dict() for k, spec in builder.specs().items()},
        "class": type(builder).__qualname__,
    }


def check_unique_names(builders: Iterable[Builder]) -> None:
    """Builder names key the caches: two builders with one name would overwrite each other's entries."""
    seen: dict[str, str] = {}
    for b in builders:
        n = b.get_unique_name()
        if n in seen:
            raise ContractError(
                f"two builders share the unique name {n!r} ({seen[n]} and {type(b).__name__})"
            )
        seen[n] = type(b).__name__
