"""The world simulation at 10 Hz: IDM vehicles on the lane graph, junction right of way, traffic lights,
lane changes, pedestrians on sidewalks and crosswalks, static objects; the ego is one of the vehicles with
its own driver (``planlab.world.expert``).

Safety is layered so that no two agents ever overlap:

1. *Right of way* at junctions: a vehicle enters a lane connector only after committing to it; it commits
   only when the light allows (red/yellow rules), no conflicting connector is claimed, every approaching
   vehicle with higher priority is far enough away to let it clear, and its exit lane has room.
2. *Crosswalks*: a pedestrian steps onto a crosswalk only when every vehicle heading for it can stop
   comfortably; vehicles stop before any crosswalk a pedestrian is on.
3. *Corridor*: every vehicle brakes (IDM) for the nearest obstacle box that intersects its swept corridor
   ahead (its path with its lateral offset, widened by half its width plus a margin).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString

from planlab.world.actors import Driving, Pedestrian, StaticObject, Vehicle  # noqa: F401
from planlab.world.lights import GREEN, RED, YELLOW, Signals
from planlab.world.network import RoadNetwork
from planlab.world.paths import LanePath

DT = 0.1  # s
CORRIDOR_MARGIN = 0.3  # m
CORRIDOR_STEP = 1.0  # m between corridor samples


@dataclass
class Obstacles:
    """Boxes of every agent at the current step (centre, heading, half extents, velocity, owner)."""

    cx: np.ndarray
    cy: np.ndarray
    h: np.ndarray
    hl: np.ndarray
    hw: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    static: np.ndarray  # bool
    owner: list  # ("veh", id) | ("ped", id) | ("static", id)


def idm_accel(
    v: float, v0: float, gap: float, dv: float, d: Driving, s0: float, headway: float | None = None
) -> float:
    """Intelligent Driver Model acceleration for a leader ``gap`` metres ahead closing at ``dv`` m/s.

    Stop lines use a short ``headway`` so vehicles brake to a halt instead of creeping up to the line.
    """
    T = d.headway if headway is None else headway
    s_star = s0 + max(0.0, v * T + v * dv / (2.0 * math.sqrt(d.a_max * d.b_comf)))
    free = 1.0 - (v / max(v0, 0.1)) ** d.delta if v0 > 0.05 else -1.0
    return d.a_max * (free - (s_star / max(gap, 0.05)) ** 2)


class World:
    """All agents of one log and the rules that move them."""

    def __init__(self, net: RoadNetwork, signals: Signals, rng: np.random.Generator):
        self.net = net
        self.signals = signals
        self.rng = rng
        self.t = 0.0
        self.vehicles: dict[int, Vehicle] = {}
        self.peds: dict[int, Pedestrian] = {}
        self.statics: dict[int, StaticObject] = {}
        self.ego: Vehicle | None = None
        self.ego_driver = None  # planlab.world.expert.Expert
        self._next_id = 1
        self.claims: dict[int, set[int]] = {}  # connector -> vehicles committed to it
        self.cw_occupied: dict[int, set[int]] = {}  # crosswalk -> pedestrians on / entering it
        self.obstacles: Obstacles | None = None
        # derived once per network (several logs and placement attempts share them)
        if "traffic" not in net.cache:
            conflicts: dict[int, set[int]] = {}
            for j in net.junctions.values():
                conflicts.update(j.conflicts)
            net.cache["traffic"] = (_lane_crosswalks(net), conflicts, _dead_end_lanes(net), _merge_gates(net))
        self.lane_crosswalks, self._conflicts, self._dead_ends, self._merge_gates = net.cache["traffic"]
        self._drivable = None

    # ---- ids -----------------------------------------------------------------------------------------------
    def new_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def token(self) -> str:
        return self.rng.bytes(8).hex()

    # ---- helpers ----------------------------------------------------------------------------------------------
    def drivable_prepared(self):
        """NAVSIM's drivable area (roadblocks ∪ junctions ∪ car parks), prepared for point queries."""
        if self._drivable is None:
            self._drivable = self.net.drivable
            shapely.prepare(self._drivable)
        return self._drivable

    def drivable_contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return shapely.contains_xy(self.drivable_prepared(), x, y)

    def can_continue(self, lane: int) -> bool:
        """Whether a vehicle on ``lane`` can drive on forever (no dead end ahead)."""
        return lane not in self._dead_ends

    def random_successor(self, lane: int) -> int | None:
        succ = [c for c in self.net.lanes[lane].successors if c not in self._dead_ends]
        if not succ:
            return None
        return int(succ[int(self.rng.integers(len(succ)))])

    def extend_random(self, veh: Vehicle, horizon: float = 160.0) -> None:
        while veh.path.end - veh.s < horizon:
            nxt = self.random_successor(veh.path.last_lane)
            if nxt is None:
                break
            veh.path.append(nxt)
        veh.path.trim_before(veh.s - veh.length - 30.0)

    # ---- geometry of everybody ------------------------------------------------------------------------------
    def refresh(self) -> None:
        for veh in self.vehicles.values():
            veh.update_pose()
        for ped in self.peds.values():
            ped_pose(self.net, ped)
        cx, cy, h, hl, hw, vx, vy, st, owner = [], [], [], [], [], [], [], [], []
        for veh in self.vehicles.values():
            c = veh.center()
            cx.append(c[0])
            cy.append(c[1])
            h.append(veh.heading)
            hl.append(0.5 * veh.length)
            hw.append(0.5 * veh.width)
            vx.append(veh.v * math.cos(veh.heading))
            vy.append(veh.v * math.sin(veh.heading))
            st.append(False)
            owner.append(("veh", veh.id))
        for ped in self.peds.values():
            cx.append(ped.x)
            cy.append(ped.y)
            h.append(ped.heading)
            hl.append(0.5 * ped.length)
            hw.append(0.5 * ped.width)
            vx.append(ped.v * math.cos(ped.heading))
            vy.append(ped.v * math.sin(ped.heading))
            st.append(False)
            owner.append(("ped", ped.id))
        for so in self.statics.values():
            cx.append(so.x)
            cy.append(so.y)
            h.append(so.heading)
            hl.append(0.5 * so.length)
            hw.append(0.5 * so.width)
            vx.append(0.0)
            vy.append(0.0)
            st.append(True)
            owner.append(("static", so.id))
        a = np.asarray
        self.obstacles = Obstacles(
            a(cx, float),
            a(cy, float),
            a(h, float),
            a(hl, float),
            a(hw, float),
            a(vx, float),
            a(vy, float),
            a(st, bool),
            owner,
        )

    # ---- the step --------------------------------------------------------------------------------------------
    def step(self) -> None:
        """Advance 0.1 s. Poses and obstacle boxes must be current (:meth:`refresh`) on entry; they are on exit."""
        if self.obstacles is None:
            self.refresh()
        vehicles = list(self.vehicles.values())
        for veh in vehicles:
            if veh.is_ego and self.ego_driver is not None:
                self.ego_driver.prepare(self)
            else:
                self.extend_random(veh)
                self._traffic_lane_change(veh)
        constraints: dict[int, list[tuple[float, float, float]]] = {v.id: [] for v in vehicles}
        self._junctions(vehicles, constraints)
        self._merge_followers(vehicles, constraints)
        self._crosswalk_stops(vehicles, constraints)
        leaders = self._corridor(vehicles)
        for veh in vehicles:
            if veh.id in leaders:
                constraints[veh.id].append(leaders[veh.id])
            if veh.is_ego and self.ego_driver is not None:
                self.ego_driver.constrain(self, constraints[veh.id])
            self._longitudinal(veh, constraints[veh.id])
        self._pedestrians()
        self._release_claims(vehicles)
        self.t += DT
        self.refresh()

    # ---- longitudinal control ------------------------------------------------------------------------------------
    def desired_speed(self, veh: Vehicle) -> float:
        """Highest speed now that still allows comfortable braking to every limit ahead (curves, turns)."""
        cached = veh.script.get("v0")
        if cached is not None and cached[0] == self.t:
            return cached[1]
        v0 = self._desired_speed(veh)
        veh.script["v0"] = (self.t, v0)
        return v0

    def _desired_speed(self, veh: Vehicle) -> float:
        d = veh.driving
        look = veh.v * veh.v / (2.0 * d.b_comf) + 25.0
        s, lim = veh.path.speed_limit(veh.s, veh.s + look)
        if len(s) == 0:
            return 0.0
        lim = lim * d.speed_factor
        # plan with 70 % of the comfortable deceleration: the jerk limit delays the onset of braking
        reach = np.sqrt(lim * lim + 2.0 * 0.7 * d.b_comf * np.maximum(s - veh.s, 0.0))
        v0 = float(np.min(reach))
        cap = veh.script.get("v_cap")
        return v0 if cap is None else min(v0, cap)

    def _longitudinal(self, veh: Vehicle, cons: list[tuple[float, float, float]]) -> None:
        d = veh.driving
        v0 = self.desired_speed(veh)
        # Dead end of the path: a stop constraint at its end.
        rem = veh.path.end - (veh.s + veh.front)
        if not self.net.lanes[veh.path.last_lane].successors or rem < 30.0:
            cons.append((rem - 0.5, 0.0, 0.5))
        a_free = d.a_max * (1.0 - (veh.v / max(v0, 0.1)) ** d.delta) if v0 > 0.05 else -d.b_comf
        a_cmd = max(a_free, -1.25 * d.b_comf) if veh.v > v0 else a_free
        for gap, v_lead, s0 in cons:
            # constraints with s0 < 1 m are stop points (lines, gates): brake to a halt, do not creep
            a_c = idm_accel(veh.v, v0, gap, veh.v - v_lead, d, s0, headway=0.6 if s0 < 1.0 else None)
            if gap < 0.3 and veh.v < 0.3:
                a_c = min(a_c, -d.b_comf)
            a_cmd = min(a_cmd, a_c)
        a_cmd = max(a_cmd, -d.b_max)
        a_cmd = min(a_cmd, d.a_max)
        a_new = min(max(a_cmd, veh.a - d.jerk_down * DT), veh.a + d.jerk_up * DT)
        if veh.v <= 0.0 and a_new <= 0.0:
            # standing: the brake holds the car; the acceleration relaxes to zero at the jerk limit
            veh.v = 0.0
            veh.a = min(0.0, veh.a + d.jerk_up * DT)
            return
        v_new = veh.v + a_new * DT
        if v_new < 0.0:
            veh.s += veh.v * veh.v / (2.0 * -a_new)
            veh.v = 0.0
        else:
            veh.s += veh.v * DT + 0.5 * a_new * DT * DT
            veh.v = v_new
        veh.a = a_new

    # ---- corridor leaders -----------------------------------------------------------------------------------------
    def _corridor(self, vehicles: list[Vehicle]) -> dict[int, tuple[float, float, float]]:
        """Nearest obstacle in each vehicle's corridor: {vehicle id: (gap [m], lead speed, s0)}.

        Each vehicle samples its path ahead (with its lateral offset) at K points; an obstacle is in the way
        where a sample falls inside the obstacle's box grown by half the vehicle's width plus a margin. The
        gap is interpolated between the last sample outside and the first inside. Vectorised over all
        (vehicle, obstacle) pairs near each other.
        """
        ob = self.obstacles
        out: dict[int, tuple[float, float, float]] = {}
        for veh in vehicles:
            veh.script.pop("leader", None)
            veh.script.pop("leader_gap", None)
        if ob is None or len(ob.cx) < 2 or not vehicles:
            return out
        index = {o: k for k, o in enumerate(ob.owner)}
        k_max = 64
        n = len(vehicles)
        px = np.full((n, k_max), np.nan)
        py = np.full((n, k_max), np.nan)
        ph = np.zeros((n, k_max))
        ps = np.zeros((n, k_max))
        looks = np.zeros(n)
        x0 = np.zeros(n)
        y0 = np.zeros(n)
        for i, veh in enumerate(vehicles):
            d = veh.driving
            look = max(20.0, veh.v * (d.headway + 2.0) + veh.v * veh.v / (2.0 * d.b_comf) + 10.0)
            front = veh.s + veh.front
            # path vertices ahead (≤ 0.9 m apart), thinned so that samples stay < 3 m apart
            ss, pts, hd = veh.path.vertices(front, front + look, min(3.0, look / (k_max - 2)) / 0.9)
            m = min(len(ss), k_max - 1)
            if m < 1:
                continue
            fx, fy, fh = veh.path.pose1(front)
            if veh.lat.idle:
                px[i, 0], py[i, 0] = fx, fy
                px[i, 1 : m + 1], py[i, 1 : m + 1] = pts[:m, 0], pts[:m, 1]
            else:
                sv = np.concatenate([[front], ss[:m]])
                hv = np.concatenate([[fh], hd[:m]])
                off = veh.lat.offset(sv)
                px[i, : m + 1] = np.concatenate([[fx], pts[:m, 0]]) - np.sin(hv) * off
                py[i, : m + 1] = np.concatenate([[fy], pts[:m, 1]]) + np.cos(hv) * off
            ph[i, 0], ph[i, 1 : m + 1] = fh, hd[:m]
            ps[i, 0], ps[i, 1 : m + 1] = 0.0, ss[:m] - front
            looks[i] = look
            x0[i], y0[i] = px[i, 0], py[i, 0]
        # candidate pairs: obstacle centre within reach of the vehicle's first sample
        me = np.array([index[("veh", v.id)] for v in vehicles])
        d2 = np.hypot(ob.cx[None, :] - x0[:, None], ob.cy[None, :] - y0[:, None])
        cand = d2 < (looks[:, None] + 15.0)
        cand[np.arange(n), me] = False
        vi, oj = np.nonzero(cand)
        if len(vi) == 0:
            return out
        widths = np.array([0.5 * v.width + CORRIDOR_MARGIN for v in vehicles])
        r = widths[vi][:, None]
        c, s_ = np.cos(ob.h[oj])[:, None], np.sin(ob.h[oj])[:, None]
        dx = px[vi] - ob.cx[oj, None]
        dy = py[vi] - ob.cy[oj, None]
        u = np.abs(dx * c + dy * s_) - (ob.hl[oj, None] + r)
        w = np.abs(-dx * s_ + dy * c) - (ob.hw[oj, None] + r)
        with np.errstate(invalid="ignore"):
            f = np.maximum(u, w)  # ≤ 0 inside the grown box; NaN beyond the path end
        with np.errstate(invalid="ignore"):
            inside = f <= 0.0
        hit = inside.any(axis=1)
        if not hit.any():
            return out
        vi, oj, f, inside = vi[hit], oj[hit], f[hit], inside[hit]
        first = np.argmax(inside, axis=1)
        prev = np.maximum(first - 1, 0)
        rows = np.arange(len(vi))
        f0, f1 = f[rows, prev], f[rows, first]
        frac = np.where(first > 0, f0 / np.maximum(f0 - f1, 1e-9), 0.0)
        s_prev, s_first = ps[vi, prev], ps[vi, first]
        gap = np.where(first > 0, s_prev + frac * (s_first - s_prev), 0.0)
        hd = ph[vi, first]
        v_along = np.maximum(ob.vx[oj] * np.cos(hd) + ob.vy[oj] * np.sin(hd), 0.0)
        order = np.lexsort((gap, vi))
        seen: set[int] = set()
        for k in order:
            i = int(vi[k])
            if i in seen:
                continue
            seen.add(i)
            veh = vehicles[i]
            j = int(oj[k])
            kind = ob.owner[j][0]
            s0 = veh.driving.s0 if not ob.static[j] else max(veh.driving.s0 - 0.5, 1.5)
            if kind == "ped":
                s0 = 2.5
            out[veh.id] = (float(gap[k]), float(v_along[k]), s0)
            veh.script["leader"] = ob.owner[j]
            veh.script["leader_gap"] = float(gap[k])
        return out

    # ---- junctions -----------------------------------------------------------------------------------------------
    def _upcoming_connectors(self, veh: Vehicle, reach: float) -> list[tuple[int, float, float]]:
        """[(connector, absolute start s, absolute stop point s)] ahead of the vehicle's front within reach."""
        out = []
        k = veh.path.lane_index_at(veh.s)
        front = veh.s + veh.front
        for idx in range(k, len(veh.path.lanes)):
            lid = veh.path.lanes[idx]
            seg = self.net.lanes[lid]
            start = veh.path.start[idx]
            if start - front > reach:
                break
            if not seg.is_connector:
                continue
            prev = self.net.lanes[seg.predecessors[0]]
            if idx > 0 and prev.stop_s is not None:
                stop = veh.path.start[idx - 1] + prev.stop_s
            else:
                stop = start - 0.3
            out.append((lid, start, stop))
        return out

    def _junctions(self, vehicles: list[Vehicle], cons: dict[int, list]) -> None:
        approach: dict[int, list[tuple[Vehicle, float]]] = {}
        pending: list[tuple[Vehicle, int, float, float]] = []
        for veh in vehicles:
            reach = veh.v * veh.v / (2.0 * veh.driving.b_comf) + veh.v * 2.0 + 25.0
            front = veh.s + veh.front
            for cid, start, stop in self._upcoming_connectors(veh, reach):
                if cid in veh.committed:
                    # a claim made on green is reconsidered when the light changes before entering
                    if (
                        front < start
                        and self.signals.is_signalised(cid)
                        and self.signals.connector_state(cid, self.t) != GREEN
                        and not self._go_on_yellow(veh, cid, stop - front, start - front)
                    ):
                        self._uncommit(veh, cid)
                        cons[veh.id].append((stop - front, 0.0, 0.3))
                        break
                    continue
                if front > start + 0.5:
                    # already inside without a claim (spawned there): claim it now
                    veh.committed.add(cid)
                    self.claims.setdefault(cid, set()).add(veh.id)
                    continue
                pending.append((veh, cid, start, stop))
                approach.setdefault(cid, []).append((veh, stop - front))
                break
            self._merge_gate(veh, cons)
        for veh, cid, start, stop in pending:
            front = veh.s + veh.front
            d_stop = stop - front
            waits = veh.script.setdefault("wait", {})
            waits[cid] = waits.get(cid, 0.0) + DT if (veh.v < 0.3 and d_stop < 3.0) else 0.0
            ok = self._may_enter(veh, cid, d_stop, start - front, approach)
            d = veh.driving
            decide = veh.v * veh.v / (2.0 * d.b_comf) + veh.v * 1.0 + 6.0
            if ok and d_stop <= decide:
                veh.committed.add(cid)
                self.claims.setdefault(cid, set()).add(veh.id)
            elif not ok:
                cons[veh.id].append((d_stop, 0.0, 0.3))

    def _merge_gate(self, veh: Vehicle, cons: dict[int, list]) -> None:
        """A ramp vehicle joins the zipper order of its merge zone (see :meth:`_merge_followers`) only when
        neither it nor any main-road vehicle would need more than comfortable braking to fit in; until then
        it stops before its gate, where its connector starts to squeeze the main lane."""
        if not self._merge_gates:
            return
        front = veh.s + veh.front
        k = veh.path.lane_index_at(veh.s)
        for idx in range(k, min(k + 3, len(veh.path.lanes))):
            cid = veh.path.lanes[idx]
            gate = self._merge_gates.get(cid)
            if gate is None:
                continue
            merged = veh.script.setdefault("merged", set())
            if cid in merged:
                return
            s_gate, main_conn, _ = gate
            start = veh.path.start[idx]
            d_gate = start + s_gate - front
            if d_gate > veh.v * veh.v / (2.0 * veh.driving.b_comf) + 40.0:
                return
            c = self.net.lanes[cid]
            u_me = front - (start + c.length)  # signed distance of my front past the merge point
            exit_lane = c.successors[0]
            ok = True
            for ov in self.vehicles.values():
                if ov.id == veh.id:
                    continue
                u_p = None
                for j, lid in enumerate(ov.path.lanes[:4]):
                    if lid == main_conn or (lid == cid and cid in ov.script.get("merged", ())):
                        u_p = ov.s + ov.front - (ov.path.start[j] + self.net.lanes[lid].length)
                        break
                    if lid == exit_lane:
                        u_p = ov.s + ov.front - ov.path.start[j]
                        break
                if u_p is None or u_p < -150.0 or u_p - ov.length > 80.0:
                    continue
                if u_p >= u_me:  # it will be ahead of me: can I follow it comfortably?
                    gap = (u_p - ov.length) - u_me
                    a = idm_accel(veh.v, 30.0, gap, veh.v - ov.v, veh.driving, veh.driving.s0)
                    if a < -veh.driving.b_comf:
                        ok = False
                else:  # it will be behind me: can it follow me comfortably?
                    gap = (u_me - veh.length) - u_p
                    a = idm_accel(ov.v, 30.0, gap, ov.v - veh.v, ov.driving, ov.driving.s0)
                    if a < -0.8 * ov.driving.b_comf:
                        ok = False
                if not ok:
                    break
            if ok:
                merged.add(cid)
            else:
                cons[veh.id].append((d_gate, 0.0, 0.3))
            return

    def _merge_followers(self, vehicles: list[Vehicle], cons: dict[int, list]) -> None:
        """Zipper order in merge zones: main-road vehicles and ramp vehicles past their gate are ordered by
        their distance to the merge point, and each follows the one ahead of it (a virtual leader), so
        nobody is surprised by a vehicle that is beside it now and in front of it at the merge point."""
        for cid, (_s_gate, main_conn, _s_main) in self._merge_gates.items():
            exit_lane = self.net.lanes[cid].successors[0]
            members: list[tuple[float, Vehicle]] = []
            for veh in vehicles:
                k = veh.path.lane_index_at(veh.s)
                for idx in range(k, min(k + 3, len(veh.path.lanes))):
                    lid = veh.path.lanes[idx]
                    if lid == cid and cid not in veh.script.get("merged", ()):
                        break  # still before its gate: handled by _merge_gate
                    if lid in (cid, main_conn):
                        merge_point = veh.path.start[idx] + self.net.lanes[lid].length
                        members.append((veh.s + veh.front - merge_point, veh))
                        break
                    if lid == exit_lane:
                        members.append((veh.s + veh.front - veh.path.start[idx], veh))
                        break
            if len(members) < 2:
                continue
            members.sort(key=lambda m: m[0])
            for (u, veh), (u_lead, lead) in zip(members[:-1], members[1:], strict=True):
                if u < -120.0 or u_lead - lead.length > 60.0:
                    continue
                gap = (u_lead - lead.length) - u
                cons[veh.id].append((gap, lead.v, veh.driving.s0))

    def _uncommit(self, veh: Vehicle, cid: int) -> None:
        veh.committed.discard(cid)
        holders = self.claims.get(cid)
        if holders:
            holders.discard(veh.id)

    def _go_on_yellow(self, veh: Vehicle, cid: int, d_stop: float, d_entry: float) -> bool:
        """Decide once per light change whether to go on (yellow, or red one cannot stop for) or stop.

        Go only if stopping would need more than the driver's comfortable yellow deceleration and the
        connector can be reached before the yellow ends; stop otherwise (up to the maximum braking).
        """
        if veh.yellow_go.get(cid) and veh.v < 1.0:
            del veh.yellow_go[cid]  # a "go" decision lapses once the vehicle has come (nearly) to a stop
        if cid not in veh.yellow_go:
            state = self.signals.connector_state(cid, self.t)
            rem = self.signals.remaining(cid, self.t) if state == YELLOW else 0.0
            if veh.v < 0.5:
                need = 0.0  # (nearly) standing: it can always stay
            else:
                need = veh.v * veh.v / (2.0 * d_stop) if d_stop > 0.1 else float("inf")
            in_time = d_entry / max(veh.v, 0.1) < rem - 0.3
            veh.yellow_go[cid] = bool(
                (need > veh.driving.yellow_decel and in_time) or need > veh.driving.b_max
            )
        return veh.yellow_go[cid]

    def _may_enter(self, veh: Vehicle, cid: int, d_stop: float, d_entry: float, approach: dict) -> bool:
        c = self.net.lanes[cid]
        t = self.t
        # Traffic light.
        if self.signals.is_signalised(cid):
            if self.signals.connector_state(cid, t) != GREEN and not self._go_on_yellow(
                veh, cid, d_stop, d_entry
            ):
                return self._deny(veh, "light")
        # Stop sign: a full stop at the line first.
        if c.must_stop:
            if veh.v < 0.2 and d_stop < 2.5:
                veh.stopped_for[cid] = veh.stopped_for.get(cid, 0.0) + DT
            if veh.stopped_for.get(cid, 0.0) < 0.8:
                return self._deny(veh, "stop sign")
        conflicts = self._conflicts.get(cid, ())
        if cid in self._merge_gates:
            conflicts = ()  # a ramp joins at its merge gate (see _merge_gate), not at the junction entry
        # A claimed conflicting connector blocks (a ramp's claim never blocks the main carriageway). A driver
        # waiting slowly near the line may go once the holder is past the conflict or merges in ahead of it
        # (only then: a fast approach must not count on a decision that may flip when the holder slows).
        waiting = veh.v < 2.0 and d_stop < 5.0
        for other in conflicts:
            if other in self._merge_gates:
                continue
            holders = self.claims.get(other)
            if holders and any(
                h != veh.id
                and not (waiting and self._past_conflict(cid, other, h))
                and not (waiting and self._merges_ahead(veh, c, other, h, d_entry))
                for h in holders
            ):
                return self._deny(veh, "claim")
        # Courtesy: whoever has waited at the line for long goes first (no starvation on busy roads). Not at
        # lights: there the light decides, and a driver held by red must not stop one who has green.
        my_wait = veh.script.get("wait", {}).get(cid, 0.0)
        for other in () if self.signals.is_signalised(cid) else conflicts:
            for ov, _od in approach.get(other, ()):
                w = ov.script.get("wait", {}).get(other, 0.0)
                if ov.id != veh.id and w > 4.0 and (w > my_wait or (w == my_wait and ov.id < veh.id)):
                    return self._deny(veh, "courtesy")
        # Higher-priority traffic approaching a conflicting connector must be far enough away.
        t_clear = _time_to_clear(veh, d_stop + c.length + veh.length, c.speed_limit)
        for other in conflicts:
            oc = self.net.lanes[other]
            if oc.priority <= c.priority:
                continue
            for ov, od in approach.get(other, ()):
                if ov.id == veh.id:
                    continue
                ow = ov.script.get("wait", {}).get(other, 0.0)
                if (
                    my_wait > 4.0
                    and my_wait > ow
                    and (ov.v < 0.3 or od > ov.v * ov.v / (2.0 * ov.driving.b_comf) + 2.0)
                ):
                    continue  # it stands or can still stop for us, and we have waited longer: courtesy
                if self.signals.is_signalised(other):
                    st = self.signals.connector_state(other, t)
                    if st == RED or (st == YELLOW and not ov.yellow_go.get(other, True)):
                        continue
                eta = od / max(ov.v, 1.0) if od > 0 else 0.0
                if eta < t_clear + 2.0:
                    return self._deny(veh, "priority")
        # Room on the exit lane (do not block the junction).
        out_lane = c.successors[0]
        for ov in self.vehicles.values():
            if ov.id == veh.id:
                continue
            lid, s_local = ov.path.lane_at(ov.s)
            if lid == out_lane and s_local - ov.rear < veh.length + 3.0 and ov.v < 3.0:
                return self._deny(veh, "exit full")
        return True

    def _past_conflict(self, cid: int, other: int, holder: int) -> bool:
        """Whether the holder of a claim on connector ``other`` has its rear past the stretch of ``other``
        that conflicts with ``cid`` (it only drives away from us now: its claim no longer blocks)."""
        ov = self.vehicles.get(holder)
        if ov is None:
            return False
        lid, s_local = ov.path.lane_at(ov.s)
        if lid != other:
            return False  # still approaching (or already out, when its claim is about to go)
        return s_local - ov.rear > self._conflict_end(cid, other) + 0.5

    def _conflict_end(self, cid: int, other: int) -> float:
        """Arc length on ``other`` after which a car on it (centre ≥ 1.6 m from ``cid``'s lane polygon: half
        a wide car and the 0.6 m of the conflict test) no longer touches ``cid``; cached per network."""
        ends = self.net.cache.setdefault("conflict_end", {})
        key = (cid, other)
        if key not in ends:
            o = self.net.lanes[other]
            zone = self.net.lanes[cid].polygon.buffer(1.6)
            inside = shapely.contains_xy(zone, o.center[:, 0], o.center[:, 1])
            # no overlap (exit or side-by-side conflicts): the whole connector conflicts
            ends[key] = float(o.s[np.nonzero(inside)[0][-1]]) + 1.0 if inside.any() else o.length
        return ends[key]

    def _merges_ahead(self, veh: Vehicle, c, other: int, holder: int, d_entry: float) -> bool:
        """Whether the holder of a claim on ``other``, a connector into the same exit road as ``c`` (the
        same lane or the one beside it), is already on it or past it and leaves the junction at least 2 s
        before ``veh`` could get there: it will be ahead, and ``veh`` goes in behind it like behind any
        leader instead of waiting until its rear has left the junction."""
        out_me, out_other = (
            self.net.lanes[c.successors[0]],
            self.net.lanes[self.net.lanes[other].successors[0]],
        )
        if out_me.block != out_other.block:
            return False
        ov = self.vehicles.get(holder)
        if ov is None:
            return False
        lid, s_local = ov.path.lane_at(ov.s)
        if lid == out_other.fid:
            return True
        if lid != other:
            return False
        t_holder = (self.net.lanes[other].length - s_local) / max(ov.v, 0.5)
        return t_holder + 2.0 < _time_to_clear(veh, max(d_entry, 0.0) + c.length, c.speed_limit)

    def _deny(self, veh: Vehicle, reason: str) -> bool:
        """Record why a vehicle may not enter (for diagnostics) and return False."""
        veh.script["deny"] = reason
        return False

    def _release_claims(self, vehicles: list[Vehicle]) -> None:
        for veh in vehicles:
            if not veh.committed:
                continue
            rear = veh.s - veh.rear
            done = []
            for cid in veh.committed:
                if cid not in veh.path.lanes:
                    done.append(cid)
                    continue
                k = veh.path.lanes.index(cid)
                end = veh.path.start[k] + self.net.lanes[cid].length
                if rear > end + 0.5:
                    done.append(cid)
            for cid in done:
                veh.committed.discard(cid)
                veh.yellow_go.pop(cid, None)
                veh.stopped_for.pop(cid, None)
                holders = self.claims.get(cid)
                if holders:
                    holders.discard(veh.id)

    # ---- crosswalks --------------------------------------------------------------------------------------------------
    def _crosswalk_stops(self, vehicles: list[Vehicle], cons: dict[int, list]) -> None:
        """Each vehicle stops before a crosswalk while a pedestrian on it is in, or will walk into, the
        vehicle's own path there; one who has passed its path or is still far from it does not hold it up
        (drivers do not wait for the whole crosswalk to clear)."""
        busy = {cw: peds for cw, peds in self.cw_occupied.items() if peds}
        if not busy:
            return
        for veh in vehicles:
            front = veh.s + veh.front
            reach = veh.v * veh.v / (2.0 * veh.driving.b_comf) + 30.0
            k = veh.path.lane_index_at(veh.s)
            for idx in range(k, len(veh.path.lanes)):
                start = veh.path.start[idx]
                if start - front > reach:
                    break
                for cw, s0, s1 in self.lane_crosswalks.get(veh.path.lanes[idx], ()):
                    if cw in busy:
                        gap = start + s0 - 1.0 - front
                        if gap > -0.5 and self._crosswalk_in_path(veh, start, s0, s1, gap, busy[cw]):
                            cons[veh.id].append((gap, 0.0, 0.3))

    def _crosswalk_in_path(
        self, veh: Vehicle, start: float, s0: float, s1: float, gap: float, ped_ids: set[int]
    ) -> bool:
        """Whether a pedestrian on the crosswalk stands in the vehicle's path (its half width + 1 m either
        side of the lane centre where it crosses) or walks towards it and gets there before the vehicle,
        at its speed (≥ 2 m/s: it may start from rest) plus 2 s, has crossed."""
        x, y, h = veh.path.pose1(start + 0.5 * (s0 + s1))
        nx, ny = -math.sin(h), math.cos(h)  # across the vehicle's path [unit]
        half = 0.5 * veh.width + 1.0
        t_pass = (max(gap, 0.0) + 1.0 + (s1 - s0) + veh.length) / max(veh.v, 2.0) + 2.0
        for pid in ped_ids:
            ped = self.peds.get(pid)
            if ped is None:
                continue
            lat = (ped.x - x) * nx + (ped.y - y) * ny  # signed offset from the path centre [m]
            if abs(lat) < half:
                return True
            towards = -math.copysign(1.0, lat) * (math.cos(ped.heading) * nx + math.sin(ped.heading) * ny)
            if towards > 0.1 and (abs(lat) - half) / (max(ped.v_des, 0.5) * towards) < t_pass:
                return True
        return False

    def crossing_allowed(self, edge_id: int, speed: float) -> bool:
        """Whether a pedestrian may step onto crossing edge ``edge_id``: its signal shows a long enough red
        to every approach of the crossed road, and every vehicle heading for the crosswalk can still stop."""
        edge = self.net.ped_edges[edge_id]
        cw = edge.crosswalk
        node = edge.node
        if node is not None and node in self.signals.plans:
            plan = self.signals.plans[node]
            j = self.net.junctions[node]
            blocks = set(edge.road_side_blocks)
            t_need = edge.length / max(speed, 0.8) + 2.0
            for k, phase in enumerate(j.phases):
                if blocks & set(phase) and (
                    plan.state(k, self.t) != RED or plan.time_until_green(k, self.t) < t_need
                ):
                    return False
        centroid = self.net.crosswalks[cw].polygon.centroid
        for veh in self.vehicles.values():
            c = veh.center()
            if math.hypot(c[0] - centroid.x, c[1] - centroid.y) > 120.0:
                continue
            front = veh.s + veh.front
            k = veh.path.lane_index_at(veh.s)
            for idx in range(max(k - 1, 0), len(veh.path.lanes)):
                start = veh.path.start[idx]
                for cw2, s0, s1 in self.lane_crosswalks.get(veh.path.lanes[idx], ()):
                    if cw2 != cw or start + s1 < veh.s - veh.rear:
                        continue
                    stop_dist = veh.v * veh.v / (2.0 * 2.5) + 4.0 + veh.v * 1.0
                    if start + s0 - front < stop_dist:
                        return False
        return True

    # ---- lane changes (traffic) ------------------------------------------------------------------------------------
    def _traffic_lane_change(self, veh: Vehicle) -> None:
        veh.lc_cooldown = max(0.0, veh.lc_cooldown - DT)
        if not veh.lat.idle or veh.lc_cooldown > 0.0:
            veh.lat.prune(veh.s)
            return
        lane_id, s_local = veh.path.lane_at(veh.s)
        lane = self.net.lanes[lane_id]
        if lane.is_connector:
            return
        target = None
        forced = veh.script.get("cut_in")
        if forced is not None and self.t >= forced.get("t", 0.0):
            target = forced["lane"] if forced["lane"] != lane_id else None
            if target is not None and not self._lc_gap_ok(veh, target, aggressive=True):
                target = None
            if target is not None:
                veh.script.pop("cut_in", None)
        if target is None:
            leader = veh.script.get("leader")
            gap = veh.script.get("leader_gap", 1e9)
            blocked_static = leader is not None and leader[0] == "static" and gap < 40.0
            slow_leader = (
                leader is not None
                and leader[0] == "veh"
                and gap < 25.0
                and self.vehicles.get(leader[1]) is not None
                and self.vehicles[leader[1]].v < 0.6 * self.desired_speed(veh)
                and not self.vehicles[leader[1]].is_ego
            )
            if blocked_static or (slow_leader and self.rng.random() < 0.02):
                for nb in _neighbours(self.net, lane_id):
                    if self.can_continue(nb) and self._lc_gap_ok(veh, nb):
                        target = nb
                        break
        if target is not None:
            self.change_lane(veh, target)
            veh.lc_cooldown = 6.0

    def _lc_gap_ok(self, veh: Vehicle, target: int, aggressive: bool = False) -> bool:
        tl = self.net.lanes[target]
        probe = LanePath(self.net, [target])
        s_t, d_t = probe.project(np.array([veh.x, veh.y]), tl.length / 2.0, back=tl.length, ahead=tl.length)
        dist_lc = float(np.clip(veh.v * 3.5, 20.0, 55.0))
        if s_t < 0.5 or tl.length - s_t < dist_lc + 8.0 or abs(d_t) > 5.0:
            return False
        for ov in self.vehicles.values():
            if ov.id == veh.id:
                continue
            c = ov.center()
            if math.hypot(c[0] - veh.x, c[1] - veh.y) > 80.0:
                continue
            so, do = probe.project(np.array(c), s_t, back=60.0, ahead=60.0)
            if abs(do) > 2.6:
                continue
            rel = so - s_t  # + ahead
            ahead_gap = rel - 0.5 * ov.length - veh.front
            behind_gap = -rel - 0.5 * ov.length - veh.rear
            if rel >= 0:
                need = max(6.0, veh.v * (0.6 if aggressive else veh.driving.min_gap_accept))
                if ahead_gap < need:
                    return False
            else:
                tg = 1.0 if (aggressive and not ov.is_ego) else (1.5 if ov.is_ego else 1.2)
                if aggressive and ov.is_ego:
                    tg = 0.9
                need = max(7.0, ov.v * tg + max(ov.v - veh.v, 0.0) * 2.0)
                if behind_gap < need:
                    return False
        for ped in self.peds.values():
            so, do = probe.project(np.array([ped.x, ped.y]), s_t, back=20.0, ahead=60.0)
            if abs(do) < 2.5 and -10.0 < so - s_t < 60.0:
                return False
        for so_ in self.statics.values():
            if math.hypot(so_.x - veh.x, so_.y - veh.y) > dist_lc + 40.0:
                continue
            so, do = probe.project(np.array([so_.x, so_.y]), s_t, back=20.0, ahead=dist_lc + 30.0)
            lane_h = probe.pose1(so)[2]
            rel = so_.heading - lane_h
            lateral_half = 0.5 * abs(so_.length * math.sin(rel)) + 0.5 * abs(so_.width * math.cos(rel))
            if abs(do) < 0.5 * veh.width + lateral_half + 0.4 and -10.0 < so - s_t < dist_lc + 25.0:
                return False
        return True

    def change_lane(
        self, veh: Vehicle, target: int, distance: float | None = None, continuation: list[int] | None = None
    ) -> None:
        """Start a lane change onto ``target`` (an adjacent lane): new path, smooth lateral offset to 0."""
        new = LanePath(self.net, [target], yaw_rate_max=veh.path.yaw_rate_max)
        s_t, d_t = new.project(
            np.array([veh.x, veh.y]), self.net.lanes[target].length / 2.0, back=1e4, ahead=1e4
        )
        # keep the absolute arc length continuous for the vehicle's bookkeeping
        shift = veh.s - s_t
        new = LanePath(self.net, [target], s0=shift, yaw_rate_max=veh.path.yaw_rate_max)
        for lid in continuation or []:
            new.append(lid)
        dist = distance if distance is not None else float(np.clip(veh.v * 3.5, 20.0, 55.0))
        # current heading deviation from the new lane becomes the initial lateral slope
        veh.path = new
        veh.lat.steps = []
        veh.lat.base = 0.0
        veh.lat.add(veh.s, veh.s + dist, -d_t)
        veh.lat.base = d_t
        if continuation is None and not veh.is_ego:
            self.extend_random(veh)

    # ---- pedestrians -----------------------------------------------------------------------------------------------
    def _pedestrians(self) -> None:
        """Walk every pedestrian: follow the one ahead, keep 0.9 m from everybody (side-step to pass a
        person standing in the way), never step into a box; crossings as decided in ``_ped_next_edge``."""
        net = self.net
        peds = list(self.peds.values())
        statics = [so for so in self.statics.values()]
        for ped in peds:
            if ped.stand_still:
                ped.v = 0.0
                continue
            edge = net.ped_edges[ped.edge]
            if edge.length - ped.u < 0.3:
                self._ped_next_edge(ped)
                continue
            v = ped.v_des
            hx, hy = math.cos(ped.heading), math.sin(ped.heading)
            for other in peds:
                if other.id == ped.id:
                    continue
                dx, dy = other.x - ped.x, other.y - ped.y
                dist = math.hypot(dx, dy)
                if dist < 1.7 and (dx * hx + dy * hy) > 0.35 * dist:
                    # same direction: follow; facing each other: both keep right and pass
                    same = math.cos(other.heading - ped.heading) > 0.5
                    if same:
                        v = min(v, other.v) if dist > 1.1 else 0.0
            if ped.crossing is not None:
                # on the road: never walk into a vehicle (vehicles stop for the crosswalk first)
                for veh in self.vehicles.values():
                    c = veh.center()
                    if math.hypot(c[0] - ped.x, c[1] - ped.y) < 0.5 * veh.length + 1.2:
                        if (c[0] - ped.x) * hx + (c[1] - ped.y) * hy > 0:
                            v = 0.0
            if v > 0.0 and not self._ped_step_ok(ped, v, peds, statics):
                # blocked: try a side-step (to the right first), else wait
                for side in (ped.side + 0.5, ped.side - 0.5, ped.side + 1.0):
                    if abs(side) <= 1.0 and self._ped_step_ok(ped, v, peds, statics, side=side):
                        ped.side = side
                        break
                else:
                    v = 0.0
            elif v > 0.0 and abs(ped.side - 0.6) > 1e-9:
                # drift back to the keep-right line when there is room
                back_side = ped.side + max(-0.05, min(0.05, 0.6 - ped.side))
                if self._ped_step_ok(ped, v, peds, statics, side=back_side):
                    ped.side = back_side
            ped.v = v
            ped.u = min(ped.u + v * DT, edge.length)
            ped_pose(net, ped)
            if ped.crossing is not None and ped.u >= edge.length - 0.3:
                self.cw_occupied.get(ped.crossing, set()).discard(ped.id)
                ped.crossing = None

    def _ped_step_ok(
        self, ped: Pedestrian, v: float, peds: list[Pedestrian], statics: list, side: float | None = None
    ) -> bool:
        """Whether one step at speed ``v`` (with lateral offset ``side``) keeps 0.9 m from every pedestrian
        and 0.5 m from every static object."""
        probe = Pedestrian(
            id=ped.id,
            token="",
            edge=ped.edge,
            u=min(ped.u + v * DT, self.net.ped_edges[ped.edge].length),
            direction=ped.direction,
            v_des=0.0,
            side=ped.side if side is None else side,
        )
        ped_pose(self.net, probe)
        for other in peds:
            if other.id != ped.id and math.hypot(other.x - probe.x, other.y - probe.y) < 0.9:
                # moving away from someone already too close is allowed
                if math.hypot(other.x - probe.x, other.y - probe.y) < math.hypot(
                    other.x - ped.x, other.y - ped.y
                ):
                    return False
        for so in statics:
            dx, dy = probe.x - so.x, probe.y - so.y
            if abs(dx) > 8.0 or abs(dy) > 8.0:
                continue
            c, s_ = math.cos(so.heading), math.sin(so.heading)
            if (
                abs(dx * c + dy * s_) < 0.5 * so.length + 0.5
                and abs(-dx * s_ + dy * c) < 0.5 * so.width + 0.5
            ):
                return False
        return True

    def _ped_next_edge(self, ped: Pedestrian) -> None:
        net = self.net
        edge = net.ped_edges[ped.edge]
        node = edge.b if ped.direction > 0 else edge.a
        if ped.waiting and ped.next_edge is not None:
            nxt = ped.next_edge
        else:
            options = [e for e in _ped_adjacency(net).get(node, []) if e != ped.edge] or [ped.edge]
            nxt = int(options[int(self.rng.integers(len(options)))])
        ne = net.ped_edges[nxt]
        # someone standing where we would step onto the next path: wait for them to move on
        entry = Pedestrian(
            id=-1, token="", edge=nxt, u=0.0, direction=1 if ne.a == node else -1, v_des=0.0, side=ped.side
        )
        ped_pose(net, entry)
        for other in self.peds.values():
            if other.id != ped.id and math.hypot(other.x - entry.x, other.y - entry.y) < 1.1:
                ped.waiting = True
                ped.next_edge = nxt
                ped.v = 0.0
                return
        if ne.crosswalk is not None:
            if not self.crossing_allowed(nxt, ped.v_des):
                ped.waiting = True
                ped.next_edge = nxt
                ped.v = 0.0
                return
            self.cw_occupied.setdefault(ne.crosswalk, set()).add(ped.id)
            ped.crossing = ne.crosswalk
        ped.waiting = False
        ped.next_edge = None
        ped.prev_edges = (ped.prev_edges + [ped.edge])[-3:]
        ped.edge = nxt
        ped.direction = 1 if ne.a == node else -1
        ped.u = 0.0


