"""PDM-Closed: 15 IDM proposals along 3 lateral paths, simulated, scored, the best one extended to 5 s.

NAVSIM v1.1's ``PDMClosedPlanner`` as its metric caching runs it once per scene (fact sheet §1.9):
route correction → drivable map → forecast observation → starting lane → Dijkstra centerline and
±1 m parallel paths → IDM unrolling at 10 Hz (leader refreshed every 2 steps inside a corridor of
half the ego width around the path ahead; the path end is the leader when nothing is ahead) →
LQR/bicycle simulation → scoring with the same scorer as the agent → argmax → 50-pose trajectory.

Quirks kept on purpose: the initial proposal pose is the rear axle *projected* onto the path; at
step 1 the leader is still all-zero (a leader at progress 0), so every proposal brakes first; the
leader record is one array shared by the proposals of a path and is only partly overwritten per
proposal (rear length and velocity leak from one proposal to the next, as in NAVSIM).

The scorer is injected (``score_fn``): the simulation layer must not import the metrics layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Point

from planlab.errors import DataError
from planlab.sim.idm import IDMParameters, idm_step
from planlab.sim.pdm_closed.path import PathStack, PDMPath, normalize_angle, parallel_poses
from planlab.sim.pdm_closed.route import centerline_poses, correct_route, load_route
from planlab.sim.pdm_closed.world import (  # noqa: I001
    RED_LIGHT_TOKEN,
    DetectedObjects,
    DrivableGeometry,
    ForecastObservation,
    build_drivable_map,
    ego_footprint,
    ego_footprints,
)
from planlab.sim.simulator import simulate
from planlab.sim.vehicle import PACIFICA, VehicleParameters, initial_state_array, rear_axle_roundtrip
from planlab.sim.world import DrivableMap, ObjectTracks

# score_fn(states (R, 41, 11), row_scene (R,), [(tracks, drivable, centerline) per scene]) -> (R,) scores,
# proposals of one scene aggregated jointly (NAVSIM normalises progress over them).
BatchScoreFn = Callable[
    [np.ndarray, np.ndarray, list[tuple[ObjectTracks, DrivableMap, shapely.LineString]]], np.ndarray
]


@dataclass(frozen=True)
class PDMClosedConfig:
    """The metric-caching configuration of NAVSIM v1.1 (``MetricCacheProcessor``)."""

    trajectory_poses: int = 50  # 5 s at 10 Hz
    proposal_poses: int = 40  # 4 s at 10 Hz
    interval: float = 0.1
    map_radius: float = 100.0
    lateral_offsets: tuple[float, ...] = (-1.0, 1.0)
    speed_limit_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    fallback_target_velocity: float = 15.0
    min_gap_to_lead_agent: float = 1.0
    headway_time: float = 1.5
    accel_max: float = 1.5
    decel_max: float = 3.0
    leading_agent_update_rate: int = 2
    observation_sample_res: int = 2

    @property
    def observation_samples(self) -> int:
        extra = self.proposal_poses + int(1 / self.interval)
        return extra if extra > self.trajectory_poses else self.trajectory_poses


@dataclass
class PlannerInput:
    """The current frame as PDM-Closed needs it (map frame, logged rear-axle pose)."""

    ego_pose: np.ndarray  # (3,) logged rear-axle x, y, yaw
    ego_velocity: np.ndarray  # (2,) ego frame, float32-rounded like NAVSIM's Scene
    ego_acceleration: np.ndarray  # (2,)
    t0_us: int
    route_roadblock_ids: list[str]
    traffic_lights: list[tuple[int, bool]]
    objects: DetectedObjects


@dataclass
class PDMClosedPlan:
    """The chosen trajectory and everything the metric cache keeps from the planner."""

    poses: np.ndarray  # (51, 3) x, y, heading at t0 + k·0.1 s
    times_us: np.ndarray  # (51,)
    centerline: PDMPath
    route_block_ids: list[str]
    route_lane_ids: list[str]
    drivable: DrivableMap
    starting_lane_id: str
    proposal_scores: np.ndarray
    best_index: int
    collided_tokens: list[str]
    proposal_states: np.ndarray = field(repr=False)  # (15, 41, 11) simulated


@dataclass
class PreparedPlan:
    """A scene after route handling and IDM unrolling, waiting for its proposals to be scored."""

    t0_us: int
    initial_state: np.ndarray
    proposals: np.ndarray  # (15, 41, 3)
    tracks: ObjectTracks
    drivable: DrivableMap
    centerline: PDMPath
    route_block_ids: list[str]
    route_lane_ids: list[str]
    starting_lane_id: str
    collided_tokens: list[str]
    red_light_polygons: list[Any]  # red on-route lane connectors (obstacles; v2 TLC counts them)
    generator: _Generator = field(repr=False)


class PDMClosedPlanner:
    """Runs PDM-Closed once for a scene (its state lives only inside :meth:`plan`)."""

    def __init__(
        self, config: PDMClosedConfig = PDMClosedConfig(), vehicle: VehicleParameters = PACIFICA
    ) -> None:
        self.config = config
        self.vehicle = vehicle

    # ------------------------------------------------------------------------------------------- route
    def _starting_lane(
        self,
        rear_axle: np.ndarray,
        center: np.ndarray,
        footprint: Any,
        geometry: DrivableGeometry,
        lanes: dict[str, Any],
    ) -> Any:
        """NAVSIM ``_get_starting_lane``: on-route lane under the rear axle with the smallest heading error."""
        candidates, errors = [], []
        for lane_id in geometry.intersecting_tokens(Point(float(rear_axle[0]), float(rear_axle[1]))):
            if lane_id in lanes:
                lane = lanes[lane_id]
                path = np.asarray(lane.baseline_path.discrete_path, dtype=np.float64)
                d = ((rear_axle[None, :2] - path[:, :2]) ** 2).sum(axis=-1) ** 0.5
                err = np.abs(normalize_angle(path[int(np.argmin(d)), 2] - rear_axle[2]))
                candidates.append(lane)
                errors.append(err)
        if candidates:
            return candidates[int(np.argmin(np.abs(errors)))]
        start, closest = None, np.inf
        for lane in lanes.values():
            if lane.contains_point((float(center[0]), float(center[1]))):
                return lane
            dist = lane.polygon.distance(footprint)
            if dist < closest:
                start, closest = lane, dist
        if start is None:
            raise DataError("PDM-Closed: the route has no lanes to start from")
        return start

    # ------------------------------------------------------------------------------------------- plan
    def prepare(self, inp: PlannerInput, map_api: Any) -> PreparedPlan:
        """Everything up to the proposals: route, drivable map, forecast, paths, IDM unrolling."""
        cfg, veh = self.config, self.vehicle
        pose = np.asarray(inp.ego_pose, dtype=np.float64)
        rx, ry = rear_axle_roundtrip(pose[0], pose[1], pose[2], veh)
        rear_axle = np.array([rx, ry, pose[2]])
        center, footprint = ego_footprint(pose, veh)
        initial_state = initial_state_array(pose, inp.ego_velocity, inp.ego_acceleration, veh)

        blocks, lanes = load_route(map_api, inp.route_roadblock_ids)
        if not blocks:
            raise DataError("PDM-Closed: the frame has an empty route (roadblock_ids)")
        corrected = correct_route(rear_axle, map_api, blocks)
        blocks, lanes = load_route(map_api, corrected)
        geometry = build_drivable_map(map_api, center, cfg.map_radius, list(lanes.keys()))

        red_lights = [
            (f"{RED_LIGHT_TOKEN}_{cid}", lanes[str(cid)].polygon)
            for cid, is_red in inp.traffic_lights
            if is_red and str(cid) in lanes
        ]
        observation = ForecastObservation(
            center,
            footprint,
            inp.objects,
            red_lights,
            cfg.observation_samples,
            cfg.interval,
            cfg.observation_sample_res,
            cfg.map_radius,
        )

        start_lane = self._starting_lane(rear_axle, center, footprint, geometry, lanes)
        base = centerline_poses(start_lane, blocks, lanes)
        paths = [PDMPath(base)] + [PDMPath(parallel_poses(base, off)) for off in cfg.lateral_offsets]

        speed_limit = start_lane.speed_limit_mps
        fractions = np.asarray(cfg.speed_limit_fractions, dtype=np.float64)
        limit = speed_limit if speed_limit is not None else cfg.fallback_target_velocity
        generator = _Generator(
            paths, fractions * limit, cfg, veh, observation, rear_axle, float(initial_state[3])
        )
        generator.unroll_proposals()
        return PreparedPlan(
            t0_us=int(inp.t0_us),
            initial_state=initial_state,
            proposals=generator.states[:, : cfg.proposal_poses + 1].copy(),
            tracks=observation.object_tracks(cfg.observation_samples + 1),
            drivable=geometry.drivable,
            centerline=paths[0],
            route_block_ids=list(blocks.keys()),
            route_lane_ids=list(lanes.keys()),
            starting_lane_id=start_lane.id,
            collided_tokens=list(observation.collided),
            red_light_polygons=[poly for _, poly in red_lights],
            generator=generator,
        )

    def finish(
        self, prepared: PreparedPlan, proposal_states: np.ndarray, scores: np.ndarray
    ) -> PDMClosedPlan:
        """Pick the best-scored proposal (first on ties) and extend it to the full trajectory."""
        cfg = self.config
        scores = np.asarray(scores, dtype=np.float64)
        best = int(np.argmax(scores))
        poses = prepared.generator.extend(best)
        times = prepared.t0_us + np.arange(cfg.trajectory_poses + 1, dtype=np.int64) * int(cfg.interval * 1e6)
        return PDMClosedPlan(
            poses=poses,
            times_us=times,
            centerline=prepared.centerline,
            route_block_ids=prepared.route_block_ids,
            route_lane_ids=prepared.route_lane_ids,
            drivable=prepared.drivable,
            starting_lane_id=prepared.starting_lane_id,
            proposal_scores=scores,
            best_index=best,
            collided_tokens=prepared.collided_tokens,
            proposal_states=proposal_states,
        )

    def plan(self, inp: PlannerInput, map_api: Any, score_fn: BatchScoreFn) -> PDMClosedPlan:
        """Plan one scene (see :func:`plan_many` to batch the simulation and scoring of many)."""
        result = plan_many(self, [(inp, map_api)], score_fn)[0]
        if isinstance(result, BaseException):
            raise result
        return result


def plan_many(
    planner: PDMClosedPlanner,
    jobs: list[tuple[PlannerInput, Any]],
    score_fn: BatchScoreFn | dict[str, BatchScoreFn],
) -> list[Any]:
    """Plan several scenes; proposals of all of them are simulated and scored in one batch.

    With a dict of score functions, every scene's proposals are simulated once and selected once per
    function: the result per scene is then ``{name: plan}``. A scene whose preparation fails (bad route,
    missing map object) yields its exception in place of a plan.
    """
    fns = score_fn if isinstance(score_fn, dict) else {"": score_fn}
    prepared: list[PreparedPlan | Exception] = []
    for inp, map_api in jobs:
        try:
            prepared.append(planner.prepare(inp, map_api))
        except (DataError, ValueError, KeyError, IndexError) as exc:
            prepared.append(exc)
    ok = [i for i, p in enumerate(prepared) if isinstance(p, PreparedPlan)]
    out: list[Any] = list(prepared)
    if not ok:
        return out
    plans: list[PreparedPlan] = [prepared[i] for i in ok]  # type: ignore[misc]
    proposals = np.concatenate([p.proposals for p in plans])
    counts = [len(p.proposals) for p in plans]
    row_scene = np.repeat(np.arange(len(plans)), counts)
    init = np.concatenate(
        [np.repeat(p.initial_state[None], n, axis=0) for p, n in zip(plans, counts, strict=True)]
    )
    states = simulate(proposals, init, vehicle=planner.vehicle)
    scenes = [(p.tracks, p.drivable, p.centerline.linestring, p.red_light_polygons) for p in plans]
    chosen: dict[str, np.ndarray] = {
        name: np.asarray(fn(states, row_scene, scenes), dtype=np.float64) for name, fn in fns.items()
    }
    start = 0
    for i, p, n in zip(ok, plans, counts, strict=True):
        per_fn = {
            name: planner.finish(p, states[start : start + n], scores[start : start + n])
            for name, scores in chosen.items()
        }
        out[i] = per_fn if isinstance(score_fn, dict) else per_fn[""]
        start += n
    return out


class _Generator:
    """IDM unrolling of the proposals (NAVSIM ``PDMGenerator``); proposal i = path i // 5, policy i % 5.

    All paths step together (one IDM update for the 15 proposals); leaders are looked up per path.
    """

    def __init__(
        self,
        paths: list[PDMPath],
        target_velocity: np.ndarray,
        cfg: PDMClosedConfig,
        vehicle: VehicleParameters,
        observation: ForecastObservation,
        rear_axle: np.ndarray,
        initial_speed: float,
    ) -> None:
        self.paths = paths
        self.n_long = len(target_velocity)
        self.cfg = cfg
        self.vehicle = vehicle
        self.obs = observation
        self.rear_axle = rear_axle
        self.initial_speed = initial_speed
        n = len(paths) * self.n_long
        t = cfg.trajectory_poses + 1
        self.states = np.zeros((n, t, 3))
        self.idm = np.zeros((n, t, 2))  # progress, velocity
        self.leading = np.zeros((n, t, 3))  # progress, velocity, rear length
        self.corridors: dict[int, Any] = {}
        self.max_target_velocity = float(np.max(target_velocity))
        longitudinal = np.arange(n) % self.n_long
        self.params = IDMParameters(
            target_velocity=np.asarray(target_velocity, dtype=np.float64)[longitudinal],
            min_gap=np.full(n, cfg.min_gap_to_lead_agent),
            headway_time=np.full(n, cfg.headway_time),
            accel_max=np.full(n, cfg.accel_max),
            decel_max=np.full(n, cfg.decel_max),
        )
        self.collided = set(observation.collided)
        self.path_lengths = [float(p.linestring.length) for p in paths]
        self.paths_stack = PathStack(paths)

    def _batch(self, lateral: int) -> list[int]:
        return list(range(lateral * self.n_long, (lateral + 1) * self.n_long))

    def unroll_proposals(self) -> None:
        laterals = list(range(len(self.paths)))
        for lateral in laterals:
            batch = self._batch(lateral)
            path = self.paths[lateral]
            progress = float(path.project(self.rear_axle[None, :2])[0])
            self.idm[batch, 0, 0] = progress
            self.idm[batch, 0, 1] = self.initial_speed
            self.states[batch, 0] = path.interpolate(np.array([progress]))[0]
        rows = np.arange(len(self.states))
        for t in range(1, self.cfg.proposal_poses + 1):
            self._step(laterals, rows, t)

    def extend(self, proposal: int) -> np.ndarray:
        lateral = proposal // self.n_long
        rows = np.array([proposal])
        for t in range(self.cfg.proposal_poses + 1, self.cfg.trajectory_poses + 1):
            self._step([lateral], rows, t, single=proposal)
        return self.states[proposal].copy()

    def _step(self, laterals: list[int], rows: np.ndarray, t: int, single: int | None = None) -> None:
        if t % self.cfg.leading_agent_update_rate != 0:
            self.leading[rows, t] = self.leading[rows, t - 1]
        else:
            for lateral in laterals:
                self._update_leading(lateral, [single] if single is not None else self._batch(lateral), t)
        p = self.params
        if single is None:
            params = p
        else:
            params = IDMParameters(
                p.target_velocity[rows],
                p.min_gap[rows],
                p.headway_time[rows],
                p.accel_max[rows],
                p.decel_max[rows],
            )
        lead = self.leading[rows, t]
        prog, vel = idm_step(
            self.idm[rows, t - 1, 0],
            self.idm[rows, t - 1, 1],
            lead[:, 0],
            lead[:, 1],
            lead[:, 2],
            params,
            self.cfg.interval,
        )
        self.idm[rows, t, 0] = prog
        self.idm[rows, t, 1] = vel
        if single is None:
            self.states[:, t] = self.paths_stack.interpolate(prog, rows // self.n_long)
        else:
            self.states[rows, t] = self.paths[laterals[0]].interpolate(prog)

    def _corridor(self, lateral: int, proposal: int) -> Any:
        if lateral not in self.corridors:
            start = float(self.idm[proposal, 0, 0])
            end = start + abs(self.max_target_velocity) * self.cfg.trajectory_poses * self.cfg.interval
            ahead = self.paths[lateral].substring(start, end)
            self.corridors[lateral] = ahead.buffer(self.vehicle.width / 2, cap_style="square")
        return self.corridors[lateral]

    def _update_leading(self, lateral: int, batch: list[int], t: int) -> None:
        path = self.paths[lateral]
        occupancy = self.obs[t]
        corridor = self._corridor(lateral, batch[0])
        tokens = [tok for tok in occupancy.intersects(corridor) if tok not in self.collided]
        if tokens:
            polys = np.empty(len(tokens), dtype=object)
            polys[:] = [occupancy[tok] for tok in tokens]
            progress = shapely.line_locate_point(path.linestring, shapely.centroid(polys))
        record = np.zeros(3)  # shared by the path's proposals on purpose (NAVSIM)
        distances = None  # (proposal, object) footprint distances, computed once when first needed
        for k, proposal in enumerate(batch):
            current = self.idm[proposal, t - 1, 0]
            ahead = np.flatnonzero(progress > current) if tokens else np.zeros(0, dtype=np.int64)
            if len(ahead):
                if distances is None:
                    footprints = ego_footprints(self.states[batch, t - 1], self.vehicle)
                    distances = shapely.distance(footprints[:, None], polys[None, :])
                pose = self.states[proposal, t - 1]
                dist = distances[k, ahead]
                j = int(np.argmin(dist))
                record[0] = current + dist[j]
                nearest = tokens[ahead[j]]
                if RED_LIGHT_TOKEN not in nearest:
                    record[1] = self.obs.leading_velocity(nearest, float(pose[2]))
            else:
                record[0] = self.path_lengths[lateral]
                record[2] = self.vehicle.length / 2
            self.leading[proposal, t] = record
