"""Encoders: the plain ViT and its safetensors format, a local tiny IJepaModel (no CLS, mean pooling, 4:1
inputs through interpolated position embeddings), freezing and selective unfreezing, fingerprints."""

from __future__ import annotations

import json

import pytest
import torch

from planlab.agents.learned_config import EncoderConfig
from planlab.errors import CheckpointError, ConfigError
from planlab.models.encoders import ImageEncoder, build_encoder
from planlab.models.pooling import AttentionPool, MeanPool
from planlab.models.vit import ViT, ViTConfig, load_vit, save_vit


def tiny_ijepa_dir(path, hidden=32, layers=2):
    """A randomly initialised IJepaModel saved the way a downloaded checkpoint is laid out."""
    from transformers import IJepaConfig, IJepaModel

    torch.manual_seed(0)
    cfg = IJepaConfig(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    IJepaModel(cfg, add_pooling_layer=False).save_pretrained(str(path))
    return path


def test_vit_roundtrip_and_interpolated_grid(tmp_path):
    torch.manual_seed(0)
    vit = ViT(ViTConfig(patch_size=8, embed_dim=32, depth=2, num_heads=4, grid_height=2, grid_width=8)).eval()
    x = torch.randn(2, 3, 16, 64)
    save_vit(vit, tmp_path / "enc")
    again = load_vit(tmp_path / "enc").eval()
    assert torch.equal(vit(x), again(x))
    assert vit(x).shape == (2, 2 * 8, 32)  # no CLS token: exactly one token per patch
    assert vit(torch.randn(1, 3, 32, 64)).shape == (1, 4 * 8, 32)  # other grid: interpolated positions
    cfg = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert cfg["format"] == "planlab-vit/1"
    (tmp_path / "enc" / "config.json").write_text(json.dumps({**cfg, "depth": 3}))
    with pytest.raises(CheckpointError, match="does not match its config.json"):
        load_vit(tmp_path / "enc")
    with pytest.raises(CheckpointError, match="config not found"):
        load_vit(tmp_path / "nothing")


def test_ijepa_local_dir_tokens_mean_pooling_no_cls(tmp_path):
    from transformers import IJepaModel

    d = tiny_ijepa_dir(tmp_path / "ijepa")
    enc = build_encoder(EncoderConfig(kind="ijepa", path=str(d)), (0, 0))
    ref = IJepaModel.from_pretrained(str(d), local_files_only=True).eval()
    x = torch.randn(2, 3, 16, 64)  # 4:1, not the native 32x32
    with torch.no_grad():
        out = ref(pixel_values=x, interpolate_pos_encoding=True)
    assert out.pooler_output is None  # no pooler, no CLS: the global feature must be pooled from patches
    tokens = enc.tokens(x)
    assert tokens.shape == (2, (16 // 8) * (64 // 8), 32)
    torch.testing.assert_close(tokens, out.last_hidden_state, rtol=1e-5, atol=1e-5)
    pooled, patches = enc.encode(x)
    torch.testing.assert_close(pooled, out.last_hidden_state.mean(dim=1), rtol=1e-5, atol=1e-5)
    assert torch.equal(patches, tokens)
    with pytest.raises(CheckpointError, match="not a transformers model directory"):
        build_encoder(EncoderConfig(kind="ijepa", path=str(tmp_path)), (0, 0))


def test_frozen_encoder_gets_no_gradients_and_stays_in_eval():
    enc = build_encoder(EncoderConfig(patch_size=8, embed_dim=32, depth=3, num_heads=4), (2, 4))
    head = torch.nn.Linear(32, 1)
    enc.train()
    assert not enc.backbone.training  # frozen: dropout-free eval mode even while the agent trains
    loss = head(enc.tokens(torch.randn(2, 3, 16, 32)).mean(1)).sum()
    loss.backward()
    assert all(p.grad is None for p in enc.parameters()) and head.weight.grad is not None
    enc.set_trainable_blocks(1)
    enc.tokens(torch.randn(2, 3, 16, 32)).sum().backward()
    blocks = enc.blocks()
    assert all(p.grad is not None for p in blocks[-1].parameters())
    assert all(p.grad is None for b in blocks[:-1] for p in b.parameters())
    assert enc.backbone.patch_embed.weight.grad is None
    with pytest.raises(ConfigError, match="unfreeze_last_k=4 but the encoder has 3 blocks"):
        enc.set_trainable_blocks(4)


def test_fingerprint_tracks_weights(tmp_path):
    a = build_encoder(EncoderConfig(patch_size=8, embed_dim=32, depth=1, num_heads=4, init_seed=0), (2, 4))
    b = build_encoder(EncoderConfig(patch_size=8, embed_dim=32, depth=1, num_heads=4, init_seed=0), (2, 4))
    c = build_encoder(EncoderConfig(patch_size=8, embed_dim=32, depth=1, num_heads=4, init_seed=1), (2, 4))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    save_vit(a.backbone, tmp_path / "v")
    loaded = ImageEncoder("vit", load_vit(tmp_path / "v"), str(tmp_path / "v"))
    fp = loaded.fingerprint()
    with torch.no_grad():
        next(iter(a.backbone.parameters())).add_(1.0)
    save_vit(a.backbone, tmp_path / "v")
    assert ImageEncoder("vit", load_vit(tmp_path / "v"), str(tmp_path / "v")).fingerprint() != fp


def test_pooling():
    tokens = torch.randn(3, 10, 16)
    assert torch.equal(MeanPool()(tokens), tokens.mean(1))
    pool = AttentionPool(16)
    out = pool(tokens)
    assert out.shape == (3, 16)
    # permutation of patches does not change an attention pool's output
    torch.testing.assert_close(out, pool(tokens[:, torch.randperm(10)]), rtol=1e-5, atol=1e-6)
