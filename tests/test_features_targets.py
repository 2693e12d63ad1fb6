"""Target builders on the calibration set: agent boxes, BEV semantics, vocabulary targets (imitation soft
labels; per-candidate PDM sub-scores consistent with the evaluator's own per-trajectory scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.data.loader import SceneLoader
from planlab.features.base import check_contract
from planlab.features.perception import AgentBoxTargetBuilder, BEVSemanticTargetBuilder
from planlab.features.vocabulary import VocabularyTargetBuilder, imitation_targets
from planlab.models.vocabulary import kmeans_vocabulary, load_vocabulary, save_vocabulary
from planlab.scene import SceneFilter

# calib_02_follow_lead, a frame with the lead car ahead
TOKEN = "f24e447c59879eb1"


@pytest.fixture(scope="module")
def loader(calib_root):
    return SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1))


def test_agent_boxes_nearest_vehicles_padded(loader):
    scene = loader.get_scene_from_token(TOKEN)
    b = AgentBoxTargetBuilder(max_agents=4)
    out = check_contract(b, b.compute_targets(scene))
    ann = scene.current_frame.annotations
    vehicles = [
        box
        for box, n in zip(ann.boxes, ann.names, strict=True)
        if n == "vehicle" and max(abs(box[0]), abs(box[1])) <= 32
    ]
    n = int(out["agent_labels"].sum())
    assert n == min(4, len(vehicles)) and n >= 1
    dist = torch.linalg.vector_norm(out["agent_states"][:n, :2], dim=1)
    assert torch.all(dist[1:] >= dist[:-1])  # nearest first
    assert torch.all(out["agent_states"][n:] == 0)


def test_bev_semantics_road_under_ego_and_vehicle_painted(loader):
    scene = loader.get_scene_from_token(TOKEN)
    b = BEVSemanticTargetBuilder(height=64, width=128, pixel_size=0.5)
    out = check_contract(b, b.compute_targets(scene))["bev_semantic_map"]
    assert out.shape == (64, 128)
    # the cell just ahead of the rear axle (bottom row, centre columns) is on the road or a centreline
    assert int(out[-1, 63]) in (1, 3) and int(out[-1, 64]) in (1, 3)
    ann = scene.current_frame.annotations
    ahead = [
        bx
        for bx, nm in zip(ann.boxes, ann.names, strict=True)
        if nm == "vehicle" and 0 < bx[0] < 32 and abs(bx[1]) < 32
    ]
    assert ahead, "fixture scene should have a vehicle in front"
    x, y = ahead[0][0], ahead[0][1]
    row, col = int(64 - x / 0.5), int(64 - y / 0.5)
    assert int(out[row, col]) == 5
    assert set(torch.unique(out).tolist()) <= set(range(7))


def test_imitation_soft_labels():
    vocab = np.stack(
        [np.stack([np.arange(1, 9) * s, np.zeros(8), np.zeros(8)], 1) for s in (1.0, 2.0, 4.0)]
    ).astype(np.float32)
    y = imitation_targets(vocab[1] + 0.01, vocab, sigma=0.5)
    assert y.argmax() == 1 and y.sum() == pytest.approx(1.0) and (y >= 0).all()
    assert imitation_targets(vocab[1], vocab, sigma=1e4).max() < 0.5  # a large sigma flattens the labels


def test_kmeans_vocabulary_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    trajs = np.concatenate([rng.normal(c, 0.05, (20, 8, 3)) for c in (0.0, 5.0, 10.0)])
    vocab = kmeans_vocabulary(trajs, 3, seed=0)
    assert vocab.shape == (3, 8, 3) and np.allclose(sorted(vocab[:, -1, 0]), [0, 5, 10], atol=0.1)
    assert np.array_equal(vocab, kmeans_vocabulary(trajs, 3, seed=0))
    path = save_vocabulary(vocab, tmp_path / "v.npy", {"split": "x"})
    assert np.array_equal(load_vocabulary(path, 3, 8), vocab)
    from planlab.errors import DataError

    with pytest.raises(DataError, match="agent.vocabulary_size is 4"):
        load_vocabulary(path, 4, 8)


@pytest.mark.slow
def test_vocabulary_scores_match_the_evaluator(loader, calib_root, tmp_path):
    from planlab.evaluation.cache import MetricCache, build_cache
    from planlab.evaluation.scoring import score_v11

    mc_dir = tmp_path / "mc"
    build_cache(
        SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1, log_names=["calib_02_follow_lead"])),
        mc_dir,
        workers=1,
    )
    mc = MetricCache(mc_dir)
    scene = loader.get_scene_from_token(TOKEN)
    human = scene.get_future_trajectory(8).poses.astype(np.float32)
    stop = np.zeros((8, 3), np.float32)
    swerve = human.copy()
    swerve[:, 1] += np.linspace(1, 25, 8)
    vocab = np.stack([human, stop, swerve])
    names = ["no_at_fault_collisions", "drivable_area_compliance", "ego_progress", "comfort"]
    b = VocabularyTargetBuilder(vocab, names, 0.5, str(mc_dir))
    out = check_contract(b, b.compute_targets(scene))
    entry = mc.load(TOKEN)
    for i in range(3):
        single = score_v11([entry], vocab[i : i + 1].astype(np.float64))
        for m, name in enumerate(names):
            assert out["vocab_scores"][i, m].item() == pytest.approx(float(single[name][0]), abs=1e-6), (
                i,
                name,
            )
    assert out["vocab_imitation"].argmax().item() == 0  # the logged future is nearest to itself
    assert out["vocab_scores"][2, 1] == 0  # driving 25 m to the left leaves the road
