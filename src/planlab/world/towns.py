"""The four synthetic towns, one per nuPlan map location, each generated from a seed.

| location | town | what it exercises |
|---|---|---|
| us-nv-las-vegas-strip | signalised grid with multi-lane arterials and a ring road | lights, turns at lights, lane changes |
| us-ma-boston | curved suburban network with T-junctions and a car park | curves, stop/priority junctions, car park |
| us-pa-pittsburgh-hazelwood | divided highway ring with on/off-ramp merges and local loops | speed, merges |
| sg-one-north | compact mixed town (one-lane streets, all-way stops, signals, car park) | dense junctions |

Coordinates are UTM metres in each location's real zone (contract §1.2, P4) around a plausible origin.
The world drives on the right everywhere (a documented simplification for sg-one-north).
"""

from __future__ import annotations

import numpy as np

from planlab.world.builder import MapBuildError, NetworkBuilder
from planlab.world.network import DEADEND, MERGE, PRIORITY, SIGNAL, STOP, RoadNetwork

# location -> (town kind, CRS, local origin easting/northing)
LOCATIONS: dict[str, tuple[str, str, tuple[float, float]]] = {
    "us-nv-las-vegas-strip": ("grid", "epsg:32611", (664_250.0, 3_996_150.0)),
    "us-ma-boston": ("suburban", "epsg:32619", (330_400.0, 4_690_650.0)),
    "us-pa-pittsburgh-hazelwood": ("highway", "epsg:32617", (589_100.0, 4_473_500.0)),
    "sg-one-north": ("compact", "epsg:32648", (364_200.0, 143_300.0)),
}

# Lane speed limits [m/s].
ARTERIAL = 13.9  # 50 km/h
LOCAL = 11.1  # 40 km/h
HIGHWAY = 25.0  # 90 km/h
RAMP = 16.7  # 60 km/h


def build_town(location: str, seed: int, fid_start: int = 1) -> RoadNetwork:
    """The town of ``location`` for ``seed`` (deterministic: same seed, same network).

    A random layout that breaks a geometric rule (e.g. a road too short for its junctions) is drawn again
    from a derived seed; the result is still a function of ``seed`` alone.
    """
    kind, crs, origin = LOCATIONS[location]
    last: MapBuildError | None = None
    for attempt in range(8):
        rng = np.random.default_rng([int(seed), _stable(location), attempt])
        b = NetworkBuilder(kind, location, crs, origin, fid_start=fid_start)
        {"grid": _grid, "suburban": _suburban, "highway": _highway, "compact": _compact}[kind](b, rng)
        try:
            return b.build()
        except MapBuildError as exc:
            last = exc
    raise MapBuildError(f"no valid {kind} town for {location} with seed {seed}: {last}")


def _stable(text: str) -> int:
    """A process-independent small integer for a string (Python's hash() is salted)."""
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


