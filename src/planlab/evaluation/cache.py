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
import sys
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
SCORER_VERSION = "navsim-v1.1-pdms+navsim-main-epdms/planlab-2"  # 2: batch-invariant operators
INDEX_FILE = "index.json"


class CacheEntryError(DataError):
    """A cache entry is missing, unreadable or from another format/scorer version."""


_BLOBS = {"f": np.float64, "i": np.int64, "b": np.uint8}


def pack_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Few large members instead of many small ones (npz reads cost per member): one blob per dtype
    kind plus a JSON layout; ``meta`` stays its own member."""
    layout: list[list[Any]] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _BLOBS}
    sizes = dict.fromkeys(_BLOBS, 0)
    for name, arr in arrays.items():
        if name == "meta":
            continue
        arr = np.asarray(arr)
        kind = (
            "f"
            if arr.dtype.kind == "f"
            else "i"
            if arr.dtype.kind in "iu" and arr.dtype.itemsize > 1
            else "b"
        )
        flat = arr.astype(_BLOBS[kind], copy=False).ravel()
        layout.append([name, kind, str(arr.dtype), list(arr.shape), sizes[kind]])
        parts[kind].append(flat)
        sizes[kind] += flat.size
    out = {
        "meta": arrays["meta"],
        "layout": np.frombuffer(json.dumps(layout).encode("utf-8"), dtype=np.uint8),
    }
    for kind, dtype in _BLOBS.items():
        out[f"blob_{kind}"] = np.concatenate(parts[kind]) if parts[kind] else np.zeros(0, dtype)
    return out


def unpack_arrays(members: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_arrays` (a file without a layout is returned unchanged)."""
    if "layout" not in members:
        return members
    layout = json.loads(bytes(members["layout"]).decode("utf-8"))
    out = {"meta": members["meta"]}
    for name, kind, dtype, shape, offset in layout:
        size = int(np.prod(shape)) if shape else 1
        out[name] = members[f"blob_{kind}"][offset : offset + size].astype(dtype).reshape(shape)
    return out


def _polygons_to_arrays(prefix: str, polygons: np.ndarray) -> dict[str, np.ndarray]:
    """Polygons as coordinate arrays + ring/polygon offsets (shapely ragged arrays; no pickle)."""
    if len(polygons) == 0:
        return {
            f"{prefix}_coords": np.zeros((0, 2)),
            f"{prefix}_ring_offsets": np.zeros(1, np.int64),
            f"{prefix}_offsets": np.zeros(1, np.int64),
        }
    geometry_type, coords, offsets = shapely.to_ragged_array(polygons)
    if geometry_type != shapely.GeometryType.POLYGON:
        raise DataError(f"expected polygons, got {geometry_type!r}")
    return {
        f"{prefix}_coords": np.asarray(coords, dtype=np.float64),
        f"{prefix}_ring_offsets": np.asarray(offsets[0], dtype=np.int64),
        f"{prefix}_offsets": np.asarray(offsets[1], dtype=np.int64),
    }


def _polygons_from_arrays(prefix: str, arrays: dict[str, np.ndarray], count: int) -> np.ndarray:
    if count == 0:
        return np.empty(0, dtype=object)
    return shapely.from_ragged_array(
        shapely.GeometryType.POLYGON,
        arrays[f"{prefix}_coords"],
        (arrays[f"{prefix}_ring_offsets"], arrays[f"{prefix}_offsets"]),
    )


def _gt_to_arrays(prefix: str, g: GTObservation) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_boxes": np.stack([g.x, g.y, g.heading]),
        f"{prefix}_present": g.present,
        f"{prefix}_sizes": np.stack([g.length, g.width, g.speed]) if len(g.tokens) else np.zeros((3, 0)),
    }


def _gt_from_arrays(
    prefix: str, arrays: dict[str, np.ndarray], tokens: list[str], names: list[str]
) -> GTObservation:
    boxes, sizes = arrays[f"{prefix}_boxes"], arrays[f"{prefix}_sizes"]
    return GTObservation(
        tokens=list(tokens),
        names=list(names),
        x=boxes[0],
        y=boxes[1],
        heading=boxes[2],
        present=arrays[f"{prefix}_present"].astype(bool),
        length=sizes[0],
        width=sizes[1],
        speed=sizes[2],
    )


