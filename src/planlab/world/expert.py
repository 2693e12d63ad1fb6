"""The expert ego driver: follows a roadblock route with a lane plan, changes lanes where the route needs it,
nudges round or changes lanes away from obstacles, and otherwise drives like traffic under stricter comfort
limits (IDM with a longer headway, jerk-limited, deceleration within NAVSIM's comfort bounds, fact sheet §1.6).

The route is a list of roadblock and roadblock-connector fids that never passes the same junction twice
(contract §2.4, P18: overlapping on-route connectors would truncate PDM-Closed's route).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from planlab.world.actors import Vehicle
from planlab.world.network import RoadNetwork
from planlab.world.paths import LanePath, smoothstep5
from planlab.world.traffic import World, neighbours

NUDGE_CLEARANCE = 0.55  # m between the ego's side and an obstacle it passes
NUDGE_MAX = 1.6  # m of lateral shift the expert accepts for a nudge (else it changes lanes)


class RouteError(Exception):
    """No route of the requested kind exists from this start (the scenario sampler tries another)."""


@dataclass
class Route:
    """Ordered roadblock / roadblock-connector fids and, for each roadblock, the planned exit lane."""

    blocks: list[int]
    exit_lane: dict[int, int]  # roadblock fid -> lane to be in when leaving it
    connector: dict[int, int]  # roadblock fid -> lane connector taken out of it (from exit_lane)

    def ids(self) -> list[str]:
        return [str(b) for b in self.blocks]


def block_length(net: RoadNetwork, fid: int) -> float:
    return float(np.mean([net.lanes[i].length for i in net.blocks[fid].lanes]))


def find_route(
    net: RoadNetwork,
    start_block: int,
    min_length: float,
    rng: np.random.Generator,
    first_connector: int | None = None,
    dead_ends: set[int] | None = None,
    max_tries: int = 400,
) -> list[int]:
    """A random route (block fids) from ``start_block`` of at least ``min_length`` metres that never enters
    the same junction twice and never runs into a dead end. ``first_connector`` forces the first junction's
    roadblock connector."""
    dead = dead_ends or set()

    def alive(bfid: int) -> bool:
        return any(lid not in dead for lid in net.blocks[bfid].lanes)

    best: list[int] = []
    tries = 0

    def dfs(path: list[int], length: float, junctions: set[int]) -> list[int] | None:
        nonlocal tries, best
        tries += 1
        if length >= min_length:
            return path
        if tries > max_tries:
            return None
        if length > sum(block_length(net, b) for b in best):
            best = list(path)
        last = net.blocks[path[-1]]
        options = [
            c
            for c in last.successors
            if net.blocks[c].node not in junctions and alive(c) and alive(net.blocks[c].dst)
        ]
        if len(path) == 1 and first_connector is not None:
            options = [c for c in options if c == first_connector]
        order = list(rng.permutation(len(options)))
        for k in order:
            c = options[int(k)]
            cb = net.blocks[c]
            nxt = cb.dst
            res = dfs(
                path + [c, nxt], length + block_length(net, c) + block_length(net, nxt), junctions | {cb.node}
            )
            if res is not None:
                return res
        return None

    first = net.blocks[start_block]
    junctions = {first.start_node} if first.start_node is not None else set()
    res = dfs([start_block], block_length(net, start_block), junctions)
    if res is None:
        raise RouteError(f"no route of {min_length:.0f} m from roadblock {start_block}")
    return res


def plan_lanes(net: RoadNetwork, blocks: list[int], entry_lane: int) -> Route:
    """Choose exit lanes and connectors along ``blocks`` minimising lane changes (dynamic programming)."""
    roadblocks = blocks[0::2]
    connectors = blocks[1::2]
    n = len(roadblocks)
    # cost[k][lane] = lane changes needed from entering roadblock k in `lane` to the end of the route
    cost: list[dict[int, float]] = [dict() for _ in range(n)]
    choice: list[dict[int, tuple[int, int]]] = [dict() for _ in range(n)]
    for lid in net.blocks[roadblocks[-1]].lanes:
        cost[-1][lid] = 0.0
    for k in range(n - 2, -1, -1):
        rb = net.blocks[roadblocks[k]]
        cb = connectors[k]
        for entry in rb.lanes:
            best = (math.inf, None)
            for exit_ in rb.lanes:
                for c in net.lanes[exit_].successors:
                    if net.lanes[c].block != cb:
                        continue
                    nxt = net.lanes[c].successors[0]
                    lc = abs(net.lanes[exit_].index - net.lanes[entry].index)
                    val = lc * 1.0 + cost[k + 1].get(nxt, math.inf) + 0.01 * abs(net.lanes[nxt].index)
                    if val < best[0]:
                        best = (val, (exit_, c))
            if best[1] is not None:
                cost[k][entry] = best[0]
                choice[k][entry] = best[1]
    exit_lane: dict[int, int] = {}
    conn: dict[int, int] = {}
    lane = entry_lane
    for k in range(n - 1):
        if lane not in choice[k]:
            raise RouteError(f"lane {lane} cannot follow the route at roadblock {roadblocks[k]}")
        ex, c = choice[k][lane]
        exit_lane[roadblocks[k]] = ex
        conn[roadblocks[k]] = c
        lane = net.lanes[c].successors[0]
    exit_lane[roadblocks[-1]] = lane
    return Route(blocks, exit_lane, conn)


class Expert:
    """The ego's driver: route-following path, lane changes, nudges; plugged into :class:`World`."""

    def __init__(self, world: World, ego: Vehicle, route: Route):
        self.world = world
        self.ego = ego
        self.route = route
        self.net = world.net
        self.block_pos = {b: i for i, b in enumerate(route.blocks)}
        self.lc_pending = False
        self.nudged: set[int] = set()
        self.wait_at: float | None = None  # arc length to wait at before a blocked obstacle pass
        self.events: list[tuple[float, str]] = []

    # ---- path along the plan ---------------------------------------------------------------------------------
    def continuation(self, lane_id: int) -> list[int]:
        """Lanes after ``lane_id`` following the plan (empty when this lane is not the planned exit)."""
        out = []
        lane = self.net.lanes[lane_id]
        blk = lane.block
        while True:
            if lane.is_connector:
                nxt = lane.successors[0]
            else:
                if self.route.exit_lane.get(blk) != lane.fid or blk not in self.route.connector:
                    break
                nxt = self.route.connector[blk]
            out.append(nxt)
            lane = self.net.lanes[nxt]
            blk = lane.block
            if len(out) > 400:
                break
        return out

    def prepare(self, world: World) -> None:
        ego = self.ego
        ego.lat.prune(ego.s)
        # a lateral shift of Δ over D metres at speed v peaks at 5.77·Δ·v²/D² lateral acceleration: cap the
        # speed during (and just before) one so that it stays below 1.5 m/s²
        cap = None
        for s0, s1, dv in ego.lat.steps:
            if s0 - ego.s < 25.0 and abs(dv) > 1e-3:
                v_ok = (s1 - s0) * math.sqrt(1.5 / (5.77 * abs(dv)))
                cap = v_ok if cap is None else min(cap, v_ok)
        if cap is None:
            ego.script.pop("v_cap", None)
        else:
            ego.script["v_cap"] = max(cap, 2.0)
        path = ego.path
        if len(path.lanes) == 1 or path.end - ego.s < 250.0:
            have = set(path.lanes)
            for lid in self.continuation(path.last_lane):
                if lid in have:
                    continue
                path.append(lid)
                have.add(lid)
                if path.end - ego.s > 400.0:
                    break
        path.trim_before(ego.s - 40.0)
        lane_id, s_local = path.lane_at(ego.s)
        lane = self.net.lanes[lane_id]
        self.lc_pending = False
        if lane.is_connector or not ego.lat.idle:
            self.wait_at = None
            return
        planned = self.route.exit_lane.get(lane.block)
        if planned is not None and planned != lane_id:
            self.lc_pending = True
            self.wait_at = None
            self._try_lane_change(lane_id, s_local, planned)
            return
        self._handle_obstacles(lane_id, s_local)

    def _try_lane_change(self, lane_id: int, s_local: float, planned: int) -> None:
        ego, net = self.ego, self.net
        lane = net.lanes[lane_id]
        step = 1 if net.lanes[planned].index > lane.index else -1
        target = next(n for n in neighbours(net, lane_id) if net.lanes[n].index == lane.index + step)
        remaining = lane.length - s_local
        # plan the change for the speed the ego will have during it, not just the current one
        v_plan = max(ego.v, min(self.world.desired_speed(ego), ego.v + 2.0 * ego.driving.a_max))
        dist = float(np.clip(v_plan * 4.0, 12.0, 60.0))
        if remaining < dist + 8.0:
            dist = max(remaining - 8.0, 12.0)
        if s_local < 3.0 or remaining < dist + 6.0:
            return
        if not self.world._lc_gap_ok(ego, target):
            return
        cont = self.continuation(target) if net.lanes[target].fid == planned else []
        self.world.change_lane(ego, target, distance=dist, continuation=cont)
        self.events.append((self.world.t, f"lane change {lane_id}->{target}"))

    # ---- obstacles: nudge or lane change -----------------------------------------------------------------------
    def _handle_obstacles(self, lane_id: int, s_local: float) -> None:
        ego, world, net = self.ego, self.world, self.net
        self.wait_at = None
        ob = world.obstacles
        if ob is None:
            return
        look = 120.0
        lane = net.lanes[lane_id]
        statics = np.nonzero(ob.static)[0]
        if len(statics) == 0:
            return
        dist = np.hypot(ob.cx[statics] - ego.x, ob.cy[statics] - ego.y)
        near = statics[dist < look + 10.0]
        if len(near) == 0:
            return
        # keep only objects close to the path ahead (cheap test on path samples before exact projections)
        ss = ego.s + np.arange(0.0, look + 5.0, 2.0)
        p = ego.path.pose(ss)
        dmin = np.min(np.hypot(ob.cx[near, None] - p[None, :, 0], ob.cy[near, None] - p[None, :, 1]), axis=1)
        near = near[dmin < 0.5 * ego.width + NUDGE_CLEARANCE + np.hypot(ob.hl[near], ob.hw[near]) + 0.5]
        hits = []
        for j in near:
            owner = ob.owner[j]
            if owner[1] in self.nudged:
                continue
            corners = _corners(ob, j)
            st = [ego.path.project(c, ego.s, back=5.0, ahead=look + 10.0) for c in corners]
            s_vals = np.array([a for a, _ in st])
            d_vals = np.array([b for _, b in st])
            if s_vals.max() < ego.s + ego.front or s_vals.min() > ego.s + look:
                continue
            half = 0.5 * ego.width + NUDGE_CLEARANCE
            if d_vals.min() > half or d_vals.max() < -half:
                continue
            hits.append(
                (float(s_vals.min()), float(s_vals.max()), float(d_vals.min()), float(d_vals.max()), owner[1])
            )
        if not hits:
            return
        s0 = min(h[0] for h in hits)
        s1 = max(h[1] for h in hits)
        dmin = min(h[2] for h in hits)
        dmax = max(h[3] for h in hits)
        if dmin + dmax < 0.0:  # obstacle on the right: shift left
            shift = dmax + NUDGE_CLEARANCE + 0.5 * ego.width
        else:
            shift = dmin - NUDGE_CLEARANCE - 0.5 * ego.width
        left_nb = [n for n in neighbours(net, lane_id) if net.lanes[n].index == lane.index - 1]
        right_nb = [n for n in neighbours(net, lane_id) if net.lanes[n].index == lane.index + 1]
        side_nb = left_nb if shift > 0 else right_nb
        if abs(shift) <= NUDGE_MAX:
            # a quintic shift over time T peaks at 5.77·|shift|/T² lateral acceleration: keep it ≤ 1.2 m/s²
            t_min = max(2.0, math.sqrt(5.77 * abs(shift) / 1.2))
            v_lim = float(self.world.desired_speed(ego))
            ramp = max(10.0, ego.v * t_min)
            ramp_back = max(10.0, max(ego.v, v_lim) * t_min)
            start = s0 - ego.front - ramp - 2.0
            end = s1 + ego.rear + 3.0
            if start < ego.s + 0.5:
                # too close to pull out smoothly at this speed: stop with room, then pull out slowly
                self.wait_at = s0 - ego.front - 12.0
                return
            if self._nudge_drivable(shift, start, ramp, end, ramp_back):
                if not self._side_clear(shift, start, end + ramp_back):
                    self.wait_at = s0 - ego.front - 12.0  # wait with room to pull out later
                    return
                ego.lat.add(start, start + ramp, shift)
                ego.lat.add(end, end + ramp_back, -shift)
                self.nudged.update(h[4] for h in hits)
                self.events.append((world.t, f"nudge {shift:+.2f} m"))
                return
        if side_nb:
            target = side_nb[0]
            if world._lc_gap_ok(ego, target):
                # re-plan the route's lanes from the new lane
                try:
                    new = plan_lanes(net, self.route.blocks[self.block_pos[lane.block] :], target)
                except RouteError:
                    return
                self.route.exit_lane.update(new.exit_lane)
                self.route.connector.update(new.connector)
                dist = float(np.clip(ego.v * 4.0, 14.0, 50.0))
                world.change_lane(ego, target, distance=dist, continuation=self.continuation(target))
                self.events.append((world.t, f"lane change round obstacle {lane_id}->{target}"))
            else:
                self.wait_at = s0 - ego.front - 12.0

    def _nudge_drivable(self, shift: float, start: float, ramp: float, end: float, ramp_back: float) -> bool:
        """The ego's box stays on drivable ground (roadblocks, junctions, car parks) with 0.2 m to spare."""
        ego = self.ego
        s = np.linspace(start, end + ramp_back, 24)
        d = shift * (smoothstep5((s - start) / ramp) - smoothstep5((s - end) / ramp_back))
        p = ego.path.pose(s)
        x = p[:, 0] - np.sin(p[:, 2]) * d
        y = p[:, 1] + np.cos(p[:, 2]) * d
        hl, hw = 0.5 * ego.length + 0.2, 0.5 * ego.width + 0.2
        cx = x + ego.rear_to_center * np.cos(p[:, 2])
        cy = y + ego.rear_to_center * np.sin(p[:, 2])
        c, sn = np.cos(p[:, 2]), np.sin(p[:, 2])
        for a, b in ((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw)):
            px = cx + c * a - sn * b
            py = cy + sn * a + c * b
            if not np.all(self.world.drivable_contains(px, py)):
                return False
        return True

    def _side_clear(self, shift: float, s_from: float, s_to: float) -> bool:
        """No vehicle in the strip the ego's nudge sweeps (other lanes, oncoming included) over the window."""
        ego, world = self.ego, self.world
        t_pass = (s_to - ego.s) / max(ego.v, 2.0)
        for ov in world.vehicles.values():
            if ov.id == ego.id:
                continue
            c = ov.center()
            if math.hypot(c[0] - ego.x, c[1] - ego.y) > 150.0:
                continue
            so, do = ego.path.project(np.array(c), ego.s, back=20.0, ahead=s_to - ego.s + 60.0)
            # where will it be during the pass (straight-line guess along its heading)?
            lateral_band = (
                (0.0, shift + 0.5 * ego.width + 1.0) if shift > 0 else (shift - 0.5 * ego.width - 1.0, 0.0)
            )
            near_lat = lateral_band[0] - 0.5 * ov.width < do < lateral_band[1] + 0.5 * ov.width
            if not near_lat:
                continue
            rel_heading = math.cos(ov.heading - ego.heading)
            travel = ov.v * t_pass * (1.0 if rel_heading > 0 else -1.0)
            lo, hi = sorted((so, so + travel))
            if hi + ov.length > s_from - 5.0 and lo - ov.length < s_to + 5.0:
                return False
        return True

    # ---- extra constraints ----------------------------------------------------------------------------------------
    def constrain(self, world: World, cons: list) -> None:
        ego = self.ego
        if self.wait_at is not None:
            cons.append((self.wait_at - ego.s, 0.0, 0.5))
        if self.lc_pending:
            # wait for a gap early enough that a lane change from standstill still fits (12 m + margins)
            lane_id, s_local = ego.path.lane_at(ego.s)
            lane = self.net.lanes[lane_id]
            gap = (lane.length - s_local) - 22.0
            cons.append((gap, 0.0, 0.5))


def _corners(ob, j: int) -> np.ndarray:
    c, s = math.cos(ob.h[j]), math.sin(ob.h[j])
    hl, hw = ob.hl[j], ob.hw[j]
    pts = []
    for a, b in ((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw)):
        pts.append(np.array([ob.cx[j] + c * a - s * b, ob.cy[j] + s * a + c * b]))
    return np.array(pts)


def initial_path(net: RoadNetwork, route: Route, lane: int) -> LanePath:
    return LanePath(net, [lane])