# ---- grid town --------------------------------------------------------------------------------------------------
def _grid(
    b: NetworkBuilder,
    rng: np.random.Generator,
    nx: int = 5,
    ny: int = 5,
    spacing=(115.0, 150.0),
    n_arterials: int = 2,
    ring_lanes: int = 2,
    all_way_stops: bool = True,
    carpark: bool = False,
) -> None:
    """A rectangular grid of streets inside a ring road with rounded corners.

    Interior crossings are signalised (all-way stops where two local streets meet); lines meeting the ring
    make T-junctions (signalised for arterials, stop-controlled for local streets).
    """
    xs = np.concatenate([[0.0], np.cumsum(rng.uniform(*spacing, size=nx - 1))])
    ys = np.concatenate([[0.0], np.cumsum(rng.uniform(*spacing, size=ny - 1))])
    interior_cols = list(range(1, nx - 1))
    interior_rows = list(range(1, ny - 1))
    art_cols = set(
        rng.choice(interior_cols, size=min(n_arterials, len(interior_cols)), replace=False).tolist()
    )
    art_rows = set(
        rng.choice(interior_rows, size=min(n_arterials, len(interior_rows)), replace=False).tolist()
    )
    corners = {(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)}
    node: dict[tuple[int, int], int] = {}
    for i in range(nx):
        for j in range(ny):
            if (i, j) in corners:
                continue
            on_ring = i in (0, nx - 1) or j in (0, ny - 1)
            if on_ring:
                line_art = (i in art_cols) if j in (0, ny - 1) else (j in art_rows)
                control = SIGNAL if line_art else STOP
            else:
                both_local = i not in art_cols and j not in art_rows
                control = STOP if (both_local and all_way_stops) else SIGNAL
            node[(i, j)] = b.node(xs[i], ys[j], control=control, margin=14.0, crosswalks=True)

    def add(a, c, via=(), art=False, ring=False, parking=(False, False)):
        lanes = (ring_lanes, ring_lanes) if ring else ((2, 2) if art else (1, 1))
        speed = ARTERIAL if (art or ring) else LOCAL
        na = node[a] if isinstance(a, tuple) else a
        nc = node[c] if isinstance(c, tuple) else c
        return b.road(na, nc, via=via, lanes=lanes, width=3.6, speed=speed, radius=36.0, parking=parking)

    for j in interior_rows:
        for i in range(nx - 1):
            art = j in art_rows
            add((i, j), (i + 1, j), art=art, parking=(not art and rng.random() < 0.5, False))
    for i in interior_cols:
        for j in range(ny - 1):
            art = i in art_cols
            add((i, j), (i, j + 1), art=art, parking=(not art and rng.random() < 0.5, False))
    park_seg = int(rng.integers(1, nx - 2)) if carpark else -1
    for j in (0, ny - 1):
        for i in range(1, nx - 2):
            if j == 0 and i == park_seg:
                # A car park south of the ring, reached by a driveway from a stop-controlled T-junction.
                xm = 0.5 * (xs[i] + xs[i + 1])
                t = b.node(xm, ys[0], control=STOP, margin=10.0, crosswalks=False)
                end = b.node(xm, ys[0] - 62.0, control=DEADEND)
                r1 = add((i, 0), t, ring=True)
                r2 = add(t, (i + 1, 0), ring=True)
                b.set_major(t, (r1, r2))
                aisle = b.road(t, end, lanes=(1, 1), width=3.2, speed=5.5, sidewalks=(False, False))
                b.carpark(aisle)
                continue
            add((i, j), (i + 1, j), ring=True)
    for i in (0, nx - 1):
        for j in range(1, ny - 2):
            add((i, j), (i, j + 1), ring=True)
    add((0, 1), (1, 0), via=[(xs[0], ys[0])], ring=True)
    add((nx - 2, 0), (nx - 1, 1), via=[(xs[-1], ys[0])], ring=True)
    add((nx - 1, ny - 2), (nx - 2, ny - 1), via=[(xs[-1], ys[-1])], ring=True)
    add((1, ny - 1), (0, ny - 2), via=[(xs[0], ys[-1])], ring=True)
    _grid_buildings(b, rng, xs, ys)


def _grid_buildings(b: NetworkBuilder, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray) -> None:
    """Block-filling buildings inside each grid cell; the builder drops any that touch roads or sidewalks."""
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            x0, x1 = xs[i] + 19.0, xs[i + 1] - 19.0
            y0, y1 = ys[j] + 19.0, ys[j + 1] - 19.0
            if x1 - x0 < 12 or y1 - y0 < 12:
                continue
            nxb = int(rng.integers(1, 4))
            cuts = np.sort(rng.uniform(x0, x1, size=nxb - 1))
            edges = np.concatenate([[x0], cuts, [x1]])
            for k in range(nxb):
                if edges[k + 1] - edges[k] < 8:
                    continue
                h = float(rng.uniform(6.0, 30.0))
                bx0, bx1 = edges[k] + 1.0, edges[k + 1] - 1.0
                b.building(np.array([[bx0, y0], [bx1, y0], [bx1, y1], [bx0, y1]]), h)


def _compact(b: NetworkBuilder, rng: np.random.Generator) -> None:
    """A dense town of short blocks: one-lane streets, many all-way stops, one arterial, a car park."""
    _grid(b, rng, nx=6, ny=5, spacing=(88.0, 110.0), n_arterials=1, ring_lanes=1, carpark=True)


