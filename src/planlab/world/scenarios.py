"""Scenario sampling: where the ego starts, which route it takes, and the actors that make the situation.

A scenario kind names the situation a log is built around; the rest of the traffic is sampled around it.
Each kind has a feasibility test on the town (e.g. ``merge`` needs ramps, ``carpark_exit`` a car park) and a
spawner; :func:`sample_scenario` falls back to ``cruise`` when a kind cannot be placed.

| kind | the situation |
|---|---|
| cruise | drive a random route |
| follow | a slower lead vehicle ahead in the ego's lane |
| turn | a left or right turn at the first junction (lights, stop sign or give-way) |
| red_light | arrive at a signal that turns red: stop, wait, go on green |
| nudge | a badly parked car sticks into the ego's lane: pass it with clearance or change lanes |
| construction | cones and barriers close the ego's lane: change lanes |
| cut_in | a vehicle from the next lane cuts in ahead of the ego |
| merge | join the highway from an on-ramp (yield to the main carriageway) |
| carpark_exit | leave a car park along its aisle and join the street |
| stop_sign | come to a full stop at a stop sign, then go when clear |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planlab.world.actors import (
    EGO_DRIVING,
    EGO_HEIGHT,
    EGO_LENGTH,
    EGO_WIDTH,
    EGO_YAW_RATE_MAX,
    VEHICLE_TYPES,
    Driving,
    Pedestrian,
    StaticObject,
    Vehicle,
)
from planlab.world.expert import Expert, RouteError, find_route, plan_lanes
from planlab.world.network import SIGNAL, STOP, RoadNetwork
from planlab.world.paths import LanePath
from planlab.world.traffic import World, neighbours, ped_pose

SCENARIOS: tuple[str, ...] = (
    "cruise",
    "follow",
    "turn",
    "red_light",
    "nudge",
    "construction",
    "cut_in",
    "merge",
    "carpark_exit",
    "stop_sign",
)


@dataclass
class Placement:
    """The ego's start and route plus the scenario's own actors (added after traffic is spawned)."""

    kind: str
    lane: int
    s_local: float
    v0: float
    route_blocks: list[int]
    extras: list = field(default_factory=list)  # callables(world) that add actors
    red_at: tuple[int, int, float] | None = None  # (junction, phase, seconds after start) for red_light
    keep_clear: float = 60.0  # m ahead of the ego kept free of random traffic


def _lanes_ok(world: World, net: RoadNetwork) -> list[int]:
    return [
        lid
        for lid, lane in net.lanes.items()
        if not lane.is_connector and world.can_continue(lid) and lane.length > 40.0
    ]


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _route(
    world: World, lane: int, s_local: float, need: float, first_conn_block: int | None = None
) -> list[int]:
    net = world.net
    blk = net.lanes[lane].block
    remaining_first = net.lanes[lane].length - s_local
    return find_route(
        net,
        blk,
        need + (net.lanes[lane].length - remaining_first),
        world.rng,
        first_connector=first_conn_block,
        dead_ends=world._dead_ends,
    )


def place(world: World, kind: str, need: float) -> Placement:
    """A placement of scenario ``kind`` (RouteError when the town has no place for it)."""
    net, rng = world.net, world.rng
    lanes = _lanes_ok(world, net)
    if kind in ("cruise", "follow", "cut_in", "nudge", "construction"):
        multi = [lid for lid in lanes if len(net.blocks[net.lanes[lid].block].lanes) >= 2]
        pool = multi if kind in ("cut_in", "construction") else lanes
        if kind == "nudge" and multi and rng.random() < 0.7:
            pool = multi
        if not pool:
            raise RouteError(f"no lane for {kind}")
        lane = _pick(rng, pool)
        ln = net.lanes[lane]
        if kind == "construction":
            # start in the rightmost lane so the closure is in our way
            blk = net.blocks[ln.block]
            lane = blk.lanes[-1]
            ln = net.lanes[lane]
        if kind in ("nudge", "construction") and ln.length < 110.0 + 6.0 * ln.speed_limit:
            raise RouteError("lane too short")
        s_local = float(rng.uniform(2.0, max(3.0, min(ln.length * 0.3, ln.length - 70.0))))
        if kind in ("nudge", "construction"):
            s_local = float(rng.uniform(2.0, 8.0))
        blocks = _route(world, lane, s_local, need)
        v0 = 0.8 * ln.speed_limit
        p = Placement(kind, lane, s_local, v0, blocks)
        if kind == "follow":
            p.extras.append(lambda w, e: _lead_vehicle(w, e))
        elif kind == "cut_in":
            p.extras.append(lambda w, e: _cut_in_vehicle(w, e))
        elif kind == "nudge":
            p.extras.append(lambda w, e: _parked_intruder(w, e))
            p.keep_clear = 110.0
        elif kind == "construction":
            p.extras.append(lambda w, e: _lane_closure(w, e))
            p.keep_clear = 120.0
        return p
    if kind in ("turn", "red_light", "stop_sign"):
        want = {"turn": None, "red_light": SIGNAL, "stop_sign": STOP}[kind]
        cands = []
        for lid in lanes:
            ln = net.lanes[lid]
            for c in ln.successors:
                cn = net.lanes[c]
                j = net.junctions[cn.node]
                if want is not None and j.control != want:
                    continue
                if kind == "turn" and cn.turn not in ("left", "right"):
                    continue
                if kind == "stop_sign" and not cn.must_stop:
                    continue
                if not world.can_continue(c):
                    continue
                cands.append((lid, c))
        if not cands:
            raise RouteError(f"no junction for {kind}")
        lane, conn = _pick(rng, cands)
        ln = net.lanes[lane]
        dist_before = float(rng.uniform(45.0, 95.0)) if kind != "turn" else float(rng.uniform(30.0, 80.0))
        s_local = max(2.0, ln.length - dist_before)
        blocks = _route(world, lane, s_local, need, first_conn_block=net.lanes[conn].block)
        v0 = 0.85 * ln.speed_limit
        p = Placement(kind, lane, s_local, v0, blocks)
        if kind == "red_light":
            j = net.junctions[net.lanes[conn].node]
            phase = net.lanes[conn].phase or 0
            # the light turns red about when the ego would reach the stop line
            t_arrive = (ln.length - s_local - 6.0) / max(v0, 1.0)
            p.red_at = (j.fid, phase, float(rng.uniform(0.2, 0.6)) * t_arrive + 2.0)
        return p
    if kind == "merge":
        cands = []
        for lid in lanes:
            ln = net.lanes[lid]
            for c in ln.successors:
                if net.lanes[c].turn == "merge" and world.can_continue(c):
                    cands.append((lid, c))
        if not cands:
            raise RouteError("no on-ramp")
        lane, conn = _pick(rng, cands)
        ln = net.lanes[lane]
        s_local = max(2.0, ln.length - float(rng.uniform(60.0, 140.0)))
        blocks = _route(world, lane, s_local, need, first_conn_block=net.lanes[conn].block)
        return Placement(kind, lane, s_local, 0.8 * ln.speed_limit, blocks)
    if kind == "carpark_exit":
        cands = []
        for lid, ln in net.lanes.items():
            if ln.is_connector or ln.predecessors:
                continue
            blk = net.blocks[ln.block]
            if blk.start_node is None and world.can_continue(lid):
                cands.append(lid)
        if not cands:
            raise RouteError("no car park")
        lane = _pick(rng, cands)
        blocks = _route(world, lane, 1.0, need)
        p = Placement(kind, lane, 1.0, 1.0, blocks)
        p.extras.append(lambda w, e: None)
        return p
    raise ValueError(f"unknown scenario kind {kind!r}")


def feasible(net: RoadNetwork, kind: str) -> bool:
    """Whether the town can host ``kind`` at all."""
    conns = [ln for ln in net.lanes.values() if ln.is_connector]
    if kind == "merge":
        return any(c.turn == "merge" for c in conns)
    if kind == "carpark_exit":
        return any(net.blocks[b].start_node is None for b in net.roadblocks)
    if kind == "red_light":
        return any(j.control == SIGNAL for j in net.junctions.values())
    if kind == "stop_sign":
        return any(c.must_stop for c in conns)
    if kind in ("cut_in", "construction"):
        return any(len(net.blocks[b].lanes) >= 2 for b in net.roadblocks)
    return True


# ---- the ego ----------------------------------------------------------------------------------------------------
def spawn_ego(world: World, p: Placement) -> Vehicle:
    net = world.net
    route = plan_lanes(net, p.route_blocks, p.lane)
    first = net.lanes[p.lane].block
    if p.kind != "construction" and route.exit_lane[first] != p.lane:
        # start in the lane the route leaves the first roadblock from (no lane change right away)
        p.lane = route.exit_lane[first]
        p.s_local = min(p.s_local, net.lanes[p.lane].length - 5.0)
        route = plan_lanes(net, p.route_blocks, p.lane)
    ego_path = LanePath(net, [p.lane], s0=0.0, yaw_rate_max=EGO_YAW_RATE_MAX)
    ego = Vehicle(
        id=world.new_id(),
        token=world.token(),
        length=EGO_LENGTH,
        width=EGO_WIDTH,
        height=EGO_HEIGHT,
        path=ego_path,
        s=p.s_local,
        v=p.v0,
        driving=EGO_DRIVING,
        rear_to_center=0.0,
        is_ego=True,
    )
    # The expert steers its box centre along the lane centre (a car's front corner would otherwise swing
    # over the lane edge in tight turns); the log records the rear axle, EGO_REAR_TO_CENTER behind it.
    world.vehicles[ego.id] = ego
    world.ego = ego
    expert = Expert(world, ego, route)
    world.ego_driver = expert
    for lid in expert.continuation(p.lane):
        ego_path.append(lid)
        if ego_path.end > p.s_local + 400.0:
            break
    ego.v = min(p.v0, world.desired_speed(ego))
    ego.update_pose()
    return ego


# ---- traffic ------------------------------------------------------------------------------------------------------
def _vehicle_type(rng: np.random.Generator, highway: bool) -> tuple[float, float, float]:
    w = np.array([t[4] for t in VEHICLE_TYPES])
    if not highway:
        w[4] *= 0.5
    k = int(rng.choice(len(VEHICLE_TYPES), p=w / w.sum()))
    _, length, width, height, _ = VEHICLE_TYPES[k]
    jitter = rng.uniform(0.95, 1.05)
    return length * jitter, width, height


def _free(world: World, x: float, y: float, radius: float) -> bool:
    for v in world.vehicles.values():
        c = v.center()
        if math.hypot(c[0] - x, c[1] - y) < radius + 0.5 * v.length:
            return False
    for so in world.statics.values():
        if math.hypot(so.x - x, so.y - y) < radius + 0.5 * so.length:
            return False
    for ped in world.peds.values():
        if math.hypot(ped.x - x, ped.y - y) < radius:
            return False
    return True


def add_traffic_vehicle(
    world: World, lane: int, s_local: float, speed_fraction: float, driving: Driving | None = None
) -> Vehicle | None:
    """A traffic vehicle on ``lane`` at ``s_local`` if there is room; None otherwise."""
    net, rng = world.net, world.rng
    ln = net.lanes[lane]
    highway = ln.speed_limit > 20.0
    length, width, height = _vehicle_type(rng, highway)
    path = LanePath(net, [lane])
    veh = Vehicle(
        id=-1,
        token="",
        length=length,
        width=width,
        height=height,
        path=path,
        s=s_local,
        v=0.0,
        driving=driving or _traffic_driving(rng),
    )
    veh.update_pose()
    c = veh.center()
    if not _free(world, c[0], c[1], 0.5 * length + 6.0):
        return None
    # room ahead on the own path: speed such that the gap is a comfortable headway
    world.extend_random(veh)
    v_des = world.desired_speed(veh) * speed_fraction
    gap = _gap_ahead(world, veh, 80.0)
    veh.v = float(max(0.0, min(v_des, (gap - 5.0) / 1.5)))
    # a newcomer can always stop comfortably before the next junction (it may have to yield there)
    front = veh.s + veh.front
    for _cid, start, stop in world._upcoming_connectors(veh, 80.0):
        if start > front:
            room = max(stop - front - 1.0, 0.0)
            veh.v = min(veh.v, math.sqrt(2.0 * 0.8 * veh.driving.b_comf * room))
            break
    if not _room_behind(world, veh):
        return None
    veh.id = world.new_id()
    veh.token = world.token()
    world.vehicles[veh.id] = veh
    return veh


def _room_behind(world: World, veh: Vehicle) -> bool:
    """No vehicle behind in the same stream would need more than comfortable braking for the newcomer."""
    hx, hy = math.cos(veh.heading), math.sin(veh.heading)
    for ov in world.vehicles.values():
        c = ov.center()
        dx, dy = veh.x - c[0], veh.y - c[1]
        along = dx * hx + dy * hy
        if along <= 0.0 or along > 160.0 or abs(-dx * hy + dy * hx) > 2.0:
            continue
        if math.cos(ov.heading - veh.heading) < 0.7:
            continue
        gap = along - 0.5 * (veh.length + ov.length)
        need = (
            ov.driving.s0
            + ov.v * ov.driving.headway
            + max(0.0, ov.v**2 - veh.v**2) / (2.0 * ov.driving.b_comf)
        )
        if gap < need:
            return False
    return True


def _traffic_driving(rng: np.random.Generator) -> Driving:
    return Driving(
        a_max=float(rng.uniform(1.2, 2.0)),
        b_comf=float(rng.uniform(1.8, 2.5)),
        headway=float(rng.uniform(1.1, 1.7)),
        s0=float(rng.uniform(2.0, 3.0)),
        speed_factor=float(rng.uniform(0.85, 1.05)),
        yellow_decel=float(rng.uniform(2.8, 4.0)),
    )


def _gap_ahead(world: World, veh: Vehicle, reach: float) -> float:
    """Free distance ahead of a (not yet added) vehicle's front along its path: vehicles and static objects."""
    best = reach
    front = veh.s + veh.front
    others = [(ov.center(), ov.length, ov.width) for ov in world.vehicles.values() if ov.id != veh.id]
    others += [((so.x, so.y), so.length, so.width) for so in world.statics.values()]
    for c, length, width in others:
        if math.hypot(c[0] - veh.x, c[1] - veh.y) > reach + 10.0:
            continue
        so, do = veh.path.project(np.array(c), veh.s, back=5.0, ahead=reach)
        if abs(do) < 0.5 * (veh.width + max(width, length)) + 0.5 and so > veh.s:
            best = min(best, so - 0.5 * length - front)
    return best


