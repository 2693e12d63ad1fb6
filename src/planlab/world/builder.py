"""Build a :class:`~planlab.world.network.RoadNetwork` from junction nodes and roads between them.

A town generator places nodes (junctions with a control kind) and roads (centreline waypoints, lane counts
per direction, widths, speed limit). ``NetworkBuilder.build`` then derives all geometry so that the map
obeys the format contract by construction:

- lanes tile their roadblock exactly (adjacent lanes share the same boundary vertices; §1.7, P11);
- a lane's last baseline vertex *is* its connectors' first vertex, and so on (§1.5 continuity);
- each junction polygon is stitched from the road-end cross-sections (shared vertices, no gaps) and
  corner points, and covers every connector polygon (P11: connectors lie inside intersections);
- connector turns are smooth (curvature ramps), baselines have ≤ 1 m vertex spacing (P10);
- fids are integers, globally unique across all layers (P5).

Traffic is right-hand: the forward lanes of a road lie to the right of its centreline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import Polygon

from planlab.errors import PlanlabError
from planlab.geometry.se2 import wrap_angle
from planlab.world.curves import (
    connect_poses,
    fillet_path,
    headings_of,
    offset_polyline,
    resample_by_arclength,
)
from planlab.world.network import (
    DEADEND,
    MERGE,
    NONE,
    PRIORITY,
    SIGNAL,
    STOP,
    Area,
    Block,
    Boundary,
    Building,
    Junction,
    LaneSeg,
    ParkingSpot,
    PedEdge,
    RoadNetwork,
    SignalHead,
)
from planlab.world.paths import A_LAT_MAX, YAW_RATE_MAX

DENSE = 0.4  # m: sampling of road centrelines before offsetting
BASELINE_SPACING = 0.9  # m: ≤ 1 m baseline vertex spacing (format contract P10)
SIDEWALK_WIDTH = 3.0
PARKING_WIDTH = 2.4
CROSSWALK = (0.5, 4.5)  # m from the road end: crosswalk extent along the arm
STOP_WITH_CROSSWALK = (5.0, 6.5)  # m from the lane end: stop polygon when a crosswalk lies ahead
STOP_PLAIN = (0.5, 2.0)
TURN_ANGLE = np.deg2rad(30.0)


class MapBuildError(PlanlabError):
    """A town's parameters produced geometry that violates the map contract (a generator bug)."""


@dataclass
class _Node:
    idx: int
    xy: np.ndarray
    control: str
    margin: float
    crosswalks: bool
    major: tuple[int, int] | None  # road ids of the major (priority) pair, when forced
    arms: list[_Arm] = field(default_factory=list)


@dataclass
class _Arm:
    road: int
    end: str  # "a" (road starts here) or "b" (road ends here)
    angle: float  # outward direction from the node
    setback: float = 0.0


@dataclass
class _Road:
    idx: int
    a: int
    b: int
    via: list[np.ndarray]
    n_fwd: int
    n_bwd: int
    width: float
    speed: float
    median: float
    radius: float
    sidewalks: tuple[bool, bool]  # (right side, left side) in the road's forward frame
    parking: tuple[bool, bool]
    name: str
    kerb_extra: float = 0.0  # extra width of the kerb-side (rightmost) lane of each direction
    # derived
    center: np.ndarray | None = None
    heading: np.ndarray | None = None
    mask: np.ndarray | None = None
    fwd_block: int | None = None
    bwd_block: int | None = None
    fwd_lanes: list[int] = field(default_factory=list)  # left to right
    bwd_lanes: list[int] = field(default_factory=list)
    edge_min: np.ndarray | None = None  # drivable edge on the forward side (most negative lateral)
    edge_max: np.ndarray | None = None  # drivable edge on the backward side


