"""``SceneLoader``: scenes and agent inputs of one split, with NAVSIM's ``filter_scenes`` semantics.

Scene extraction (fact sheet §2.2, format contract §2.2): per log, windows ``frames[i : i + num_frames]``
for ``i = 0, interval, 2·interval, …`` (``frame_interval=None`` → non-overlapping windows); windows shorter
than ``num_frames`` are dropped; with ``has_route`` a window whose current frame (index
``num_history_frames - 1``) has no ``roadblock_ids`` is dropped; the scene token is the current frame's
token; ``tokens`` / ``log_names`` filters and ``max_scenes`` apply as in NAVSIM. One deliberate difference:
logs are visited in sorted name order (NAVSIM uses directory order), so ``tokens`` and ``max_scenes`` are
reproducible across machines.

Each log is parsed once, through the allow-listed unpickler, and kept in a (optionally bounded) cache; an
evicted log is re-read on demand and must still have the sha256 it had when the index was built.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planlab.data.frames import agent_input_from_dicts, scene_from_dicts
from planlab.data.layout import DatasetLayout, list_log_files
from planlab.data.logs import LogFile, read_log_file
from planlab.data.manifest import LogEntry, Manifest
from planlab.errors import DataError
from planlab.scene import AgentInput, Scene, SceneFilter, SceneMetadata, SensorConfig


@dataclass(frozen=True)
class SceneRef:
    """Where a scene's window lies: log name and index of its first frame."""

    log_name: str
    start: int


def scene_windows(frames: list[dict[str, Any]], scene_filter: SceneFilter) -> list[tuple[str, int]]:
    """``(scene token, window start)`` of one log's scenes, before token/max filters (NAVSIM order)."""
    n, h = scene_filter.num_frames, scene_filter.num_history_frames
    out = []
    for start in range(0, len(frames), scene_filter.interval):
        if start + n > len(frames):  # too short (NAVSIM keeps iterating; later windows are shorter still)
            break
        current = frames[start + h - 1]
        if scene_filter.has_route and len(current["roadblock_ids"]) == 0:
            continue
        out.append((current["token"], start))
    return out


