"""Where a dataset lives on disk (DESIGN.md "One data path"; format contract §2.1, §2.9).

```
<root>/navsim_logs/<split>/<log_name>.pkl
<root>/sensor_blobs/<split>/<log_name>/<CAM_xx | MergedPointCloud>/<id>.<jpg | pcd>
<root>/maps/nuplan-maps-v1.0.json, <root>/maps/<location>/<version>/map.gpkg
```
``OPENSCENE_DATA_ROOT`` is the default root and ``NUPLAN_MAPS_ROOT`` the maps fallback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from planlab.errors import DataError

MAPS_JSON = "nuplan-maps-v1.0.json"  # fixed name: NAVSIM v1.1 hard-codes "nuplan-maps-v1.0" (contract §1.1)
LOG_SUFFIX = ".pkl"


def dataset_root(root: str | os.PathLike | None) -> Path:
    """``root`` or ``$OPENSCENE_DATA_ROOT``; a DataError names the missing directory."""
    if root is None:
        env = os.environ.get("OPENSCENE_DATA_ROOT")
        if not env:
            raise DataError("no dataset root given and OPENSCENE_DATA_ROOT is not set")
        root = env
    p = Path(root).expanduser()
    if not p.is_dir():
        raise DataError(f"{p}: dataset root not found")
    return p


def list_splits(root: Path) -> list[str]:
    """Names of the split directories under ``<root>/navsim_logs`` (sorted)."""
    logs = root / "navsim_logs"
    if not logs.is_dir():
        raise DataError(f"{logs}: no navsim_logs directory under the dataset root")
    return sorted(p.name for p in logs.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_log_files(log_dir: Path) -> list[Path]:
    """The ``*.pkl`` logs of a split directory, sorted by name (NAVSIM lists the directory unsorted)."""
    if not log_dir.is_dir():
        raise DataError(f"{log_dir}: log directory not found")
    return sorted(
        p for p in log_dir.iterdir() if p.suffix == LOG_SUFFIX and p.is_file() and not p.name.startswith(".")
    )


def find_maps_root(root: Path | None, explicit: str | os.PathLike | None = None) -> Path | None:
    """Explicit maps root, else ``<root>/maps`` if present, else ``$NUPLAN_MAPS_ROOT``, else None."""
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise DataError(f"{p}: maps root not found")
        return p
    if root is not None and (root / "maps").is_dir():
        return root / "maps"
    env = os.environ.get("NUPLAN_MAPS_ROOT")
    if env and Path(env).is_dir():
        return Path(env)
    return None


def map_versions(maps_root: Path) -> dict[str, str]:
    """``{location: version}`` from ``nuplan-maps-v1.0.json``; errors name the file."""
    path = maps_root / MAPS_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: maps version file not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object keyed by location")
    out = {}
    for location, entry in data.items():
        if not isinstance(entry, dict) or "version" not in entry:
            raise DataError(f"{path}: entry {location!r} has no 'version'")
        out[str(location)] = str(entry["version"])
    return out


def map_file(maps_root: Path, location: str, version: str) -> Path:
    return maps_root / location / version / "map.gpkg"


@dataclass(frozen=True)
class DatasetLayout:
    """Resolved directories of one split: logs, sensor blobs (may not exist) and maps (may be None)."""

    log_dir: Path
    blob_dir: Path | None
    maps_root: Path | None
    root: Path | None = None
    split: str | None = None

    @classmethod
    def resolve(
        cls,
        root: str | os.PathLike | None = None,
        split: str | None = None,
        *,
        log_path: str | os.PathLike | None = None,
        sensor_blobs_path: str | os.PathLike | None = None,
        maps_root: str | os.PathLike | None = None,
    ) -> DatasetLayout:
        """From a root + split (``root`` defaults to ``$OPENSCENE_DATA_ROOT``), or from explicit paths."""
        if log_path is not None:
            log_dir = Path(log_path).expanduser()
            if not log_dir.is_dir():
                raise DataError(f"{log_dir}: log directory not found")
            base = Path(root).expanduser() if root is not None else None
            blob_dir = Path(sensor_blobs_path).expanduser() if sensor_blobs_path is not None else None
            if blob_dir is None and base is not None and split is not None:
                blob_dir = base / "sensor_blobs" / split
            return cls(log_dir, blob_dir, find_maps_root(base, maps_root), base, split or log_dir.name)
        base = dataset_root(root)
        if split is None:
            splits = list_splits(base)
            if len(splits) != 1:
                raise DataError(
                    f"{base}: choose a split with split=... (found: {', '.join(splits) or 'none'})"
                )
            split = splits[0]
        log_dir = base / "navsim_logs" / split
        if not log_dir.is_dir():
            choices = ", ".join(list_splits(base)) if (base / "navsim_logs").is_dir() else "none"
            raise DataError(f"{log_dir}: split {split!r} not found (available: {choices})")
        blob_dir = (
            Path(sensor_blobs_path).expanduser()
            if sensor_blobs_path is not None
            else base / "sensor_blobs" / split
        )
        return cls(log_dir, blob_dir, find_maps_root(base, maps_root), base, split)