def lane_spans_near(
    world: World, center: np.ndarray, radius: float, inner: float = 0.0
) -> list[tuple[int, float, float]]:
    """(lane, s start, s end) of the stretches of drivable lanes (not connectors, no dead end) that lie
    between ``inner`` and ``radius`` metres of ``center``, keeping 4 m from the lane start and 12 m from its end."""
    net = world.net
    out = []
    for lid in net.lanes_near(center, radius):
        ln = net.lanes[lid]
        if ln.is_connector or not world.can_continue(lid) or ln.length < 20.0:
            continue
        d = np.hypot(ln.center[:, 0] - center[0], ln.center[:, 1] - center[1])
        ok = (d <= radius) & (d >= inner) & (ln.s >= 4.0) & (ln.s <= ln.length - 12.0)
        if not ok.any():
            continue
        # contiguous runs of vertices inside the ring
        idx = np.nonzero(ok)[0]
        breaks = np.nonzero(np.diff(idx) > 1)[0]
        for run in np.split(idx, breaks + 1):
            s0, s1 = float(ln.s[run[0]]), float(ln.s[run[-1]])
            if s1 - s0 > 2.0:
                out.append((lid, s0, s1))
    return out


def spawn_traffic(
    world: World,
    center: np.ndarray,
    radius: float,
    density: float,
    avoid: list[tuple[int, float, float]],
    n_min: int = 0,
) -> int:
    """Vehicles on lanes near ``center``: about ``density`` per 100 m of lane; ``avoid`` = (lane, s0, s1) kept free."""
    rng = world.rng
    spans = lane_spans_near(world, center, radius)
    if not spans:
        return 0
    total = sum(s1 - s0 for _, s0, s1 in spans)
    target = max(n_min, int(round(density * total / 100.0)))
    weights = np.array([s1 - s0 for _, s0, s1 in spans])
    weights = weights / weights.sum()
    placed, attempts = 0, 0
    while placed < target and attempts < target * 6:
        attempts += 1
        lid, a0, a1 = spans[int(rng.choice(len(spans), p=weights))]
        s_local = float(rng.uniform(a0, a1))
        if any(a == lid and s0 - 12.0 <= s_local <= s1 + 12.0 for a, s0, s1 in avoid):
            continue
        if add_traffic_vehicle(world, lid, s_local, float(rng.uniform(0.6, 0.95))) is not None:
            placed += 1
    return placed


