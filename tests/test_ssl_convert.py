"""Export to and import from transformers' IJepaModel format: identical features both ways, public-layout
directories (legacy key names, square images), clear errors, no partial output."""

from __future__ import annotations

import json

import pytest
import torch

from planlab.errors import CheckpointError
from planlab.models.encoders import load_ijepa_backbone
from planlab.models.vit import ViTConfig, load_vit, save_vit
from planlab.ssl.convert import INFO_FILE, export_ijepa, import_ijepa, to_ijepa_state
from planlab.ssl.encoder import JepaViT

pytestmark = pytest.mark.slow  # importing transformers alone takes seconds

CFG = ViTConfig(patch_size=8, embed_dim=64, depth=2, num_heads=4, grid_height=4, grid_width=16)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    enc = JepaViT(CFG)
    with torch.no_grad():  # move away from the init so every weight matters
        for p in enc.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("enc") / "encoder"
    save_vit(enc, d)
    (d / INFO_FILE).write_text(json.dumps({"camera": {"image_height": 32, "image_width": 128}}))
    return d


def test_export_import_round_trip_identical_features(encoder_dir, tmp_path):
    from transformers import IJepaModel

    info = export_ijepa(encoder_dir, tmp_path / "hf")
    assert info["image_size"] == [32, 128] and info["max_rel_diff"] <= 1e-5
    hf = IJepaModel.from_pretrained(str(tmp_path / "hf"), local_files_only=True).eval()
    ours = load_vit(encoder_dir).eval()
    x = torch.randn(3, 3, 32, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = ours(x)
        b = hf(pixel_values=x).last_hidden_state  # native size: no position interpolation (module docstring)
    assert b.shape == (3, 64, 64)
    assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert hf.config.layer_norm_eps == 1e-6 and hf.config.intermediate_size == 256
    assert json.loads((tmp_path / "hf" / INFO_FILE).read_text())["camera"]["image_width"] == 128

    import_ijepa(tmp_path / "hf", tmp_path / "back")
    back = load_vit(tmp_path / "back").eval()
    for k, v in ours.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    with torch.no_grad():
        assert torch.equal(back(x), a)
    # the training room's loader reads our export as an IJepaModel directory too
    assert load_ijepa_backbone(tmp_path / "hf").config.hidden_size == 64


def test_import_public_layout_checkpoint(tmp_path):
    """A square model saved by save_pretrained (legacy key names, as the hub checkpoints) imports exactly."""
    from transformers import IJepaConfig, IJepaModel

    torch.manual_seed(3)
    cfg = IJepaConfig(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=192,
                      image_size=32, patch_size=8, layer_norm_eps=1e-6)  # fmt: skip
    hf = IJepaModel(cfg, add_pooling_layer=False).eval()
    hf.save_pretrained(str(tmp_path / "public"))
    info = import_ijepa(tmp_path / "public", tmp_path / "vit")
    assert info["grid"] == [4, 4]
    vit = load_vit(tmp_path / "vit").eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.allclose(vit(x), hf(pixel_values=x).last_hidden_state, atol=1e-5, rtol=0)
    assert vit.config.mlp_ratio == 4.0 and vit.config.embed_dim == 48


def test_qkv_split_order():
    torch.manual_seed(0)
    enc = JepaViT(CFG)
    st = to_ijepa_state(enc.state_dict(), CFG)
    w = enc.state_dict()["blocks.0.attn.qkv.weight"]
    assert torch.equal(st["layers.0.attention.q_proj.weight"], w[:64])
    assert torch.equal(st["layers.0.attention.v_proj.weight"], w[128:])


def test_errors_are_one_line_and_leave_no_partial_output(tmp_path, encoder_dir):
    with pytest.raises(CheckpointError, match="config.json"):
        import_ijepa(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(CheckpointError, match="ViT config not found"):
        export_ijepa(tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # an unsupported activation is refused with its name
    from transformers import IJepaConfig, IJepaModel

    cfg = IJepaConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                      image_size=16, patch_size=8, hidden_act="relu")  # fmt: skip
    IJepaModel(cfg).save_pretrained(str(tmp_path / "relu"))
    with pytest.raises(CheckpointError, match="hidden_act 'relu'"):
        import_ijepa(tmp_path / "relu", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    # a good export replaces an older one in place
    export_ijepa(encoder_dir, tmp_path / "hf")
    export_ijepa(encoder_dir, tmp_path / "hf")
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "model.safetensors",
        INFO_FILE,
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
