"""``planlab data generate``: a whole dataset in the NAVSIM layout from a preset and a seed.

    <out>/maps/nuplan-maps-v1.0.json, <out>/maps/<location>/<version>/map.gpkg   (all four locations)
    <out>/navsim_logs/<split>/<log_name>.pkl
    <out>/sensor_blobs/<split>/<log_name>/CAM_*/<token>.jpg, .../MergedPointCloud/<token>.pcd
    <out>/dataset.json                                                          (written last)

Everything is a function of (config, seed): logs can be made in parallel processes and the bytes do not
change. Splits are by log (``planlab.data.splits``' seeded order). While generating, a ``.generating`` marker
sits in the root and ``dataset.json`` is absent, so a half-written dataset never looks complete.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_write_text
from planlab.config import config_hash, to_dict
from planlab.errors import ConfigError, DataError
from planlab.world.config import WorldConfig

FORMAT = "planlab-world/1"
MARKER = ".generating"
SUMMARY = "dataset.json"
TIMESTAMP_BASE_US = 1_600_000_000_000_000  # 2020-09-13, µs
OWNED = ("navsim_logs", "sensor_blobs", "maps", SUMMARY, MARKER)
SCENE_HISTORY, SCENE_FUTURE = 4, 10  # NAVSIM's standard scene (fact sheet §3.3)
MAX_BUILDINGS = 8  # buildings handed to the sensors per frame (each object costs render time)
OBJECT_RADIUS = 110.0  # m: agents handed to the sensors (annotations reach 100 m, the LiDAR 100 m)


@dataclass(frozen=True)
class LogPlan:
    """What one log will be: its name, split, town, scenario, seeds and lighting."""

    index: int
    name: str
    split: str
    location: str
    scenario: str
    seed: int
    hour: float
    sun_azimuth: float
    visibility: float


def _rng(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) & 0xFFFFFFFF for p in parts])


def plan_logs(cfg: WorldConfig, seed: int) -> list[LogPlan]:
    """The deterministic plan of every log (locations, scenarios, seeds, splits) for ``cfg`` and ``seed``."""
    from planlab.data.splits import part_sizes, seeded_order

    names = [f"{cfg.name}_s{seed}_{i:05d}" for i in range(cfg.logs)]
    order = seeded_order(names, seed, "world-split")
    sizes = part_sizes(len(names), dict(cfg.splits))
    split_of: dict[str, str] = {}
    pos = 0
    for part, n in sizes.items():
        for name in order[pos : pos + n]:
            split_of[name] = part
        pos += n
    locs, lw = zip(*sorted(cfg.locations.items()), strict=True)
    kinds, kw = zip(*sorted(cfg.scenarios.items()), strict=True)
    lw_ = np.array(lw, dtype=float) / sum(lw)
    kw_ = np.array(kw, dtype=float) / sum(kw)
    plans = []
    for i, name in enumerate(names):
        r = _rng(seed, i, 17)
        loc = str(locs[int(r.choice(len(locs), p=lw_))])
        kind = str(kinds[int(r.choice(len(kinds), p=kw_))])
        if cfg.difficulty.lighting == "day":
            hour = float(r.uniform(9.0, 16.0))
        elif cfg.difficulty.lighting == "mixed":
            hour = float(r.uniform(6.5, 19.5))
        else:
            hour = float(r.uniform(0.0, 23.99))
        plans.append(
            LogPlan(
                i,
                name,
                split_of[name],
                loc,
                kind,
                int(r.integers(2**31 - 1)),
                hour,
                float(r.uniform(0.0, 360.0)),
                float(cfg.difficulty.visibility_m * r.uniform(0.7, 1.3)),
            )
        )
    return plans


# ---- per-process caches (towns are rebuilt deterministically in every worker) --------------------------------------
_TOWNS: dict[tuple[str, int], Any] = {}
_MAPS: dict[tuple[str, int], Any] = {}


def town(location: str, seed: int):
    """The road network of ``location`` for a dataset ``seed`` (cached per process)."""
    from planlab.world.towns import build_town

    key = (location, seed)
    if key not in _TOWNS:
        _TOWNS[key] = build_town(location, seed)
    return _TOWNS[key]


def _map_api(location: str, seed: int):
    from planlab.maps import GPKGMap
    from planlab.world.mapdata import network_to_map_data

    key = (location, seed)
    if key not in _MAPS:
        net = town(location, seed)
        _MAPS[key] = GPKGMap.from_map_data(network_to_map_data(net), net.crs, location=location)
    return _MAPS[key]


# ---- one log ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    root: str
    plan: LogPlan
    cfg: dict
    seed: int
    check: bool


def make_log(job: _Job) -> dict[str, Any]:
    """Simulate, render and write one log; returns its summary (frames, bytes, scenario, check result)."""
    from planlab.config import build_config
    from planlab.data.logs import write_log
    from planlab.world.episode import EpisodeSpec, simulate
    from planlab.world.logframes import build_frames, hex_token

    cfg: WorldConfig = build_config(WorldConfig, job.cfg)
    p = job.plan
    net = town(p.location, job.seed)
    spec = EpisodeSpec(
        location=p.location,
        scenario=p.scenario,
        seed=p.seed,
        frames=cfg.frames,
        warmup_s=cfg.warmup_s,
        traffic_density=cfg.difficulty.traffic_density,
        pedestrian_rate=cfg.difficulty.pedestrian_rate,
        parked_fill=cfg.difficulty.parked_fill,
    )
    ep = simulate(net, spec)
    root = Path(job.root)
    tokens = [hex_token("frame", job.seed, cfg.name, p.index, k) for k in range(cfg.frames)]
    sensors = _Sensors(cfg, p, job.seed, ep) if cfg.sensors.enabled else None
    calibration = sensors.calibration() if sensors else _calibration_only(cfg)
    frames = build_frames(
        ep,
        log_name=p.name,
        map_location=p.location,
        tokens=tokens,
        log_token=hex_token("log", job.seed, cfg.name, p.index),
        scene_token=hex_token("scene", job.seed, cfg.name, p.index),
        calibration=calibration,
        timestamp0=TIMESTAMP_BASE_US + p.index * 3_600_000_000,
        annotation_radius=cfg.annotation_radius,
    )
    nbytes = 0
    if sensors is not None:
        nbytes += sensors.write_all(root / "sensor_blobs" / p.split, p.name, ep, tokens)
    log_path = root / "navsim_logs" / p.split / f"{p.name}.pkl"
    write_log(frames, log_path)
    nbytes += log_path.stat().st_size
    out = {
        "name": p.name,
        "split": p.split,
        "location": p.location,
        "scenario": ep.scenario,
        "planned_scenario": p.scenario,
        "frames": len(frames),
        "bytes": nbytes,
        "seed": p.seed,
        "hour": round(p.hour, 2),
        "events": [e for _, e in ep.events],
    }
    if job.check:
        from planlab.world.checks import check_episode

        rep = check_episode(net, ep)
        out["check"] = rep.summary()
        out["check_ok"] = rep.ok
        out["min_clearance"] = round(rep.min_clearance, 3)
    return out


def _calibration_only(cfg: WorldConfig) -> dict[str, dict[str, np.ndarray]]:
    from planlab.world.sensors import default_rig

    return default_rig(cfg.sensors.width, cfg.sensors.height).calibration()


class _Sensors:
    """The sensor suite of one log: static ground geometry around the drive, lighting and noise from the plan."""

    def __init__(self, cfg: WorldConfig, plan: LogPlan, seed: int, ep):
        from planlab.world.sensors import LidarConfig, Lighting, RenderConfig, SensorSuite, SuiteConfig
        from planlab.world.sensors.from_map import static_geometry_from_map

        s = cfg.sensors
        ego = np.array([st.ego[:2] for st in ep.steps])
        lo, hi = ego.min(axis=0), ego.max(axis=0)
        center = 0.5 * (lo + hi)
        radius = 0.5 * float(np.hypot(*(hi - lo))) + 130.0
        static = static_geometry_from_map(_map_api(plan.location, seed), center, radius)
        lighting = Lighting(hour=plan.hour, sun_azimuth_deg=plan.sun_azimuth, visibility_m=plan.visibility)
        suite_cfg = SuiteConfig(
            width=s.width,
            height=s.height,
            render=RenderConfig(noise_std=s.camera_noise),
            lidar=LidarConfig(range_noise_std=s.lidar_range_noise, dropout=s.lidar_dropout),
            lighting=lighting,
            cameras_enabled=True,
            lidar_enabled=s.lidar,
        )
        self.suite = SensorSuite(static, suite_cfg, seed=plan.seed)
        self.cfg = cfg
        self.plan = plan
        self.net = town(plan.location, seed)
        self.buildings = _building_boxes(self.net)

    def calibration(self) -> dict[str, dict[str, np.ndarray]]:
        return self.suite.calibration()

    def write_all(self, blob_root: Path, log_name: str, ep, tokens: list[str]) -> int:
        from planlab.data.sensors import _write_replace as write_blob
        from planlab.data.sensors import encode_jpeg, encode_pcd
        from planlab.scene.enums import CAMERA_NAMES
        from planlab.world.sensors import SceneObjects, TrafficLightHeads, color_for_token

        nbytes = 0
        heads = self.net.signal_heads
        head_ids = sorted(heads)
        head_pos = np.array([heads[h].position for h in head_ids]).reshape(-1, 3)
        head_yaw = np.array([heads[h].heading for h in head_ids])
        frame_seeds = np.random.SeedSequence([self.plan.seed, 99]).generate_state(len(tokens))
        empty_cloud = None
        for k, st in enumerate(ep.frame_steps()):
            ego = st.ego
            pose = np.array([ego[0], ego[1], ego[2]])
            near = (
                np.hypot(st.boxes[:, 0] - ego[0], st.boxes[:, 1] - ego[1]) < OBJECT_RADIUS
                if len(st.boxes)
                else []
            )
            idx = np.nonzero(near)[0] if len(st.boxes) else np.zeros(0, dtype=int)
            boxes = [st.boxes[idx]]
            names = [st.names[i] for i in idx]
            colors = [np.array([color_for_token(st.ids[i], st.names[i]) for i in idx]).reshape(-1, 3)]
            bb = self.buildings
            if len(bb):
                # the nearest buildings only: they frame the street, far ones hide behind them or in fog
                dist = np.hypot(bb[:, 0] - ego[0], bb[:, 1] - ego[1])
                order = np.argsort(dist, kind="stable")[:MAX_BUILDINGS]
                sel = order[dist[order] < 90.0]
                boxes.append(bb[sel])
                names += ["generic_object"] * len(sel)
                colors.append(np.tile(np.array([[176, 168, 156]], dtype=np.uint8), (len(sel), 1)))
            objects = SceneObjects(np.concatenate(boxes), names, np.concatenate(colors).astype(np.uint8))
            if len(head_ids):
                states = ep.signals.head_states(st.t)
                hnear = np.hypot(head_pos[:, 0] - ego[0], head_pos[:, 1] - ego[1]) < 150.0
                sel = np.nonzero(hnear)[0]
                lights = TrafficLightHeads(head_pos[sel], head_yaw[sel], [states[head_ids[i]] for i in sel])
            else:
                lights = TrafficLightHeads.empty()
            images, cloud = self.suite.capture(pose, objects, lights, seed=int(frame_seeds[k]))
            token = tokens[k]
            for cam in CAMERA_NAMES:
                data = encode_jpeg(images[cam], self.cfg.sensors.jpeg_quality)
                write_blob(blob_root / log_name / cam / f"{token}.jpg", data)
                nbytes += len(data)
            if cloud is None:
                if empty_cloud is None:
                    empty_cloud = np.zeros((6, 0), dtype=np.float32)
                cloud = empty_cloud
            data = encode_pcd(cloud)
            write_blob(blob_root / log_name / "MergedPointCloud" / f"{token}.pcd", data)
            nbytes += len(data)
        return nbytes


def _building_boxes(net) -> np.ndarray:
    """Buildings as (N, 7) boxes (cx, cy, cz, length, width, height, yaw) for the sensors."""
    out = []
    for b in net.buildings:
        rect = b.polygon.minimum_rotated_rectangle
        xy = np.asarray(rect.exterior.coords)[:4]
        e0, e1 = xy[1] - xy[0], xy[2] - xy[1]
        length, width = float(np.hypot(*e0)), float(np.hypot(*e1))
        yaw = math.atan2(e0[1], e0[0])
        c = xy.mean(axis=0)
        out.append((c[0], c[1], 0.5 * b.height, length, width, b.height, yaw))
    return np.array(out, dtype=np.float64).reshape(-1, 7)


# ---- the dataset ----------------------------------------------------------------------------------------------------
def _prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: exists and is not a directory")
    if root.is_dir():
        present = [name for name in OWNED if (root / name).exists()]
        if present and not overwrite:
            raise DataError(
                f"{root}: already holds a dataset ({', '.join(present)}); pass --overwrite to replace it"
            )
        for name in present:
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def write_maps(root: Path, seed: int) -> list[Path]:
    """All four towns of ``seed`` as GeoPackages plus the maps index (contract §1.1, P2/P3)."""
    from planlab.maps import finalize_maps_root
    from planlab.world.mapdata import write_network
    from planlab.world.towns import LOCATIONS

    maps_root = root / "maps"
    paths = [write_network(town(loc, seed), maps_root) for loc in LOCATIONS]
    finalize_maps_root(maps_root)
    return paths


def generate_dataset(
    out: str | os.PathLike,
    cfg: WorldConfig,
    seed: int = 0,
    workers: int = 1,
    overwrite: bool = False,
    check: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Generate a dataset at ``out``; returns the summary that is also written to ``dataset.json``.

    The summary's ``seconds`` is measured but not written to disk (``dataset.json`` stays byte-identical
    for a fixed seed).
    """
    if workers < 1:
        raise ConfigError(f"workers must be ≥ 1, got {workers}")
    cfg.validate()
    t0 = time.perf_counter()
    root = Path(out)
    _prepare_root(root, overwrite)
    (root / MARKER).write_text("generation in progress; dataset.json appears when it is complete\n")
    plans = plan_logs(cfg, seed)
    write_maps(root, seed)
    cfg_dict = to_dict(cfg)
    jobs = [_Job(str(root), p, cfg_dict, seed, check) for p in plans]
    results: list[dict[str, Any]] = []
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            results.append(make_log(job))
            if progress:
                progress(results[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(make_log, jobs, chunksize=1):
                results.append(res)
                if progress:
                    progress(res)
    summary = _summary(cfg, seed, plans, results)
    atomic_write_text(root / SUMMARY, _json(summary))
    (root / MARKER).unlink(missing_ok=True)
    summary["seconds"] = time.perf_counter() - t0
    summary["bytes"] = _tree_bytes(root)
    return summary


def _summary(
    cfg: WorldConfig, seed: int, plans: list[LogPlan], results: list[dict[str, Any]]
) -> dict[str, Any]:
    scenes_per = max(cfg.frames - (SCENE_HISTORY + SCENE_FUTURE) + 1, 0)
    splits: dict[str, dict[str, int]] = {}
    for r in results:
        s = splits.setdefault(r["split"], {"logs": 0, "frames": 0, "scenes": 0, "bytes": 0})
        s["logs"] += 1
        s["frames"] += r["frames"]
        s["scenes"] += scenes_per
        s["bytes"] += r["bytes"]
    scenarios: dict[str, int] = {}
    for r in results:
        scenarios[r["scenario"]] = scenarios.get(r["scenario"], 0) + 1
    return {
        "format": FORMAT,
        "preset": cfg.name,
        "seed": seed,
        "config_hash": config_hash(cfg),
        "config": to_dict(cfg),
        "scene_filter": {
            "num_history_frames": SCENE_HISTORY,
            "num_future_frames": SCENE_FUTURE,
            "frame_interval": 1,
        },
        "splits": {k: splits[k] for k in sorted(splits)},
        "logs": len(results),
        "frames": sum(r["frames"] for r in results),
        "scenes": sum(s["scenes"] for s in splits.values()),
        "scenarios": dict(sorted(scenarios.items())),
        "log_list": [
            {k: v for k, v in r.items() if k != "bytes"} | {"plan": asdict(p)}
            for r, p in zip(results, plans, strict=True)
        ],
    }


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=1, sort_keys=False) + "\n"


def _tree_bytes(root: Path) -> int:
    return sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
