"""The synthetic road network in memory: lanes, lane connectors, roadblocks, junctions and the rest.

This is the world's own representation (global projected coordinates, float64, integer fids that are also
the GeoPackage fids). ``planlab.world.mapdata`` turns it into the maps room's ``MapData``; traffic and the
expert drive on its lane graph. Lanes and lane connectors share one type, :class:`LaneSeg`, because
vehicles follow both the same way (nuPlan's lane graph alternates lane → connector → lane).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import shapely
from shapely.geometry import LineString, Polygon

# Junction control kinds.
SIGNAL = "signal"  # traffic lights, two or more phases
STOP = "stop"  # minor approaches stop, major road has priority (all-way stop when no major road)
PRIORITY = "priority"  # minor approaches yield without stopping
MERGE = "merge"  # highway merge/diverge zone: main carriageway has priority over ramps
NONE = "none"  # two-arm bend or lane-count change: no conflicts
DEADEND = "deadend"  # a road end without a junction (car-park aisle)
CONTROLS = (SIGNAL, STOP, PRIORITY, MERGE, NONE, DEADEND)


@dataclass
class LaneSeg:
    """A lane (``kind='lane'``) or a lane connector (``kind='connector'``) with its centreline.

    ``center`` is the baseline path (vertex spacing ≤ 1 m); ``left``/``right`` are the boundary polylines
    (a lane shares them exactly with its neighbours). Connectors carry their junction, turn and priority.
    """

    fid: int
    kind: str
    block: int  # roadblock fid (lanes) or roadblock-connector fid (connectors)
    index: int  # lane_index inside the block, 0 = leftmost
    center: np.ndarray
    left: np.ndarray
    right: np.ndarray
    width: float
    speed_limit: float
    baseline_fid: int
    left_boundary: int
    right_boundary: int
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)
    # connectors only
    node: int | None = None  # junction (intersection) fid
    turn: str = ""  # straight | left | right | merge | diverge
    priority: int = 0  # higher goes first at a conflict (see traffic.junctions)
    phase: int | None = None  # signal phase index controlling it (signalised junctions)
    stop_line: int | None = None  # stop polygon fid before the connector (signal or stop sign)
    must_stop: bool = False  # a stop sign: come to a halt before entering
    polygon_fid: int | None = None  # gen_lane_connectors_scaled_width_polygons row
    # lanes only
    stop_s: float | None = None  # arc length on this lane where a vehicle must stop for the next junction

    @cached_property
    def s(self) -> np.ndarray:
        d = np.diff(self.center, axis=0)
        return np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @cached_property
    def headings(self) -> np.ndarray:
        d = np.diff(self.center, axis=0)
        h = np.arctan2(d[:, 1], d[:, 0])
        return np.concatenate([h, h[-1:]])

    @cached_property
    def polygon(self) -> Polygon:
        return Polygon(np.concatenate([self.left, self.right[::-1]], axis=0))

    @property
    def is_connector(self) -> bool:
        return self.kind == "connector"


@dataclass
class Block:
    """A roadblock (lane group, ``kind='roadblock'``) or a roadblock connector (``kind='connector'``)."""

    fid: int
    kind: str
    lanes: list[int]  # lane (connector) fids; roadblocks: ordered left to right
    polygon: Polygon
    road: int | None = None  # the road a roadblock belongs to
    node: int | None = None  # junction of a roadblock connector; end junction of a roadblock
    start_node: int | None = None  # roadblocks: junction at the start
    src: int | None = None  # roadblock connectors: upstream roadblock
    dst: int | None = None  # roadblock connectors: downstream roadblock
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)


@dataclass
class Junction:
    """An intersection polygon with its control, connectors and (for signals) the phase plan."""

    fid: int
    center: np.ndarray
    control: str
    polygon: Polygon
    connectors: list[int] = field(default_factory=list)
    conflicts: dict[int, set[int]] = field(default_factory=dict)  # connector -> conflicting connectors
    phases: list[list[int]] = field(default_factory=list)  # signal phases: incoming roadblock fids
    has_crosswalks: bool = False


@dataclass
class Area:
    """A plain polygon feature (crosswalk, walkway, car park, stop polygon, road segment, …)."""

    fid: int
    polygon: Polygon
    kind: str
    attrs: dict = field(default_factory=dict)


@dataclass
class Boundary:
    fid: int
    line: np.ndarray
    boundary_type: int = 0


@dataclass
class SignalHead:
    """A traffic-light head: where it hangs (x, y, z) and which connectors it controls."""

    fid: int
    position: np.ndarray
    heading: float
    node: int
    phase: int
    connectors: list[int]


@dataclass
class ParkingSpot:
    """A place for a parked car: centre pose and size; inside a car park or a parking strip."""

    x: float
    y: float
    heading: float
    length: float
    width: float


@dataclass
class Building:
    """A block-shaped building (for the sensors and for realism; not a map layer)."""

    polygon: Polygon
    height: float


@dataclass
class PedEdge:
    """A walkable path for pedestrians: along a sidewalk, across a crosswalk, or round a corner."""

    id: int
    points: np.ndarray
    a: str  # node keys at the two ends
    b: str
    crosswalk: int | None = None  # crosswalk fid when the edge crosses a road
    node: int | None = None  # junction the crosswalk belongs to
    road_side_blocks: tuple[int, ...] = ()  # roadblocks the crossing traverses

    @cached_property
    def s(self) -> np.ndarray:
        d = np.diff(self.points, axis=0)
        return np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])

    @property
    def length(self) -> float:
        return float(self.s[-1])

    @cached_property
    def s_list(self) -> list[float]:
        return [float(v) for v in self.s]

    @cached_property
    def points_list(self) -> list[tuple[float, float]]:
        return [(float(x), float(y)) for x, y in self.points]


@dataclass
class RoadNetwork:
    """Everything a town contains, keyed by fid, plus derived lookups for routing and queries."""

    name: str
    location: str
    crs: str
    origin: np.ndarray  # (easting, northing) of the town's local origin
    lanes: dict[int, LaneSeg]
    blocks: dict[int, Block]
    junctions: dict[int, Junction]
    boundaries: dict[int, Boundary]
    stop_polygons: dict[int, Area]
    crosswalks: dict[int, Area]
    walkways: dict[int, Area]
    carparks: dict[int, Area]
    generic_drivable: dict[int, Area]
    road_segments: dict[int, Area]
    signal_heads: dict[int, SignalHead]
    parking: list[ParkingSpot]
    ped_edges: dict[int, PedEdge]
    buildings: list[Building]
    cache: dict = field(default_factory=dict, repr=False)  # derived data of simulation modules, per network

    # ---- derived ------------------------------------------------------------------------------------------
    @cached_property
    def drivable(self) -> shapely.Geometry:
        """Union of roadblocks, intersections and car parks: NAVSIM's DAC drivable area (fact sheet §1.5)."""
        polys = [b.polygon for b in self.blocks.values() if b.kind == "roadblock"]
        polys += [j.polygon for j in self.junctions.values()]
        polys += [c.polygon for c in self.carparks.values()]
        return shapely.union_all(polys)

    @cached_property
    def drivable_polygons(self) -> list[Polygon]:
        """The individual polygons of the DAC drivable layers (roadblocks, intersections, car parks)."""
        polys = [b.polygon for b in self.blocks.values() if b.kind == "roadblock"]
        polys += [j.polygon for j in self.junctions.values()]
        polys += [c.polygon for c in self.carparks.values()]
        return polys

    @cached_property
    def _lane_tree(self) -> tuple[shapely.STRtree, list[int]]:
        ids = list(self.lanes)
        return shapely.STRtree([LineString(self.lanes[i].center) for i in ids]), ids

    def lanes_near(self, xy: np.ndarray, radius: float) -> list[int]:
        """Lane/connector fids whose centreline passes within ``radius`` metres of ``xy``."""
        tree, ids = self._lane_tree
        hits = tree.query(shapely.Point(float(xy[0]), float(xy[1])).buffer(radius))
        return [ids[i] for i in sorted(hits)]

    def lane_of_block(self, block: int) -> list[LaneSeg]:
        return [self.lanes[i] for i in self.blocks[block].lanes]

    @cached_property
    def roadblocks(self) -> list[int]:
        return [b for b, blk in self.blocks.items() if blk.kind == "roadblock"]

    def map_objects_bounds(self) -> tuple[float, float, float, float]:
        geoms = [b.polygon for b in self.blocks.values()] + [j.polygon for j in self.junctions.values()]
        return tuple(shapely.total_bounds(geoms))  # type: ignore[return-value]
