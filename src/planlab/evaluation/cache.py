"""The metric cache: everything agent-independent about a scene, computed once, stored as ``.npz``.

One file per token, ``<cache>/<log_name>/<token>.npz`` (arrays only, ``allow_pickle=False``; text as a
JSON header), plus ``<cache>/index.json`` (token → log, format and scorer versions, build failures).
An entry holds (fact sheet §1.2): the initial ego state, PDM-Closed's 5 s trajectory *and* its
simulated states and sub-scores against the ground truth (so scoring an agent needs one simulation),
the ground-truth boxes interpolated to 10 Hz, the centerline, the on-route lane ids and the drivable
map polygons. Entries from another format or scorer version, or unreadable ones, are rebuilt by
``planlab eval cache`` and reported by path when scoring.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from planlab.atomic import atomic_open, atomic_write_text
from planlab.errors import DataError
from planlab.evaluation.frames import FrameObjectCache, frame_dynamics, frame_pose, planner_input
from planlab.evaluation.gt_observation import V11_HORIZON_S, GTObservation, interpolate_gt
from planlab.metrics.pdm.inputs import ScoringScene
from planlab.sim.pdm_closed.planner import PDMClosedPlanner, plan_many
from planlab.sim.vehicle import initial_state_array
from planlab.sim.world import DrivableMap

FORMAT_VERSION = 1
# bump when any agent-independent number the cache stores would change
SCORER_VERSION = "navsim-v1.1-pdms/planlab-1"
INDEX_FILE = "index.json"


class CacheEntryError(DataError):
    """A cache entry is missing, unreadable or from another format/scorer version."""


@dataclass
class MetricCacheEntry:
    """The agent-independent facts of one scene (see module docstring)."""

    token: str
    log_name: str
    map_name: str
    t0_us: int
    ego_pose: np.ndarray  # (3,) logged rear-axle pose
    ego_velocity: np.ndarray  # (2,)
    ego_acceleration: np.ndarray  # (2,)
    pdm_poses: np.ndarray  # (51, 3)
    pdm_times_us: np.ndarray  # (51,)
    pdm_states_v11: np.ndarray  # (41, 11) PDM-Closed simulated against the GT
    pdm_subscores_v11: dict[str, float]
    centerline_poses: np.ndarray  # (N, 3)
    route_block_ids: list[str]
    route_lane_ids: list[str]
    drivable: DrivableMap
    gt_v11: GTObservation
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def initial_state(self) -> np.ndarray:
        return initial_state_array(self.ego_pose, self.ego_velocity, self.ego_acceleration)

    @cached_property
    def centerline(self) -> shapely.LineString:
        return shapely.linestrings(self.centerline_poses[:, :2])

    def scoring_scene(self, version: str = "v1.1") -> ScoringScene:
        key = f"_scene_{version}"
        scene = self.__dict__.get(key)
        if scene is None:
            if version != "v1.1":
                raise ValueError(f"metric version {version!r} is not in this cache entry")
            scene = ScoringScene(self.token, self.gt_v11.object_tracks(), self.drivable, self.centerline)
            self.__dict__[key] = scene
        return scene

    # ------------------------------------------------------------------------------------ storage
    def to_arrays(self) -> dict[str, np.ndarray]:
        geometry_type, coords, offsets = (
            shapely.to_ragged_array(self.drivable.polygons)
            if len(self.drivable)
            else (None, np.zeros((0, 2)), (np.zeros(1, np.int64), np.zeros(1, np.int64)))
        )
        if geometry_type is not None and geometry_type != shapely.GeometryType.POLYGON:
            raise DataError(
                f"token {self.token}: drivable map holds non-polygon geometries ({geometry_type!r})"
            )
        meta = {
            "format_version": FORMAT_VERSION,
            "scorer_version": SCORER_VERSION,
            "token": self.token,
            "log_name": self.log_name,
            "map_name": self.map_name,
            "t0_us": int(self.t0_us),
            "pdm_subscores_v11": self.pdm_subscores_v11,
            "route_block_ids": self.route_block_ids,
            "route_lane_ids": self.route_lane_ids,
            "poly_tokens": self.drivable.tokens,
            "gt_tokens": self.gt_v11.tokens,
            "gt_names": self.gt_v11.names,
            "extra": self.extra,
        }
        g = self.gt_v11
        return {
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
            "ego": np.concatenate([self.ego_pose, self.ego_velocity, self.ego_acceleration]),
            "pdm_poses": self.pdm_poses,
            "pdm_times_us": self.pdm_times_us.astype(np.int64),
            "pdm_states_v11": self.pdm_states_v11,
            "centerline": self.centerline_poses,
            "poly_coords": np.asarray(coords, dtype=np.float64),
            "poly_ring_offsets": np.asarray(offsets[0], dtype=np.int64),
            "poly_offsets": np.asarray(offsets[1], dtype=np.int64),
            "poly_types": self.drivable.types.astype(np.int8),
            "poly_on_route": self.drivable.on_route.astype(bool),
            "gt_boxes": np.stack([g.x, g.y, g.heading]),
            "gt_present": g.present,
            "gt_sizes": np.stack([g.length, g.width, g.speed]) if len(g.tokens) else np.zeros((3, 0)),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "") -> MetricCacheEntry:
        meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
        if meta.get("format_version") != FORMAT_VERSION or meta.get("scorer_version") != SCORER_VERSION:
            raise CacheEntryError(
                f"{source}: cache entry is format {meta.get('format_version')} / scorer "
                f"{meta.get('scorer_version')!r}, expected {FORMAT_VERSION} / {SCORER_VERSION!r} (rebuild the cache)"
            )
        n_poly = len(meta["poly_tokens"])
        if n_poly:
            polygons = shapely.from_ragged_array(
                shapely.GeometryType.POLYGON,
                arrays["poly_coords"],
                (arrays["poly_ring_offsets"], arrays["poly_offsets"]),
            )
        else:
            polygons = np.empty(0, dtype=object)
        drivable = DrivableMap(meta["poly_tokens"], arrays["poly_types"], arrays["poly_on_route"], polygons)
        boxes, sizes = arrays["gt_boxes"], arrays["gt_sizes"]
        gt = GTObservation(
            tokens=list(meta["gt_tokens"]),
            names=list(meta["gt_names"]),
            x=boxes[0],
            y=boxes[1],
            heading=boxes[2],
            present=arrays["gt_present"].astype(bool),
            length=sizes[0],
            width=sizes[1],
            speed=sizes[2],
        )
        ego = arrays["ego"]
        return cls(
            token=meta["token"],
            log_name=meta["log_name"],
            map_name=meta["map_name"],
            t0_us=int(meta["t0_us"]),
            ego_pose=ego[0:3].copy(),
            ego_velocity=ego[3:5].copy(),
            ego_acceleration=ego[5:7].copy(),
            pdm_poses=arrays["pdm_poses"],
            pdm_times_us=arrays["pdm_times_us"],
            pdm_states_v11=arrays["pdm_states_v11"],
            pdm_subscores_v11={k: float(v) for k, v in meta["pdm_subscores_v11"].items()},
            centerline_poses=arrays["centerline"],
            route_block_ids=list(meta["route_block_ids"]),
            route_lane_ids=list(meta["route_lane_ids"]),
            drivable=drivable,
            gt_v11=gt,
            extra=dict(meta.get("extra", {})),
        )

    def save(self, path: Path) -> None:
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **self.to_arrays())

    @classmethod
    def load(cls, path: Path) -> MetricCacheEntry:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError:
            raise CacheEntryError(f"{path}: cache entry not found") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise CacheEntryError(f"{path}: unreadable cache entry ({type(exc).__name__}: {exc})") from None
        try:
            return cls.from_arrays(arrays, str(path))
        except CacheEntryError:
            raise
        except (KeyError, ValueError, TypeError, json.JSONDecodeError, IndexError) as exc:
            raise CacheEntryError(f"{path}: corrupt cache entry ({type(exc).__name__}: {exc})") from None


@dataclass
class SceneWindow:
    """One scene to cache: its frame window, the map API of its location and a label for messages."""

    window: list[dict[str, Any]]
    num_history_frames: int
    map_api: Any
    source: str = ""


def build_entries(
    scenes: Sequence[SceneWindow], objects: FrameObjectCache | None = None
) -> list[MetricCacheEntry | Exception]:
    """Cache entries of several scenes; PDM-Closed's and the reference's simulations run batched.

    A scene that cannot be cached (no map, bad route, too few future frames) yields its exception.
    """
    from planlab.evaluation.scoring import pdm_closed_score_fn_v11, score_states_v11, simulate_reference

    objects = objects if objects is not None else FrameObjectCache()
    jobs: list[tuple[Any, Any]] = []
    results: list[MetricCacheEntry | Exception | None] = [None] * len(scenes)
    gts: dict[int, GTObservation] = {}
    for i, sc in enumerate(scenes):
        try:
            current = sc.window[sc.num_history_frames - 1]
            if sc.map_api is None:
                raise DataError(f"{sc.source}no map available for location {current.get('map_location')!r}")
            gts[i] = interpolate_gt(sc.window, sc.num_history_frames, V11_HORIZON_S, sc.source, objects)
            jobs.append(
                (i, (planner_input(sc.window, sc.num_history_frames, sc.source, objects), sc.map_api))
            )
        except (DataError, KeyError, ValueError, TypeError, IndexError) as exc:
            results[i] = (
                exc
                if isinstance(exc, DataError)
                else DataError(f"{sc.source}bad frame data ({type(exc).__name__}: {exc})")
            )
    plans = plan_many(PDMClosedPlanner(), [job for _, job in jobs], pdm_closed_score_fn_v11)
    built: list[int] = []
    for (i, _), plan in zip(jobs, plans, strict=True):
        if isinstance(plan, Exception):
            results[i] = plan
            continue
        sc = scenes[i]
        current = sc.window[sc.num_history_frames - 1]
        velocity, acceleration = frame_dynamics(current)
        results[i] = MetricCacheEntry(
            token=str(current["token"]),
            log_name=str(current["log_name"]),
            map_name=str(current["map_location"]),
            t0_us=int(current["timestamp"]),
            ego_pose=frame_pose(current),
            ego_velocity=velocity,
            ego_acceleration=acceleration,
            pdm_poses=plan.poses,
            pdm_times_us=plan.times_us,
            pdm_states_v11=np.zeros((0, 11)),
            pdm_subscores_v11={},
            centerline_poses=plan.centerline.poses,
            route_block_ids=plan.route_block_ids,
            route_lane_ids=plan.route_lane_ids,
            drivable=plan.drivable,
            gt_v11=gts[i],
            extra={"pdm_best_proposal": plan.best_index, "starting_lane": plan.starting_lane_id},
        )
        built.append(i)
    if built:
        entries = [results[i] for i in built]
        states = simulate_reference(entries)  # type: ignore[arg-type]
        sub = score_states_v11(entries, states).as_dict()  # type: ignore[arg-type]
        for k, i in enumerate(built):
            entry = results[i]
            entry.pdm_states_v11 = states[k]  # type: ignore[union-attr]
            entry.pdm_subscores_v11 = {name: float(v[k]) for name, v in sub.items()}  # type: ignore[union-attr]
    return results  # type: ignore[return-value]


def build_entry(
    window: list[dict[str, Any]], num_history_frames: int, map_api: Any, source: str = ""
) -> MetricCacheEntry:
    """The cache entry of one scene window (current frame = index ``num_history_frames - 1``)."""
    result = build_entries([SceneWindow(window, num_history_frames, map_api, source)])[0]
    if isinstance(result, Exception):
        raise result
    return result


# ---------------------------------------------------------------------------------------------------------
# the cache directory


@dataclass
class CacheIndex:
    """``index.json``: which tokens the cache holds (token → log) and which failed to build (token → reason)."""

    entries: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # tokens (cached or failed) in the loader's order
    format_version: int = FORMAT_VERSION
    scorer_version: str = SCORER_VERSION

    def to_json(self) -> str:
        return json.dumps(
            {
                "format_version": self.format_version,
                "scorer_version": self.scorer_version,
                "dataset": self.dataset,
                "entries": dict(sorted(self.entries.items())),
                "failures": dict(sorted(self.failures.items())),
                "order": self.order,
            },
            indent=1,
        )

    @classmethod
    def read(cls, path: Path) -> CacheIndex:
        try:
            data = json.loads(path.read_text())
            return cls(
                entries={str(k): str(v) for k, v in data["entries"].items()},
                failures={str(k): str(v) for k, v in data.get("failures", {}).items()},
                dataset=dict(data.get("dataset", {})),
                order=[str(t) for t in data.get("order", [])],
                format_version=int(data.get("format_version", -1)),
                scorer_version=str(data.get("scorer_version", "")),
            )
        except FileNotFoundError:
            raise CacheEntryError(
                f"{path}: no metric cache index (build it with `planlab eval cache`)"
            ) from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CacheEntryError(
                f"{path}: unreadable metric cache index ({type(exc).__name__}: {exc})"
            ) from None


def _safe_component(name: str, what: str) -> str:
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise DataError(f"{what} {name!r} cannot be used as a cache file name")
    return name


class MetricCache:
    """A metric-cache directory: ``<root>/<log>/<token>.npz`` + ``index.json``; entries load lazily."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._index: CacheIndex | None = None

    @property
    def index_path(self) -> Path:
        return self.root / INDEX_FILE

    @property
    def index(self) -> CacheIndex:
        if self._index is None:
            self._index = CacheIndex.read(self.index_path)
        return self._index

    def exists(self) -> bool:
        return self.index_path.is_file()

    def entry_path(self, log_name: str, token: str) -> Path:
        return self.root / _safe_component(log_name, "log name") / f"{_safe_component(token, 'token')}.npz"

    @property
    def tokens(self) -> list[str]:
        """Cached tokens in the loader's order."""
        return [t for t in self.order if t in self.index.entries]

    @property
    def order(self) -> list[str]:
        """Every token the cache knows (cached or failed), in the order of the loader that built it."""
        idx = self.index
        listed = [t for t in idx.order if t in idx.entries or t in idx.failures]
        seen = set(listed)
        return listed + sorted(t for t in (*idx.entries, *idx.failures) if t not in seen)

    def __contains__(self, token: object) -> bool:
        return token in self.index.entries

    def path_of(self, token: str) -> Path:
        log = self.index.entries.get(token)
        if log is None:
            reason = self.index.failures.get(token)
            if reason is not None:
                raise CacheEntryError(f"{self.root}: token {token} could not be cached: {reason}")
            raise CacheEntryError(f"{self.root}: token {token} is not in the metric cache")
        return self.entry_path(log, token)

    def load(self, token: str) -> MetricCacheEntry:
        """The entry of ``token``; CacheEntryError (naming the file) when missing, corrupt or outdated."""
        return MetricCacheEntry.load(self.path_of(token))

    def write_index(self, index: CacheIndex) -> None:
        atomic_write_text(self.index_path, index.to_json() + "\n")
        self._index = index

    def check_versions(self) -> None:
        idx = self.index
        if idx.format_version != FORMAT_VERSION or idx.scorer_version != SCORER_VERSION:
            raise CacheEntryError(
                f"{self.index_path}: cache is format {idx.format_version} / scorer {idx.scorer_version!r}, "
                f"this planlab needs {FORMAT_VERSION} / {SCORER_VERSION!r} (rebuild with `planlab eval cache`)"
            )


