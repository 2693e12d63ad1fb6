"""Simulate one log: place the scenario, spawn traffic, run a warm-up, then record every 10 Hz step.

The record holds everything the log writer, the sensors and the physical checks need: the ego's state, every
agent's box and velocity, and the light states. Logged frames are every fifth step (2 Hz).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planlab.world.actors import EGO_REAR_TO_CENTER
from planlab.world.expert import RouteError
from planlab.world.lights import RED, Signals
from planlab.world.network import RoadNetwork
from planlab.world.scenarios import (
    add_traffic_vehicle,
    feasible,
    lane_spans_near,
    place,
    place_parked_cars,
    spawn_ego,
    spawn_pedestrians,
    spawn_traffic,
)
from planlab.world.traffic import DT, World

STEPS_PER_FRAME = 5  # 10 Hz simulation, 2 Hz log
SPAWN_RADIUS = 150.0  # m: traffic is kept alive within this distance of the ego
PED_RADIUS = 120.0  # m: pedestrians are kept within this distance of the ego
DESPAWN_RADIUS = 200.0


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything that decides one log's content (the seed makes it reproducible)."""

    location: str
    scenario: str
    seed: int
    frames: int
    warmup_s: float = 3.0
    traffic_density: float = 0.6  # vehicles per 100 m of lane near the ego
    pedestrian_rate: float = 0.5  # pedestrians per 100 m of sidewalk near the ego
    parked_fill: float = 0.5  # fraction of parking spots with a car


@dataclass
class StepState:
    """One 10 Hz step: the ego and all agents (global frame)."""

    t: float
    ego: np.ndarray  # x, y, heading, v, a, yaw_rate
    ego_lane: int
    ids: list[str]  # track tokens
    names: list[str]
    boxes: np.ndarray  # (N, 7): cx, cy, cz, length, width, height, heading
    vel: np.ndarray  # (N, 2) global velocity
    kinds: list[str]  # "veh" | "ped" | "static"
    command: int = 3  # OpenScene driving command index (left, straight, right, unknown)


@dataclass
class Episode:
    spec: EpisodeSpec
    route: list[str]
    steps: list[StepState]
    signals: Signals
    scenario: str  # the kind actually placed (may be the fallback)
    events: list[tuple[float, str]] = field(default_factory=list)
    entered: list[tuple[float, int, str]] = field(
        default_factory=list
    )  # (t, connector, light state) ego entries
    t0: float = 0.0  # sim time of the first logged frame

    def frame_steps(self) -> list[StepState]:
        return self.steps[::STEPS_PER_FRAME]


def simulate(net: RoadNetwork, spec: EpisodeSpec, max_tries: int = 12) -> Episode:
    """Run one log. Scenarios that cannot be placed fall back to ``cruise`` (the record says which ran)."""
    rng = np.random.default_rng(spec.seed)
    duration = spec.warmup_s + (spec.frames - 1) * STEPS_PER_FRAME * DT
    kind = spec.scenario if feasible(net, spec.scenario) else "cruise"
    last_err: Exception | None = None
    for attempt in range(max_tries):
        if attempt == max_tries // 2:
            kind = "cruise"
        world = World(net, Signals(net, rng), rng)
        # Route long enough for the whole log at the fastest speed, plus 150 m beyond (contract P18).
        need = 28.0 * duration + 200.0
        try:
            placement = place(world, kind, need)
            ego = spawn_ego(world, placement)
        except RouteError as exc:
            last_err = exc
            continue
        return _run(world, spec, placement, ego, duration, kind)
    raise RuntimeError(f"could not place a {spec.scenario} scenario in {spec.location}: {last_err}")


def _run(world: World, spec: EpisodeSpec, placement, ego, duration: float, kind: str) -> Episode:
    net, rng = world.net, world.rng
    if placement.red_at is not None:
        jf, phase, t_red = placement.red_at
        world.signals.plans[jf].set_red_at(phase, t_red, red_for=float(rng.uniform(8.0, 14.0)))
    center = np.array([ego.x, ego.y])
    ahead_free = [
        (ego.lane(), ego.path.lane_at(ego.s)[1] - 10.0, ego.path.lane_at(ego.s)[1] + placement.keep_clear)
    ]
    for lid in ego.path.lanes[1:4]:
        ahead_free.append((lid, -1.0, net.lanes[lid].length + 1.0))
    world.refresh()
    for extra in placement.extras:
        extra(world, ego)
    world.refresh()
    place_parked_cars(world, center, SPAWN_RADIUS, spec.parked_fill)
    world.refresh()
    spawn_traffic(world, center, SPAWN_RADIUS, spec.traffic_density, ahead_free)
    spawn_pedestrians(world, center, PED_RADIUS, spec.pedestrian_rate)
    world.refresh()
    steps: list[StepState] = []
    entered: list[tuple[float, int, str]] = []
    n_warm = int(round(spec.warmup_s / DT))
    n_total = n_warm + (spec.frames - 1) * STEPS_PER_FRAME + 1
    prev_heading = ego.heading
    prev_conn = None
    for k in range(n_total):
        if k > 0:
            world.step()
            if k % 20 == 0:
                _maintain_traffic(world, spec)
                world.refresh()
        # ego entering a connector (front bumper crosses its start)
        front_lane, _ = ego.path.lane_at(ego.s + ego.front)
        if net.lanes[front_lane].is_connector and front_lane != prev_conn:
            entered.append((world.t, front_lane, world.signals.connector_state(front_lane, world.t)))
            prev_conn = front_lane
        elif not net.lanes[front_lane].is_connector:
            prev_conn = None
        yaw_rate = math.atan2(math.sin(ego.heading - prev_heading), math.cos(ego.heading - prev_heading)) / DT
        prev_heading = ego.heading
        if k >= n_warm:
            steps.append(_state(world, ego, yaw_rate))
    events = list(world.ego_driver.events)
    ep = Episode(
        spec=spec,
        route=world.ego_driver.route.ids(),
        steps=steps,
        signals=world.signals,
        scenario=kind,
        events=events,
        entered=entered,
        t0=n_warm * DT,
    )
    _ = rng
    return ep