class NetworkBuilder:
    """Collects nodes and roads of one town, then builds the complete network with :meth:`build`."""

    def __init__(self, name: str, location: str, crs: str, origin: tuple[float, float], fid_start: int = 1):
        self.name = name
        self.location = location
        self.crs = crs
        self.origin = np.asarray(origin, dtype=np.float64)
        self._nodes: list[_Node] = []
        self._roads: list[_Road] = []
        self._carparks: list[tuple[int, float, float, int]] = []
        self._buildings: list[Building] = []
        self._curbs: dict[tuple[int, int], np.ndarray] = {}  # (node, arm i) -> kerb points to arm i+1
        self._next_fid = int(fid_start)

    # ---- ids ----------------------------------------------------------------------------------------------
    def _fid(self) -> int:
        fid = self._next_fid
        self._next_fid += 1
        return fid

    # ---- spec -----------------------------------------------------------------------------------------------
    def local(self, x: float, y: float) -> np.ndarray:
        """Global coordinates of a point given relative to the town origin."""
        return self.origin + np.array([x, y], dtype=np.float64)

    def node(
        self,
        x: float,
        y: float,
        control: str = NONE,
        margin: float = 6.0,
        crosswalks: bool = False,
        major: tuple[int, int] | None = None,
    ) -> int:
        """Add a junction node at local (x, y); returns its index."""
        self._nodes.append(_Node(len(self._nodes), self.local(x, y), control, margin, crosswalks, major))
        return len(self._nodes) - 1

    def set_major(self, node: int, roads: tuple[int, int]) -> None:
        self._nodes[node].major = roads

    def road(
        self,
        a: int,
        b: int,
        via: list[tuple[float, float]] = (),
        lanes: tuple[int, int] = (1, 1),
        width: float = 3.5,
        speed: float = 13.9,
        median: float = 0.0,
        radius: float = 40.0,
        sidewalks: tuple[bool, bool] = (True, True),
        parking: tuple[bool, bool] = (False, False),
        name: str = "",
        kerb_extra: float = 0.3,
    ) -> int:
        """Add a road from node ``a`` to node ``b`` through local waypoints ``via``; lanes = (fwd, bwd).

        The kerb-side lane of each direction is ``kerb_extra`` wider than ``width`` (room for the corners of
        a car coming out of a turn, which sweep past its lane centre line).
        """
        if lanes[0] + lanes[1] == 0:
            raise ValueError("a road needs at least one lane")
        pts = [self.local(*p) for p in via]
        self._roads.append(
            _Road(
                len(self._roads),
                a,
                b,
                pts,
                lanes[0],
                lanes[1],
                width,
                speed,
                median,
                radius,
                tuple(sidewalks),
                tuple(parking),
                name,
                kerb_extra,
            )
        )
        return len(self._roads) - 1

    def carpark(self, road: int, depth: float = 6.0, stall: float = 2.7, fill: int = 0) -> None:
        """Stall rows on both sides of an aisle ``road`` (which must end at a dead-end node)."""
        self._carparks.append((road, depth, stall, fill))

    def building(self, polygon_local: np.ndarray, height: float) -> None:
        self._buildings.append(
            Building(Polygon(np.asarray(polygon_local, dtype=np.float64) + self.origin), float(height))
        )

    # ---- geometry helpers -------------------------------------------------------------------------------------
    def _waypoints(self, r: _Road) -> list[np.ndarray]:
        return [self._nodes[r.a].xy, *r.via, self._nodes[r.b].xy]

    @staticmethod
    def _offsets(r: _Road, n: int) -> list[float]:
        """Cumulative lane boundary offsets from the median edge for ``n`` lanes (kerb lane wider)."""
        out = [0.0]
        for i in range(n):
            out.append(out[-1] + r.width + (r.kerb_extra if i == n - 1 else 0.0))
        return out

    def _half_widths(self, r: _Road) -> tuple[float, float]:
        """(right, left) extents of the drivable band from the centreline in the road's forward frame.

        The band is [-right, +left] in lateral offset; a one-way road's band starts at ±median.
        """
        right = r.median + self._offsets(r, r.n_fwd)[-1] if r.n_fwd else -r.median
        left = r.median + self._offsets(r, r.n_bwd)[-1] if r.n_bwd else -r.median
        return right, left

    def _arm_widths(self, arm: _Arm) -> tuple[float, float]:
        """(right, left) half widths looking outward from the node along the arm."""
        r = self._roads[arm.road]
        right, left = self._half_widths(r)
        return (right, left) if arm.end == "a" else (left, right)

    # ---- build ------------------------------------------------------------------------------------------------
    def build(self) -> RoadNetwork:
        self._collect_arms()
        self._compute_setbacks()
        lanes: dict[int, LaneSeg] = {}
        blocks: dict[int, Block] = {}
        boundaries: dict[int, Boundary] = {}
        for r in self._roads:
            self._build_road(r, lanes, blocks, boundaries)
        junctions: dict[int, Junction] = {}
        stop_polys: dict[int, Area] = {}
        crosswalks: dict[int, Area] = {}
        heads: dict[int, SignalHead] = {}
        node_junction: dict[int, int] = {}
        for n in self._nodes:
            if len(n.arms) >= 2:
                j = self._build_junction(n, lanes, blocks, boundaries)
                junctions[j.fid] = j
                node_junction[n.idx] = j.fid
        for n in self._nodes:
            if n.idx in node_junction:
                self._build_controls(
                    n, junctions[node_junction[n.idx]], lanes, blocks, stop_polys, crosswalks, heads
                )
        self._link_blocks(lanes, blocks)
        for blk in blocks.values():
            if blk.kind == "roadblock":
                blk.node = node_junction.get(blk.node)
                blk.start_node = node_junction.get(blk.start_node)
        walkways, generic, parking, ped_edges = self._build_sidewalks(node_junction, crosswalks)
        carparks = self._build_carparks(blocks, parking)
        road_segments = self._build_road_segments()
        net = RoadNetwork(
            name=self.name,
            location=self.location,
            crs=self.crs,
            origin=self.origin,
            lanes=lanes,
            blocks=blocks,
            junctions=junctions,
            boundaries=boundaries,
            stop_polygons=stop_polys,
            crosswalks=crosswalks,
            walkways=walkways,
            carparks=carparks,
            generic_drivable=generic,
            road_segments=road_segments,
            signal_heads=heads,
            parking=parking,
            ped_edges=ped_edges,
            buildings=[],
        )
        net.buildings = self._place_buildings(net)
        _quantize(net)
        return net

    def _collect_arms(self) -> None:
        for r in self._roads:
            w = self._waypoints(r)
            d0 = w[1] - w[0]
            d1 = w[-2] - w[-1]
            self._nodes[r.a].arms.append(_Arm(r.idx, "a", float(np.arctan2(d0[1], d0[0]))))
            self._nodes[r.b].arms.append(_Arm(r.idx, "b", float(np.arctan2(d1[1], d1[0]))))
        for n in self._nodes:
            n.arms.sort(key=lambda a: a.angle % (2 * np.pi))
            if not n.arms:
                raise MapBuildError(f"{self.name}: node {n.idx} has no road")
            if len(n.arms) == 1 and n.control != DEADEND:
                raise MapBuildError(f"{self.name}: node {n.idx} has a single road but control {n.control!r}")

    def _compute_setbacks(self) -> None:
        for n in self._nodes:
            if len(n.arms) == 1:
                n.arms[0].setback = 0.0
                continue
            sb = [n.margin] * len(n.arms)
            for i, ai in enumerate(n.arms):
                j = (i + 1) % len(n.arms)
                aj = n.arms[j]
                gap = (aj.angle - ai.angle) % (2 * np.pi)
                if np.deg2rad(150) <= gap <= np.deg2rad(210):
                    continue
                corner = self._corner(n, ai, aj)
                if corner is None:
                    continue
                ti, tj, _ = corner
                if gap < np.pi:
                    sb[i] = max(sb[i], ti + n.margin)
                    sb[j] = max(sb[j], tj + n.margin)
            for arm, s in zip(n.arms, sb, strict=True):
                arm.setback = float(s)
        for r in self._roads:
            w = self._waypoints(r)
            sa = self._arm_of(r.a, r.idx, "a").setback
            sb_ = self._arm_of(r.b, r.idx, "b").setback
            first = float(np.hypot(*(w[1] - w[0])))
            last = float(np.hypot(*(w[-1] - w[-2])))
            if len(w) == 2:
                if sa + sb_ + 10.0 > first:
                    raise MapBuildError(f"{self.name}: road {r.idx} is too short for its junctions")
            elif sa + 5.0 > first or sb_ + 5.0 > last:
                raise MapBuildError(f"{self.name}: road {r.idx}: first/last leg shorter than the junction")

    def _arm_of(self, node: int, road: int, end: str) -> _Arm:
        for a in self._nodes[node].arms:
            if a.road == road and a.end == end:
                return a
        raise KeyError((node, road, end))

    def _corner(self, n: _Node, ai: _Arm, aj: _Arm) -> tuple[float, float, np.ndarray] | None:
        """Where arm i's left edge line meets arm j's right edge line: (t along i, t along j, point)."""
        ui = np.array([np.cos(ai.angle), np.sin(ai.angle)])
        uj = np.array([np.cos(aj.angle), np.sin(aj.angle)])
        ni = np.array([-ui[1], ui[0]])
        nj = np.array([-uj[1], uj[0]])
        _, left_i = self._arm_widths(ai)
        right_j, _ = self._arm_widths(aj)
        p = n.xy + left_i * ni
        q = n.xy - right_j * nj
        m = np.array([[ui[0], -uj[0]], [ui[1], -uj[1]]])
        if abs(np.linalg.det(m)) < 1e-9:
            return None
        ti, tj = np.linalg.solve(m, q - p)
        return float(ti), float(tj), p + ti * ui

    def _section_corner(self, ai: _Arm, aj: _Arm) -> np.ndarray | None:
        """Where arm i's cross-section line (beyond its left end) meets arm j's (beyond its right end)."""
        _, left_i = self._arm_edge_points(ai)
        right_j, _ = self._arm_edge_points(aj)
        ni = np.array([-np.sin(ai.angle), np.cos(ai.angle)])
        nj = np.array([-np.sin(aj.angle), np.cos(aj.angle)])
        m = np.array([[ni[0], -nj[0]], [ni[1], -nj[1]]])
        if abs(np.linalg.det(m)) < 1e-9:
            return None
        a, b = np.linalg.solve(m, right_j - left_i)
        if a < -1e-9 or b > 1e-9:
            return None
        return left_i + a * ni

    # ---- roads and lanes --------------------------------------------------------------------------------------
    def _build_road(self, r: _Road, lanes: dict, blocks: dict, boundaries: dict) -> None:
        w = self._waypoints(r)
        na, nb = self._nodes[r.a], self._nodes[r.b]
        arm_a = self._arm_of(r.a, r.idx, "a")
        arm_b = self._arm_of(r.b, r.idx, "b")
        ua = np.array([np.cos(arm_a.angle), np.sin(arm_a.angle)])
        ub = np.array([np.cos(arm_b.angle), np.sin(arm_b.angle)])
        pa = na.xy + arm_a.setback * ua
        pb = nb.xy + arm_b.setback * ub
        pts = [pa, *w[1:-1], pb]
        c = fillet_path(np.asarray(pts), r.radius, DENSE)
        h = headings_of(c)
        h[0] = arm_a.angle
        h[-1] = float(wrap_angle(arm_b.angle + np.pi))
        r.center, r.heading = c, h
        r.mask = _simplify_mask(c, h)
        speed = r.speed
        m = r.median
        # Boundaries in the road frame: forward side at -(m + k·w), backward side at +(m + k·w).
        off_f, off_b = self._offsets(r, r.n_fwd), self._offsets(r, r.n_bwd)
        fwd_raw = [offset_polyline(c, h, -(m + o)) for o in off_f]
        bwd_raw = [offset_polyline(c, h, (m + o)) for o in off_b]
        fwd_bounds = fwd_raw
        bwd_bounds = [b[::-1] for b in bwd_raw]
        # The drivable band's edges, bit-identical to the outermost lane boundaries (shared vertices).
        r.edge_min = fwd_raw[-1] if r.n_fwd else bwd_raw[0]
        r.edge_max = bwd_raw[-1] if r.n_bwd else fwd_raw[0]
        fwd_bfids = [self._fid() for _ in fwd_bounds]
        bwd_bfids = [self._fid() for _ in bwd_bounds]
        if m == 0.0 and r.n_fwd and r.n_bwd:
            bwd_bfids[0] = fwd_bfids[0]  # the shared centre line is one boundary
        mask = r.mask
        for bounds, bfids, rev in ((fwd_bounds, fwd_bfids, False), (bwd_bounds, bwd_bfids, True)):
            for arr, bf in zip(bounds, bfids, strict=True):
                if bf not in boundaries:
                    mk = mask[::-1] if rev else mask
                    boundaries[bf] = Boundary(bf, arr[mk])
        for _direction, n_lanes, bounds, bfids, rev in (
            ("fwd", r.n_fwd, fwd_bounds, fwd_bfids, False),
            ("bwd", r.n_bwd, bwd_bounds, bwd_bfids, True),
        ):
            if n_lanes == 0:
                continue
            mk = mask[::-1] if rev else mask
            block_fid = self._fid()
            sign = -1.0 if not rev else 1.0
            offs = off_b if rev else off_f
            lane_ids = []
            for i in range(n_lanes):
                fid = self._fid()
                center = offset_polyline(c, h, sign * (m + 0.5 * (offs[i] + offs[i + 1])))
                if rev:
                    center = center[::-1]
                center = resample_by_arclength(center, BASELINE_SPACING)
                left = bounds[i][mk]
                right = bounds[i + 1][mk]
                lane = LaneSeg(
                    fid=fid,
                    kind="lane",
                    block=block_fid,
                    index=i,
                    center=center,
                    left=left,
                    right=right,
                    width=offs[i + 1] - offs[i],
                    speed_limit=speed,
                    baseline_fid=self._fid(),
                    left_boundary=bfids[i],
                    right_boundary=bfids[i + 1],
                )
                if not lane.polygon.is_valid:
                    raise MapBuildError(f"{self.name}: road {r.idx} lane {i} polygon is invalid (too tight?)")
                lanes[fid] = lane
                lane_ids.append(fid)
            poly = Polygon(np.concatenate([bounds[0][mk], bounds[n_lanes][mk][::-1]], axis=0))
            if not poly.is_valid:
                raise MapBuildError(f"{self.name}: road {r.idx} roadblock polygon is invalid")
            start, end = (r.a, r.b) if not rev else (r.b, r.a)
            blocks[block_fid] = Block(
                block_fid, "roadblock", lane_ids, poly, road=r.idx, node=end, start_node=start
            )
            if rev:
                r.bwd_block, r.bwd_lanes = block_fid, lane_ids
            else:
                r.fwd_block, r.fwd_lanes = block_fid, lane_ids

    # ---- junctions ----------------------------------------------------------------------------------------------
    def _arm_blocks(self, arm: _Arm) -> tuple[int | None, int | None]:
        """(incoming roadblock, outgoing roadblock) of an arm."""
        r = self._roads[arm.road]
        if arm.end == "a":
            return r.bwd_block, r.fwd_block
        return r.fwd_block, r.bwd_block

    def _arm_edge_points(self, arm: _Arm) -> tuple[np.ndarray, np.ndarray]:
        """(right, left) end points of the drivable cross-section, looking outward along the arm."""
        r = self._roads[arm.road]
        if arm.end == "a":
            return r.edge_min[0], r.edge_max[0]
        return r.edge_max[-1], r.edge_min[-1]

    def _movement(
        self, n: _Node, ain: _Arm, aout: _Arm, n_in: int, n_out: int
    ) -> tuple[str, list[tuple[int, int]]]:
        """Turn label and (in lane index, out lane index) pairs for traffic from ``ain`` into ``aout``."""
        heading_in = ain.angle + np.pi
        delta = float(wrap_angle(aout.angle - heading_in))
        two_arms = len(n.arms) == 2
        if n.control == MERGE and n.major is not None:
            if abs(delta) > np.deg2rad(60):
                return "uturn", []
            main_in = ain.road in n.major
            main_out = aout.road in n.major
            if main_in and main_out:
                return "straight", [(i, min(i, n_out - 1)) for i in range(n_in)]
            if main_out:  # ramp joins the main carriageway's rightmost lane
                return "merge", [(n_in - 1, n_out - 1)]
            if main_in:  # rightmost main lane leaves on the ramp
                return "diverge", [(n_in - 1, n_out - 1)]
            return "straight", [(0, 0)]
        if two_arms or abs(delta) < TURN_ANGLE:
            if n_in == n_out:
                return "straight", [(i, i) for i in range(n_in)]
            if n_in < n_out:
                pairs = [(i, i) for i in range(n_in)] + [(n_in - 1, j) for j in range(n_in, n_out)]
                return "straight", pairs
            return "straight", [(i, min(i, n_out - 1)) for i in range(n_in)]
        if abs(delta) > np.deg2rad(150):
            return "uturn", []
        if delta > 0:
            return "left", [(0, 0)]
        return "right", [(n_in - 1, n_out - 1)]

    def _build_junction(self, n: _Node, lanes: dict, blocks: dict, boundaries: dict) -> Junction:
        jfid = self._fid()
        conns: list[int] = []
        groups: dict[tuple[int, int], list[int]] = {}
        curb: dict[tuple[int, int], int] = {}  # (arm in, arm out) -> right-turn connector of the kerb lane
        for ia, ain in enumerate(n.arms):
            bin_, _ = self._arm_blocks(ain)
            if bin_ is None:
                continue
            in_lanes = blocks[bin_].lanes
            for io, aout in enumerate(n.arms):
                if aout is ain:
                    continue
                _, bout = self._arm_blocks(aout)
                if bout is None:
                    continue
                out_lanes = blocks[bout].lanes
                turn, pairs = self._movement(n, ain, aout, len(in_lanes), len(out_lanes))
                for li, lo in pairs:
                    cid = self._make_connector(
                        lanes[in_lanes[li]], lanes[out_lanes[lo]], turn, jfid, lanes, boundaries
                    )
                    groups.setdefault((bin_, bout), []).append(cid)
                    conns.append(cid)
                    hugs_side = turn == "right" or (turn == "straight" and io == (ia + 1) % len(n.arms))
                    if hugs_side and li == len(in_lanes) - 1 and lo == len(out_lanes) - 1:
                        curb[(ia, io)] = cid  # the kerb-lane movement along the side between two arms
        # Roadblock connectors: one per (upstream roadblock, downstream roadblock) pair.
        for (src, dst), cids in groups.items():
            bfid = self._fid()
            cids.sort(
                key=lambda c: (lanes[lanes[c].predecessors[0]].index, lanes[lanes[c].successors[0]].index)
            )
            for k, cid in enumerate(cids):
                lanes[cid].block = bfid
                lanes[cid].index = k
            poly = _connector_union([lanes[c].polygon for c in cids])
            blocks[bfid] = Block(bfid, "connector", cids, poly, node=jfid, src=src, dst=dst)
        # Junction polygon from the arms' cross-sections (exact road-end vertices, so roadblocks and the
        # junction share edges without gap or overlap) and a corner point between neighbouring arms: where
        # the two cross-section lines meet (convex side), or where the road edges meet (reflex side).
        ring: list[np.ndarray] = []
        for i, ai in enumerate(n.arms):
            right, left = self._arm_edge_points(ai)
            ring += [right, left]
            aj = n.arms[(i + 1) % len(n.arms)]
            gap = (aj.angle - ai.angle) % (2 * np.pi)
            corner = None
            kerb = curb.get((i, (i + 1) % len(n.arms)))
            if kerb is not None:
                # Follow the kerb-lane right turn's outer edge, 1.0 m further out except near the arms (room for a
                # car's corners, which sweep outside its lane in a tight turn).
                edge = lanes[kerb].right
                u = np.linspace(0.0, 1.0, len(edge))
                hd = headings_of(edge)
                ramp = np.minimum(1.0, np.minimum(u, 1.0 - u) / 0.2)
                bulge = offset_polyline(edge, hd, -1.0 * np.sin(0.5 * np.pi * ramp) ** 2)
                ring += list(bulge[1:-1])
                self._curbs[(n.idx, i)] = bulge[1:-1]
                continue
            if np.deg2rad(150) <= gap <= np.deg2rad(210):
                # The far side of a T-junction: bulge 1.2 m outwards so the front corner of a car turning
                # left out of the side road stays on the junction (fact sheet §1.5: corners count for DAC).
                _, li = self._arm_edge_points(ai)
                rj, _ = self._arm_edge_points(aj)
                u = np.linspace(0.0, 1.0, 24)[1:-1, None]
                seg = rj - li
                out = np.array([seg[1], -seg[0]]) / max(
                    np.hypot(*seg), 1e-9
                )  # right of li→rj = away from node
                bulge = li + u * seg + 1.2 * np.sin(np.pi * u) ** 2 * out
                ring += list(bulge)
                self._curbs[(n.idx, i)] = bulge
                continue
            if gap < np.deg2rad(150):
                corner = self._section_corner(ai, aj)
            elif gap > np.deg2rad(210):
                c = self._corner(n, ai, aj)
                corner = None if c is None else c[2]
            if corner is not None:
                ring.append(corner)
                self._curbs[(n.idx, i)] = corner[None, :]
        poly = Polygon(np.asarray(ring))
        if not poly.is_valid:
            raise MapBuildError(f"{self.name}: junction at node {n.idx} has an invalid polygon")
        cover = poly.buffer(1e-6)
        outside = [c for c in conns if not cover.covers(lanes[c].polygon)]
        if outside:
            merged = shapely.union_all([poly] + [lanes[c].polygon for c in outside])
            if not isinstance(merged, Polygon):
                raise MapBuildError(f"{self.name}: connectors leave junction {n.idx}")
            poly = Polygon(merged.exterior)
        j = Junction(jfid, n.xy.copy(), n.control, poly, connectors=conns, has_crosswalks=n.crosswalks)
        return j

    def _make_connector(
        self, lin: LaneSeg, lout: LaneSeg, turn: str, jfid: int, lanes: dict, boundaries: dict
    ) -> int:
        p0, p1 = lin.center[-1], lout.center[0]
        h0 = float(np.arctan2(*(lin.center[-1] - lin.center[-2])[::-1]))
        h1 = float(np.arctan2(*(lout.center[1] - lout.center[0])[::-1]))
        dense = connect_poses(p0, h0, p1, h1, 0.25)
        hd = headings_of(dense)
        hd[0], hd[-1] = h0, h1
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(dense, axis=0).T))])
        width = lin.width + (lout.width - lin.width) * s / s[-1]
        left = offset_polyline(dense, hd, 0.5 * width)
        right = offset_polyline(dense, hd, -0.5 * width)
        left[0], right[0] = lin.left[-1], lin.right[-1]
        left[-1], right[-1] = lout.left[0], lout.right[0]
        left = resample_by_arclength(left, 0.5)
        right = resample_by_arclength(right, 0.5)
        fid = self._fid()
        kappa = _max_curvature(dense)
        speed = min(lin.speed_limit, lout.speed_limit)
        if turn in ("left", "right", "uturn") or kappa > 1e-3:
            # Turn speed: lateral acceleration ≤ 2.5 m/s² and yaw rate ≤ 0.6 rad/s at the tightest point
            # (the same rule the world's drivers use, so PDM-Closed's speed matches the expert's).
            speed = min(
                speed, max(3.0, min(np.sqrt(A_LAT_MAX / max(kappa, 1e-6)), YAW_RATE_MAX / max(kappa, 1e-6)))
            )
        conn = LaneSeg(
            fid=fid,
            kind="connector",
            block=-1,
            index=0,
            center=resample_by_arclength(dense, BASELINE_SPACING),
            left=left,
            right=right,
            width=float(0.5 * (lin.width + lout.width)),
            speed_limit=float(speed),
            baseline_fid=self._fid(),
            left_boundary=self._fid(),
            right_boundary=self._fid(),
            node=jfid,
            turn=turn,
            polygon_fid=self._fid(),
        )
        conn.center[0], conn.center[-1] = p0, p1
        if not conn.polygon.is_valid:
            raise MapBuildError(f"{self.name}: connector {lin.fid}->{lout.fid} polygon is invalid")
        conn.predecessors.append(lin.fid)
        conn.successors.append(lout.fid)
        lin.successors.append(fid)
        lout.predecessors.append(fid)
        lanes[fid] = conn
        boundaries[conn.left_boundary] = Boundary(conn.left_boundary, left)
        boundaries[conn.right_boundary] = Boundary(conn.right_boundary, right)
        return fid

    # ---- junction control -----------------------------------------------------------------------------------------
    def _major_pair(self, n: _Node) -> tuple[int, int] | None:
        if n.major is not None:
            return n.major
        best = None
        for i, ai in enumerate(n.arms):
            for aj in n.arms[i + 1 :]:
                gap = abs(float(wrap_angle(aj.angle - ai.angle)))
                if gap < np.deg2rad(140):
                    continue
                ri, rj = self._roads[ai.road], self._roads[aj.road]
                score = (ri.n_fwd + ri.n_bwd + rj.n_fwd + rj.n_bwd, gap)
                if best is None or score > best[0]:
                    best = (score, (ai.road, aj.road))
        if best is None:
            return None
        if len(n.arms) == 4:
            # A crossroads has a major road only if it is wider than the crossing one.
            others = [a.road for a in n.arms if a.road not in best[1]]
            w_major = best[0][0]
            w_minor = sum(self._roads[r].n_fwd + self._roads[r].n_bwd for r in others)
            if w_major <= w_minor:
                return None
        return best[1]

    def _build_controls(self, n, j: Junction, lanes, blocks, stop_polys, crosswalks, heads) -> None:
        # Phases (signals): arms in roughly opposite directions share a phase.
        arm_of_block: dict[int, _Arm] = {}
        for a in n.arms:
            bin_, _ = self._arm_blocks(a)
            if bin_ is not None:
                arm_of_block[bin_] = a
        major = self._major_pair(n)
        if n.control == SIGNAL:
            phases: list[list[int]] = []
            used: set[int] = set()
            arms = [a for a in n.arms]
            for i, ai in enumerate(arms):
                if i in used:
                    continue
                group = [i]
                used.add(i)
                for k in range(i + 1, len(arms)):
                    if k in used:
                        continue
                    gap = abs(float(wrap_angle(arms[k].angle - ai.angle)))
                    if gap > np.deg2rad(140):
                        group.append(k)
                        used.add(k)
                        break
                phases.append([b for b, a in arm_of_block.items() if arms.index(a) in group])
            j.phases = [p for p in phases if p]
        for cid in j.connectors:
            c = lanes[cid]
            lin = lanes[c.predecessors[0]]
            arm = arm_of_block[lin.block]
            if n.control == SIGNAL:
                c.phase = next(k for k, p in enumerate(j.phases) if lin.block in p)
                c.priority = 1 if c.turn == "left" else 2
            elif n.control in (STOP, PRIORITY):
                if major is not None and arm.road in major:
                    c.priority = 1 if c.turn == "left" else 2
                else:
                    c.priority = 0
                    c.must_stop = n.control == STOP
            elif n.control == MERGE:
                c.priority = 2 if c.turn in ("straight", "diverge") else 0
            else:
                c.priority = 2
        # Conflicts: different entry lanes whose polygons (grown by 0.6 m: a car's corners overhang its lane in
        # a turn) overlap, or that end in the same lane.
        ids = list(j.connectors)
        polys = [lanes[c].polygon.buffer(0.6) for c in ids]
        tree = shapely.STRtree(polys)
        j.conflicts = {c: set() for c in ids}
        for i, ci in enumerate(ids):
            for k in tree.query(polys[i]):
                ck = ids[int(k)]
                if ck == ci:
                    continue
                a, b = lanes[ci], lanes[ck]
                if a.predecessors[0] == b.predecessors[0]:
                    continue
                out_a, out_b = lanes[a.successors[0]], lanes[b.successors[0]]
                same_exit = out_a.fid == out_b.fid
                # two approaches filling neighbouring lanes of one road side by side (a right turn next to
                # a straight or a left turn) squeeze each other: one goes first
                side_by_side = (
                    out_a.block == out_b.block
                    and abs(out_a.index - out_b.index) == 1
                    and lanes[a.predecessors[0]].block != lanes[b.predecessors[0]].block
                )
                if same_exit or side_by_side or polys[i].intersection(polys[int(k)]).area > 0.3:
                    j.conflicts[ci].add(ck)
                    j.conflicts[ck].add(ci)
        # Stop polygons, crosswalks and signal heads per incoming arm.
        for a in n.arms:
            bin_, _ = self._arm_blocks(a)
            is_major = major is not None and a.road in major
            controlled = n.control == SIGNAL or (n.control in (STOP, PRIORITY) and not is_major)
            if n.crosswalks:
                cw = self._crosswalk(a, j.fid)
                crosswalks[cw.fid] = cw
            if bin_ is None:
                continue
            near, far = STOP_WITH_CROSSWALK if n.crosswalks else STOP_PLAIN
            for lid in blocks[bin_].lanes:
                lane = lanes[lid]
                conns = [c for c in lane.successors if c in j.conflicts]
                yields = any(lanes[c].priority < 2 for c in conns)
                if not controlled and not yields and n.control != SIGNAL:
                    continue
                lane.stop_s = max(lane.length - far, 0.0)
                if not controlled:
                    continue
                stype = {SIGNAL: 2, STOP: 1, PRIORITY: 4}[n.control]
                sfid = self._fid()
                poly = _lane_strip(lane, lane.length - far, lane.length - near)
                stop_polys[sfid] = Area(sfid, poly, "stop", {"type": stype, "lane_fid": lid})
                for c in conns:
                    lanes[c].stop_line = sfid
                if n.control == SIGNAL:
                    hfid = self._fid()
                    s_head = lane.length - near
                    k = int(np.searchsorted(lane.s, s_head))
                    k = min(max(k, 0), len(lane.center) - 1)
                    pos = np.array([lane.center[k, 0], lane.center[k, 1], 5.5])
                    phase = lanes[conns[0]].phase if conns else 0
                    heads[hfid] = SignalHead(
                        hfid, pos, float(lane.headings[k] + np.pi), j.fid, int(phase or 0), list(conns)
                    )

    def _crosswalk(self, arm: _Arm, jfid: int) -> Area:
        r = self._roads[arm.road]
        right, left = self._half_widths(r)
        c, h = r.center, r.heading
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))])
        L = s[-1]
        near, far = CROSSWALK
        if arm.end == "a":
            s0, s1 = near, far
        else:
            s0, s1 = L - far, L - near
        pts = []
        for sv, lat in ((s0, -right), (s1, -right), (s1, left), (s0, left)):
            k = int(np.clip(np.searchsorted(s, sv), 0, len(s) - 1))
            pts.append(offset_polyline(c[k : k + 1], h[k : k + 1], lat)[0])
        fid = self._fid()
        return Area(
            fid,
            Polygon(pts),
            "crosswalk",
            {"junction": jfid, "road": r.idx, "end": arm.end, "s": 0.5 * (s0 + s1)},
        )

    def _link_blocks(self, lanes: dict, blocks: dict) -> None:
        for b in blocks.values():
            if b.kind != "connector":
                continue
            b.predecessors = [b.src]
            b.successors = [b.dst]
            blocks[b.src].successors.append(b.fid)
            blocks[b.dst].predecessors.append(b.fid)

    # ---- sidewalks, parking strips, pedestrian paths ------------------------------------------------------------
    def _build_sidewalks(self, node_junction: dict[int, int], crosswalks: dict):
        walkways: dict[int, Area] = {}
        generic: dict[int, Area] = {}
        parking: list[ParkingSpot] = []
        edges: dict[int, PedEdge] = {}
        ends: dict[str, np.ndarray] = {}  # ped node key -> position
        outer: dict[str, np.ndarray] = {}  # ped node key -> outer sidewalk corner at the road end
        for r in self._roads:
            right, left = self._half_widths(r)
            c, h, mk = r.center, r.heading, r.mask
            for side, edge, has_walk, has_park in (
                ("R", -right, r.sidewalks[0], r.parking[0]),
                ("L", left, r.sidewalks[1], r.parking[1]),
            ):
                sign = -1.0 if side == "R" else 1.0
                inner = edge
                if has_park:
                    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))])
                    keep = (s > 14.0) & (s < s[-1] - 14.0)
                    if keep.sum() > 4:
                        a0 = offset_polyline(c[keep], h[keep], inner)
                        a1 = offset_polyline(c[keep], h[keep], inner + sign * PARKING_WIDTH)
                        poly = Polygon(np.concatenate([a0, a1[::-1]]))
                        if poly.is_valid:
                            fid = self._fid()
                            generic[fid] = Area(fid, poly, "parking_strip", {"road": r.idx})
                            parking += _spots_along(c[keep], h[keep], inner + sign * 0.5 * PARKING_WIDTH)
                    inner = inner + sign * PARKING_WIDTH
                if not has_walk:
                    continue
                a0 = offset_polyline(c[mk], h[mk], inner)
                a1 = offset_polyline(c[mk], h[mk], inner + sign * SIDEWALK_WIDTH)
                poly = Polygon(np.concatenate([a0, a1[::-1]]))
                if not poly.is_valid:
                    continue
                fid = self._fid()
                walkways[fid] = Area(fid, poly, "sidewalk", {"road": r.idx, "side": side})
                mid = resample_by_arclength(offset_polyline(c, h, inner + sign * 0.5 * SIDEWALK_WIDTH), 2.0)
                ka, kb = f"{r.idx}:a:{side}", f"{r.idx}:b:{side}"
                ends[ka], ends[kb] = mid[0], mid[-1]
                outer[ka], outer[kb] = a1[0], a1[-1]
                eid = len(edges)
                edges[eid] = PedEdge(eid, mid, ka, kb)
        # Corners and crossings at each node.
        for n in self._nodes:
            if len(n.arms) < 2:
                continue
            jfid = node_junction.get(n.idx)
            for i, ai in enumerate(n.arms):
                aj = n.arms[(i + 1) % len(n.arms)]
                # looking outward: arm i's left side and arm j's right side face each other across the corner
                ki = self._side_key(ai, "left")
                kj = self._side_key(aj, "right")
                if ki in ends and kj in ends:
                    pts = np.stack([ends[ki], ends[kj]])
                    kerb = self._curbs.get((n.idx, i))
                    if kerb is not None and len(kerb):
                        # round the corner on the pavement: the kerb's middle moved out by half a sidewalk
                        mid = kerb[len(kerb) // 2]
                        u = mid - n.xy
                        u = u / max(np.hypot(*u), 1e-9)
                        pts = np.stack([ends[ki], mid + (0.5 * SIDEWALK_WIDTH + 0.2) * u, ends[kj]])
                    if np.hypot(*(pts[-1] - pts[0])) > 0.5:
                        eid = len(edges)
                        edges[eid] = PedEdge(eid, resample_by_arclength(pts, 2.0), ki, kj)
                    corner_walk = self._corner_walkway(n, i, ai, aj, outer[ki], outer[kj])
                    if corner_walk is not None:
                        fid = self._fid()
                        walkways[fid] = Area(fid, corner_walk, "corner", {"node": n.idx})
            if not any(cw.attrs.get("junction") == jfid for cw in crosswalks.values()):
                continue
            for a in n.arms:
                kr, kl = self._side_key(a, "right"), self._side_key(a, "left")
                if kr not in ends or kl not in ends:
                    continue
                cw = next(
                    c for c in crosswalks.values() if c.attrs["road"] == a.road and c.attrs["end"] == a.end
                )
                r = self._roads[a.road]
                s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(r.center, axis=0).T))])
                k = int(np.clip(np.searchsorted(s, cw.attrs["s"]), 0, len(s) - 1))
                right, left = self._half_widths(r)
                pr = offset_polyline(r.center[k : k + 1], r.heading[k : k + 1], -right - 1.0)[0]
                pl = offset_polyline(r.center[k : k + 1], r.heading[k : k + 1], left + 1.0)[0]
                if a.end == "b":
                    pr, pl = pl, pr
                pts = np.stack([ends[kr], pr, pl, ends[kl]])
                eid = len(edges)
                blocks = tuple(b for b in (r.fwd_block, r.bwd_block) if b is not None)
                edges[eid] = PedEdge(
                    eid,
                    resample_by_arclength(pts, 1.0),
                    kr,
                    kl,
                    crosswalk=cw.fid,
                    node=jfid,
                    road_side_blocks=blocks,
                )
        return walkways, generic, parking, edges

    def _corner_walkway(
        self, n: _Node, i: int, ai: _Arm, aj: _Arm, out_i: np.ndarray, out_j: np.ndarray
    ) -> Polygon | None:
        """The pavement between two sidewalk ends around a junction's kerb (a corner or the far side of a T):
        the kerb, and the kerb moved out by a sidewalk's width."""
        gap = (aj.angle - ai.angle) % (2 * np.pi)
        if gap > np.deg2rad(210) or (n.idx, i) not in self._curbs:
            return None
        _, edge_i = self._arm_edge_points(ai)
        edge_j, _ = self._arm_edge_points(aj)
        kerb = self._curbs[(n.idx, i)]  # from arm i's edge towards arm j's edge
        path = np.concatenate([[edge_i], kerb, [edge_j]])
        d = np.gradient(path, axis=0)
        h = np.arctan2(d[:, 1], d[:, 0])
        outer = offset_polyline(path, h, -SIDEWALK_WIDTH)[1:-1]  # right of the travel direction = outwards
        poly = Polygon(np.concatenate([[edge_i, out_i], outer, [out_j, edge_j], kerb[::-1]]))
        if not poly.is_valid:
            poly = poly.buffer(0)
        return poly if isinstance(poly, Polygon) and poly.is_valid and poly.area > 1.0 else None

    def _side_key(self, arm: _Arm, side: str) -> str:
        """Ped-node key of the sidewalk end on ``side`` (looking outward along the arm)."""
        if arm.end == "a":
            road_side = "R" if side == "right" else "L"
        else:
            road_side = "L" if side == "right" else "R"
        return f"{arm.road}:{arm.end}:{road_side}"

    # ---- car parks, road segments, buildings ----------------------------------------------------------------------
    def _build_carparks(self, blocks: dict, parking: list[ParkingSpot]) -> dict[int, Area]:
        out: dict[int, Area] = {}
        for road_idx, depth, stall, _fill in self._carparks:
            r = self._roads[road_idx]
            if self._nodes[r.b].control != DEADEND:
                raise MapBuildError(f"{self.name}: car-park aisle road {road_idx} must end at a dead end")
            right, left = self._half_widths(r)
            c, h = r.center, r.heading
            s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))])
            keep = s >= 0.0
            for edge, sign in ((-right, -1.0), (left, 1.0)):
                a0 = offset_polyline(c[keep], h[keep], edge)
                a1 = offset_polyline(c[keep], h[keep], edge + sign * depth)
                poly = Polygon(np.concatenate([a0, a1[::-1]]))
                fid = self._fid()
                out[fid] = Area(fid, poly, "carpark", {"road": road_idx})
                n_stalls = int((s[-1] - 4.0) // stall)
                for k in range(n_stalls):
                    sv = 4.0 + (k + 0.5) * stall
                    idx = int(np.searchsorted(s, sv))
                    p = offset_polyline(c[idx : idx + 1], h[idx : idx + 1], edge + sign * 0.5 * depth)[0]
                    parking.append(
                        ParkingSpot(float(p[0]), float(p[1]), float(h[idx] + sign * 0.5 * np.pi), 4.6, 1.9)
                    )
            # Turning area beyond the aisle's dead end.
            u = np.array([np.cos(h[-1]), np.sin(h[-1])])
            nrm = np.array([-u[1], u[0]])
            e = c[-1]
            p_r = e - right * nrm
            p_l = e + left * nrm
            poly = Polygon(
                [
                    p_r - depth * nrm,
                    p_r - depth * nrm + 8.0 * u,
                    p_l + depth * nrm + 8.0 * u,
                    p_l + depth * nrm,
                    p_l,
                    p_r,
                ]
            )
            fid = self._fid()
            out[fid] = Area(fid, poly, "carpark", {"road": road_idx})
        return out

    def _build_road_segments(self) -> dict[int, Area]:
        out: dict[int, Area] = {}
        for r in self._roads:
            right, left = self._half_widths(r)
            a0 = offset_polyline(r.center[r.mask], r.heading[r.mask], -right)
            a1 = offset_polyline(r.center[r.mask], r.heading[r.mask], left)
            poly = Polygon(np.concatenate([a0, a1[::-1]]))
            if poly.is_valid:
                fid = self._fid()
                out[fid] = Area(fid, poly, "road_segment", {"road": r.idx})
        return out

    def _place_buildings(self, net: RoadNetwork) -> list[Building]:
        if not self._buildings:
            return []
        keep_out = shapely.union_all(
            [net.drivable]
            + [w.polygon for w in net.walkways.values()]
            + [g.polygon for g in net.generic_drivable.values()]
        ).buffer(1.0)
        return [b for b in self._buildings if not b.polygon.intersects(keep_out)]


GRID = 1e-4  # m: every coordinate is rounded to 0.1 mm


def _q(a: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(a, dtype=np.float64) / GRID) * GRID


def _quantize(net: RoadNetwork) -> None:
    """Round every coordinate to a 0.1 mm grid (shared vertices stay shared: same input, same output).

    Floating-point noise at the ~1e-10 m level between edges that should coincide makes GEOS overlays fail
    (a lane "outside" the union of drivable polygons that visibly contains it); on a fixed grid they agree.
    """

    def qp(poly):
        return shapely.transform(poly, _q)

    for lane in net.lanes.values():
        lane.center, lane.left, lane.right = _q(lane.center), _q(lane.left), _q(lane.right)
        for name in ("s", "headings", "polygon"):
            lane.__dict__.pop(name, None)
    for b in net.boundaries.values():
        b.line = _q(b.line)
    for blk in net.blocks.values():
        if blk.kind == "roadblock":
            blk.polygon = qp(blk.polygon)
        else:  # a roadblock connector is the union of its (now rounded) lane connectors
            blk.polygon = _connector_union([net.lanes[c].polygon for c in blk.lanes])
    for j in net.junctions.values():
        j.polygon = qp(j.polygon)
    for store in (
        net.stop_polygons,
        net.crosswalks,
        net.walkways,
        net.carparks,
        net.generic_drivable,
        net.road_segments,
    ):
        for a in store.values():
            a.polygon = qp(a.polygon)
    for bd in net.buildings:
        bd.polygon = qp(bd.polygon)
    for e in net.ped_edges.values():
        e.points = _q(e.points)
        for name in ("s", "s_list", "points_list"):
            e.__dict__.pop(name, None)


def _connector_union(polys: list[Polygon]) -> Polygon:
    """One valid polygon covering the lane connectors of a roadblock connector (their convex hull when the
    union falls apart into pieces)."""
    poly = shapely.union_all(polys)
    if not isinstance(poly, Polygon) or not poly.is_valid or len(poly.interiors):
        poly = shapely.convex_hull(shapely.union_all(polys))
    return poly


def _simplify_mask(
    c: np.ndarray, h: np.ndarray, max_turn: float = 0.004, max_gap: float = 20.0
) -> np.ndarray:
    """Vertices to keep for polygons and boundary lines: where the heading has turned or a gap grew long."""
    keep = np.zeros(len(c), dtype=bool)
    keep[0] = keep[-1] = True
    last = 0
    hu = np.unwrap(h)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(c, axis=0).T))])
    for i in range(1, len(c) - 1):
        if abs(hu[i] - hu[last]) > max_turn or s[i] - s[last] > max_gap:
            keep[i] = True
            last = i
    return keep


