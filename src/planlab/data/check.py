"""Dataset audit (``planlab data check``): every log readable and conformant, every sensor blob present.

Collects problems instead of stopping at the first, so one run lists everything a user must fix; the
lessons from prior work (missing-sensor-file audits before training) motivate it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.data.layout import DatasetLayout, list_log_files, map_file, map_versions
from planlab.data.logs import check_conformance, read_log_file
from planlab.data.sensors import check_pcd_file, read_jpeg
from planlab.errors import DataError
from planlab.scene import CAMERA_NAMES


@dataclass
class CheckReport:
    """Counts of what was checked and the problems found (one line each)."""

    split: str
    logs: int = 0
    frames: int = 0
    blobs_checked: int = 0
    blobs_decoded: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str, limit: int) -> None:
        if len(self.problems) < limit:
            self.problems.append(problem)
        else:
            self.truncated = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "ok": self.ok,
            "logs": self.logs,
            "frames": self.frames,
            "blobs_checked": self.blobs_checked,
            "blobs_decoded": self.blobs_decoded,
            "problems": self.problems,
            "problems_truncated": self.truncated,
            "notes": self.notes,
        }


def _check_blob(path: Path, kind: str, token: str, decode: bool, report: CheckReport, limit: int) -> None:
    report.blobs_checked += 1
    if not path.is_file():
        report.add(f"{path}: missing {kind} (token {token})", limit)
        return
    if not decode:
        return
    try:
        if kind == "point cloud":
            check_pcd_file(path)
        else:
            image = read_jpeg(path)
            if image.ndim != 3 or image.shape[2] != 3:
                raise DataError(f"{path}: image is not RGB (shape {image.shape})")
        report.blobs_decoded += 1
    except DataError as exc:
        report.add(f"{exc} (token {token})", limit)


def check_dataset(
    root: str | os.PathLike | None,
    split: str | None = None,
    *,
    sensors: bool = True,
    decode: bool = False,
    max_problems: int = 100,
) -> CheckReport:
    """Audit one split: log structure and conformance, unique tokens, sensor files, maps of its locations."""
    layout = DatasetLayout.resolve(root, split)
    report = CheckReport(split=layout.split or layout.log_dir.name)
    tokens: dict[str, str] = {}
    locations: set[str] = set()
    blob_dir = layout.blob_dir
    if sensors and (blob_dir is None or not blob_dir.is_dir()):
        report.notes.append(f"{blob_dir}: no sensor blobs for this split; sensor files not checked")
        sensors = False
    for path in list_log_files(layout.log_dir):
        try:
            log = read_log_file(path)
            check_conformance(log.frames, path.stem, str(path))
        except DataError as exc:
            report.add(str(exc), max_problems)
            continue
        report.logs += 1
        report.frames += len(log.frames)
        for frame in log.frames:
            token = frame["token"]
            if token in tokens:
                report.add(f"{path}: token {token} also occurs in log {tokens[token]}", max_problems)
            tokens[token] = path.stem
            locations.add(str(frame["map_location"]))
            if not sensors:
                continue
            assert blob_dir is not None
            for cam in CAMERA_NAMES:
                _check_blob(
                    blob_dir / frame["cams"][cam]["data_path"],
                    "camera image",
                    token,
                    decode,
                    report,
                    max_problems,
                )
            _check_blob(blob_dir / frame["lidar_path"], "point cloud", token, decode, report, max_problems)
    if layout.maps_root is None:
        report.notes.append("no maps root (<root>/maps or NUPLAN_MAPS_ROOT): maps not checked")
    else:
        try:
            versions = map_versions(layout.maps_root)
        except DataError as exc:
            report.add(str(exc), max_problems)
            versions = {}
        for location in sorted(locations):
            if location not in versions:
                report.add(f"{layout.maps_root}: no map version for location {location}", max_problems)
            elif not map_file(layout.maps_root, location, versions[location]).is_file():
                report.add(
                    f"{map_file(layout.maps_root, location, versions[location])}: map not found", max_problems
                )
    return report
