"""What PDM-Closed sees: detected objects in the map frame, its drivable map and its forecast observation.

* :func:`objects_to_global` turns logged ego-frame boxes into map-frame boxes exactly as NAVSIM's
  ``annotations_to_detection_tracks`` (rotation by the ego rear-axle heading, atan2 heading wrap,
  velocity rotated into the map frame).
* :func:`build_drivable_map` is ``PDMDrivableMap.from_simulation``: roadblocks, their lanes, the lane
  connectors of roadblock connectors, intersections and car parks whose geometry meets the ±radius
  square around the ego centre (fact sheet §1.5), with an STRtree in the same polygon order.
* :class:`ForecastObservation` is ``PDMObservation.update``: nearest 50 vehicles / 25 pedestrians /
  10 bicycles / 50 static objects within 100 m, agents moved at constant velocity along their
  (possibly flipped) heading, occupancy maps every ``sample_res`` steps, red on-route lane connectors
  as obstacles, objects overlapping the ego at t0 marked as collided (fact sheet §1.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely import STRtree
from shapely.geometry import Point, Polygon

from planlab.maps.layers import SemanticMapLayer
from planlab.sim.pdm_closed.path import normalize_angle
from planlab.sim.vehicle import PACIFICA, VehicleParameters, box_coords
from planlab.sim.world import DrivableMap, ObjectTracks, PolygonType

# nuPlan tracked-object types (names as in OpenScene's gt_names)
AGENT_NAMES = frozenset({"vehicle", "pedestrian", "bicycle", "ego"})
STATIC_NAMES = frozenset({"traffic_cone", "barrier", "czone_sign", "generic_object"})
OBJECT_NAMES = AGENT_NAMES | STATIC_NAMES
MAX_DYNAMIC_OBJECTS = {"vehicle": 50, "pedestrian": 25, "bicycle": 10}
MAX_STATIC_OBJECTS = 50
RED_LIGHT_TOKEN = "red_light"
NODE_CAPACITY = 10  # shapely STRtree node capacity NAVSIM uses (tree order decides ties)


@dataclass
class DetectedObjects:
    """Objects of one frame in the map frame: box centre, heading, size, velocity, type name, token."""

    tokens: list[str]
    names: list[str]
    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    length: np.ndarray
    width: np.ndarray
    vx: np.ndarray
    vy: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def is_agent(self) -> np.ndarray:
        return np.array([n in AGENT_NAMES for n in self.names], dtype=bool)

    def coords(self) -> np.ndarray:
        """Corners + centre ``(N, 5, 2)`` (FL, RL, RR, FR, centre)."""
        return box_coords(self.x, self.y, self.heading, self.length, self.width)


def objects_to_global(
    ego_rear_axle: np.ndarray,
    boxes: np.ndarray,
    velocity: np.ndarray,
    names: list[str],
    tokens: list[str],
) -> DetectedObjects:
    """Map-frame objects from ego-frame ``boxes (N, 7)`` and ``velocity (N, >=2)``.

    ``ego_rear_axle`` is the rear-axle pose nuPlan reports for the frame (after its round trip).
    Velocity is kept only for agent types (static objects get 0, as NAVSIM's metric cache stores).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    velocity = np.asarray(velocity, dtype=np.float64)
    # an empty frame's (0, 3) / [] velocities: reshape(0, -1) cannot infer the column count
    velocity = velocity.reshape(len(boxes), -1) if velocity.size else np.zeros((len(boxes), 3))
    ex, ey, eh = float(ego_rear_axle[0]), float(ego_rear_axle[1]), float(ego_rear_axle[2])
    s, c = np.sin(eh), np.cos(eh)
    bx, by, bh = boxes[:, 0], boxes[:, 1], boxes[:, 6]
    xr = bx * c - by * s
    yr = bx * s + by * c
    heading = normalize_angle(normalize_angle(bh + eh))
    agent = np.array([n in AGENT_NAMES for n in names], dtype=bool)
    vx = velocity[:, 0] * c - velocity[:, 1] * s
    vy = velocity[:, 0] * s + velocity[:, 1] * c
    return DetectedObjects(
        tokens=[str(t) for t in tokens],
        names=[str(n) for n in names],
        x=xr + ex,
        y=yr + ey,
        heading=heading,
        length=boxes[:, 3].copy(),
        width=boxes[:, 4].copy(),
        vx=np.where(agent, vx, 0.0),
        vy=np.where(agent, vy, 0.0),
    )


@dataclass
class DrivableGeometry:
    """The drivable map plus the STRtree NAVSIM queries (built over the same polygons in the same order)."""

    drivable: DrivableMap
    tree: STRtree

    def intersecting_tokens(self, geometry: object) -> list[str]:
        return [self.drivable.tokens[i] for i in self.tree.query(geometry, predicate="intersects")]


def build_drivable_map(
    map_api: object, center_xy: np.ndarray, radius: float, route_lane_ids: list[str]
) -> DrivableGeometry:
    """NAVSIM's ``PDMDrivableMap.from_simulation`` around the ego centre ``center_xy``."""
    layers = [
        SemanticMapLayer.ROADBLOCK,
        SemanticMapLayer.ROADBLOCK_CONNECTOR,
        SemanticMapLayer.INTERSECTION,
        SemanticMapLayer.CARPARK_AREA,
    ]
    near = map_api.get_proximal_map_objects((float(center_xy[0]), float(center_xy[1])), radius, layers)  # type: ignore[attr-defined]
    tokens: list[str] = []
    types: list[int] = []
    polygons: list[Polygon] = []
    for block in near[SemanticMapLayer.ROADBLOCK]:
        tokens.append(block.id)
        types.append(PolygonType.ROADBLOCK)
        polygons.append(block.polygon)
    for layer, kind in (
        (SemanticMapLayer.ROADBLOCK, PolygonType.LANE),
        (SemanticMapLayer.ROADBLOCK_CONNECTOR, PolygonType.LANE_CONNECTOR),
    ):
        for block in near[layer]:
            for lane in block.interior_edges:
                tokens.append(lane.id)
                types.append(kind)
                polygons.append(lane.polygon)
    for layer, kind in (
        (SemanticMapLayer.INTERSECTION, PolygonType.INTERSECTION),
        (SemanticMapLayer.CARPARK_AREA, PolygonType.CARPARK_AREA),
    ):
        for obj in near[layer]:
            tokens.append(obj.id)
            types.append(kind)
            polygons.append(obj.polygon)
    route = set(route_lane_ids)
    on_route = [
        t in route and k in (PolygonType.LANE, PolygonType.LANE_CONNECTOR)
        for t, k in zip(tokens, types, strict=True)
    ]
    drivable = DrivableMap(tokens, np.array(types, dtype=np.int8), np.array(on_route, dtype=bool), polygons)
    tree = STRtree(drivable.polygons, node_capacity=NODE_CAPACITY)
    return DrivableGeometry(drivable, tree)


class OccupancyMap:
    """Tokens + polygons of one observation sample, with NAVSIM's STRtree (query order matters)."""

    def __init__(self, tokens: list[str], polygons: np.ndarray) -> None:
        self.tokens = tokens
        self.polygons = polygons
        self.index = {t: i for i, t in enumerate(tokens)}
        self.tree = STRtree(polygons, node_capacity=NODE_CAPACITY)

    def intersects(self, geometry: object) -> list[str]:
        return [self.tokens[i] for i in self.tree.query(geometry, predicate="intersects")]

    def __getitem__(self, token: str) -> Polygon:
        return self.polygons[self.index[token]]


class ForecastObservation:
    """PDM-Closed's constant-velocity forecast of the current detections (``PDMObservation.update``)."""

    def __init__(
        self,
        ego_center: np.ndarray,
        ego_polygon: Polygon,
        objects: DetectedObjects,
        red_lights: list[tuple[str, Polygon]],
        num_samples: int,
        interval: float = 0.1,
        sample_res: int = 2,
        map_radius: float = 100.0,
    ) -> None:
        self.interval = interval
        self.sample_res = sample_res
        ex, ey = float(ego_center[0]), float(ego_center[1])
        coords = objects.coords()  # (N, 5, 2), last = centre
        keep = [
            i
            for i in range(len(objects))
            if objects.names[i] != "ego"
            and not (map_radius and float(np.hypot(ex - objects.x[i], ey - objects.y[i])) > map_radius)
        ]
        self.unique = {objects.tokens[i]: i for i in keep}
        self.objects = objects
        position = np.array([[ex, ey]])

        def nearest(indices: list[int], limit: int) -> list[int]:
            if not indices:
                return []
            centers = coords[indices, 4]
            dist = ((centers - position) ** 2.0).sum(axis=-1) ** 0.5
            order = np.argsort(dist)
            return [indices[j] for j in order][:limit]

        static = nearest([i for i in keep if objects.names[i] not in AGENT_NAMES], MAX_STATIC_OBJECTS)
        dynamic: list[int] = []
        for kind, limit in MAX_DYNAMIC_OBJECTS.items():
            dynamic += nearest([i for i in keep if objects.names[i] == kind], limit)

        # agents move along their heading, flipped when they drive backwards
        v = np.hypot(objects.vx, objects.vy)
        vel_angle = np.arctan2(objects.vy, objects.vx)
        forward = np.abs(normalize_angle(objects.heading - vel_angle)) < np.pi / 2
        track_heading = np.where(forward, objects.heading, normalize_angle(objects.heading + np.pi))
        dxy = np.stack([np.cos(track_heading) * v, np.sin(track_heading) * v], axis=-1)

        self.static_idx = static
        self.dynamic_idx = dynamic
        self.red_tokens = [t for t, _ in red_lights]
        self.tokens = (
            [objects.tokens[i] for i in static] + [objects.tokens[i] for i in dynamic] + self.red_tokens
        )
        static_coords = coords[static].copy()
        dynamic_coords = coords[dynamic].copy()
        self._dynamic_dxy = dxy[dynamic]
        red_polys = np.empty(len(red_lights), dtype=object)
        red_polys[:] = [p for _, p in red_lights]
        static_polys = shapely.polygons(_ring(static_coords)) if static else np.empty(0, dtype=object)
        self.sample_corners: list[np.ndarray] = []  # per sample: (static + dynamic, 4, 2)
        self.maps: list[OccupancyMap] = []
        for sample in np.arange(0, num_samples + sample_res, sample_res):
            if dynamic:
                delta = float(sample) * interval
                dyn = dynamic_coords + delta * self._dynamic_dxy[:, None]
                dynamic_polys = shapely.polygons(_ring(dyn))
            else:
                dyn = dynamic_coords
                dynamic_polys = np.empty(0, dtype=object)
            polys = np.concatenate([static_polys, dynamic_polys, red_polys]).astype(object)
            self.maps.append(OccupancyMap(self.tokens, polys))
            self.sample_corners.append(np.concatenate([static_coords, dyn], axis=0))

        # objects already overlapping the ego at t0 are ignored afterwards (red lights only if ego is within)
        collided = []
        for token in self.maps[0].intersects(ego_polygon):
            if RED_LIGHT_TOKEN in token and not ego_polygon.within(self.maps[0][token]):
                continue
            collided.append(token)
        self.collided = collided

    def __getitem__(self, time_idx: int) -> OccupancyMap:
        return self.maps[time_idx // self.sample_res]

    def object_index(self, token: str) -> int:
        return self.unique[token]

    def leading_velocity(self, token: str, ego_heading: float) -> float:
        """Velocity of a leading object projected on the ego heading (0 for static objects)."""
        i = self.unique[token]
        if self.objects.names[i] not in AGENT_NAMES:
            return 0.0
        relative = float(normalize_angle(self.objects.heading[i] - ego_heading))
        speed = float(np.hypot(self.objects.vx[i], self.objects.vy[i]))
        # nuPlan transform(StateSE2(|v|, 0, 0), rotation(relative)).x
        return speed * np.cos(relative) + 0.0 * np.sin(relative) + 0.0

    def object_tracks(self, num_steps: int) -> ObjectTracks:
        """Non-red-light obstacles at 10 Hz steps ``0..num_steps-1`` for the scorer (red lights never count)."""
        idx = self.static_idx + self.dynamic_idx
        n = len(idx)
        corners = np.stack(
            [self.sample_corners[t // self.sample_res][:, :4] for t in range(num_steps)]
        ).reshape(num_steps, n, 4, 2)
        centers = np.stack(
            [self.sample_corners[t // self.sample_res][:, 4] for t in range(num_steps)]
        ).reshape(num_steps, n, 2)
        tokens = [self.objects.tokens[i] for i in idx]
        names = [self.objects.names[i] for i in idx]
        collided = set(self.collided)
        return ObjectTracks(
            tokens=tokens,
            corners=corners,
            centers=centers,
            present=np.ones((num_steps, n), dtype=bool),
            is_agent=np.array([nm in AGENT_NAMES for nm in names], dtype=bool),
            speed=np.hypot(self.objects.vx[idx], self.objects.vy[idx]) if n else np.zeros(0),
            ignore=np.array([t in collided for t in tokens], dtype=bool),
        )


def _ring(coords: np.ndarray) -> np.ndarray:
    """Closed rings ``(N, 5, 2)``: FL, RL, RR, FR, FL (NAVSIM puts FL where the centre was)."""
    ring = coords.copy()
    ring[:, 4] = ring[:, 0]
    return ring


def ego_footprint(
    rear_axle_pose: np.ndarray, vehicle: VehicleParameters = PACIFICA
) -> tuple[np.ndarray, Polygon]:
    """(centre (2,), box polygon) of a CarFootprint built from a rear-axle pose (nuPlan geometry)."""
    x, y, h = float(rear_axle_pose[0]), float(rear_axle_pose[1]), float(rear_axle_pose[2])
    d = vehicle.rear_axle_to_center
    c, s = np.cos(h), np.sin(h)
    cx, cy = x + d * c, y + d * s
    cl, sl = np.cos(h + np.pi / 2.0), np.sin(h + np.pi / 2.0)
    hl, hw = vehicle.half_length, vehicle.half_width
    ring = np.empty((5, 2))
    for i, (lon, lat) in enumerate(((hl, hw), (-hl, hw), (-hl, -hw), (hl, -hw))):
        ring[i, 0] = cx + ((lat * cl) + (lon * c))
        ring[i, 1] = cy + ((lat * sl) + (lon * s))
    ring[4] = ring[0]
    return np.array([cx, cy]), shapely.polygons(ring)


def ego_footprints(rear_axle_poses: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Box polygons (object array) of CarFootprints built from rear-axle poses ``(N, 3)``."""
    h = rear_axle_poses[:, 2]
    d = vehicle.rear_axle_to_center
    c, s = np.cos(h), np.sin(h)
    cx, cy = rear_axle_poses[:, 0] + d * c, rear_axle_poses[:, 1] + d * s
    cl, sl = np.cos(h + np.pi / 2.0), np.sin(h + np.pi / 2.0)
    hl, hw = vehicle.half_length, vehicle.half_width
    lon = np.array([hl, -hl, -hl, hl, hl])  # FL, RL, RR, FR, FL (closed ring)
    lat = np.array([hw, hw, -hw, -hw, hw])
    ring = np.empty((len(h), 5, 2))
    ring[..., 0] = cx[:, None] + ((lat * cl[:, None]) + (lon * c[:, None]))
    ring[..., 1] = cy[:, None] + ((lat * sl[:, None]) + (lon * s[:, None]))
    return shapely.polygons(ring)


def point(xy: np.ndarray) -> Point:
    return Point(float(xy[0]), float(xy[1]))