# ---- scenario actors ---------------------------------------------------------------------------------------------
def _lead_vehicle(world: World, ego: Vehicle) -> None:
    lane, s_local = ego.path.lane_at(ego.s)
    ln = world.net.lanes[lane]
    gap = float(world.rng.uniform(18.0, 32.0))
    s_lead = s_local + ego.front + gap + 2.5
    if s_lead > ln.length - 10.0:
        return
    veh = add_traffic_vehicle(world, lane, s_lead, 0.6)
    if veh is not None:
        veh.driving = Driving(
            a_max=1.0, b_comf=2.0, headway=1.3, speed_factor=float(world.rng.uniform(0.55, 0.75))
        )


def _cut_in_vehicle(world: World, ego: Vehicle) -> None:
    lane, s_local = ego.path.lane_at(ego.s)
    nbs = neighbours(world.net, lane)
    if not nbs:
        return
    nb = _pick(world.rng, nbs)
    ahead = float(world.rng.uniform(8.0, 20.0))
    veh = add_traffic_vehicle(world, nb, s_local + ego.front + ahead, 0.85)
    if veh is None:
        return
    veh.v = max(2.0, 0.85 * ego.v)
    veh.driving = Driving(a_max=1.2, headway=1.2, speed_factor=0.8)
    veh.script["cut_in"] = {"lane": lane, "t": world.t + float(world.rng.uniform(3.0, 6.0))}