# ---- suburban town ----------------------------------------------------------------------------------------------
def _suburban(b: NetworkBuilder, rng: np.random.Generator, nx: int = 5, ny: int = 4) -> None:
    """A jittered lattice of curving streets: T-junctions (stop or give way), a few crossroads, a car park.

    Lattice edges are removed at random while every junction keeps ≥ 3 roads or becomes a bend inside a
    road; edges are bent through an offset mid-point so streets curve.
    """
    spacing = 175.0
    pos = {
        (i, j): np.array([i * spacing + rng.uniform(-22, 22), j * spacing + rng.uniform(-22, 22)])
        for i in range(nx)
        for j in range(ny)
    }
    edges = [((i, j), (i + 1, j)) for i in range(nx - 1) for j in range(ny)]
    edges += [((i, j), (i, j + 1)) for i in range(nx) for j in range(ny - 1)]
    boundary = [e for e in edges if _on_border(e, nx, ny)]
    interior = [e for e in edges if e not in boundary]
    rng.shuffle(interior)
    keep = set(edges)
    for e in interior:  # drop interior edges while both ends keep degree ≥ 3 (T-junctions)
        deg_a = sum(1 for k in keep if e[0] in k)
        deg_b = sum(1 for k in keep if e[1] in k)
        if deg_a > 3 and deg_b > 3 and rng.random() < 0.7:
            keep.discard(e)
    deg = {p: sum(1 for k in keep if p in k) for p in pos}
    nodes: dict[tuple[int, int], int] = {}
    for p, d in deg.items():
        if d >= 3:
            control = (
                (SIGNAL if rng.random() < 0.5 else STOP)
                if d == 4
                else (STOP if rng.random() < 0.6 else PRIORITY)
            )
            nodes[p] = b.node(*pos[p], control=control, margin=13.0, crosswalks=d == 4)
    # Roads: chains of lattice edges between junction nodes (degree-2 lattice points become bends).
    adjacency: dict[tuple[int, int], list[tuple[int, int]]] = {p: [] for p in pos}
    for a, c in sorted(keep):
        adjacency[a].append(c)
        adjacency[c].append(a)
    done: set[frozenset] = set()
    carpark_done = False
    for start in sorted(nodes):
        for nxt in sorted(adjacency[start]):
            if frozenset((start, nxt)) in done:
                continue
            chain = [start, nxt]
            done.add(frozenset((start, nxt)))
            while chain[-1] not in nodes:
                cur = chain[-1]
                following = [q for q in adjacency[cur] if q != chain[-2]]
                chain.append(following[0])
                done.add(frozenset((cur, following[0])))
            via = []
            for k in range(len(chain) - 1):
                pa, pc = pos[chain[k]], pos[chain[k + 1]]
                if k > 0:
                    via.append(tuple(pa))
                if len(chain) == 2:
                    # a street between two junctions bends through an offset mid-point; chains with corners
                    # keep their legs long so the corner curves stay wide (≥ ~40 m radius)
                    mid = 0.5 * (pa + pc)
                    d = pc - pa
                    nrm = np.array([-d[1], d[0]]) / np.hypot(*d)
                    via.append(tuple(mid + nrm * rng.uniform(-30.0, 30.0)))
            collector = len(chain) > 2 and rng.random() < 0.5
            lanes = (2, 2) if collector else (1, 1)
            speed = ARTERIAL if collector else LOCAL
            straight_border = (
                not carpark_done
                and len(chain) == 2
                and _on_border((chain[0], chain[1]), nx, ny)
                and chain[0][1] == chain[1][1] == 0
            )
            if straight_border:
                # Car park south of a straight bottom street, via a stop-controlled T-junction.
                pa, pc = pos[chain[0]], pos[chain[1]]
                mid = 0.5 * (pa + pc)
                t = b.node(*mid, control=STOP, margin=10.0)
                d = (pc - pa) / np.hypot(*(pc - pa))
                out = np.array([d[1], -d[0]])
                end = b.node(*(mid + 60.0 * out), control=DEADEND)
                r1 = b.road(nodes[chain[0]], t, lanes=lanes, width=3.6, speed=speed)
                r2 = b.road(t, nodes[chain[1]], lanes=lanes, width=3.6, speed=speed)
                b.set_major(t, (r1, r2))
                aisle = b.road(t, end, lanes=(1, 1), width=3.2, speed=5.5, sidewalks=(False, False))
                b.carpark(aisle)
                carpark_done = True
                continue
            b.road(
                nodes[chain[0]],
                nodes[chain[-1]],
                via=via,
                lanes=lanes,
                width=3.7,
                speed=speed,
                radius=55.0,
                parking=(rng.random() < 0.3, False),
            )
    # Houses along the streets.
    for a, c in sorted(keep):
        pa, pc = pos[a], pos[c]
        d = pc - pa
        L = float(np.hypot(*d))
        u = d / L
        nrm = np.array([-u[1], u[0]])
        for sv in np.arange(30.0, L - 30.0, 24.0):
            for side in (-1.0, 1.0):
                if rng.random() < 0.35:
                    continue
                ctr = pa + sv * u + side * rng.uniform(34.0, 44.0) * nrm
                w, dpt = rng.uniform(9, 14), rng.uniform(9, 13)
                corners = np.array([[-w, -dpt], [w, -dpt], [w, dpt], [-w, dpt]]) * 0.5
                rot = np.array([[u[0], -u[1]], [u[1], u[0]]])
                b.building(ctr + corners @ rot.T, float(rng.uniform(5.0, 9.0)))


def _on_border(e, nx: int, ny: int) -> bool:
    (i0, j0), (i1, j1) = e
    return (i0 == i1 and i0 in (0, nx - 1)) or (j0 == j1 and j0 in (0, ny - 1))


