"""Deterministic train/val/test splits *by log* (no scene of a log leaks into another part).

Logs are ranked by ``sha256("<seed>:<log_name>")`` — a seeded permutation that does not depend on numpy's
RNG streams or on the order the logs were listed in — and consecutive runs of that ranking form the parts,
with sizes from the fractions by largest remainder (every part with a positive fraction gets at least one
log when there are enough logs). The split file is JSON with the log lists, the manifest hash of the data
split they come from, and a sha256 over its content.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.data.manifest import canonical_json, sha256_text
from planlab.errors import DataError

SPLIT_FORMAT = "planlab-split/1"
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def seeded_order(items: list[str], seed: int, salt: str) -> list[str]:
    """``items`` sorted by ``sha256(f"{salt}:{seed}:{item}")``: deterministic and list-order independent."""

    def key(item: str) -> tuple[str, str]:
        return hashlib.sha256(f"{salt}:{seed}:{item}".encode()).hexdigest(), item

    return sorted(set(items), key=key)


def part_sizes(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Integer sizes summing to ``n`` (largest remainder), at least 1 per positive fraction if possible."""
    names = list(fractions)
    raw = {k: fractions[k] * n for k in names}
    sizes = {k: math.floor(raw[k]) for k in names}
    by_remainder = sorted(names, key=lambda k: (-(raw[k] - sizes[k]), names.index(k)))
    for k in by_remainder[: n - sum(sizes.values())]:
        sizes[k] += 1
    positive = [k for k in names if fractions[k] > 0]
    if n >= len(positive):
        for k in positive:
            while sizes[k] == 0:  # take one from the largest part
                donor = max(names, key=lambda d: sizes[d])
                sizes[donor] -= 1
                sizes[k] += 1
    return sizes


def check_fractions(fractions: dict[str, float]) -> dict[str, float]:
    if not fractions:
        raise DataError("split fractions are empty")
    for k, v in fractions.items():
        if not k or not all(c.isalnum() or c in "_-" for c in k):
            raise DataError(f"split part name {k!r} must be alphanumeric (with _ or -)")
        if not (0.0 <= float(v) <= 1.0) or math.isnan(float(v)):
            raise DataError(f"split fraction {k}={v} must be in [0, 1]")
    total = sum(float(v) for v in fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise DataError(f"split fractions must sum to 1, got {total:g} ({fractions})")
    return {k: float(v) for k, v in fractions.items()}


@dataclass(frozen=True)
class LogSplit:
    """Parts (``{"train": [log names], …}``) of one data split, with provenance and a content hash."""

    data_split: str
    seed: int
    fractions: dict[str, float]
    parts: dict[str, list[str]]
    manifest_hash: str | None = None
    sha256: str = field(default="")

    def payload(self) -> dict[str, Any]:
        return {
            "format": SPLIT_FORMAT,
            "data_split": self.data_split,
            "seed": self.seed,
            "fractions": self.fractions,
            "manifest_hash": self.manifest_hash,
            "parts": self.parts,
        }

    def content_hash(self) -> str:
        return sha256_text(canonical_json(self.payload()))

    def part(self, name: str) -> list[str]:
        if name not in self.parts:
            raise DataError(f"split has no part {name!r} (parts: {', '.join(self.parts)})")
        return list(self.parts[name])

    def write(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        data = dict(self.payload(), sha256=self.content_hash())
        atomic_write_text(p, json.dumps(data, indent=1) + "\n")
        return p


def make_log_split(
    log_names: list[str],
    fractions: dict[str, float] | None = None,
    seed: int = 0,
    data_split: str = "",
    manifest_hash: str | None = None,
) -> LogSplit:
    """Assign every log to exactly one part; the same inputs always give the same parts."""
    fr = check_fractions(dict(fractions) if fractions is not None else dict(DEFAULT_FRACTIONS))
    if not log_names:
        raise DataError(f"no logs to split in {data_split or 'the data split'}")
    order = seeded_order(list(log_names), seed, "split")
    sizes = part_sizes(len(order), fr)
    parts: dict[str, list[str]] = {}
    pos = 0
    for name in fr:
        parts[name] = sorted(order[pos : pos + sizes[name]])
        pos += sizes[name]
    split = LogSplit(data_split, int(seed), fr, parts, manifest_hash)
    return LogSplit(data_split, int(seed), fr, parts, manifest_hash, split.content_hash())


def load_log_split(path: str | os.PathLike) -> LogSplit:
    """Read a split file and verify its sha256; a tampered file is a DataError naming it."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: split file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SPLIT_FORMAT:
        raise DataError(f"{p}: not a planlab split file")
    try:
        split = LogSplit(
            data_split=str(data["data_split"]),
            seed=int(data["seed"]),
            fractions={str(k): float(v) for k, v in data["fractions"].items()},
            parts={str(k): [str(x) for x in v] for k, v in data["parts"].items()},
            manifest_hash=data.get("manifest_hash"),
            sha256=str(data["sha256"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{p}: malformed split file ({exc})") from None
    if split.content_hash() != split.sha256:
        raise DataError(f"{p}: sha256 does not match the content (the split file was edited or corrupted)")
    return split