def _parked_intruder(world: World, ego: Vehicle) -> None:
    """A parked vehicle sticking 0.5–1.1 m into the ego's lane from the right, 55–85 m ahead."""
    lane, s_local = ego.path.lane_at(ego.s)
    ln = world.net.lanes[lane]
    s_obs = s_local + max(55.0, 5.0 * ego.v + 25.0) + float(world.rng.uniform(0.0, 30.0))
    if s_obs > ln.length - 25.0:
        return
    p = LanePath(world.net, [lane]).pose(s_obs)
    length, width = 4.7, 1.9
    intrude = float(world.rng.uniform(0.5, 1.1))
    lateral = -(0.5 * ln.width - intrude + 0.5 * width)
    x = p[0] - math.sin(p[2]) * lateral
    y = p[1] + math.cos(p[2]) * lateral
    sid = world.new_id()
    world.statics[sid] = StaticObject(
        sid,
        world.token(),
        "vehicle",
        float(x),
        float(y),
        float(p[2] + world.rng.uniform(-0.05, 0.05)),
        length,
        width,
        1.6,
    )


def _lane_closure(world: World, ego: Vehicle) -> None:
    """Cones tapering across the ego's (rightmost) lane, then barriers along it."""
    lane, s_local = ego.path.lane_at(ego.s)
    ln = world.net.lanes[lane]
    # far enough ahead to change lanes (or stop) comfortably at the current speed
    s_start = s_local + max(60.0, 5.0 * ego.v + 30.0) + float(world.rng.uniform(0.0, 20.0))
    if s_start + 45.0 > ln.length - 25.0:
        return
    path = LanePath(world.net, [lane])
    for k in range(7):  # taper: from the right edge to the lane's left third over 15 m
        s = s_start + 2.5 * k
        lat = -0.5 * ln.width + 0.3 + (ln.width * 0.55) * k / 6.0
        _static_at(world, path, s, lat, "traffic_cone", 0.45, 0.45, 0.75)
    for k in range(5):
        s = s_start + 17.5 + 5.0 * k
        _static_at(world, path, s, 0.05 * ln.width, "barrier", 2.0, 0.6, 1.0, yaw=0.0)
    _static_at(world, path, s_start - 8.0, -0.5 * ln.width + 0.5, "czone_sign", 0.7, 0.6, 1.6)