# ---- module helpers ---------------------------------------------------------------------------------------------------
def _time_to_clear(veh: Vehicle, distance: float, v_limit: float) -> float:
    """Time to drive ``distance`` metres from speed v with acceleration a_max up to ``v_limit``."""
    a = veh.driving.a_max
    v = veh.v
    vl = max(v_limit * veh.driving.speed_factor, v, 1.0)
    d_acc = (vl * vl - v * v) / (2 * a)
    if d_acc >= distance:
        return (-v + math.sqrt(v * v + 2 * a * distance)) / a
    return (vl - v) / a + (distance - d_acc) / vl


def _neighbours(net: RoadNetwork, lane_id: int) -> list[int]:
    lane = net.lanes[lane_id]
    blk = net.blocks[lane.block]
    out = []
    for lid in blk.lanes:
        if abs(net.lanes[lid].index - lane.index) == 1:
            out.append(lid)
    return out


def neighbours(net: RoadNetwork, lane_id: int) -> list[int]:
    """Adjacent lanes (lane index ± 1) of the same roadblock."""
    return _neighbours(net, lane_id)


def _merge_gates(net: RoadNetwork) -> dict[int, tuple[float, int, float]]:
    """For each ramp (``merge``) connector: (arc length where it starts to overlap the main connector into the
    same lane, that main connector, the matching arc length on the main connector)."""
    out: dict[int, tuple[float, int, float]] = {}
    for cid, c in net.lanes.items():
        if c.turn != "merge":
            continue
        mains = [
            o for o in net.lanes[c.successors[0]].predecessors if o != cid and net.lanes[o].turn != "merge"
        ]
        if not mains:
            continue
        main = net.lanes[mains[0]]
        line = LineString(main.center)
        limit = 2.7  # m between centre lines: two cars side by side start to touch about here
        d = np.array([line.distance(shapely.Point(p)) for p in c.center])
        close = np.nonzero(d < limit)[0]
        k = int(close[0]) if len(close) else len(c.center) - 1
        s_gate = max(float(c.s[k]) - 2.0, 0.0)
        s_main = float(line.project(shapely.Point(c.center[k])))
        out[cid] = (s_gate, mains[0], max(s_main - 5.0, 0.0))
    return out


