"""The batch scoring API (per-candidate sub-scores for vocabulary targets) on the calibration set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from planlab.data import SceneLoader
from planlab.errors import ConfigError
from planlab.evaluation.batch import score_candidates
from planlab.evaluation.cache import MetricCacheEntry, SceneWindow, build_entries
from planlab.evaluation.scoring import score_v11, simulate_agent
from planlab.scene import SceneFilter


@pytest.fixture(scope="module")
def entries(calib_root: Path) -> list[MetricCacheEntry]:
    loader = SceneLoader(
        calib_root, "calib", SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1)
    )
    tokens = loader.tokens[::6]  # 7 scenes over all logs
    scenes = [
        SceneWindow(loader.get_frame_dicts(t), 4, loader.get_map("us-pa-pittsburgh-hazelwood"))
        for t in tokens
    ]
    built = build_entries(scenes, metrics=("pdms", "epdms"))
    assert not any(isinstance(e, Exception) for e in built)
    return built  # type: ignore[return-value]


def _family(calib_root: Path, name: str, entries) -> np.ndarray:
    data = json.loads((calib_root / "trajectories" / f"{name}.json").read_text())
    return np.array([data[e.token] for e in entries])


def test_one_candidate_equals_the_official_per_scene_score(calib_root: Path, entries) -> None:
    families = [
        _family(calib_root, n, entries) for n in ("human", "constant_velocity", "stop", "offroad_swerve")
    ]
    cands = np.stack(families, axis=1)  # (B, 4, 8, 3)
    got = score_candidates(entries, cands)
    for j, poses in enumerate(families):
        ref = score_v11(entries, poses)
        for name in (
            "no_at_fault_collisions",
            "drivable_area_compliance",
            "ego_progress",
            "comfort",
            "score",
        ):
            np.testing.assert_array_equal(got[name][:, j], ref[name])  # bit for bit
    assert got["score"].shape == (len(entries), 4)


def test_a_scenes_simulation_and_score_do_not_depend_on_its_batch(calib_root: Path, entries) -> None:
    poses = _family(calib_root, "offroad_swerve", entries)
    together = score_v11(entries, poses)
    states = simulate_agent(entries, poses, 0.5)
    for k, entry in enumerate(entries):
        alone = score_v11([entry], poses[k : k + 1])
        assert {name: v[0] for name, v in alone.items()} == {name: v[k] for name, v in together.items()}
        assert np.array_equal(simulate_agent([entry], poses[k : k + 1], 0.5)[0], states[k])


def test_shared_vocabulary_and_joint_normalisation(entries) -> None:
    t = np.arange(1, 9)[:, None] * 0.5
    vocab = np.stack([np.hstack([v * t, 0 * t, 0 * t]) for v in (0.0, 4.0, 8.0)])  # (3, 8, 3) straight lines
    pdm = score_candidates(entries, vocab)
    joint = score_candidates(entries, vocab, normalization="joint")
    assert pdm["score"].shape == joint["score"].shape == (len(entries), 3)
    np.testing.assert_array_equal(pdm["progress_raw"], joint["progress_raw"])
    # jointly normalised EP never exceeds 1; faster candidates progress further (a moving ego still
    # rolls while the tracker brakes for the standing-still one, so that one is not 0)
    assert np.all(joint["ego_progress"] <= 1.0)
    assert np.all(np.diff(pdm["progress_raw"], axis=1) > 0)
    # a candidate that stays clean and out-progresses PDM-Closed is the EP reference itself (EP = 1);
    # one that crashes or leaves the road has masked progress 0, hence EP 0
    clean = (pdm["no_at_fault_collisions"][:, 2] * pdm["drivable_area_compliance"][:, 2]) == 1.0
    faster = pdm["progress_raw"][:, 2] > np.array([e.pdm_subscores_v11["progress_raw"] for e in entries])
    np.testing.assert_array_equal(pdm["ego_progress"][clean & faster, 2], 1.0)
    np.testing.assert_array_equal(pdm["ego_progress"][~clean, 2], 0.0)


def test_epdms_candidates_have_no_ec(calib_root: Path, entries) -> None:
    cands = _family(calib_root, "human", entries)[:, None]
    got = score_candidates(entries, cands, metric="epdms")
    assert np.all(np.isnan(got["two_frame_extended_comfort"]))
    for name in ("traffic_light_compliance", "lane_keeping", "history_comfort", "score"):
        assert got[name].shape == (len(entries), 1)
    assert np.all(got["score"] > 0.7)
    joint = score_candidates(entries, cands, metric="epdms", normalization="joint")
    np.testing.assert_allclose(joint["score"], got["score"], atol=1e-12)  # one candidate: same reference set


def test_bad_candidates_are_rejected(entries) -> None:
    with pytest.raises(ConfigError, match="NaN"):
        score_candidates(entries, np.full((2, 8, 3), np.nan))
    with pytest.raises(ConfigError, match="candidates must be"):
        score_candidates(entries, np.zeros((len(entries) + 1, 2, 8, 3)))
    with pytest.raises(ConfigError, match="normalization"):
        score_candidates(entries, np.zeros((2, 8, 3)), normalization="best")