def _static_at(
    world: World,
    path: LanePath,
    s: float,
    lat: float,
    name: str,
    length: float,
    width: float,
    height: float,
    yaw: float = 0.0,
) -> None:
    p = path.pose(s)
    x = p[0] - math.sin(p[2]) * lat
    y = p[1] + math.cos(p[2]) * lat
    sid = world.new_id()
    world.statics[sid] = StaticObject(
        sid, world.token(), name, float(x), float(y), float(p[2] + yaw), length, width, height
    )


def place_parked_cars(world: World, center: np.ndarray, radius: float, fill: float) -> None:
    """Parked cars in parking strips and car-park stalls near ``center``."""
    rng = world.rng
    for spot in world.net.parking:
        if math.hypot(spot.x - center[0], spot.y - center[1]) > radius or rng.random() > fill:
            continue
        if not _free(world, spot.x, spot.y, 2.5):
            continue
        sid = world.new_id()
        length = float(rng.uniform(4.3, 4.9))
        world.statics[sid] = StaticObject(
            sid,
            world.token(),
            "vehicle",
            spot.x,
            spot.y,
            spot.heading + float(rng.uniform(-0.04, 0.04)) + (math.pi if rng.random() < 0.5 else 0.0),
            min(length, spot.length + 0.2),
            1.85,
            float(rng.uniform(1.45, 1.8)),
        )


