"""Unlabelled camera frames for pre-training and probing: every frame of a split's logs, decoded once.

A frame is one 2 Hz sample of a log (labelled or not; no history or future is needed), read through the
ordinary :class:`~planlab.data.loader.SceneLoader` with a one-frame scene filter and turned into an image by
the agents' own :class:`~planlab.features.camera.CameraFeatureBuilder` (stitched front cameras,
aspect-preserving resize, one normalisation), so pre-training sees exactly what the frozen encoder sees later.

Images are stored once as a float16 memory map ``<cache>/frames-<key>/images.npy`` with ``index.json`` (tokens,
logs and the probe labels of every frame). The key hashes the split's manifest, the frame selection and the
camera settings; the directory is written under a temporary name and renamed, so a complete cache is the only
kind that exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planlab.errors import DataError

FRAMES_FORMAT = "planlab-ssl-frames/1"


@dataclass
class FrameLabels:
    """Probe labels of one frame, read from the log (never used by pre-training itself)."""

    speed: float  # m/s, |(vx, vy)| of ego_dynamic_state
    command: int  # argmax of the one-hot driving command (0 left, 1 straight, 2 right, 3 unknown)
    lead: bool  # a vehicle centre within the configured corridor ahead


@dataclass
class FrameSet:
    """The frames of one split: images ``[N, 3, H, W]`` float16 (memory map), tokens, logs, labels."""

    dir: Path
    tokens: list[str]
    logs: list[str]
    labels: dict[str, np.ndarray]
    images: np.ndarray
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.tokens)


class ConcatImages:
    """The images of several frame sets as one row-indexable ``[N, 3, H, W]`` array (nothing is copied).

    Pre-training on the frames of more than one dataset root reads batches through this view; every part
    must have the same image shape (the same camera settings give it).
    """

    def __init__(self, parts: Sequence[np.ndarray]) -> None:
        if not parts:
            raise ValueError("ConcatImages needs at least one image array")
        shapes = {tuple(p.shape[1:]) for p in parts}
        if len(shapes) != 1:
            raise DataError(f"frame caches of different image shapes cannot be mixed: {sorted(shapes)}")
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.shape = (int(self.offsets[-1]), *shapes.pop())
        self.dtype = self.parts[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> np.ndarray:
        rows = np.arange(len(self))[index] if not isinstance(index, np.ndarray) else index
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"frame index out of range 0..{len(self) - 1}")
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        part = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(part):
            sel = part == k
            out[sel] = self.parts[k][rows[sel] - self.offsets[k]]
        return out


def frame_labels(
    frame: dict[str, Any], lead_range: tuple[float, float], lead_half_width: float
) -> FrameLabels:
    """Speed, driving command and lead-vehicle presence of a raw OpenScene frame dict (ego frame boxes)."""
    from planlab.data.frames import annotations_from_dict

    dyn = np.asarray(frame["ego_dynamic_state"], dtype=np.float64)
    command = int(np.argmax(np.asarray(frame["driving_command"], dtype=np.float64)))
    lead = False
    if frame.get("anns") is not None:
        ann = annotations_from_dict(frame)
        x, y = ann.boxes[:, 0], ann.boxes[:, 1]
        vehicle = np.array([n == "vehicle" for n in ann.names], dtype=bool)
        ahead = (x > lead_range[0]) & (x <= lead_range[1]) & (np.abs(y) <= lead_half_width)
        lead = bool(np.any(vehicle & ahead))
    return FrameLabels(float(np.hypot(dyn[0], dyn[1])), command, lead)


def frame_loader(
    root: str | os.PathLike | None,
    split: str,
    cameras: list[str],
    stride: int = 1,
    splits_file: str | None = None,
    maps_root: str | None = None,
) -> Any:
    """A SceneLoader whose scenes are single frames (every ``stride``-th frame of every log of ``split``)."""
    from planlab.data.layout import dataset_root
    from planlab.data.loader import SceneLoader
    from planlab.data.subsets import resolve_split
    from planlab.scene import SceneFilter, SensorConfig

    base = dataset_root(root)
    source = resolve_split(base, split, splits_file)
    scene_filter = SceneFilter(
        num_history_frames=1,
        num_future_frames=0,
        frame_interval=stride,
        has_route=False,  # unlabelled frames: every frame counts, routed or not
        log_names=source.log_names,
    )
    sensors = SensorConfig(**{cam: [0] for cam in cameras})
    return SceneLoader(base, source.data_split, scene_filter, sensors, maps_root=maps_root, load_maps=False)


def _evenly(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all when ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / (k - 1))) for i in range(k)}) if k > 1 else [0]


def cache_key(manifest_hash: str, split: str, tokens: list[str], builder_settings: dict[str, Any]) -> str:
    blob = json.dumps(
        {"format": FRAMES_FORMAT, "manifest": manifest_hash, "split": split, "settings": builder_settings,
         "tokens": hashlib.sha256("\n".join(tokens).encode()).hexdigest()},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def open_frames(directory: Path) -> FrameSet:
    """Open a complete frame cache directory (DataError if it is not one)."""
    index = directory / "index.json"
    try:
        info = json.loads(index.read_text())
    except FileNotFoundError:
        raise DataError(f"{directory}: not a frame cache (no index.json)") from None
    except ValueError:
        raise DataError(f"{index}: not valid JSON") from None
    if info.get("format") != FRAMES_FORMAT:
        raise DataError(f"{index}: format {info.get('format')!r}, expected {FRAMES_FORMAT!r}")
    images = np.load(directory / "images.npy", mmap_mode="r")
    n = len(info["tokens"])
    if images.shape[0] != n:
        raise DataError(f"{directory}: {images.shape[0]} images for {n} tokens")
    labels = {k: np.asarray(v) for k, v in info["labels"].items()}
    return FrameSet(directory, list(info["tokens"]), list(info["logs"]), labels, images, info)


def build_frames(
    root: str | os.PathLike | None,
    split: str,
    camera: Any,
    cache_root: str | os.PathLike,
    *,
    stride: int = 1,
    max_frames: int | None = None,
    splits_file: str | None = None,
    maps_root: str | None = None,
    threads: int = 4,
    lead_range: tuple[float, float] = (2.0, 30.0),
    lead_half_width: float = 2.0,
    progress: bool = True,
) -> FrameSet:
    """The frame cache of ``split`` under ``cache_root`` (built on first use, reused afterwards).

    ``camera`` is a :class:`~planlab.agents.learned_config.CameraFeatureConfig` (its ``history_index`` must
    be 0: a frame has no history).
    """
    import torch
    from tqdm import tqdm

    from planlab.features.base import check_contract
    from planlab.features.camera import CameraFeatureBuilder

    builder = CameraFeatureBuilder.from_config(camera, 0)
    loader = frame_loader(root, split, list(camera.cameras), stride, splits_file, maps_root)
    if len(loader) == 0:
        raise DataError(f"split {split!r} has no frames to read under {loader.layout.log_dir}")
    all_tokens = loader.tokens
    tokens = [all_tokens[i] for i in _evenly(len(all_tokens), max_frames)]
    settings = {**builder.settings(), "lead_range": list(lead_range), "lead_half_width": lead_half_width}
    key = cache_key(loader.manifest().hash, split, tokens, settings)
    base = Path(cache_root)
    final = base / f"frames-{key}"
    if (final / "index.json").is_file():
        return open_frames(final)

    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".frames-{key}.", dir=base))
    try:
        shape = (len(tokens), 3, camera.image_height, camera.image_width)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float16, shape=shape)
        token_log = {t: log for log, ts in loader.get_tokens_list_per_log().items() for t in ts}
        sensors = builder.sensor_config()

        def one(i: int) -> FrameLabels:
            token = tokens[i]
            agent_input = loader.get_agent_input_from_token(token, sensors)
            out = check_contract(builder, builder.compute_features(agent_input))
            images[i] = out["camera"].numpy().astype(np.float16)
            return frame_labels(loader.get_frame_dicts(token)[0], lead_range, lead_half_width)

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # parallelism comes from the decode threads
        try:
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                it = pool.map(one, range(len(tokens)))
                labels = list(tqdm(it, total=len(tokens), desc=f"frames {split}", unit="frame",
                                   disable=not progress, leave=False))  # fmt: skip
        finally:
            torch.set_num_threads(torch_threads)
        images.flush()
        info = {
            "format": FRAMES_FORMAT,
            "split": split,
            "data_split": loader.split,
            "log_dir": str(loader.layout.log_dir),
            "manifest_hash": loader.manifest().hash,
            "settings": settings,
            "tokens": tokens,
            "logs": [token_log[t] for t in tokens],
            "labels": {
                "speed": [lb.speed for lb in labels],
                "command": [lb.command for lb in labels],
                "lead": [lb.lead for lb in labels],
            },
        }
        (tmp / "index.json").write_text(json.dumps(info) + "\n")
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "index.json").is_file():  # lost a race only if the winner is complete
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return open_frames(final)
