"""Physics of the simulated world: the expert never collides or leaves the road, stops at red lights, stays
comfortable; agents never overlap; the scenario behaviours happen; the checks themselves can fail."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from planlab.world.actors import Driving
from planlab.world.checks import check_episode
from planlab.world.config import load_world_config
from planlab.world.episode import EpisodeSpec, simulate
from planlab.world.generate import plan_logs, town
from planlab.world.lights import GREEN, RED, YELLOW, SignalPlan
from planlab.world.traffic import idm_accel


def _run(args):
    location, scenario, seed, frames = args
    net = town(location, 0)
    ep = simulate(net, EpisodeSpec(location, scenario, seed, frames=frames))
    rep = check_episode(net, ep)
    ego = np.array([s.ego for s in ep.steps])
    moved = float(np.hypot(*np.diff(ego[:, :2], axis=0).T).sum())
    return location, ep.scenario, rep.ok, rep.summary(), moved, rep.min_clearance


@pytest.mark.slow
def test_small_preset_every_log_is_physically_clean():
    """Every log of the ``small`` preset (seed 0), every 10 Hz step, sensors off."""
    cfg = load_world_config("small")
    jobs = [(p.location, p.scenario, p.seed, cfg.frames) for p in plan_logs(cfg, 0)]
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_run, jobs, chunksize=4))
    bad = [(loc, kind, msg) for loc, kind, ok, msg, _, _ in results if not ok]
    assert bad == [], bad[:5]
    moved = np.array([r[4] for r in results])
    assert np.mean(moved > 20.0) > 0.75, "most logs should show the expert driving"
    assert min(r[5] for r in results) > 0.3, "the expert keeps a margin to every agent"
    kinds = {r[1] for r in results}
    assert len(kinds) >= 8, f"scenario mix: {sorted(kinds)}"


def _scenario(location: str, kind: str, seeds=range(40), frames: int = 40):
    net = town(location, 0)
    for seed in seeds:
        ep = simulate(net, EpisodeSpec(location, kind, 7000 + seed, frames=frames))
        if ep.scenario == kind:
            return net, ep
    pytest.fail(f"no {kind} scenario could be placed in {location}")


def test_red_light_stop_then_go():
    net, ep = _scenario("us-nv-las-vegas-strip", "red_light")
    rep = check_episode(net, ep)
    assert rep.ok, rep.summary()
    assert rep.red_entries == []
    stopped = [s for s in ep.steps if s.ego[3] < 0.05]
    assert stopped, "the expert stops for the red light"
    for t, cid, state in ep.entered:
        assert state != RED, f"entered connector {cid} on red at {t:.1f}"


def test_nudge_passes_the_parked_car_with_clearance():
    net, ep = _scenario("us-nv-las-vegas-strip", "nudge")
    rep = check_episode(net, ep)
    assert rep.ok, rep.summary()
    assert any("nudge" in e or "lane change" in e for _, e in ep.events)
    assert rep.min_clearance >= 0.4


def test_construction_lane_change():
    net, ep = _scenario("us-nv-las-vegas-strip", "construction")
    rep = check_episode(net, ep)
    assert rep.ok, rep.summary()
    assert any("lane change" in e for _, e in ep.events)


def test_merge_from_the_on_ramp():
    net, ep = _scenario("us-pa-pittsburgh-hazelwood", "merge")
    rep = check_episode(net, ep)
    assert rep.ok, rep.summary()
    lanes = {s.ego_lane for s in ep.steps}
    assert any(net.lanes[lid].turn == "merge" for lid in lanes), "the expert drives the merge connector"


def test_car_park_exit():
    net, ep = _scenario("us-ma-boston", "carpark_exit", frames=60)
    rep = check_episode(net, ep)
    assert rep.ok, rep.summary()
    first = net.lanes[ep.steps[0].ego_lane]
    assert net.blocks[first.block].start_node is None, "starts on the car-park aisle"
    assert ep.entered, "drives out onto the street"


def test_checks_can_fail():
    net, ep = _scenario("us-ma-boston", "follow", frames=20)
    assert check_episode(net, ep).ok
    st = ep.steps[5]
    # an agent box right on top of the ego
    st.boxes = np.vstack([st.boxes, [st.ego[0] + 1.0, st.ego[1], 0.8, 4.5, 1.9, 1.6, st.ego[2]]])
    st.vel = np.vstack([st.vel, [0.0, 0.0]])
    st.ids = [*st.ids, "ffffffffffffffff"]
    st.names = [*st.names, "vehicle"]
    st.kinds = [*st.kinds, "veh"]
    rep = check_episode(net, ep)
    assert rep.ego_collisions and not rep.ok
    # the ego 50 m to the side of the road
    ep.steps[7].ego = ep.steps[7].ego + np.array([0.0, 50.0, 0.0, 0.0, 0.0, 0.0])
    assert check_episode(net, ep).offroad
    # a harsh brake
    for s in ep.steps[10:12]:
        s.ego[4] = -6.0
    assert any("lon_accel" in v for v in check_episode(net, ep).comfort_violations)


def test_signal_plan_cycle():
    plan = SignalPlan(2, [10.0, 12.0], yellow=4.0, all_red=2.0)
    assert plan.cycle == pytest.approx(10 + 4 + 2 + 12 + 4 + 2)
    assert plan.state(0, 1.0) == GREEN and plan.state(1, 1.0) == RED
    assert plan.state(0, 11.0) == YELLOW
    assert plan.state(0, 15.0) == RED and plan.state(1, 15.0) == RED  # all-red clearance
    assert plan.state(1, 17.0) == GREEN
    assert plan.remaining(0, 11.0) == pytest.approx(3.0)
    plan.set_red_at(0, 50.0)
    assert plan.state(0, 49.9) == YELLOW and plan.state(0, 50.1) == RED


def test_idm_brakes_for_a_close_leader_and_cruises_when_free():
    d = Driving()
    assert idm_accel(10.0, 13.9, 200.0, 0.0, d, d.s0) > 0.5
    assert idm_accel(10.0, 13.9, 8.0, 10.0, d, d.s0) < -d.b_comf
    assert abs(idm_accel(13.9, 13.9, 1e6, 0.0, d, d.s0)) < 1e-3
