"""The ego-status MLP in physical units: every target channel weighs by its scale in the loss, headings are
learned precisely (the raw-unit network left them at the noise level of x, and the PDM score's tracker
drove such plans off the road), and the scales travel with the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from planlab.agents.checkpoint_io import FORMAT_VERSION, STATE_PREFIX, load_agent_from_checkpoint
from planlab.agents.ego_mlp import EgoStatusMLPAgent
from planlab.models.scaling import trajectory_scale


def kinematic_batch(n: int, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Ego statuses and the futures they imply: constant speed and yaw rate (yaw rate = a_lat / v), the
    future integrated at 0.1 s and sampled every 0.5 s in the current rear-axle frame."""
    v = 1.0 + 14.0 * torch.rand(n, generator=generator)
    yaw_rate = 0.1 * (2 * torch.rand(n, generator=generator) - 1)  # rad/s
    status = torch.zeros(n, 8)
    status[:, 0] = v
    status[:, 3] = v * yaw_rate  # lateral acceleration of the turn
    status[:, 5] = 1.0  # command STRAIGHT
    x = torch.zeros(n)
    y = torch.zeros(n)
    h = torch.zeros(n)
    poses = []
    for step in range(40):
        x = x + 0.1 * v * torch.cos(h)
        y = y + 0.1 * v * torch.sin(h)
        h = h + 0.1 * yaw_rate
        if step % 5 == 4:
            poses.append(torch.stack([x, y, h], dim=1))
    return {"ego_status": status}, torch.stack(poses, dim=1)


def heading_error_after_training(normalize: bool, steps: int = 400) -> float:
    torch.manual_seed(0)
    agent = EgoStatusMLPAgent({"hidden_dim": 64, "normalize": normalize})
    opt = torch.optim.Adam(agent.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        features, target = kinematic_batch(64, g)
        loss = agent.compute_loss(features, {"trajectory": target}, agent(features))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    features, target = kinematic_batch(512, torch.Generator().manual_seed(2))
    with torch.no_grad():
        pred = agent(features)["trajectory"]
    return float((pred[..., 2] - target[..., 2]).abs().mean())


def test_loss_weighs_each_pose_and_channel_by_its_scale():
    agent = EgoStatusMLPAgent({"hidden_dim": 16})
    scale = trajectory_scale(8, 0.5)
    target = torch.zeros(1, 8, 3)
    losses = []
    for k, c in [(0, 0), (0, 1), (0, 2), (7, 0), (7, 2)]:
        pred = target.clone()
        pred[0, k, c] = scale[k, c]  # one scale unit off in a single cell
        losses.append(float(agent.compute_loss({}, {"trajectory": target}, {"trajectory": pred})["loss"]))
    assert losses == pytest.approx([1 / 24] * 5)
    # A 0.05 rad heading error 0.5 s ahead costs more than 0.5 m of x at 4 s (raw L1: ten times less).
    head, far = target.clone(), target.clone()
    head[0, 0, 2], far[0, 7, 0] = 0.05, 0.5
    loss = {
        n: float(agent.compute_loss({}, {"trajectory": target}, {"trajectory": p})["loss"])
        for n, p in (("heading", head), ("x", far))
    }
    assert loss["heading"] > 5 * loss["x"]
    raw = agent.compute_loss({}, {"trajectory": target}, {"trajectory": head})["trajectory_l1"]
    assert float(raw) == pytest.approx(0.05 / 24)  # the logged component stays in raw units


@pytest.mark.slow
def test_headings_learned_precisely_only_in_physical_units():
    scaled = heading_error_after_training(normalize=True)
    raw = heading_error_after_training(normalize=False)
    assert scaled < 0.5 * raw, (scaled, raw)
    assert scaled < 0.02  # rad, averaged over the 8 poses (headings span ±0.4 rad; raw units: ~0.05)


def save_checkpoint(agent: EgoStatusMLPAgent, path: Path, drop: tuple[str, ...] = ()) -> Path:
    """A minimal planlab checkpoint of ``agent`` (settings without the keys in ``drop``)."""
    settings = {k: v for k, v in agent.settings().items() if k not in drop}
    meta = {"format_version": FORMAT_VERSION, "agent_name": agent.name(), "agent_settings": settings}
    state = {f"{STATE_PREFIX}{k}": v for k, v in agent.state_dict().items()}
    torch.save({"planlab": meta, "state_dict": state}, path)
    return path


def test_checkpoints_keep_their_units_and_old_ones_stay_raw(tmp_path):
    agent = EgoStatusMLPAgent({"hidden_dim": 16, "ego": {"history_poses": 2}})
    assert agent.input_scale.shape == (8 + 6,) and agent.output_scale.shape == (8, 3)
    assert float(agent.output_scale[7, 0]) == pytest.approx(40.0)  # 10 m/s reference over 4 s
    # the scales follow from the config: the state dict holds the network only
    assert set(agent.state_dict()) == {f"mlp.{k}" for k in agent.mlp.state_dict()}
    features = {"ego_status": torch.randn(3, 8), "ego_history": torch.randn(3, 2, 3)}
    x = torch.cat([features["ego_status"], features["ego_history"].flatten(1)], dim=1)
    raw_output = agent.mlp(x).view(3, 8, 3)

    loaded = load_agent_from_checkpoint(save_checkpoint(agent, tmp_path / "new.ckpt"), device="cpu")
    assert loaded.config.normalize
    assert torch.allclose(loaded(features)["trajectory"], agent(features)["trajectory"])
    assert not torch.allclose(loaded(features)["trajectory"], raw_output)
    # A checkpoint recorded before ``normalize`` existed was trained in raw units and still runs that way.
    old = load_agent_from_checkpoint(
        save_checkpoint(agent, tmp_path / "old.ckpt", drop=("normalize",)), device="cpu"
    )
    assert not old.config.normalize
    assert torch.allclose(old(features)["trajectory"], raw_output)
