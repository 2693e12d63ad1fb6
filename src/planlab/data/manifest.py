"""Manifests: which log files (by sha256) a split consists of, condensed into one hash.

A training run records the manifest hash of the data it saw, and label-fraction subsets record the hash of
the split they were drawn from, so a result can be traced to exact bytes on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.errors import DataError

MANIFEST_FORMAT = "planlab-manifest/1"


def canonical_json(obj: Any) -> str:
    """Key-sorted, whitespace-free JSON: the text every planlab data hash is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LogEntry:
    """One log file of a split: name (= file stem), content sha256, number of frames (tokens), size."""

    log_name: str
    sha256: str
    num_tokens: int
    num_bytes: int


@dataclass(frozen=True)
class Manifest:
    """Sorted log entries of a split and their hash (over name, sha256 and token count of each log)."""

    name: str
    logs: tuple[LogEntry, ...]
    hash: str

    @classmethod
    def from_entries(cls, name: str, entries: Iterable[LogEntry]) -> Manifest:
        logs = tuple(sorted(entries, key=lambda e: e.log_name))
        return cls(name, logs, manifest_hash(logs))

    @property
    def num_tokens(self) -> int:
        return sum(e.num_tokens for e in self.logs)

    @property
    def log_names(self) -> list[str]:
        return [e.log_name for e in self.logs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "hash": self.hash,
            "num_logs": len(self.logs),
            "num_tokens": self.num_tokens,
            "logs": [asdict(e) for e in self.logs],
        }

    def write(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=1) + "\n")
        return p


def manifest_hash(entries: Iterable[LogEntry]) -> str:
    """sha256 over the canonical JSON of ``[[log_name, sha256, num_tokens], …]`` sorted by name.

    File sizes are left out: they follow from the sha256.
    """
    rows = sorted([e.log_name, e.sha256, e.num_tokens] for e in entries)
    return sha256_text(canonical_json(rows))


def build_manifest(name: str, log_files: Iterable[str | os.PathLike]) -> Manifest:
    """Read every log (safely, validating it) and build the manifest of that set of files."""
    from planlab.data.logs import read_log_file

    entries = []
    for path in log_files:
        log = read_log_file(path)
        entries.append(LogEntry(log.log_name, log.sha256, len(log.frames), log.num_bytes))
    return Manifest.from_entries(name, entries)


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read a manifest JSON and check that its hash matches its entries."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT:
            raise DataError(f"{p}: not a planlab manifest (format {data.get('format')!r})")
        entries = [LogEntry(**e) for e in data["logs"]]
        manifest = Manifest.from_entries(data["name"], entries)
    except FileNotFoundError:
        raise DataError(f"{p}: manifest not found") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{p}: not a readable manifest ({exc})") from None
    if manifest.hash != data.get("hash"):
        raise DataError(f"{p}: manifest hash does not match its entries (edited or corrupted)")
    return manifest
