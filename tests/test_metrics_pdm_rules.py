"""Each PDM sub-score rule on hand-built scenes whose value follows from the fact sheet (§1.5–1.7).

World: a straight two-lane road along +x, y ∈ [-3.5, 3.5]; the right lane (y < 0) is on route, the left
one is oncoming traffic. Ego states are written directly (no simulation) so each case isolates one rule.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from planlab.metrics.pdm.comfort import COMFORT_CHECKS, comfort_checks_v11
from planlab.metrics.pdm.inputs import DrivableMap, ObjectTracks, PolygonType, ScoringScene, concat_scenes
from planlab.metrics.pdm.scorer import aggregate_v11, subscores_v11
from planlab.scene.enums import StateIndex
from planlab.sim.vehicle import PACIFICA, ego_coords

N = 41
T = np.arange(N) * 0.1
LANE_Y = -1.75
CENTER_OFFSET = PACIFICA.rear_axle_to_center


def road(top: float = 3.5, extra: list[tuple[int, shapely.Polygon]] | None = None) -> DrivableMap:
    polys = [
        (PolygonType.ROADBLOCK, shapely.box(-100, -3.5, 300, top), False, "rb"),
        (PolygonType.LANE, shapely.box(-100, -3.5, 300, 0.0), True, "lane_right"),
        (PolygonType.LANE, shapely.box(-100, 0.0, 300, top), False, "lane_left"),
    ]
    for kind, p in extra or []:
        polys.append((kind, p, False, f"x{len(polys)}"))
    return DrivableMap(
        [p[3] for p in polys], [int(p[0]) for p in polys], [p[2] for p in polys], [p[1] for p in polys]
    )


def states_line(x0: float = 0.0, speed: float = 10.0, y: float = LANE_Y, heading: float = 0.0) -> np.ndarray:
    s = np.zeros((N, 11))
    s[:, StateIndex.X] = x0 + speed * T * np.cos(heading)
    s[:, StateIndex.Y] = y + speed * T * np.sin(heading)
    s[:, StateIndex.HEADING] = heading
    s[:, StateIndex.VELOCITY_X] = speed
    return s


def tracks(objects: list[dict]) -> ObjectTracks:
    """Objects: dict(token, x (T,) or float, y, heading=0, length=4.5, width=2, agent=True, speed=1)."""
    steps = N + 10  # v1.1 observation: 51 steps
    tt = np.arange(steps) * 0.1
    if not objects:
        return ObjectTracks.empty(steps)
    xs, ys, hs = [], [], []
    for o in objects:
        x = o["x"](tt) if callable(o["x"]) else np.full(steps, float(o["x"]))
        xs.append(x)
        ys.append(np.full(steps, float(o.get("y", LANE_Y))))
        hs.append(np.full(steps, float(o.get("heading", 0.0))))
    return ObjectTracks.from_boxes(
        [o["token"] for o in objects],
        np.stack(xs, 1),
        np.stack(ys, 1),
        np.stack(hs, 1),
        np.array([o.get("length", 4.5) for o in objects]),
        np.array([o.get("width", 2.0) for o in objects]),
        np.ones((steps, len(objects)), dtype=bool),
        np.array([o.get("agent", True) for o in objects]),
        np.array([o.get("speed", 1.0) for o in objects]),
    )


def score(states: np.ndarray, objects: list[dict] | None = None, drivable: DrivableMap | None = None):
    scene = ScoringScene(
        "t",
        tracks(objects or []),
        drivable or road(),
        shapely.LineString([(-100, LANE_Y), (300, LANE_Y)]),
    )
    batch = concat_scenes([scene])
    states = np.asarray(states)[None] if states.ndim == 2 else states
    return subscores_v11(states, np.zeros(len(states), dtype=np.int64), batch)


# --------------------------------------------------------------------------------------------------- NC
def test_clean_drive_scores_one_everywhere() -> None:
    sub = score(states_line())
    assert sub.no_at_fault_collisions[0] == 1.0
    assert sub.drivable_area_compliance[0] == 1.0
    assert sub.driving_direction_compliance[0] == 1.0
    assert sub.time_to_collision_within_bound[0] == 1.0
    assert sub.comfort[0] == 1.0
    assert sub.progress_raw[0] == pytest.approx(40.0)


def test_front_collision_with_a_moving_vehicle_is_at_fault() -> None:
    lead = {"token": "lead", "x": lambda t: 25.0 + 1.0 * t, "speed": 1.0}
    assert score(states_line(), [lead]).no_at_fault_collisions[0] == 0.0


def test_at_fault_hit_on_a_cone_costs_half() -> None:
    cone = {"token": "cone", "x": 25.0, "length": 0.5, "width": 0.5, "agent": False, "speed": 0.0}
    assert score(states_line(), [cone]).no_at_fault_collisions[0] == 0.5


def test_hitting_a_stopped_car_is_at_fault() -> None:
    parked = {"token": "parked", "x": 25.0, "speed": 0.0}
    assert score(states_line(), [parked]).no_at_fault_collisions[0] == 0.0


def test_rear_end_by_another_car_is_not_at_fault() -> None:
    # the ego drives at 5 m/s, a car from behind at 15 m/s runs into its rear bumper
    follower = {"token": "follower", "x": lambda t: -5.0 + 15.0 * t, "speed": 15.0}
    sub = score(states_line(speed=5.0), [follower])
    assert sub.no_at_fault_collisions[0] == 1.0


def test_stopped_ego_is_never_at_fault() -> None:
    intruder = {"token": "intruder", "x": lambda t: 30.0 - 10.0 * t, "heading": np.pi, "speed": 10.0}
    assert score(states_line(speed=0.0), [intruder]).no_at_fault_collisions[0] == 1.0


def _side_car(y: float) -> dict:
    # a car alongside the ego (same speed), overlapping its left side but not its front edge
    return {"token": "side", "x": lambda t: CENTER_OFFSET + 10.0 * t, "y": y, "length": 3.0, "speed": 10.0}


def test_lateral_collision_while_straddling_lanes_is_at_fault() -> None:
    ego_y = 0.0 - CENTER_OFFSET * 0.0  # rear axle on the lane boundary: the box straddles both lanes
    sub = score(states_line(y=ego_y), [_side_car(ego_y + 2.0)])
    assert sub.no_at_fault_collisions[0] == 0.0


def test_lateral_collision_inside_the_own_lane_is_not_at_fault() -> None:
    sub = score(states_line(), [_side_car(LANE_Y + 2.0)])
    assert sub.no_at_fault_collisions[0] == 1.0


def test_forgiven_object_is_ignored_afterwards() -> None:
    # first contact from behind (not at fault) → the same car later hitting the front does not count
    def x(t):  # rear-ends the ego, then stands 12 m ahead where the (slower) ego drives into it
        return np.where(t < 1.0, -5.0 + 15.0 * t, 12.0)

    car = {"token": "c", "x": x, "speed": 15.0}
    assert score(states_line(speed=5.0), [car]).no_at_fault_collisions[0] == 1.0
    # the same front contact without the earlier rear-end is at fault
    ahead = {"token": "c", "x": lambda t: np.where(t < 1.0, 60.0, 12.0), "speed": 15.0}
    assert score(states_line(speed=5.0), [ahead]).no_at_fault_collisions[0] == 0.0


def test_initially_overlapping_objects_are_ignored() -> None:
    scene_tracks = tracks([{"token": "p", "x": 5.0, "speed": 0.0}])
    scene_tracks.ignore[:] = True
    scene = ScoringScene("t", scene_tracks, road(), shapely.LineString([(-100, LANE_Y), (300, LANE_Y)]))
    sub = subscores_v11(states_line()[None], np.zeros(1, dtype=np.int64), concat_scenes([scene]))
    assert sub.no_at_fault_collisions[0] == 1.0


# --------------------------------------------------------------------------------------------------- DAC
def test_one_corner_on_the_drivable_boundary_is_off_road() -> None:
    states = states_line(speed=0.0, y=1.0)
    top = float(ego_coords(states)[0, :4, 1].max())  # the left corners' y at t = 0
    assert score(states, drivable=road(top=top)).drivable_area_compliance[0] == 0.0  # boundary = outside
    assert score(states, drivable=road(top=np.nextafter(top, np.inf))).drivable_area_compliance[0] == 1.0


def test_leaving_the_road_at_the_last_step_only_is_off_road() -> None:
    states = states_line()
    states[-1, StateIndex.Y] = 10.0
    assert score(states).drivable_area_compliance[0] == 0.0


def test_intersection_and_carpark_count_as_drivable_but_not_lane_connectors() -> None:
    states = states_line(speed=0.0, y=10.0)
    lot = shapely.box(-20, 5, 20, 15)
    assert (
        score(states, drivable=road(extra=[(PolygonType.CARPARK_AREA, lot)])).drivable_area_compliance[0]
        == 1.0
    )
    assert (
        score(states, drivable=road(extra=[(PolygonType.INTERSECTION, lot)])).drivable_area_compliance[0]
        == 1.0
    )
    assert (
        score(states, drivable=road(extra=[(PolygonType.LANE_CONNECTOR, lot)])).drivable_area_compliance[0]
        == 0.0
    )


# --------------------------------------------------------------------------------------------------- DDC
@pytest.mark.parametrize(("metres", "expected"), [(1.5, 1.0), (3.0, 0.5), (7.0, 0.0)])
def test_wrong_way_travel_within_one_second(metres: float, expected: float) -> None:
    # in the oncoming (left) lane, driving `metres` in 1 s, standing still before and after
    s = np.zeros((N, 11))
    x = np.clip((T - 1.0) * metres, 0.0, metres)
    s[:, StateIndex.X] = x
    s[:, StateIndex.Y] = 1.75
    s[:, StateIndex.VELOCITY_X] = np.where((T > 1.0) & (T <= 2.0), metres, 0.0)
    assert score(s).driving_direction_compliance[0] == expected


# --------------------------------------------------------------------------------------------------- TTC
def test_object_ahead_within_projection_violates_ttc() -> None:
    # a parked car 3 m beyond where the ego stops (never touched), but within 0.9 s at 10 m/s
    s = states_line(speed=10.0)
    s[20:, StateIndex.X] = s[20, StateIndex.X]
    s[20:, StateIndex.VELOCITY_X] = 0.0
    front = s[19, StateIndex.X] + PACIFICA.front_length
    car = {"token": "car", "x": front + 3.0 + 2.25, "speed": 0.0}
    sub = score(s, [car])
    assert sub.no_at_fault_collisions[0] == 1.0
    assert sub.time_to_collision_within_bound[0] == 0.0


def test_object_behind_does_not_violate_ttc() -> None:
    s = states_line(speed=5.0)
    follower = {"token": "f", "x": lambda t: 5.0 * t - PACIFICA.rear_length - 2.25 - 0.2, "speed": 5.0}
    sub = score(s, [follower])
    assert sub.time_to_collision_within_bound[0] == 1.0


def test_stopped_ego_is_exempt_from_ttc() -> None:
    s = states_line(speed=0.001)  # below 0.005 m/s
    car = {"token": "car", "x": PACIFICA.front_length + 2.25 + 0.5, "speed": 0.0}
    assert score(s, [car]).time_to_collision_within_bound[0] == 1.0
    s = states_line(speed=0.5)
    assert score(s, [car]).time_to_collision_within_bound[0] == 0.0


def test_ttc_counts_objects_beside_while_straddling() -> None:
    sub = score(states_line(y=0.0), [_side_car(2.0)])
    assert sub.time_to_collision_within_bound[0] == 0.0
    sub = score(states_line(), [_side_car(LANE_Y + 2.0)])
    assert sub.time_to_collision_within_bound[0] == 1.0


# ------------------------------------------------------------------------------------------------- comfort
def _comfort_states(ax=None, ay=None, heading=None) -> np.ndarray:
    s = states_line()
    if ax is not None:
        s[:, StateIndex.ACCELERATION_X] = ax
    if ay is not None:
        s[:, StateIndex.ACCELERATION_Y] = ay
    if heading is not None:
        s[:, StateIndex.HEADING] = heading
    return s


COMFORT_CASES = {
    "lon_acceleration": _comfort_states(ax=np.full(N, 2.5)),
    "lat_acceleration": _comfort_states(ay=np.full(N, 5.0)),
    "jerk": _comfort_states(ay=np.where(np.arange(N) % 2 == 0, 1.0, -1.0) * 40.0 * T / 4.0),
    "lon_jerk": _comfort_states(ax=1.1 * (T - 2.0) ** 2 - 2.1),
    "yaw_acceleration": _comfort_states(heading=0.2 * np.sin(4.0 * T)),
    "yaw_rate": _comfort_states(heading=1.0 * T),
}


@pytest.mark.parametrize("check", COMFORT_CHECKS)
def test_each_comfort_bound_alone(check: str) -> None:
    results = dict(zip(COMFORT_CHECKS, comfort_checks_v11(COMFORT_CASES[check][None])[0], strict=True))
    assert results[check] is np.False_ or not results[check]
    assert all(results[c] for c in COMFORT_CHECKS if c != check), results
    assert score(COMFORT_CASES[check]).comfort[0] == 0.0


def test_comfort_bounds_are_strict() -> None:
    # exactly at the bound (after 8-decimal rounding) fails: the check is value < bound
    assert not comfort_checks_v11(_comfort_states(ax=np.full(N, 2.40))[None])[0, 0]
    assert comfort_checks_v11(_comfort_states(ax=np.full(N, 2.39999))[None])[0, 0]


# ---------------------------------------------------------------------------------------------------- EP
def test_ep_normalised_by_the_best_proposal_above_5m() -> None:
    ones = np.ones((1, 2))
    ep, score_ = aggregate_v11(ones, ones, ones, ones, ones, np.array([[10.0, 5.0]]))
    assert ep[0].tolist() == [1.0, 0.5]
    assert score_[0, 1] == pytest.approx((5 * 0.5 + 5 + 2) / 12)


def test_ep_is_one_below_5m_unless_a_multiplier_is_zero() -> None:
    ones = np.ones((1, 2))
    ep, _ = aggregate_v11(ones, ones, ones, ones, ones, np.array([[4.0, 0.5]]))
    assert ep[0].tolist() == [1.0, 1.0]
    ep, score_ = aggregate_v11(np.array([[1.0, 0.0]]), ones, ones, ones, ones, np.array([[4.0, 0.5]]))
    assert ep[0].tolist() == [1.0, 0.0] and score_[0, 1] == 0.0


def test_half_nc_halves_the_ep_numerator() -> None:
    ones = np.ones((1, 2))
    ep, score_ = aggregate_v11(np.array([[1.0, 0.5]]), ones, ones, ones, ones, np.array([[10.0, 10.0]]))
    assert ep[0, 1] == 0.5
    assert score_[0, 1] == pytest.approx(0.5 * (5 * 0.5 + 5 + 2) / 12)


def test_ddc_has_no_weight_in_pdms_v11() -> None:
    ones = np.ones((1, 2))
    _, a = aggregate_v11(ones, ones, np.zeros((1, 2)), ones, ones, np.array([[10.0, 10.0]]))
    assert a[0, 1] == 1.0
