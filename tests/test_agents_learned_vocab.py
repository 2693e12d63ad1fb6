"""Vocabulary scorer: weighted-confidence selection, loss components (BCE / EP regression), configuration
errors, and an end-to-end run on the calibration set whose checkpoint plans vocabulary entries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from planlab.agents.registry import build_agent
from planlab.errors import ConfigError
from planlab.training.config import build_train_config

SMALL = {
    "agent.use_camera": False,
    "agent.vocabulary_size": 4,
    "agent.d_model": 32,
    "agent.ffn_dim": 64,
    "agent.num_heads": 4,
    "agent.num_layers": 1,
}


def agent_with_vocab(**over):
    cfg = build_train_config("vocab_scorer", overrides={**SMALL, **over})
    agent = build_agent("vocab_scorer", config=cfg.agent_settings())
    vocab = torch.stack(
        [torch.stack([torch.arange(1.0, 9.0) * s, torch.zeros(8), torch.zeros(8)], 1) for s in (0, 1, 2, 3)]
    )
    agent.scorer.set_vocabulary(vocab)
    agent.has_vocabulary = True
    return agent


def test_weighted_confidence_avoids_off_road_candidates():
    agent = agent_with_vocab()
    big = 8.0
    logits = {
        # imitation prefers entry 3, but it is predicted off-road; entry 2 is safe and good
        "imitation": torch.tensor([[0.0, 0.0, 2.0, 3.0]]),
        "no_at_fault_collisions": torch.full((1, 4), big),
        "drivable_area_compliance": torch.tensor([[big, big, big, -big]]),
        "ego_progress": torch.tensor([[-2.0, 0.0, 2.0, 3.0]]),
        "time_to_collision_within_bound": torch.full((1, 4), big),
        "comfort": torch.full((1, 4), big),
    }
    cost = agent.selection_cost(logits)
    assert int(cost.argmin()) == 2
    # with only the imitation term, the imitation favourite wins
    agent.config.inference_weights = {"imitation": 1.0}
    assert int(agent.selection_cost(logits).argmin()) == 3
    # paper eq. 11 by hand for entry 0
    agent.config.inference_weights = {
        "imitation": 0.05,
        "no_at_fault_collisions": 0.5,
        "drivable_area_compliance": 0.5,
        "mix": 5.0,
    }
    p = {k: torch.sigmoid(v[0, 0]) for k, v in logits.items() if k != "imitation"}
    s_im = torch.softmax(logits["imitation"][0], 0)[0]
    expect = -(
        0.05 * torch.log(s_im)
        + 0.5 * torch.log(p["no_at_fault_collisions"])
        + 0.5 * torch.log(p["drivable_area_compliance"])
        + 5.0 * torch.log(5 * p["time_to_collision_within_bound"] + 2 * p["comfort"] + 5 * p["ego_progress"])
    )
    assert float(agent.selection_cost(logits)[0, 0]) == pytest.approx(float(expect), rel=1e-5)


def test_forward_plans_a_vocabulary_entry_and_loss_has_every_component():
    agent = agent_with_vocab(**{"agent.ep_regression": True})
    feats = {"ego_status": torch.randn(3, 8)}
    pred = agent(feats)
    assert pred["trajectory"].shape == (3, 8, 3)
    for b in range(3):
        assert torch.equal(pred["trajectory"][b], agent.vocabulary[pred["selected"][b]])
    targets = {
        "trajectory": torch.zeros(3, 8, 3),
        "vocab_imitation": torch.softmax(torch.randn(3, 4), 1),
        "vocab_scores": torch.rand(3, 4, 5),
    }
    losses = agent.compute_loss(feats, targets, pred)
    assert set(losses) == {"loss", "imitation", *agent.config.sub_scores}
    recomputed = losses["imitation"] + sum(
        (50.0 if n == "ego_progress" else agent.config.sub_score_weights[n]) * losses[n]
        for n in agent.config.sub_scores
    )
    assert float(losses["loss"].detach()) == pytest.approx(float(recomputed), rel=1e-5)
    ep = torch.nn.functional.mse_loss(
        torch.sigmoid(pred["ego_progress_logits"]), targets["vocab_scores"][..., 2]
    )
    assert float(losses["ego_progress"]) == pytest.approx(float(ep), rel=1e-5)
    losses["loss"].backward()


def test_configuration_errors():
    cfg = build_train_config("vocab_scorer", overrides=SMALL)
    agent = build_agent("vocab_scorer", config=cfg.agent_settings())
    with pytest.raises(ConfigError, match="agent.vocabulary_path is not set"):
        agent.get_target_builders()
    with pytest.raises(ConfigError, match="inference_weights.mix needs sub-score heads for comfort"):
        build_train_config(
            "vocab_scorer",
            overrides={
                **SMALL,
                "agent.sub_scores": [
                    "no_at_fault_collisions",
                    "drivable_area_compliance",
                    "ego_progress",
                    "time_to_collision_within_bound",
                ],
            },
        )


@pytest.mark.slow
def test_train_vocab_scorer_on_calibration(calib_root, tmp_path):
    from planlab.data.loader import SceneLoader
    from planlab.evaluation.cache import build_cache
    from planlab.scene import SceneFilter
    from planlab.training.cache_jobs import build_vocabulary
    from planlab.training.checkpoint import load_agent_from_checkpoint
    from planlab.training.train import run_training

    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1))
    build_cache(loader, tmp_path / "mc", workers=1, tokens=loader.tokens[:16], progress=False)
    over = {
        **SMALL,
        "agent.vocabulary_size": 8,
        "data.root": str(calib_root),
        "data.train_split": "calib",
        "data.max_scenes": 16,
        "data.val_split": None,
        "data.num_workers": 0,
        "trainer.max_epochs": 2,
        "trainer.batch_size": 8,
        "agent.metric_cache": str(tmp_path / "mc"),
        "agent.vocabulary_path": str(tmp_path / "v.npy"),
    }
    vocab_cfg = build_train_config(
        "vocab_scorer", overrides={k: v for k, v in over.items() if k != "agent.vocabulary_path"}
    )
    build_vocabulary(vocab_cfg, str(tmp_path / "v.npy"), progress=False)
    cfg = build_train_config("vocab_scorer", overrides=over)
    with pytest.raises(ConfigError, match="data.cache.path"):
        run_training(cfg, tmp_path / "nocache", progress=False)
    cfg = build_train_config("vocab_scorer", overrides={**over, "data.cache.path": str(tmp_path / "fc")})
    result = run_training(cfg, tmp_path / "run", progress=False)
    assert math.isfinite(result.metrics["train/loss_epoch"])
    assert {"train/imitation_epoch", "train/drivable_area_compliance_epoch"} <= set(result.metrics)
    assert len(list((tmp_path / "fc").glob("vocab_targets-*/*/*.safetensors"))) == 16
    agent = load_agent_from_checkpoint(tmp_path / "run", device="cpu")
    vocab = np.load(tmp_path / "v.npy")
    plan = agent.compute_trajectory(loader.get_agent_input_from_token(loader.tokens[5])).poses
    assert any(np.allclose(plan, v, atol=1e-6) for v in vocab)
