"""OpenScene/NAVSIM log pickles: a list of 2 Hz frame dicts per log (format contract §2.1-2.6).

``read_log`` goes through the allow-listed unpickler and checks the structure NAVSIM relies on (the keys it
reads, the eight camera entries, annotation lengths); ``write_log`` additionally enforces what a writer
controls (pitfalls P13-P17: stem == log_name, unique tokens, int µs timestamps strictly increasing, box
classes, track tokens) and writes a numpy-1.x-portable pickle atomically. Both real OpenScene logs (numpy
arrays) and plain nested-list logs (the calibration set, ``[]`` for empty annotations) are accepted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_write_bytes
from planlab.data.safe_pickle import portable_dumps, safe_loads
from planlab.errors import DataError
from planlab.scene.enums import BOX_NAMES, CAMERA_NAMES

# Keys NAVSIM v1.1 reads from every frame (contract §2.3). `anns` is absent in private test splits, so the
# reader tolerates its absence; building a Scene (which needs boxes) then fails with a clear error.
REQUIRED_FRAME_KEYS: tuple[str, ...] = (
    "token",
    "timestamp",
    "log_name",
    "scene_token",
    "map_location",
    "roadblock_ids",
    "traffic_lights",
    "ego2global_translation",
    "ego2global_rotation",
    "ego_dynamic_state",
    "driving_command",
    "cams",
    "lidar_path",
)
ANNOTATION_KEYS: tuple[str, ...] = (
    "gt_boxes",
    "gt_names",
    "gt_velocity_3d",
    "instance_tokens",
    "track_tokens",
)
CAMERA_KEYS: tuple[str, ...] = (
    "data_path",
    "sensor2lidar_rotation",
    "sensor2lidar_translation",
    "cam_intrinsic",
    "distortion",
)
# Written by OpenScene but not read by NAVSIM (contract §2.3 "SHOULD still be written").
OPTIONAL_FRAME_KEYS: tuple[str, ...] = (
    "frame_idx",
    "log_token",
    "scene_name",
    "vehicle_name",
    "can_bus",
    "lidar2ego_translation",
    "lidar2ego_rotation",
    "ego2global",
    "lidar2ego",
    "lidar2global",
    "sample_prev",
    "sample_next",
    "anns",
)
FRAME_INTERVAL_US = 500_000  # 2 Hz logs (contract §2.3 `timestamp`)
MAP_LOCATIONS: tuple[str, ...] = (
    "sg-one-north",
    "us-ma-boston",
    "us-nv-las-vegas-strip",
    "us-pa-pittsburgh-hazelwood",
)


@dataclass(frozen=True)
class LogFile:
    """A log read from disk: its frames plus the file facts a manifest records."""

    path: Path
    frames: list[dict[str, Any]]
    sha256: str
    num_bytes: int

    @property
    def log_name(self) -> str:
        return self.path.stem


def _n(value: Any) -> int:
    """Length of a list or the first axis of an array (annotation fields come as either)."""
    return int(np.shape(value)[0]) if np.ndim(value) > 0 else 0


def _frame_id(i: int, frame: dict[str, Any]) -> str:
    token = frame.get("token") if isinstance(frame, dict) else None
    return f"frame {i} (token {token})" if isinstance(token, str) else f"frame {i}"


def validate_frames(frames: Any, source: str) -> list[dict[str, Any]]:
    """Check the structure NAVSIM reads; a DataError names ``source`` and the offending frame/key."""
    if not isinstance(frames, list):
        raise DataError(f"{source}: a log must be a list of frame dicts, got {type(frames).__name__}")
    if not frames:
        raise DataError(f"{source}: the log has no frames")
    seen: set[str] = set()
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise DataError(f"{source}: frame {i} is a {type(frame).__name__}, not a dict")
        where = f"{source}: {_frame_id(i, frame)}"
        missing = [k for k in REQUIRED_FRAME_KEYS if k not in frame]
        if missing:
            raise DataError(f"{where} lacks key(s) {', '.join(missing)}")
        token = frame["token"]
        if not isinstance(token, str) or not token:
            raise DataError(f"{where}: 'token' must be a non-empty string")
        if token in seen:
            raise DataError(f"{where}: token {token} appears twice in the log")
        seen.add(token)
        ts = frame["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, (int, np.integer)):
            raise DataError(f"{where}: 'timestamp' must be an integer (µs), got {type(ts).__name__}")
        if not isinstance(frame["roadblock_ids"], (list, tuple)):
            raise DataError(f"{where}: 'roadblock_ids' must be a list of strings")
        translation_shape = np.shape(frame["ego2global_translation"])
        if (
            len(translation_shape) != 1
            or translation_shape[0] < 2
            or np.shape(frame["ego2global_rotation"]) != (4,)
        ):
            raise DataError(
                f"{where}: ego2global_translation needs >= 2 values and ego2global_rotation 4 (w,x,y,z)"
            )
        if np.shape(frame["ego_dynamic_state"]) != (4,):
            raise DataError(f"{where}: 'ego_dynamic_state' must hold 4 values (vx, vy, ax, ay)")
        if np.shape(frame["driving_command"]) != (4,):
            raise DataError(f"{where}: 'driving_command' must be a one-hot of 4")
        cams = frame["cams"]
        if not isinstance(cams, dict):
            raise DataError(f"{where}: 'cams' must be a dict of the 8 cameras")
        missing_cams = [c for c in CAMERA_NAMES if c not in cams]
        if missing_cams:
            raise DataError(f"{where}: 'cams' lacks {', '.join(missing_cams)} (NAVSIM indexes all 8)")
        if not isinstance(frame["lidar_path"], str):
            raise DataError(
                f"{where}: 'lidar_path' must be a string (NAVSIM builds its path for every frame)"
            )
        if "anns" in frame:
            anns = frame["anns"]
            if not isinstance(anns, dict) or any(k not in anns for k in ANNOTATION_KEYS):
                raise DataError(f"{where}: 'anns' must be a dict with {', '.join(ANNOTATION_KEYS)}")
            lengths = {k: _n(anns[k]) for k in ANNOTATION_KEYS}
            if len(set(lengths.values())) != 1:
                raise DataError(f"{where}: annotation lengths differ: {lengths}")
    return frames


def read_log_file(path: str | os.PathLike) -> LogFile:
    """Read one log pickle safely, validate it, and record its sha256 and size."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: log file not found") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read log ({exc.strerror or exc})") from None
    frames = validate_frames(safe_loads(data, str(p)), str(p))
    return LogFile(p, frames, hashlib.sha256(data).hexdigest(), len(data))


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The frame dicts of one log (time order), through the allow-listed unpickler."""
    return read_log_file(path).frames


# ---------------------------------------------------------------------------------------------------------
# Writing


def check_conformance(frames: Sequence[dict[str, Any]], log_name: str, source: str) -> None:
    """Rules of contract §2 / pitfalls P12-P17 beyond :func:`validate_frames`: what a writer must get
    right for the reference devkits (enforced by :func:`write_log`, reported by ``planlab data check``)."""
    prev_ts: int | None = None
    for i, frame in enumerate(frames):
        where = f"{source}: {_frame_id(i, frame)}"
        if frame["log_name"] != log_name:
            raise DataError(
                f"{where}: log_name {frame['log_name']!r} != file stem {log_name!r} (pitfall P15)"
            )
        token = frame["token"]
        if "/" in token or "\\" in token or token in (".", ".."):
            raise DataError(f"{where}: token must be usable as a path component")
        ts = int(frame["timestamp"])
        if ts < 0:
            raise DataError(f"{where}: negative timestamp {ts}")
        if prev_ts is not None and ts <= prev_ts:
            raise DataError(f"{where}: timestamp {ts} does not increase (previous {prev_ts}; pitfall P17)")
        prev_ts = ts
        if frame["map_location"] not in MAP_LOCATIONS:
            raise DataError(
                f"{where}: map_location {frame['map_location']!r} is not one of {', '.join(MAP_LOCATIONS)} (P16)"
            )
        if not all(isinstance(r, str) for r in frame["roadblock_ids"]):
            raise DataError(f"{where}: roadblock_ids must be strings")
        for tl in frame["traffic_lights"]:
            if len(tl) != 2 or isinstance(tl[0], bool) or not isinstance(tl[0], (int, np.integer)):
                raise DataError(
                    f"{where}: traffic_lights entries must be (lane_connector_id: int, is_red: bool)"
                )
        for cam in CAMERA_NAMES:
            entry = frame["cams"][cam]
            if not isinstance(entry, dict) or any(k not in entry for k in CAMERA_KEYS):
                raise DataError(f"{where}: cams[{cam}] needs {', '.join(CAMERA_KEYS)}")
            if not isinstance(entry["data_path"], str) or Path(entry["data_path"]).is_absolute():
                raise DataError(f"{where}: cams[{cam}].data_path must be a relative path string")
        if Path(frame["lidar_path"]).is_absolute():
            raise DataError(f"{where}: lidar_path must be relative to the sensor-blob root")
        if "anns" not in frame:
            raise DataError(f"{where}: lacks 'anns' (write empty (0, 7)/(0, 3) arrays for no objects)")
        anns = frame["anns"]
        names = [str(n) for n in anns["gt_names"]]
        bad = sorted(set(names) - set(BOX_NAMES))
        if bad:
            raise DataError(f"{where}: box class(es) {bad} not in {', '.join(BOX_NAMES)} (pitfall P14)")
        # An empty frame may hold [] (the calibration logs do; NAVSIM accepts it) or (0, 7)/(0, 3) arrays.
        n_boxes = _n(anns["gt_boxes"])
        if n_boxes and (
            np.shape(anns["gt_boxes"])[1:] != (7,) or np.shape(anns["gt_velocity_3d"])[1:] != (3,)
        ):
            raise DataError(
                f"{where}: gt_boxes must be (N, 7) and gt_velocity_3d (N, 3) (use (0, 7) when empty)"
            )
        tracks = [str(t) for t in anns["track_tokens"]]
        if len(set(tracks)) != len(tracks):
            raise DataError(f"{where}: track_tokens are not unique within the frame (pitfall P14)")
        if any("red_light" in t for t in tracks):
            raise DataError(f"{where}: a track token contains 'red_light', which the scorer ignores (P14)")


def write_log(frames: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Validate and write a log as a portable pickle (no ``numpy._core``), atomically. Returns the path."""
    p = Path(path)
    if p.suffix != ".pkl":
        raise DataError(f"{p}: a log file must be named <log_name>.pkl")
    frames = list(frames)
    validate_frames(frames, str(p))
    check_conformance(frames, p.stem, str(p))
    atomic_write_bytes(p, portable_dumps(frames))
    return p
