"""Parallel evaluation of a torch agent: workers must not fork a process whose torch threads are running.

Forking after torch has started its intra-op thread pool can deadlock the children; the runner then
starts workers from a fresh forkserver. This runs a real (randomly initialised) learned agent with 2
workers, after using torch in the parent, and requires the same rows as 1 worker.
"""

from __future__ import annotations

import pytest

from planlab.data.loader import SceneLoader
from planlab.evaluation.cache import _start_method
from planlab.evaluation.runner import AgentFactory, evaluate_agent
from planlab.scene import SceneFilter


def _build_ego_mlp():
    import torch

    from planlab.agents.registry import build_agent

    torch.manual_seed(0)
    return build_agent("ego_status_mlp")


@pytest.mark.slow
def test_two_workers_with_torch_loaded_in_parent(calib_root, tmp_path):
    import torch

    torch.set_num_threads(2)
    torch.ones(256, 256) @ torch.ones(256, 256)  # start the parent's thread pool
    assert _start_method() in ("forkserver", "spawn")
    loader = SceneLoader(
        calib_root,
        "calib",
        SceneFilter(frame_interval=1, log_names=["calib_02_follow_lead", "calib_03_right_turn_green"]),
    )
    factory = AgentFactory(_build_ego_mlp, label="ego_mlp-random")
    cache = tmp_path / "cache"
    one = evaluate_agent(factory, loader, tmp_path / "w1", cache_dir=cache, workers=1, progress=False)
    two = evaluate_agent(factory, loader, tmp_path / "w2", cache_dir=cache, workers=2, progress=False)
    assert (tmp_path / "w1" / "pdm_scores.csv").read_bytes() == (
        tmp_path / "w2" / "pdm_scores.csv"
    ).read_bytes()
    assert len(one.rows) == len(two.rows) == 17
