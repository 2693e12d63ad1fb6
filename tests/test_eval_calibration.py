"""NAVSIM v1.1 calibration, token by token: planlab's metric cache + scorer against NAVSIM's own CSVs.

The calibration set (tests/data/navsim_calibration, README there) holds 42 scenes in the real formats and
NAVSIM's per-token scores for 4 trajectory families (168 rows). Discrete sub-scores must be equal, ego
progress and the score within 1e-6 — this exercises PDM-Closed (the EP normaliser), the ground-truth
interpolation, the LQR/bicycle simulation and every v1.1 sub-metric.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from planlab.agents.constant_velocity import ConstantVelocityAgent
from planlab.data import SceneLoader
from planlab.evaluation.cache import MetricCacheEntry, SceneWindow, build_entries
from planlab.evaluation.scoring import V11_COLUMNS, score_v11
from planlab.scene import SceneFilter

FAMILIES = ("human", "constant_velocity", "offroad_swerve", "stop")
DISCRETE = (
    "no_at_fault_collisions",
    "drivable_area_compliance",
    "time_to_collision_within_bound",
    "comfort",
    "driving_direction_compliance",
)
CONTINUOUS = ("ego_progress", "score")
# README "near a decision threshold": (family, token) rows that flip first if anything is off
NEAR_THRESHOLD = [
    ("human", "b6d5de634d9e0d12"),
    ("constant_velocity", "b6d5de634d9e0d12"),
    ("offroad_swerve", "b6d5de634d9e0d12"),
    ("stop", "b6d5de634d9e0d12"),
    ("constant_velocity", "f04ee12b6b32d799"),
    ("constant_velocity", "6cdfcda2b0fd2f10"),
    ("offroad_swerve", "765c81ed18c6b663"),
    ("stop", "9b2054ee936c1fed"),
    ("stop", "c2b5e6604a376ab9"),
    ("stop", "070325bdf5dedf12"),
]


@pytest.fixture(scope="module")
def loader(calib_root: Path) -> SceneLoader:
    return SceneLoader(
        calib_root, "calib", SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1)
    )


@pytest.fixture(scope="module")
def entries(loader: SceneLoader) -> dict[str, MetricCacheEntry]:
    scenes = []
    for token in loader.tokens:
        window = loader.get_frame_dicts(token)
        scenes.append(SceneWindow(window, 4, loader.get_map(window[3]["map_location"]), f"{token}: "))
    built = build_entries(scenes)
    for token, entry in zip(loader.tokens, built, strict=True):
        assert not isinstance(entry, Exception), f"{token}: {entry}"
    return dict(zip(loader.tokens, built, strict=True))  # type: ignore[arg-type]


def _expected(calib_root: Path, family: str) -> dict[str, dict[str, str]]:
    with open(calib_root / "expected" / f"{family}.csv") as fh:
        return {row["token"]: row for row in csv.DictReader(fh)}


def _scores(
    calib_root: Path, entries: dict[str, MetricCacheEntry], family: str
) -> dict[str, dict[str, float]]:
    traj = json.loads((calib_root / "trajectories" / f"{family}.json").read_text())
    tokens = list(entries)
    result = score_v11(
        [entries[t] for t in tokens], np.array([traj[t] for t in tokens], dtype=np.float64), 0.5
    )
    return {t: {c: float(result[c][i]) for c in V11_COLUMNS} for i, t in enumerate(tokens)}


def test_split_has_the_42_scorable_tokens(loader: SceneLoader) -> None:
    assert len(loader.tokens) == 42


@pytest.mark.parametrize("family", FAMILIES)
def test_family_matches_navsim_token_by_token(calib_root: Path, entries: dict, family: str) -> None:
    expected = _expected(calib_root, family)
    got = _scores(calib_root, entries, family)
    rows = [t for t in expected if t != "average"]
    assert sorted(rows) == sorted(got)  # all 42 rows, no extra
    mismatches = []
    for token in rows:
        for col in DISCRETE:
            if got[token][col] != float(expected[token][col]):
                mismatches.append(f"{token} {col}: {got[token][col]} != {expected[token][col]}")
        for col in CONTINUOUS:
            if abs(got[token][col] - float(expected[token][col])) > 1e-6:
                mismatches.append(f"{token} {col}: {got[token][col]!r} != {expected[token][col]}")
    assert not mismatches, "\n".join(mismatches)
    # the closing row is the mean of the 42 rows
    for col in (*DISCRETE, *CONTINUOUS):
        mean = float(np.mean([got[t][col] for t in rows]))
        assert mean == pytest.approx(float(expected["average"][col]), abs=1e-12)


@pytest.mark.parametrize(("family", "token"), NEAR_THRESHOLD)
def test_near_threshold_rows(calib_root: Path, entries: dict, family: str, token: str) -> None:
    expected = _expected(calib_root, family)[token]
    got = _scores(calib_root, {token: entries[token]}, family)[token]
    for col in DISCRETE:
        assert got[col] == float(expected[col]), col
    for col in CONTINUOUS:
        assert got[col] == pytest.approx(float(expected[col]), abs=1e-6), col


def test_pdm_closed_reference_is_sane(entries: dict) -> None:
    # PDM-Closed follows the route: no collision, on the road, in lane on every calibration scene
    for entry in entries.values():
        sub = entry.pdm_subscores_v11
        assert sub["no_at_fault_collisions"] == 1.0
        assert sub["drivable_area_compliance"] == 1.0
        assert entry.pdm_poses.shape == (51, 3)
        assert entry.pdm_states_v11.shape == (41, 11)


def test_constant_velocity_agent_reproduces_navsim_family(calib_root: Path, loader: SceneLoader) -> None:
    family = json.loads((calib_root / "trajectories" / "constant_velocity.json").read_text())
    agent = ConstantVelocityAgent()
    for token in loader.tokens:
        poses = agent.compute_trajectory(loader.get_agent_input_from_token(token)).poses
        np.testing.assert_array_equal(poses, np.asarray(family[token], dtype=np.float32))