def spawn_pedestrians(
    world: World, center: np.ndarray, radius: float, rate: float, inner: float = 0.0, limit: int | None = None
) -> int:
    """Pedestrians on sidewalks between ``inner`` and ``radius`` metres of ``center``: about ``rate`` per 100 m
    of sidewalk (at most ``limit``); some stand still. Returns how many were placed."""
    net, rng = world.net, world.rng
    edges = []
    for e in net.ped_edges.values():
        if e.crosswalk is not None or e.length <= 3.0:
            continue
        d = np.hypot(*(e.points - center).T)
        if d.min() < radius and d.max() >= inner:
            edges.append(e)
    if not edges:
        return 0
    total = sum(e.length for e in edges)
    target = int(round(rate * total / 100.0))
    if limit is not None:
        target = min(target, limit)
    placed = tries = 0
    while placed < target and tries < target * 5:
        tries += 1
        e = edges[int(rng.integers(len(edges)))]
        ped = Pedestrian(
            id=-1,
            token="",
            edge=e.id,
            u=float(rng.uniform(0.5, e.length - 0.5)),
            direction=1 if rng.random() < 0.5 else -1,
            v_des=float(rng.uniform(1.0, 1.55)),
            stand_still=bool(rng.random() < 0.12),
        )
        ped.v = 0.0 if ped.stand_still else ped.v_des
        ped_pose(net, ped)
        d = math.hypot(ped.x - center[0], ped.y - center[1])
        if d < inner or d > radius or not _free(world, ped.x, ped.y, 1.4):
            continue
        ped.id, ped.token = world.new_id(), world.token()
        world.peds[ped.id] = ped
        placed += 1
    return placed
