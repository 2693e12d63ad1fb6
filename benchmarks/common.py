"""Shared pieces of the benchmark suite: result records, timing helpers, machine description."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One measured figure. ``target`` is the aim it is judged against (same unit), if any.

    ``higher_is_better`` decides the pass/fail column; ``baseline`` holds a figure measured in the same
    run that ``value`` is compared with (e.g. NAVSIM-style per-scene loop vs batched), when one exists.
    """

    section: str
    name: str
    value: float
    unit: str
    target: float | None = None
    higher_is_better: bool = True
    baseline: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def meets_target(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meets_target"] = self.meets_target
        return d


def timeit(fn: Callable[[], Any], repeat: int = 3, number: int = 1) -> float:
    """Best-of-``repeat`` wall time [s] of ``number`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def machine() -> dict[str, Any]:
    import numpy

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": numpy.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info
