"""NAVSIM v2 (EPDMS) rules on hand-built scenes: TLC, LK, junction-aware DDC, v2 EP, TTC horizon, HC
history padding, EC, the human filter, the EPDMS aggregation and the log-replay traffic policy."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from planlab.evaluation.epdms import (
    extended_comfort_pairs,
    finalize_v2,
    log_replay_tracks,
    red_lights_per_step,
)
from planlab.evaluation.gt_observation import GTObservation
from planlab.metrics.pdm.comfort import comfort_checks_v2, two_frame_extended_comfort
from planlab.metrics.pdm.inputs import DrivableMap, ObjectTracks, PolygonType, ScoringScene, concat_scenes
from planlab.metrics.pdm.scorer import aggregate_v2, apply_human_filter, epdms, subscores_v2
from planlab.scene.enums import StateIndex
from planlab.sim.vehicle import PACIFICA, initial_state_array

N = 41
T = np.arange(N) * 0.1
LANE_Y = -1.75


def road(junction: shapely.Polygon | None = None) -> DrivableMap:
    polys = [
        (PolygonType.ROADBLOCK, shapely.box(-100, -3.5, 300, 3.5), False, "rb"),
        (PolygonType.LANE, shapely.box(-100, -3.5, 300, 0.0), True, "lane_right"),
        (PolygonType.LANE, shapely.box(-100, 0.0, 300, 3.5), False, "lane_left"),
    ]
    if junction is not None:
        polys.append((PolygonType.INTERSECTION, junction, False, "junction"))
    return DrivableMap(
        [p[3] for p in polys], [int(p[0]) for p in polys], [p[2] for p in polys], [p[1] for p in polys]
    )


def states_line(speed: float = 10.0, y: float = LANE_Y, x0: float = 0.0) -> np.ndarray:
    s = np.zeros((N, 11))
    s[:, StateIndex.X] = x0 + speed * T
    s[:, StateIndex.Y] = y
    s[:, StateIndex.VELOCITY_X] = speed
    return s


def v2(
    states: np.ndarray,
    red: list[np.ndarray] | None = None,
    junction=None,
    objects: ObjectTracks | None = None,
    history=None,
):
    scene = ScoringScene(
        "t",
        objects if objects is not None else ObjectTracks.empty(N),
        road(junction),
        shapely.LineString([(-100, LANE_Y), (300, LANE_Y)]),
        red or [],
    )
    states = states[None] if states.ndim == 2 else states
    return subscores_v2(states, np.zeros(len(states), dtype=np.int64), concat_scenes([scene]), history)


def test_clean_drive_is_perfect_in_v2() -> None:
    sub = v2(states_line())
    for name in ("traffic_light_compliance", "lane_keeping", "history_comfort"):
        assert sub.extra[name][0] == 1.0
    assert sub.driving_direction_compliance[0] == 1.0


def test_entering_a_red_connector_fails_tlc() -> None:
    connector = shapely.box(30, -3.5, 40, 0.0)
    red = [np.array([connector], dtype=object)] * N
    assert v2(states_line(), red).extra["traffic_light_compliance"][0] == 0.0
    # stopping before it passes; the light at t = 0 counts too (a red connector under the ego at t0)
    assert v2(states_line(speed=2.0), red).extra["traffic_light_compliance"][0] == 1.0
    under = [np.array([shapely.box(-5, -3.5, 5, 0.0)], dtype=object)] + [np.empty(0, dtype=object)] * (N - 1)
    assert v2(states_line(speed=0.0), under).extra["traffic_light_compliance"][0] == 0.0


def test_red_lights_follow_the_2hz_frame_zero_order_hold() -> None:
    poly = shapely.box(0, 0, 1, 1)
    steps = red_lights_per_step([[], ["7"], []], {"7": poly}, 15)
    assert [len(s) for s in steps] == [0] * 5 + [1] * 5 + [0] * 5


def _offset_states(offset_steps: int, junction_steps: range = range(0)) -> np.ndarray:
    s = states_line()
    s[1 : 1 + offset_steps, StateIndex.Y] = LANE_Y + 0.8  # centre 0.8 m off the centerline
    return s


def test_lane_keeping_fails_after_20_consecutive_off_centre_steps() -> None:
    assert v2(_offset_states(19)).extra["lane_keeping"][0] == 1.0
    assert v2(_offset_states(20)).extra["lane_keeping"][0] == 0.0


def test_lane_keeping_skips_junction_steps_without_resetting() -> None:
    s = _offset_states(25)
    # the ego centre crosses a junction between steps 10 and 14: those 5 steps neither count nor reset
    x10 = s[10, StateIndex.X] + PACIFICA.rear_axle_to_center
    x14 = s[14, StateIndex.X] + PACIFICA.rear_axle_to_center
    junction = shapely.box(x10 - 0.5, -10, x14 + 0.5, 10)
    assert v2(s, junction=junction).extra["lane_keeping"][0] == 0.0  # 20 counted steps remain
    s = _offset_states(22)
    assert v2(s, junction=junction).extra["lane_keeping"][0] == 1.0  # only 17 counted


def test_wrong_way_progress_inside_a_junction_is_not_penalised_in_v2() -> None:
    s = states_line(y=1.75)  # oncoming lane for the whole horizon
    assert v2(s).driving_direction_compliance[0] == 0.0
    junction = shapely.box(-50, -10, 200, 10)
    assert v2(s, junction=junction).driving_direction_compliance[0] == 1.0


def test_ttc_is_evaluated_only_up_to_step_31() -> None:
    # a parked car reached by the 0.9 s projection only from step 33 on: v1.1 would fail, v2 does not
    s = states_line(speed=5.0)
    front_at_33 = s[33, StateIndex.X] + PACIFICA.front_length
    tracks = ObjectTracks.from_boxes(
        ["car"],
        np.full((N, 1), front_at_33 + 5.0 * 0.9 - 0.5 + 2.25),
        np.full((N, 1), LANE_Y),
        np.zeros((N, 1)),
        np.array([4.5]),
        np.array([2.0]),
        np.ones((N, 1), dtype=bool),
        np.array([True]),
        np.array([0.0]),
    )
    sub = v2(s, objects=tracks)
    assert sub.no_at_fault_collisions[0] == 1.0
    assert sub.time_to_collision_within_bound[0] == 1.0
    s_late = states_line(speed=5.0, x0=5.0 * 0.3)  # the same situation 3 steps earlier
    assert v2(s_late, objects=tracks).time_to_collision_within_bound[0] == 0.0


def test_v2_ep_clips_raw_progress_and_is_one_below_the_threshold() -> None:
    ones = np.ones((1, 2))
    values = {
        k: ones
        for k in ("no_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance")
    }
    values["traffic_light_compliance"] = np.array([[1.0, 0.0]])  # the agent runs a red light
    ep, multi = aggregate_v2(values, np.array([[10.0, 20.0]]))
    assert multi[0].tolist() == [1.0, 0.0]
    assert ep[0].tolist() == [1.0, 1.0]  # raw 20 / best masked 10, clipped to 1 (raw is not masked in v2)
    ep, _ = aggregate_v2(values, np.array([[10.0, 5.0]]))
    assert ep[0].tolist() == [1.0, 0.5]
    ep, _ = aggregate_v2(values, np.array([[4.0, 0.0]]))
    assert ep[0].tolist() == [1.0, 1.0]  # best masked progress <= 5 m: 1 for every proposal


def test_epdms_aggregation_and_missing_ec() -> None:
    row = {
        "no_at_fault_collisions": np.array([1.0]),
        "drivable_area_compliance": np.array([1.0]),
        "driving_direction_compliance": np.array([0.5]),
        "traffic_light_compliance": np.array([1.0]),
        "ego_progress": np.array([0.5]),
        "time_to_collision_within_bound": np.array([1.0]),
        "lane_keeping": np.array([0.0]),
        "history_comfort": np.array([1.0]),
        "two_frame_extended_comfort": np.array([1.0]),
    }
    assert epdms(row)[0] == pytest.approx(0.5 * (5 * 0.5 + 5 + 0 + 2 + 2) / 16)
    row["two_frame_extended_comfort"] = np.array([np.nan])
    assert epdms(row)[0] == pytest.approx(0.5 * (5 * 0.5 + 5 + 0 + 2) / 14)


def test_human_filter_lifts_subscores_the_human_fails() -> None:
    agent = {
        k: np.array([0.0])
        for k in (
            "no_at_fault_collisions",
            "drivable_area_compliance",
            "driving_direction_compliance",
            "traffic_light_compliance",
            "ego_progress",
            "time_to_collision_within_bound",
            "lane_keeping",
            "history_comfort",
        )
    }
    human = {k: np.array([1.0]) for k in agent}
    human["drivable_area_compliance"] = np.array([0.0])
    human["driving_direction_compliance"] = np.array([0.5])  # 0.5 does not trigger the filter
    out = apply_human_filter(agent, human)
    assert out["drivable_area_compliance"][0] == 1.0
    assert out["driving_direction_compliance"][0] == 0.0
    assert out["no_at_fault_collisions"][0] == 0.0


def test_history_comfort_pads_the_logged_past_assumed_0_1s_apart() -> None:
    s = states_line()
    smooth_history = np.zeros((14, 11))
    smooth_history[:, StateIndex.X] = -10.0 * (14 - np.arange(14)) * 0.1
    smooth_history[:, StateIndex.VELOCITY_X] = 10.0
    assert v2(s, history=[smooth_history]).extra["history_comfort"][0] == 1.0
    harsh = smooth_history.copy()
    harsh[:, StateIndex.ACCELERATION_X] = -5.0  # the logged past braked harder than the bound
    assert v2(s, history=[harsh]).extra["history_comfort"][0] == 0.0
    assert v2(s, history=None).extra["history_comfort"][0] == 1.0  # no history given → 1


def test_hc_uses_centre_shifted_longitudinal_acceleration() -> None:
    # yaw rate 0.6 rad/s (below its bound) adds d·ω² = 1.461·0.36 = 0.53 m/s² at the centre
    s = np.zeros((1, N, 11))
    s[0, :, StateIndex.ACCELERATION_X] = 2.0
    s[0, :, StateIndex.ANGULAR_VELOCITY] = 0.6
    s[0, :, StateIndex.HEADING] = 0.6 * T
    checks = comfort_checks_v2(s, PACIFICA.rear_axle_to_center)[0]
    assert not checks[0]  # 2.0 + 0.53 > 2.40: fails only because of the shift
    s[0, :, StateIndex.ANGULAR_VELOCITY] = 0.0
    assert comfort_checks_v2(s, PACIFICA.rear_axle_to_center)[0, 0]


def test_extended_comfort_compares_plans_over_their_common_span() -> None:
    prev = np.zeros((1, N, 11))
    prev[0, :, StateIndex.VELOCITY_X] = 10.0
    cur = prev.copy()
    assert two_frame_extended_comfort(cur, prev)[0] == 1.0
    cur[0, :, StateIndex.ACCELERATION_X] = 1.0  # the new plan accelerates where the old one cruised
    assert two_frame_extended_comfort(cur, prev)[0] == 0.0
    # the compared windows are current[:-5] vs previous[5:]: only a difference after 3.5 s is ignored
    cur = prev.copy()
    cur[0, 37:, StateIndex.ACCELERATION_X] = 3.0
    assert two_frame_extended_comfort(cur, prev)[0] == 1.0


def test_ec_pairs_are_same_log_and_at_most_0_55s_apart() -> None:
    pairs = extended_comfort_pairs(
        ["a", "b", "c", "d", "e"], ["L1", "L1", "L1", "L2", "L1"], [0, 500_000, 1_000_000, 500_000, 2_000_000]
    )
    assert pairs == {1: (0, 0.5), 2: (1, 0.5)}  # d is another log; e follows c by 1 s


def test_finalize_sets_ec_nan_without_predecessor_and_drops_its_weight() -> None:
    base = {
        "no_at_fault_collisions": 1.0,
        "drivable_area_compliance": 1.0,
        "driving_direction_compliance": 1.0,
        "traffic_light_compliance": 1.0,
        "ego_progress": 1.0,
        "time_to_collision_within_bound": 1.0,
        "lane_keeping": 1.0,
        "history_comfort": 1.0,
    }
    rows = [dict(base), dict(base)]
    steady = np.zeros((N, 11))
    jumpy = steady.copy()
    jumpy[:, StateIndex.ACCELERATION_X] = 2.0
    finalize_v2(rows, [steady, jumpy], ["a", "b"], ["L", "L"], [0, 500_000])
    assert np.isnan(rows[0]["two_frame_extended_comfort"]) and rows[0]["score"] == 1.0
    assert rows[1]["two_frame_extended_comfort"] == 0.0
    assert rows[1]["score"] == pytest.approx(14 / 16)


def test_log_replay_drops_tracks_overlapping_the_ego_at_t0() -> None:
    init = initial_state_array(np.zeros(3), np.zeros(2), np.zeros(2))
    gt = GTObservation(
        tokens=["overlap", "clear"],
        names=["vehicle", "vehicle"],
        x=np.tile([2.0, 30.0], (N, 1)),
        y=np.zeros((N, 2)),
        heading=np.zeros((N, 2)),
        present=np.ones((N, 2), dtype=bool),
        length=np.array([4.5, 4.5]),
        width=np.array([2.0, 2.0]),
        speed=np.array([1.0, 1.0]),
    )
    assert log_replay_tracks(gt, init).tokens == ["clear"]
