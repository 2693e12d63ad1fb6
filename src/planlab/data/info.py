"""What a dataset root holds: per split logs, frames, scenes, sensor files and bytes; maps found."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from planlab.data.layout import (
    dataset_root,
    find_maps_root,
    list_log_files,
    list_splits,
    map_file,
    map_versions,
)
from planlab.data.loader import scene_windows
from planlab.data.logs import read_log_file
from planlab.errors import DataError
from planlab.scene import CAMERA_NAMES, SceneFilter

LIDAR_DIR = "MergedPointCloud"


def _tree_stats(path: Path) -> tuple[int, int]:
    """(number of files, bytes) under ``path``."""
    files = size = 0
    stack = [path]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file():
                    files += 1
                    size += entry.stat().st_size
    return files, size


def sensor_stats(blob_dir: Path) -> dict[str, Any]:
    """Files per camera and LiDAR folder across the logs of a split's blob directory, plus bytes."""
    counts = {name: 0 for name in (*CAMERA_NAMES, LIDAR_DIR)}
    other = 0
    total_bytes = 0
    if not blob_dir.is_dir():
        return {"present": False, "counts": counts, "bytes": 0}
    for log_dir in sorted(p for p in blob_dir.iterdir() if p.is_dir()):
        for sensor_dir in log_dir.iterdir():
            if not sensor_dir.is_dir():
                continue
            n, b = _tree_stats(sensor_dir)
            total_bytes += b
            if sensor_dir.name in counts:
                counts[sensor_dir.name] += n
            else:
                other += n
    out: dict[str, Any] = {"present": True, "counts": counts, "bytes": total_bytes}
    if other:
        out["other_files"] = other
    return out


def split_info(root: Path, split: str, scene_filter: SceneFilter) -> dict[str, Any]:
    log_files = list_log_files(root / "navsim_logs" / split)
    frames = scenes = log_bytes = 0
    locations: set[str] = set()
    for path in log_files:
        log = read_log_file(path)
        frames += len(log.frames)
        log_bytes += log.num_bytes
        scenes += len(scene_windows(log.frames, scene_filter))
        locations.update(str(f["map_location"]) for f in log.frames)
    sensors = sensor_stats(root / "sensor_blobs" / split)
    return {
        "split": split,
        "logs": len(log_files),
        "frames": frames,
        "scenes": scenes,
        "map_locations": sorted(locations),
        "log_bytes": log_bytes,
        "sensors": sensors,
    }


def maps_info(maps_root: Path | None) -> dict[str, Any]:
    if maps_root is None:
        return {"root": None, "locations": {}}
    try:
        versions = map_versions(maps_root)
    except DataError as exc:
        return {"root": str(maps_root), "locations": {}, "error": str(exc)}
    locations = {}
    for location, version in sorted(versions.items()):
        path = map_file(maps_root, location, version)
        locations[location] = {
            "version": version,
            "found": path.is_file(),
            "bytes": path.stat().st_size if path.is_file() else 0,
        }
    return {"root": str(maps_root), "locations": locations}


def dataset_info(root: str | os.PathLike | None, scene_filter: SceneFilter | None = None) -> dict[str, Any]:
    """Summary of every split under ``<root>/navsim_logs`` and of the maps (``--json`` of ``data info``)."""
    base = dataset_root(root)
    filt = scene_filter if scene_filter is not None else SceneFilter(frame_interval=1)
    splits = [split_info(base, s, filt) for s in list_splits(base)]
    maps = maps_info(find_maps_root(base))
    total = sum(s["log_bytes"] + s["sensors"]["bytes"] for s in splits)
    total += sum(v["bytes"] for v in maps["locations"].values())
    return {
        "root": str(base),
        "scene_filter": {
            "num_history_frames": filt.num_history_frames,
            "num_future_frames": filt.num_future_frames,
            "frame_interval": filt.frame_interval,
            "has_route": filt.has_route,
        },
        "splits": splits,
        "maps": maps,
        "bytes": total,
    }