@dataclass
class CacheBuildReport:
    """What :func:`build_cache` did."""

    root: Path
    built: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def num_tokens(self) -> int:
        return len(self.built) + len(self.reused) + len(self.failed)


def _entry_is_current(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
        return meta.get("format_version") == FORMAT_VERSION and meta.get("scorer_version") == SCORER_VERSION
    except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt
        return False


def _build_log_chunk(
    args: tuple[Any, list[str], str, int],
) -> tuple[list[tuple[str, str]], dict[str, str], float]:
    """Worker: build and write the entries of some tokens; returns ((token, log) built, failures, cpu s)."""
    loader, tokens, root, chunk_size = args
    cache = MetricCache(root)
    objects = FrameObjectCache()
    built: list[tuple[str, str]] = []
    failed: dict[str, str] = {}
    t0 = time.process_time()
    h = loader.scene_filter.num_history_frames
    for start in range(0, len(tokens), chunk_size):
        part = tokens[start : start + chunk_size]
        scenes = []
        for token in part:
            window = loader.get_frame_dicts(token)
            location = window[h - 1].get("map_location")
            try:
                map_api = loader.get_map(location)
            except DataError as exc:
                map_api = None
                failed[token] = str(exc)
            scenes.append(SceneWindow(window, h, map_api, f"token {token}: "))
        for token, result in zip(part, build_entries(scenes, objects), strict=True):
            if isinstance(result, Exception):
                failed.setdefault(token, str(result))
                continue
            failed.pop(token, None)
            result.save(cache.entry_path(result.log_name, token))
            built.append((token, result.log_name))
    return built, failed, time.process_time() - t0


def build_cache(
    loader: Any,
    root: str | os.PathLike,
    workers: int = 1,
    tokens: Iterable[str] | None = None,
    rebuild: bool = False,
    chunk_size: int = 16,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> CacheBuildReport:
    """Build (or complete) the metric cache of ``loader``'s scenes under ``root``.

    Existing entries of the current format are reused unless ``rebuild``; corrupt or outdated ones are
    rebuilt. Work is split by log across ``workers`` processes. A scene that cannot be cached is
    recorded in the index with its reason and the others go on.
    """
    started, cpu0 = time.perf_counter(), time.process_time()
    cache = MetricCache(root)
    cache.root.mkdir(parents=True, exist_ok=True)
    wanted = list(tokens) if tokens is not None else list(loader.tokens)
    per_log = loader.get_tokens_list_per_log()
    log_of = {t: log for log, toks in per_log.items() for t in toks}
    unknown = [t for t in wanted if t not in log_of]
    if unknown:
        raise DataError(f"token(s) not in split {loader.split}: {', '.join(unknown[:5])}")
    old = CacheIndex.read(cache.index_path) if cache.exists() else CacheIndex()
    report = CacheBuildReport(cache.root)
    todo: dict[str, list[str]] = {}
    for token in wanted:
        log = log_of[token]
        path = cache.entry_path(log, token)
        if not rebuild and path.is_file() and _entry_is_current(path):
            report.reused.append(token)
        else:
            todo.setdefault(log, []).append(token)
    index = CacheIndex(
        entries={t: log_of[t] for t in report.reused},
        failures={},
        dataset={"split": loader.split, "log_dir": str(loader.layout.log_dir)},
    )
    # keep entries of tokens outside this request that are still on disk
    for t, log in old.entries.items():
        if t not in log_of or t not in wanted:
            if cache.entry_path(log, t).is_file():
                index.entries.setdefault(t, log)
    jobs = [(loader, toks, str(cache.root), chunk_size) for _, toks in sorted(todo.items())]
    total = sum(len(t) for t in todo.values())
    bar = _progress_bar(total, progress, "metric cache")
    cpu_workers = 0.0
    try:
        for built, failed, cpu in _map_jobs(_build_log_chunk, jobs, workers):
            for token, log in built:
                index.entries[token] = log
                report.built.append(token)
            for token, reason in failed.items():
                index.failures[token] = reason
                report.failed[token] = reason
            cpu_workers += cpu
            n = len(built) + len(failed)
            bar.update(n)
            if on_progress is not None:
                on_progress(n)
    finally:
        bar.close()
        loader_order = [t for t in loader.tokens if t in index.entries or t in index.failures]
        known = set(loader_order)
        index.order = loader_order + [t for t in old.order if t not in known and t in index.entries]
        cache.write_index(index)
    report.seconds = time.perf_counter() - started
    report.cpu_seconds = (time.process_time() - cpu0) + (cpu_workers if workers > 1 else 0.0)
    return report


def load_entries(
    cache: MetricCache, tokens: Sequence[str]
) -> tuple[list[MetricCacheEntry | None], dict[str, str]]:
    """Entries for ``tokens`` (None where missing) and token → reason for those that could not be loaded."""
    out: list[MetricCacheEntry | None] = []
    errors: dict[str, str] = {}
    for token in tokens:
        try:
            out.append(cache.load(token))
        except CacheEntryError as exc:
            out.append(None)
            errors[token] = str(exc)
    return out, errors


def _map_jobs(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterable[Any]:
    """Run jobs in ``workers`` processes (in-process when 1), yielding results as they complete."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    with ctx.Pool(processes=min(workers, len(jobs))) as pool:
        yield from pool.imap_unordered(fn, jobs)


class _NullBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled or total == 0:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="scene", leave=False)
