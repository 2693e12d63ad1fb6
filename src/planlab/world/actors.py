"""The things that move (or stand) in the world: vehicles, pedestrians and static objects.

A vehicle's reference point is its rear axle for the ego (NAVSIM poses are rear-axle poses, fact sheet §1.2)
and its box centre for traffic; ``rear_to_center`` is the distance from that point to the box centre along
the heading. Vehicles move along a :class:`~planlab.world.paths.LanePath` with a lateral offset plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from planlab.world.paths import LanePath, LateralPlan

# nuPlan's Pacifica (fact sheet §1.2): the ego's box relative to its rear axle.
EGO_LENGTH, EGO_WIDTH, EGO_HEIGHT = 5.176, 2.297, 1.777
EGO_REAR_TO_CENTER = 1.461  # = half length − rear overhang (1.127)
# The expert's yaw-rate cap in curves and turns [rad/s] (traffic: paths.YAW_RATE_MAX). NAVSIM re-simulates a
# logged trajectory with an LQR tracker that starts at zero steering (fact sheet §1.4); the slower a turn,
# the less it lags and overshoots at the exit (DAC) and the smaller the yaw-acceleration jump where the
# logged history meets the simulation (EPDMS history comfort).
EGO_YAW_RATE_MAX = 0.3


@dataclass(frozen=True)
class Driving:
    """Longitudinal behaviour (IDM with limits): accelerations [m/s²], jerk [m/s³], headway [s], gap [m]."""

    a_max: float = 1.6
    b_comf: float = 2.0
    b_max: float = 7.0
    jerk_up: float = 6.0
    jerk_down: float = 12.0
    headway: float = 1.3
    s0: float = 2.5
    delta: float = 4.0
    speed_factor: float = 1.0  # fraction of the speed limit this driver aims for
    yellow_decel: float = 4.0  # stops at yellow when this deceleration suffices
    min_gap_accept: float = 1.0  # time gap [s] for lane changes


EGO_DRIVING = Driving(
    a_max=2.0,
    b_comf=2.5,
    b_max=3.6,
    jerk_up=3.0,
    jerk_down=3.6,
    headway=1.2,
    s0=2.5,
    speed_factor=1.0,
    yellow_decel=3.0,
    min_gap_accept=1.6,
)

VEHICLE_TYPES = (  # name, length, width, height, weight
    ("sedan", 4.6, 1.85, 1.48, 0.45),
    ("suv", 4.85, 1.98, 1.75, 0.3),
    ("van", 5.3, 2.05, 2.1, 0.13),
    ("truck", 8.2, 2.45, 3.2, 0.08),
    ("bus", 11.5, 2.55, 3.1, 0.04),
)


@dataclass
class Vehicle:
    """A moving vehicle (traffic or the ego)."""

    id: int
    token: str
    length: float
    width: float
    height: float
    path: LanePath
    s: float
    v: float
    driving: Driving
    rear_to_center: float = 0.0
    a: float = 0.0
    lat: LateralPlan = field(default_factory=LateralPlan)
    is_ego: bool = False
    name: str = "vehicle"
    committed: set[int] = field(default_factory=set)
    yellow_go: dict[int, bool] = field(default_factory=dict)  # connector -> decided to go at yellow
    stopped_for: dict[int, float] = field(default_factory=dict)  # stop-sign connector -> seconds stopped
    lc_cooldown: float = 0.0
    blocked_time: float = 0.0
    script: dict = field(default_factory=dict)  # scenario hooks (forced cut-in, ...)
    # set every step by the world
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    yaw_rate: float = 0.0

    @property
    def front(self) -> float:
        """Distance from the reference point to the front bumper along the heading."""
        return self.rear_to_center + 0.5 * self.length

    @property
    def rear(self) -> float:
        return 0.5 * self.length - self.rear_to_center

    def update_pose(self) -> None:
        x, y, h = self.path.pose1(self.s)
        if self.lat.idle:
            self.x, self.y, self.heading = x, y, h
            return
        d = float(self.lat.offset(self.s))
        slope = float(self.lat.slope(self.s))
        self.x = x - math.sin(h) * d
        self.y = y + math.cos(h) * d
        self.heading = h + math.atan(slope)

    def center(self) -> tuple[float, float]:
        if self.rear_to_center == 0.0:
            return self.x, self.y
        return (
            self.x + self.rear_to_center * math.cos(self.heading),
            self.y + self.rear_to_center * math.sin(self.heading),
        )

    def lane(self) -> int:
        return self.path.lane_at(self.s)[0]


@dataclass
class Pedestrian:
    """A pedestrian walking the sidewalk graph (``edge`` traversed in direction ``direction``)."""

    id: int
    token: str
    edge: int
    u: float  # arc length along the edge in its own direction of travel
    direction: int  # +1 along the edge's points, -1 against
    v_des: float
    v: float = 0.0
    side: float = 0.6  # keep-right offset [m]
    length: float = 0.55
    width: float = 0.6
    height: float = 1.75
    waiting: bool = False
    crossing: int | None = None  # crosswalk fid while on a crossing edge
    next_edge: int | None = None  # the edge chosen while waiting to cross
    prev_edges: list[int] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    stand_still: bool = False  # a pedestrian who just stands (at a corner, waiting)


@dataclass
class StaticObject:
    """An object that does not move: parked car, cone, barrier, construction sign, generic object."""

    id: int
    token: str
    name: str
    x: float
    y: float
    heading: float
    length: float
    width: float
    height: float