@dataclass
class V2Parts:
    """What a cache entry adds for NAVSIM v2 (EPDMS); see :mod:`planlab.evaluation.epdms`."""

    gt: GTObservation  # 41 steps (frames 0..8)
    red_light_ids: list[list[str]]  # per future 2 Hz frame, red on-route connectors
    red_light_polygons: dict[str, Any]  # connector id → polygon
    history_states: np.ndarray  # (14|15, 11) logged past for history comfort
    human_poses: np.ndarray  # (8, 3) logged future, current rear-axle frame
    human_subscores: dict[str, float]  # the human filter's reference
    pdm_poses: np.ndarray  # (51, 3) PDM-Closed selected with the v2 scorer
    pdm_states: np.ndarray  # (41, 11) simulated against the v2 ground truth
    pdm_subscores: dict[str, float]


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
    v2: V2Parts | None = None

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("pdms", "epdms") if self.v2 is not None else ("pdms",)

    @cached_property
    def initial_state(self) -> np.ndarray:
        return initial_state_array(self.ego_pose, self.ego_velocity, self.ego_acceleration)

    @cached_property
    def centerline(self) -> shapely.LineString:
        return shapely.linestrings(self.centerline_poses[:, :2])

    @property
    def history_states(self) -> np.ndarray | None:
        return None if self.v2 is None else self.v2.history_states

    @property
    def pdm_subscores_v2(self) -> dict[str, float]:
        return self._v2().pdm_subscores

    @property
    def human_subscores_v2(self) -> dict[str, float]:
        return self._v2().human_subscores

    def _v2(self) -> V2Parts:
        if self.v2 is None:
            raise CacheEntryError(
                f"token {self.token}: the cache was built without epdms (rebuild with --metric epdms)"
            )
        return self.v2

    def scoring_scene(self, version: str = "v1.1") -> ScoringScene:
        key = f"_scene_{version}"
        scene = self.__dict__.get(key)
        if scene is None:
            if version == "v1.1":
                scene = ScoringScene(self.token, self.gt_v11.object_tracks(), self.drivable, self.centerline)
            elif version == "v2":
                from planlab.evaluation.epdms import log_replay_tracks, red_lights_per_step

                v2 = self._v2()
                tracks = log_replay_tracks(v2.gt, self.initial_state)
                red = red_lights_per_step(v2.red_light_ids, v2.red_light_polygons, tracks.num_steps)
                scene = ScoringScene(self.token, tracks, self.drivable, self.centerline, red)
            else:
                raise ValueError(f"unknown metric version {version!r}")
            self.__dict__[key] = scene
        return scene

    # ------------------------------------------------------------------------------------ storage
    def to_arrays(self) -> dict[str, np.ndarray]:
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "scorer_version": SCORER_VERSION,
            "metrics": list(self.metrics),
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
        arrays = {
            "ego": np.concatenate([self.ego_pose, self.ego_velocity, self.ego_acceleration]),
            "pdm_poses": self.pdm_poses,
            "pdm_times_us": self.pdm_times_us.astype(np.int64),
            "pdm_states_v11": self.pdm_states_v11,
            "centerline": self.centerline_poses,
            "poly_types": self.drivable.types.astype(np.int8),
            "poly_on_route": self.drivable.on_route.astype(bool),
            **_polygons_to_arrays("poly", self.drivable.polygons),
            **_gt_to_arrays("gt", self.gt_v11),
        }
        if self.v2 is not None:
            v2 = self.v2
            red_ids = sorted(v2.red_light_polygons)
            red_polys = np.empty(len(red_ids), dtype=object)
            red_polys[:] = [v2.red_light_polygons[i] for i in red_ids]
            meta["v2"] = {
                "gt_tokens": v2.gt.tokens,
                "gt_names": v2.gt.names,
                "red_light_ids": v2.red_light_ids,
                "red_polygon_ids": red_ids,
                "human_subscores": v2.human_subscores,
                "pdm_subscores": v2.pdm_subscores,
            }
            arrays.update(_gt_to_arrays("gt2", v2.gt))
            arrays.update(_polygons_to_arrays("red", red_polys))
            arrays["history_states"] = v2.history_states
            arrays["human_poses"] = v2.human_poses
            arrays["pdm2_poses"] = v2.pdm_poses
            arrays["pdm2_states"] = v2.pdm_states
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], source: str = "") -> MetricCacheEntry:
        meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
        if meta.get("format_version") != FORMAT_VERSION or meta.get("scorer_version") != SCORER_VERSION:
            raise CacheEntryError(
                f"{source}: cache entry is format {meta.get('format_version')} / scorer "
                f"{meta.get('scorer_version')!r}, expected {FORMAT_VERSION} / {SCORER_VERSION!r} (rebuild the cache)"
            )
        polygons = _polygons_from_arrays("poly", arrays, len(meta["poly_tokens"]))
        drivable = DrivableMap(meta["poly_tokens"], arrays["poly_types"], arrays["poly_on_route"], polygons)
        ego = arrays["ego"]
        v2 = None
        if "v2" in meta:
            m2 = meta["v2"]
            red_polys = _polygons_from_arrays("red", arrays, len(m2["red_polygon_ids"]))
            v2 = V2Parts(
                gt=_gt_from_arrays("gt2", arrays, m2["gt_tokens"], m2["gt_names"]),
                red_light_ids=[list(ids) for ids in m2["red_light_ids"]],
                red_light_polygons=dict(zip(m2["red_polygon_ids"], red_polys, strict=True)),
                history_states=arrays["history_states"],
                human_poses=arrays["human_poses"],
                human_subscores={k: float(v) for k, v in m2["human_subscores"].items()},
                pdm_poses=arrays["pdm2_poses"],
                pdm_states=arrays["pdm2_states"],
                pdm_subscores={k: float(v) for k, v in m2["pdm_subscores"].items()},
            )
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
            gt_v11=_gt_from_arrays("gt", arrays, meta["gt_tokens"], meta["gt_names"]),
            extra=dict(meta.get("extra", {})),
            v2=v2,
        )

    def save(self, path: Path) -> None:
        with atomic_open(path, "wb") as fh:
            np.savez(fh, **pack_arrays(self.to_arrays()))

    @classmethod
    def load(cls, path: Path) -> MetricCacheEntry:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = unpack_arrays({k: npz[k] for k in npz.files})
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
    scenes: Sequence[SceneWindow],
    objects: FrameObjectCache | None = None,
    metrics: Sequence[str] = ("pdms",),
) -> list[MetricCacheEntry | Exception]:
    """Cache entries of several scenes; PDM-Closed's and the reference's simulations run batched.

    ``metrics`` (``pdms``, ``epdms``) says which parts to compute; PDM-Closed is prepared once and
    selected with each metric's scorer. A scene that cannot be cached (no map, bad route, too few
    future frames) yields its exception.
    """
    from planlab.evaluation import epdms as v2mod
    from planlab.evaluation.scoring import (
        pdm_closed_score_fn_v11,
        score_states_v11,
        simulate_agent,
        simulate_reference,
    )

    with_v2 = "epdms" in metrics
    objects = objects if objects is not None else FrameObjectCache()
    jobs: list[tuple[Any, Any]] = []
    results: list[MetricCacheEntry | Exception | None] = [None] * len(scenes)
    gts: dict[int, GTObservation] = {}
    gts2: dict[int, GTObservation] = {}
    for i, sc in enumerate(scenes):
        try:
            current = sc.window[sc.num_history_frames - 1]
            if sc.map_api is None:
                raise DataError(f"{sc.source}no map available for location {current.get('map_location')!r}")
            gts[i] = interpolate_gt(sc.window, sc.num_history_frames, V11_HORIZON_S, sc.source, objects)
            if with_v2:
                gts2[i] = interpolate_gt(
                    sc.window, sc.num_history_frames, v2mod.V2_HORIZON_S, sc.source, objects
                )
            jobs.append(
                (i, (planner_input(sc.window, sc.num_history_frames, sc.source, objects), sc.map_api))
            )
        except (DataError, KeyError, ValueError, TypeError, IndexError) as exc:
            results[i] = (
                exc
                if isinstance(exc, DataError)
                else DataError(f"{sc.source}bad frame data ({type(exc).__name__}: {exc})")
            )
    fns = {"pdms": pdm_closed_score_fn_v11}
    if with_v2:
        fns["epdms"] = v2mod.pdm_closed_score_fn_v2
    plans = plan_many(PDMClosedPlanner(), [job for _, job in jobs], fns)
    built: list[int] = []
    for (i, _), plan_set in zip(jobs, plans, strict=True):
        if isinstance(plan_set, Exception):
            results[i] = plan_set
            continue
        plan = plan_set["pdms"]
        sc = scenes[i]
        current = sc.window[sc.num_history_frames - 1]
        velocity, acceleration = frame_dynamics(current)
        entry = MetricCacheEntry(
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
        if with_v2:
            try:
                lanes = v2mod.uncorrected_route_lanes(sc.map_api, current)
                ids = v2mod.red_light_ids(sc.window, sc.num_history_frames, set(lanes), 9)
                entry.v2 = V2Parts(
                    gt=gts2[i],
                    red_light_ids=ids,
                    red_light_polygons={c: lanes[c].polygon for frame_ids in ids for c in frame_ids},
                    history_states=v2mod.history_states(sc.window, sc.num_history_frames),
                    human_poses=v2mod.human_future(sc.window, sc.num_history_frames),
                    human_subscores={},
                    pdm_poses=plan_set["epdms"].poses,
                    pdm_states=np.zeros((0, 11)),
                    pdm_subscores={},
                )
                entry.extra["pdm_best_proposal_v2"] = plan_set["epdms"].best_index
            except (DataError, KeyError, ValueError, IndexError) as exc:
                results[i] = DataError(f"{sc.source}v2 cache parts failed ({type(exc).__name__}: {exc})")
                continue
        results[i] = entry
        built.append(i)
    if built:
        entries: list[MetricCacheEntry] = [results[i] for i in built]  # type: ignore[misc]
        states = simulate_reference(entries)
        sub = score_states_v11(entries, states).as_dict()
        for k, entry in enumerate(entries):
            entry.pdm_states_v11 = states[k]
            entry.pdm_subscores_v11 = {name: float(v[k]) for name, v in sub.items()}
        if with_v2:
            times = np.stack([e.pdm_times_us for e in entries])
            pdm2 = simulate_reference(
                entries, poses=np.stack([e.v2.pdm_poses for e in entries]), times_us=times
            )  # type: ignore[union-attr]
            sub2 = v2mod.score_states_v2(entries, pdm2)
            human_states = simulate_agent(entries, np.stack([e.v2.human_poses for e in entries]), 0.5)  # type: ignore[union-attr]
            human = v2mod.score_states_v2(entries, human_states, with_history=False)
            for k, entry in enumerate(entries):
                assert entry.v2 is not None
                entry.v2.pdm_states = pdm2[k]
                vals = v2mod.subscore_dict(sub2, k)
                entry.v2.pdm_subscores = vals
                # the human alone: one proposal, so EP = 1; no history, so HC = 1
                hvals = v2mod.subscore_dict(human, k)
                hvals["ego_progress"] = 1.0
                entry.v2.human_subscores = hvals
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
    cpu_seconds: float = 0.0  # this process plus every worker
    parent_cpu_seconds: float = 0.0  # this process alone
    worker_cpu_seconds: dict[int, float] = field(default_factory=dict)  # worker pid -> CPU s (workers > 1)

    @property
    def critical_path_cpu_seconds(self) -> float:
        """CPU seconds on the busiest path: this process plus its busiest worker (the wall time of an
        otherwise idle machine with a core per worker)."""
        return self.parent_cpu_seconds + max(self.worker_cpu_seconds.values(), default=0.0)

    @property
    def num_tokens(self) -> int:
        return len(self.built) + len(self.reused) + len(self.failed)


def _entry_is_current(path: Path, metrics: Sequence[str] = ("pdms",)) -> bool:
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
        return (
            meta.get("format_version") == FORMAT_VERSION
            and meta.get("scorer_version") == SCORER_VERSION
            and set(metrics) <= set(meta.get("metrics", []))
        )
    except Exception:  # noqa: BLE001 - any unreadable entry is rebuilt
        return False


def _build_log_chunk(
    args: tuple[Any, list[str], str, int, tuple[str, ...]],
) -> tuple[list[tuple[str, str]], dict[str, str], float, int]:
    """Worker: build and write the entries of some tokens; returns ((token, log) built, failures, cpu s, pid)."""
    loader, tokens, root, chunk_size, metrics = args
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
        for token, result in zip(part, build_entries(scenes, objects, metrics), strict=True):
            if isinstance(result, Exception):
                failed.setdefault(token, str(result))
                continue
            failed.pop(token, None)
            result.save(cache.entry_path(result.log_name, token))
            built.append((token, result.log_name))
    return built, failed, time.process_time() - t0, os.getpid()


def build_cache(
    loader: Any,
    root: str | os.PathLike,
    workers: int = 1,
    tokens: Iterable[str] | None = None,
    rebuild: bool = False,
    chunk_size: int = 16,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
    metrics: Sequence[str] = ("pdms",),
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
        if not rebuild and path.is_file() and _entry_is_current(path, metrics):
            report.reused.append(token)
        else:
            todo.setdefault(log, []).append(token)
    index = CacheIndex(
        entries={t: log_of[t] for t in report.reused},
        failures={},
        dataset={"split": loader.split, "log_dir": str(loader.layout.log_dir), "metrics": sorted(metrics)},
    )
    # keep entries of tokens outside this request that are still on disk
    for t, log in old.entries.items():
        if t not in log_of or t not in wanted:
            if cache.entry_path(log, t).is_file():
                index.entries.setdefault(t, log)
    metrics = tuple(sorted(set(metrics) | {"pdms"}))
    total = sum(len(t) for t in todo.values())
    # jobs never mix logs (frame conversions are shared inside a log); with several workers a log is cut
    # into pieces so that the pool stays balanced
    piece = max(8, -(-total // (workers * 2))) if workers > 1 else max(total, 1)
    jobs = [
        (loader, toks[i : i + piece], str(cache.root), chunk_size, metrics)
        for _, toks in sorted(todo.items())
        for i in range(0, len(toks), piece)
    ]
    bar = _progress_bar(total, progress, "metric cache")
    cpu_workers = 0.0
    try:
        for built, failed, cpu, pid in _map_jobs(_build_log_chunk, jobs, workers):
            for token, log in built:
                index.entries[token] = log
                report.built.append(token)
            for token, reason in failed.items():
                index.failures[token] = reason
                report.failed[token] = reason
            if pid != os.getpid():  # ran in a pool worker (else its CPU is already this process's)
                cpu_workers += cpu
                report.worker_cpu_seconds[pid] = report.worker_cpu_seconds.get(pid, 0.0) + cpu
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
    report.parent_cpu_seconds = time.process_time() - cpu0
    report.cpu_seconds = report.parent_cpu_seconds + cpu_workers
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


def _start_method() -> str:
    """``fork`` (cheap, shares the parent's parsed logs) unless torch is loaded in this process.

    Forking after torch has started its OpenMP/intra-op thread pool can deadlock the children (seen with
    learned agents loaded by ``planlab eval run --checkpoint``), so then a fresh ``forkserver`` process
    (which never imported torch) forks the workers instead; jobs are pickled to it.
    """
    import multiprocessing as mp

    methods = mp.get_all_start_methods()
    if "torch" in sys.modules:
        return "forkserver" if "forkserver" in methods else "spawn"
    return "fork" if "fork" in methods else methods[0]


def _map_jobs(fn: Callable[[Any], Any], jobs: list[Any], workers: int) -> Iterable[Any]:
    """Run jobs in ``workers`` processes (in-process when 1), yielding results as they complete."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield fn(job)
        return
    import multiprocessing as mp

    ctx = mp.get_context(_start_method())
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