def _state(world: World, ego, yaw_rate: float) -> StepState:
    ids, names, boxes, vel, kinds = [], [], [], [], []
    for veh in world.vehicles.values():
        if veh.is_ego:
            continue
        c = veh.center()
        ids.append(veh.token)
        names.append(veh.name)
        boxes.append((c[0], c[1], 0.5 * veh.height, veh.length, veh.width, veh.height, veh.heading))
        vel.append((veh.v * math.cos(veh.heading), veh.v * math.sin(veh.heading)))
        kinds.append("veh")
    for ped in world.peds.values():
        ids.append(ped.token)
        names.append("pedestrian")
        boxes.append((ped.x, ped.y, 0.5 * ped.height, ped.length, ped.width, ped.height, ped.heading))
        vel.append((ped.v * math.cos(ped.heading), ped.v * math.sin(ped.heading)))
        kinds.append("ped")
    for so in world.statics.values():
        ids.append(so.token)
        names.append(so.name)
        boxes.append((so.x, so.y, 0.5 * so.height, so.length, so.width, so.height, so.heading))
        vel.append((0.0, 0.0))
        kinds.append("static")
    # rear axle (NAVSIM's ego reference, fact sheet §1.2) behind the box centre the expert steers
    rx = ego.x - EGO_REAR_TO_CENTER * math.cos(ego.heading)
    ry = ego.y - EGO_REAR_TO_CENTER * math.sin(ego.heading)
    ego_state = np.array([rx, ry, ego.heading, ego.v, ego.a, yaw_rate])
    return StepState(
        world.t,
        ego_state,
        ego.lane(),
        ids,
        names,
        np.asarray(boxes, dtype=np.float64).reshape(-1, 7),
        np.asarray(vel, dtype=np.float64).reshape(-1, 2),
        kinds,
        driving_command(ego, ego_state),
    )


def driving_command(ego, rear_pose: np.ndarray) -> int:
    """OpenScene's rule: the route centreline 20 m ahead lies ≥ 2 m left → LEFT (0), ≤ −2 m → RIGHT (2),
    else STRAIGHT (1); UNKNOWN (3) without a usable route (fact sheet §3.1, OpenScene driving_command)."""
    s_ahead = ego.s - EGO_REAR_TO_CENTER + 20.0
    if ego.path.end < s_ahead - 1e-6:
        return 3
    x, y, _ = ego.path.pose1(s_ahead)
    dx, dy = x - rear_pose[0], y - rear_pose[1]
    lateral = -math.sin(rear_pose[2]) * dx + math.cos(rear_pose[2]) * dy
    if lateral >= 2.0:
        return 0
    if lateral <= -2.0:
        return 2
    return 1


def _ped_target(world: World, c: np.ndarray, rate: float) -> int:
    """How many pedestrians ``rate`` asks for on the pavements within PED_RADIUS of ``c``."""
    total = 0.0
    for e in world.net.ped_edges.values():
        if e.crosswalk is None and np.min(np.hypot(*(e.points - c).T)) < PED_RADIUS:
            total += e.length
    return int(round(rate * total / 100.0))


def _maintain_traffic(world: World, spec: EpisodeSpec) -> None:
    """Keep the traffic around the ego: drop far vehicles, add new ones out of sight (every two seconds)."""
    ego = world.ego
    c = np.array([ego.x, ego.y])
    for vid in list(world.vehicles):
        veh = world.vehicles[vid]
        if veh.is_ego:
            continue
        if math.hypot(veh.x - c[0], veh.y - c[1]) > DESPAWN_RADIUS:
            for cid in veh.committed:
                holders = world.claims.get(cid)
                if holders:
                    holders.discard(vid)
            del world.vehicles[vid]
    # pedestrians too: those left far behind go, new ones appear on pavements ahead and around, out of sight
    for pid in list(world.peds):
        ped = world.peds[pid]
        if ped.crossing is None and math.hypot(ped.x - c[0], ped.y - c[1]) > PED_RADIUS + 40.0:
            del world.peds[pid]
    inside = sum(1 for p in world.peds.values() if math.hypot(p.x - c[0], p.y - c[1]) < PED_RADIUS)
    target_peds = _ped_target(world, c, spec.pedestrian_rate)
    if inside < target_peds:
        spawn_pedestrians(world, c, PED_RADIUS, spec.pedestrian_rate, inner=105.0, limit=target_peds - inside)
    rng = world.rng
    spans = lane_spans_near(world, c, SPAWN_RADIUS)
    if not spans:
        return
    target = int(round(spec.traffic_density * sum(s1 - s0 for _, s0, s1 in spans) / 100.0))
    n = len(world.vehicles) - 1
    # new vehicles appear out of sight of the sensors and beyond the annotation radius
    far = lane_spans_near(world, c, SPAWN_RADIUS, inner=110.0)
    tries = 0
    while far and n < target and tries < 3:
        tries += 1
        lid, s0, s1 = far[int(rng.integers(len(far)))]
        if (
            add_traffic_vehicle(world, lid, float(rng.uniform(s0, s1)), float(rng.uniform(0.6, 0.95)))
            is not None
        ):
            n += 1


_ = RED