# ---- highway town -----------------------------------------------------------------------------------------------
def _highway(b: NetworkBuilder, rng: np.random.Generator) -> None:
    """A divided three-lane highway ring with two interchanges (on/off-ramp merges) to local loops."""
    L = float(rng.uniform(1150.0, 1350.0))  # bottom straight length
    H = float(rng.uniform(780.0, 880.0))  # ring height
    lanes = dict(lanes=(3, 3), width=3.75, median=1.5, sidewalks=(False, False), kerb_extra=0.0)
    x1 = float(rng.uniform(300.0, 360.0))
    x2 = x1 + float(rng.uniform(450.0, 500.0))
    D = 125.0  # local loops lie this far beside the highway
    R_OFF = 130.0  # ramps run this far along the highway before turning to the loop
    b1 = b.node(x1, 0.0, control=MERGE, margin=3.0)
    b2 = b.node(x2, 0.0, control=MERGE, margin=3.0)
    t1 = b.node(x2, H, control=MERGE, margin=3.0)
    t2 = b.node(x1, H, control=MERGE, margin=3.0)
    r_bottom = b.road(b1, b2, speed=HIGHWAY, **lanes)
    r_right = b.road(b2, t1, via=[(L + 250.0, 0.0), (L + 250.0, H)], speed=22.0, radius=260.0, **lanes)
    r_top = b.road(t1, t2, speed=HIGHWAY, **lanes)
    r_left = b.road(t2, b1, via=[(-450.0, H), (-450.0, 0.0)], speed=22.0, radius=260.0, **lanes)
    b.set_major(b1, (r_left, r_bottom))
    b.set_major(b2, (r_bottom, r_right))
    b.set_major(t1, (r_right, r_top))
    b.set_major(t2, (r_top, r_left))
    tan20 = np.tan(np.deg2rad(20.0))
    for y0, sgn, (m_a, m_b) in ((0.0, -1.0, (b1, b2)), (H, 1.0, (t2, t1))):
        # Local loop beside this straight, outside (bottom) or... also outside (top), with T-junctions.
        n1 = b.node(x1 + R_OFF, y0 + sgn * D, control=PRIORITY, margin=10.0)
        n2 = b.node(x2 - R_OFF, y0 + sgn * D, control=PRIORITY, margin=10.0)
        far = y0 + sgn * (D + 130.0)
        loop_a = b.road(n1, n2, speed=LOCAL, width=3.6, radius=45.0)
        loop_b = b.road(
            n2,
            n1,
            via=[
                (x2 + 110.0, y0 + sgn * D),
                (x2 + 110.0, far),
                (x1 - 110.0, far),
                (x1 - 110.0, y0 + sgn * D),
            ],
            speed=LOCAL,
            width=3.6,
            radius=45.0,
        )
        b.set_major(n1, (loop_a, loop_b))
        b.set_major(n2, (loop_a, loop_b))
        yv = y0 + sgn * R_OFF * tan20
        if sgn < 0:
            # bottom: eastbound leaves at b1 (off-ramp to n1) and joins at b2 (on-ramp from n2)
            b.road(
                m_a,
                n1,
                via=[(x1 + R_OFF, yv)],
                lanes=(1, 0),
                width=5.0,
                speed=RAMP,
                radius=60.0,
                kerb_extra=0.0,
                sidewalks=(False, False),
            )
            b.road(
                n2,
                m_b,
                via=[(x2 - R_OFF, yv)],
                lanes=(1, 0),
                width=5.0,
                speed=RAMP,
                radius=60.0,
                kerb_extra=0.0,
                sidewalks=(False, False),
            )
        else:
            # top straight runs westbound on its north side: leaves at t1 (east), joins at t2 (west)
            b.road(
                m_b,
                n2,
                via=[(x2 - R_OFF, yv)],
                lanes=(1, 0),
                width=5.0,
                speed=RAMP,
                radius=60.0,
                kerb_extra=0.0,
                sidewalks=(False, False),
            )
            b.road(
                n1,
                m_a,
                via=[(x1 + R_OFF, yv)],
                lanes=(1, 0),
                width=5.0,
                speed=RAMP,
                radius=60.0,
                kerb_extra=0.0,
                sidewalks=(False, False),
            )
    for yc in (-D - 65.0, H + D + 65.0):
        for xc in np.arange(x1 - 40.0, x2 + 60.0, 45.0):
            if rng.random() < 0.5:
                w, dpt = rng.uniform(18, 30), rng.uniform(20, 40)
                b.building(
                    np.array(
                        [
                            [xc - w / 2, yc - dpt / 2],
                            [xc + w / 2, yc - dpt / 2],
                            [xc + w / 2, yc + dpt / 2],
                            [xc - w / 2, yc + dpt / 2],
                        ]
                    ),
                    float(rng.uniform(6.0, 14.0)),
                )