def _dead_end_lanes(net: RoadNetwork) -> set[int]:
    """Lanes and connectors from which every way forward ends in a dead end."""
    alive = set(net.lanes)
    changed = True
    while changed:
        changed = False
        for lid in list(alive):
            if not any(s in alive for s in net.lanes[lid].successors):
                alive.discard(lid)
                changed = True
    return set(net.lanes) - alive


_PED_ADJ: dict[int, dict[str, list[int]]] = {}


def _ped_adjacency(net: RoadNetwork) -> dict[str, list[int]]:
    key = id(net)
    if key not in _PED_ADJ:
        adj: dict[str, list[int]] = {}
        for e in net.ped_edges.values():
            adj.setdefault(e.a, []).append(e.id)
            adj.setdefault(e.b, []).append(e.id)
        _PED_ADJ.clear()
        _PED_ADJ[key] = adj
    return _PED_ADJ[key]


def ped_pose(net: RoadNetwork, ped: Pedestrian) -> None:
    """Set a pedestrian's position and heading from its edge, arc position and keep-right offset."""
    e = net.ped_edges[ped.edge]
    u = ped.u if ped.direction > 0 else e.length - ped.u
    u = min(max(u, 0.0), e.length)
    s_list = e.s_list
    k = min(max(bisect.bisect_right(s_list, u) - 1, 0), len(s_list) - 2)
    s0, s1 = s_list[k], s_list[k + 1]
    t = (u - s0) / (s1 - s0) if s1 > s0 else 0.0
    (x0, y0), (x1, y1) = e.points_list[k], e.points_list[k + 1]
    px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
    h = math.atan2(y1 - y0, x1 - x0)
    if ped.direction < 0:
        h += math.pi
    # keep right of the direction of travel
    ped.x = px + math.sin(h) * ped.side
    ped.y = py - math.cos(h) * ped.side
    ped.heading = math.atan2(math.sin(h), math.cos(h))


def _lane_crosswalks(net: RoadNetwork) -> dict[int, list[tuple[int, float, float]]]:
    """For each lane/connector: (crosswalk fid, s start, s end) where its centreline crosses a crosswalk."""
    out: dict[int, list[tuple[int, float, float]]] = {}
    if not net.crosswalks:
        return out
    ids = list(net.crosswalks)
    polys = [net.crosswalks[i].polygon.buffer(0.8) for i in ids]
    tree = shapely.STRtree(polys)
    for lid, lane in net.lanes.items():
        line = LineString(lane.center)
        for k in tree.query(line, predicate="intersects"):
            inter = line.intersection(polys[int(k)])
            if inter.is_empty:
                continue
            coords = shapely.get_coordinates(inter)
            proj = [line.project(shapely.Point(c)) for c in coords]
            out.setdefault(lid, []).append((ids[int(k)], float(min(proj)), float(max(proj))))
    return out