class SceneLoader:
    """Scenes, agent inputs and raw frame windows of one split, addressed by scene token.

    Construct from a dataset root + split (``root`` defaults to ``$OPENSCENE_DATA_ROOT``; maps from
    ``<root>/maps`` or ``$NUPLAN_MAPS_ROOT``) or from explicit ``log_path`` / ``sensor_blobs_path`` /
    ``maps_root``. ``sensor_config`` says which blobs to read (default: none).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        split: str | None = None,
        scene_filter: SceneFilter | None = None,
        sensor_config: SensorConfig | None = None,
        *,
        log_path: str | os.PathLike | None = None,
        sensor_blobs_path: str | os.PathLike | None = None,
        maps_root: str | os.PathLike | None = None,
        load_maps: bool = True,
        log_cache_size: int | None = None,
        sensor_threads: int | None = None,
    ):
        self.layout = DatasetLayout.resolve(
            root, split, log_path=log_path, sensor_blobs_path=sensor_blobs_path, maps_root=maps_root
        )
        self.scene_filter = scene_filter if scene_filter is not None else SceneFilter()
        self.sensor_config = sensor_config if sensor_config is not None else SensorConfig.build_no_sensors()
        self.load_maps = load_maps
        self.log_cache_size = log_cache_size
        self.sensor_threads = sensor_threads if sensor_threads is not None else min(4, os.cpu_count() or 1)
        if self.sensor_config.any():
            self._require_blob_dir()

        self._refs: dict[str, SceneRef] = {}
        self._log_entries: dict[str, LogEntry] = {}
        self._log_paths: dict[str, Path] = {}
        self._cache: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._maps: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_pid = 0
        self._index()

    # ----------------------------------------------------------------------------------------- index
    def _log_files(self) -> list[Path]:
        files = list_log_files(self.layout.log_dir)
        wanted = self.scene_filter.log_names
        if wanted is not None:
            stems = {p.stem for p in files}
            missing = sorted(set(wanted) - stems)
            if missing:
                raise DataError(f"{self.layout.log_dir}: log(s) not found: {', '.join(missing[:5])}")
            keep = set(wanted)
            files = [p for p in files if p.stem in keep]
        return files

    def _index(self) -> None:
        sf = self.scene_filter
        wanted_tokens = set(sf.tokens) if sf.tokens is not None else None
        for path in self._log_files():
            log = read_log_file(path)
            self._remember(log)
            for token, start in scene_windows(log.frames, sf):
                if wanted_tokens is not None and token not in wanted_tokens:
                    continue
                if token in self._refs:
                    other = self._refs[token].log_name
                    raise DataError(
                        f"{path}: scene token {token} also occurs in log {other} (tokens must be unique)"
                    )
                self._refs[token] = SceneRef(log.log_name, start)
                if sf.max_scenes is not None and len(self._refs) >= sf.max_scenes:
                    return

    def _remember(self, log: LogFile) -> None:
        name = log.log_name
        self._log_paths[name] = log.path
        self._log_entries[name] = LogEntry(name, log.sha256, len(log.frames), log.num_bytes)
        self._put(name, log.frames)

    def _put(self, name: str, frames: list[dict[str, Any]]) -> None:
        with self._lock:
            self._cache[name] = frames
            self._cache.move_to_end(name)
            if self.log_cache_size is not None:
                while len(self._cache) > max(self.log_cache_size, 1):
                    self._cache.popitem(last=False)

    def _frames_of_log(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            frames = self._cache.get(name)
            if frames is not None:
                self._cache.move_to_end(name)
                return frames
        log = read_log_file(self._log_paths[name])
        if log.sha256 != self._log_entries[name].sha256:
            raise DataError(f"{log.path}: the log changed on disk since the loader indexed it")
        self._put(name, log.frames)
        return log.frames

    def _require_blob_dir(self) -> None:
        if self.layout.blob_dir is None or not self.layout.blob_dir.is_dir():
            where = self.layout.blob_dir or "(none configured)"
            raise DataError(
                f"{where}: sensor-blob directory not found, but the sensor config requests sensors"
            )

    # ------------------------------------------------------------------------------------ public API
    @property
    def tokens(self) -> list[str]:
        """Scene tokens in a stable order: sorted log names, then window order."""
        return list(self._refs)

    @property
    def logs(self) -> list[str]:
        """Names of the logs that were read (sorted)."""
        return list(self._log_entries)

    @property
    def split(self) -> str | None:
        return self.layout.split

    def __len__(self) -> int:
        return len(self._refs)

    def __contains__(self, token: object) -> bool:
        return token in self._refs

    def _ref(self, token: str) -> SceneRef:
        try:
            return self._refs[token]
        except KeyError:
            raise DataError(
                f"unknown scene token {token!r} in split {self.split} ({self.layout.log_dir})"
            ) from None

    def get_tokens_list_per_log(self) -> dict[str, list[str]]:
        """``{log_name: [scene tokens]}``, the grouping NAVSIM's caching/scoring workers use."""
        out: dict[str, list[str]] = {}
        for token, ref in self._refs.items():
            out.setdefault(ref.log_name, []).append(token)
        return out

    def get_frame_dicts(self, token: str) -> list[dict[str, Any]]:
        """The raw frame dicts of the scene's window (history + future); shared with the cache: don't mutate."""
        ref = self._ref(token)
        frames = self._frames_of_log(ref.log_name)
        return frames[ref.start : ref.start + self.scene_filter.num_frames]

    def get_scene_metadata(self, token: str) -> SceneMetadata:
        window = self.get_frame_dicts(token)
        current = window[self.scene_filter.num_history_frames - 1]
        return SceneMetadata(
            log_name=current["log_name"],
            scene_token=current["scene_token"],
            map_name=current["map_location"],
            initial_token=current["token"],
            num_history_frames=self.scene_filter.num_history_frames,
            num_future_frames=self.scene_filter.num_future_frames,
        )

    def get_agent_input_from_token(self, token: str, sensor_config: SensorConfig | None = None) -> AgentInput:
        """History frames only (never reads a future frame's blobs); poses relative to the current frame."""
        config = sensor_config if sensor_config is not None else self.sensor_config
        window = self.get_frame_dicts(token)
        history = window[: self.scene_filter.num_history_frames]
        return agent_input_from_dicts(history, config, self._blob_root(config), self._pool(config))

    def get_scene_from_token(self, token: str, sensor_config: SensorConfig | None = None) -> Scene:
        """The full window as a Scene with the map of its location attached (None if no maps are found)."""
        config = sensor_config if sensor_config is not None else self.sensor_config
        window = self.get_frame_dicts(token)
        location = window[self.scene_filter.num_history_frames - 1]["map_location"]
        return scene_from_dicts(
            window,
            self.scene_filter.num_history_frames,
            config,
            self._blob_root(config),
            map_api=self.get_map(location),
            executor=self._pool(config),
            source=f"{self._log_paths[self._refs[token].log_name]}: ",
        )

    def get_map(self, location: str) -> Any:
        """The map API of ``location`` (loaded once per location), or None without maps."""
        if not self.load_maps or self.layout.maps_root is None:
            return None
        with self._lock:
            if location in self._maps:
                return self._maps[location]
        loaded = _load_map(self.layout.maps_root, location)
        with self._lock:
            return self._maps.setdefault(location, loaded)

    def manifest(self) -> Manifest:
        """Manifest (log names, sha256, token counts) of the logs this loader read."""
        return Manifest.from_entries(self.split or self.layout.log_dir.name, self._log_entries.values())

    # ------------------------------------------------------------------------------------- internals
    def _blob_root(self, config: SensorConfig) -> Path | None:
        if config.any():
            self._require_blob_dir()
        return self.layout.blob_dir

    def _pool(self, config: SensorConfig) -> ThreadPoolExecutor | None:
        if not config.any() or self.sensor_threads <= 1:
            return None
        with self._lock:
            # A pool inherited through fork() (DataLoader workers) has no live threads: make a new one.
            if self._executor is None or self._executor_pid != os.getpid():
                self._executor = ThreadPoolExecutor(self.sensor_threads, thread_name_prefix="planlab-blobs")
                self._executor_pid = os.getpid()
            return self._executor

    def __getstate__(self) -> dict[str, Any]:
        # For DataLoader worker processes: ship the index, not the parsed logs, maps, pool or lock.
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        state["_maps"] = {}
        state["_executor"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SceneLoader(split={self.split!r}, scenes={len(self)}, logs={len(self._log_entries)})"


def _load_map(maps_root: Path, location: str) -> Any:
    """Adapter to the maps room's ``planlab.maps.load_map``; None while that function does not exist."""
    try:
        from planlab.maps import load_map  # type: ignore[attr-defined]
    except ImportError:
        return None
    return load_map(maps_root, location)