def _max_curvature(pts: np.ndarray) -> float:
    from planlab.world.curves import curvature

    k = np.abs(curvature(pts))
    return float(np.max(k)) if len(k) else 0.0


def _lane_strip(lane: LaneSeg, s0: float, s1: float) -> Polygon:
    """The part of a lane between arc lengths s0 < s1, as a quad across the lane width."""
    pts = []
    for sv, sign in ((s0, 1), (s1, 1), (s1, -1), (s0, -1)):
        k = int(np.clip(np.searchsorted(lane.s, sv), 1, len(lane.s) - 1))
        t = (sv - lane.s[k - 1]) / max(lane.s[k] - lane.s[k - 1], 1e-9)
        p = lane.center[k - 1] + t * (lane.center[k] - lane.center[k - 1])
        hd = lane.headings[k - 1]
        pts.append(p + sign * 0.5 * lane.width * np.array([-np.sin(hd), np.cos(hd)]))
    return Polygon(pts)


def _spots_along(c: np.ndarray, h: np.ndarray, lateral: float, pitch: float = 6.5) -> list[ParkingSpot]:
    mid = offset_polyline(c, h, lateral)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(mid, axis=0).T))])
    out = []
    for sv in np.arange(0.5 * pitch, s[-1] - 0.5 * pitch, pitch):
        k = int(np.searchsorted(s, sv))
        out.append(ParkingSpot(float(mid[k, 0]), float(mid[k, 1]), float(h[k]), 4.5, 1.9))
    return out
