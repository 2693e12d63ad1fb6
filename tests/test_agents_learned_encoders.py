"""Encoder agents: parity between the image path and the frozen-embedding cache, I-JEPA checkpoints that
reference the frozen encoder, and the two-stage selective fine-tuning schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.agents.registry import build_agent
from planlab.data.loader import SceneLoader
from planlab.errors import CheckpointError
from planlab.features.base import compute_features
from planlab.scene import SceneFilter
from planlab.training.checkpoint import load_agent_from_checkpoint
from planlab.training.config import build_train_config
from planlab.training.embeddings import build_embedding_cache
from planlab.training.train import run_training

SMALL = {
    "agent.camera.image_height": 32,
    "agent.camera.image_width": 128,
    "agent.encoder.patch_size": 16,
    "agent.encoder.embed_dim": 32,
    "agent.encoder.depth": 2,
    "agent.encoder.num_heads": 4,
}


def data_overrides(calib_root, **extra):
    return {
        "data.root": str(calib_root),
        "data.train_split": "calib",
        "data.val_split": None,
        "data.num_workers": 0,
        "trainer.max_epochs": 2,
        "trainer.batch_size": 8,
        "trainer.log_every_n_steps": 2,
        **extra,
    }


@pytest.mark.parametrize("name", ["encoder_mlp", "encoder_transformer"])
def test_compute_trajectory_equals_batched_forward_on_cached_embeddings(name, calib_root, tmp_path):
    over = dict(SMALL)
    if name == "encoder_mlp":
        over["agent.encoder.pooling"] = "attention"  # needs the patch grid from the cache
    cfg = build_train_config(name, overrides=over)
    agent = build_agent(name, config=cfg.agent_settings()).eval()
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1), agent.get_sensor_config())
    tokens = loader.tokens[:6]
    spec = agent.embedding_spec()
    assert spec is not None and spec.patches
    store, n = build_embedding_cache(
        spec, [(loader, tokens)], str(tmp_path / "emb"), batch_size=4, progress=False
    )
    assert n == 6 and store.missing(tokens) == []
    feats = [
        compute_features(agent.get_feature_builders(), loader.get_agent_input_from_token(t)) for t in tokens
    ]
    batch = {
        "ego_status": torch.stack([f["ego_status"] for f in feats]),
        "camera_pooled": torch.stack([torch.from_numpy(store.get(t, patches=True)[0]) for t in tokens]),
        "camera_patches": torch.stack([torch.from_numpy(store.get(t, patches=True)[1]) for t in tokens]),
    }
    with torch.no_grad():
        cached = agent(batch)["trajectory"].numpy()
    single = np.stack([agent.compute_trajectory(loader.get_agent_input_from_token(t)).poses for t in tokens])
    np.testing.assert_allclose(single, cached, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_ijepa_agent_checkpoint_references_the_frozen_encoder(calib_root, tmp_path):
    from test_models_encoders import tiny_ijepa_dir

    enc_dir = tiny_ijepa_dir(tmp_path / "ijepa")
    over = data_overrides(
        calib_root,
        **{
            "agent.encoder.kind": "ijepa",
            "agent.encoder.path": str(enc_dir),
            "agent.camera.image_height": 32,
            "agent.camera.image_width": 128,
            "agent.hidden_dim": 32,
            "data.cache.embeddings": str(tmp_path / "emb"),
        },
    )
    cfg = build_train_config("encoder_mlp", overrides=over)
    result = run_training(cfg, tmp_path / "run", progress=False)
    ckpt = torch.load(result.last_checkpoint, weights_only=True)
    assert not any(k.startswith("agent.encoder.") for k in ckpt["state_dict"])  # stored by reference
    ext = ckpt["planlab"]["external_state"]["encoder."]
    assert ext["path"] == str(enc_dir) and len(ext["fingerprint"]) == 16
    agent = load_agent_from_checkpoint(tmp_path / "run", device="cpu")
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1), agent.get_sensor_config())
    ai = loader.get_agent_input_from_token(loader.tokens[3])
    head = {k[len("agent.head.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("agent.head.")}
    assert all(torch.equal(agent.head.state_dict()[k], v) for k, v in head.items())
    assert agent.compute_trajectory(ai).poses.shape == (8, 3)
    # the encoder directory changed after training: loading must refuse, not silently use other weights
    tiny_ijepa_dir(enc_dir, hidden=32, layers=1)
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_agent_from_checkpoint(tmp_path / "run", device="cpu")


@pytest.mark.slow
def test_selective_finetune_unfreezes_last_block_at_lower_lr(calib_root, tmp_path):
    over = data_overrides(
        calib_root,
        **SMALL,
        **{
            "agent.hidden_dim": 32,
            "optim.lr": 1e-3,
            "optim.finetune.unfreeze_at_epoch": 1,
            "optim.finetune.unfreeze_last_k": 1,
            "optim.finetune.encoder_lr_scale": 0.1,
        },
    )
    cfg = build_train_config("encoder_mlp", overrides=over)
    initial = build_agent("encoder_mlp", config=cfg.agent_settings()).encoder.state_dict()
    result = run_training(cfg, tmp_path / "ft", progress=False)
    ckpt = torch.load(result.last_checkpoint, weights_only=True)
    final = {
        k[len("agent.encoder.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("agent.encoder.")
    }
    changed = {k for k in initial if not torch.equal(initial[k], final[k])}
    assert changed and all(k.startswith(("backbone.blocks.1.", "backbone.norm.")) for k in changed)
    assert any(k.startswith("backbone.blocks.1.") for k in changed)
    groups = {g["name"]: g for g in ckpt["optimizer_states"][0]["param_groups"]}
    assert groups["encoder"]["initial_lr"] == pytest.approx(0.1 * groups["head"]["initial_lr"])
