"""Convert encoders between planlab's ViT format and transformers' ``IJepaModel`` directories.

``export_ijepa`` writes a directory ``IJepaModel.from_pretrained`` reads (``config.json`` +
``model.safetensors``, written by ``save_pretrained``); ``import_ijepa`` reads any such directory — ours or a
local copy of a public checkpoint (facebook/ijepa_vith14_1k, …) — into ``planlab-vit/1``. Both check that the
two models give the same patch tokens on a probe image before anything is written (atomically).

Conversion facts (methods_facts §1.7):

- both are pre-norm ViTs without CLS token; our fused ``qkv`` matrix is HF's ``q_proj | k_proj | v_proj``
  stacked in that order; GELU is the exact (erf) one in both;
- a non-square encoder (e.g. 4:1 driving images) stores ``image_size = [H, W]``. transformers'
  ``interpolate_pos_encoding`` assumes a square grid of positions, so such a model must be run at its native
  size **without** ``interpolate_pos_encoding`` (it would silently scramble the positions);
- the HF converter of the official checkpoints copies the *context* encoder; our exports hold whatever the
  source directory holds (``planlab ssl pretrain`` exports the *target* encoder, the evaluation convention);
- the public checkpoints normalise with ImageNet mean/std at training time; the camera settings an encoder
  was pre-trained with travel beside the weights in ``planlab.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from planlab.errors import CheckpointError
from planlab.models.vit import ViT, ViTConfig, load_vit, save_vit

INFO_FILE = "planlab.json"  # camera settings and provenance of an encoder, copied along by conversions
TOLERANCE = 1e-4  # max |Δ| between the two models' patch tokens, relative to their largest magnitude


def _pairs(depth: int) -> Iterable[tuple[str, str]]:
    """(planlab key, HF key) of every parameter except the fused attention input projection."""
    yield "patch_embed.weight", "embeddings.patch_embeddings.projection.weight"
    yield "patch_embed.bias", "embeddings.patch_embeddings.projection.bias"
    yield "pos_embed", "embeddings.position_embeddings"
    for i in range(depth):
        a, b = f"blocks.{i}.", f"layers.{i}."
        for ours, theirs in (
            ("norm1", "layernorm_before"),
            ("norm2", "layernorm_after"),
            ("attn.proj", "attention.o_proj"),
            ("mlp.0", "mlp.fc1"),
            ("mlp.2", "mlp.fc2"),
        ):
            for p in ("weight", "bias"):
                yield f"{a}{ours}.{p}", f"{b}{theirs}.{p}"
    yield "norm.weight", "layernorm.weight"
    yield "norm.bias", "layernorm.bias"


def ijepa_config(cfg: ViTConfig) -> Any:
    """The ``IJepaConfig`` of a planlab ViT (image size = its native grid × patch size)."""
    from transformers import IJepaConfig

    hidden = int(cfg.embed_dim * cfg.mlp_ratio)
    return IJepaConfig(
        hidden_size=cfg.embed_dim,
        num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads,
        intermediate_size=hidden,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        layer_norm_eps=cfg.layer_norm_eps,
        image_size=[cfg.grid_height * cfg.patch_size, cfg.grid_width * cfg.patch_size],
        patch_size=cfg.patch_size,
        num_channels=3,
        qkv_bias=cfg.qkv_bias,
    )


def vit_config_of(hf: Any, source: str = "IJepaConfig") -> ViTConfig:
    """The planlab ViTConfig of an ``IJepaConfig``; CheckpointError for what a planlab ViT cannot express."""

    def pair(v: Any) -> tuple[int, int]:
        return (int(v[0]), int(v[1])) if isinstance(v, list | tuple) else (int(v), int(v))

    (ih, iw), (ph, pw) = pair(hf.image_size), pair(hf.patch_size)
    if ph != pw:
        raise CheckpointError(f"{source}: non-square patches {ph}x{pw} are not supported")
    if ih % ph or iw % pw:
        raise CheckpointError(f"{source}: image size {ih}x{iw} is not a multiple of the patch size {ph}")
    if hf.hidden_act != "gelu":
        raise CheckpointError(
            f"{source}: hidden_act {hf.hidden_act!r}; a planlab ViT uses exact GELU ('gelu')"
        )
    if hf.num_channels != 3:
        raise CheckpointError(f"{source}: {hf.num_channels} input channels; a planlab ViT takes RGB")
    if hf.hidden_size % hf.num_attention_heads:
        raise CheckpointError(f"{source}: hidden_size is not divisible by num_attention_heads")
    ratio = hf.intermediate_size / hf.hidden_size
    if int(hf.hidden_size * ratio) != hf.intermediate_size:
        raise CheckpointError(
            f"{source}: intermediate_size {hf.intermediate_size} is not representable as hidden_size × mlp_ratio"
        )
    return ViTConfig(
        patch_size=ph,
        embed_dim=int(hf.hidden_size),
        depth=int(hf.num_hidden_layers),
        num_heads=int(hf.num_attention_heads),
        mlp_ratio=ratio,
        grid_height=ih // ph,
        grid_width=iw // pw,
        qkv_bias=bool(hf.qkv_bias),
        layer_norm_eps=float(hf.layer_norm_eps),
    )


def to_ijepa_state(state: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """planlab ViT state dict → IJepaModel state dict (transformers ≥ 5 names)."""
    out = {theirs: state[ours] for ours, theirs in _pairs(cfg.depth)}
    d = cfg.embed_dim
    for i in range(cfg.depth):
        w = state[f"blocks.{i}.attn.qkv.weight"]
        b = state.get(f"blocks.{i}.attn.qkv.bias")
        for k, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"layers.{i}.attention.{name}.weight"] = w[k * d : (k + 1) * d]
            if b is not None:
                out[f"layers.{i}.attention.{name}.bias"] = b[k * d : (k + 1) * d]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def from_ijepa_state(state: dict[str, torch.Tensor], cfg: ViTConfig) -> dict[str, torch.Tensor]:
    """IJepaModel state dict (transformers ≥ 5 names) → planlab ViT state dict."""
    out = {ours: state[theirs] for ours, theirs in _pairs(cfg.depth)}
    for i in range(cfg.depth):
        a = f"layers.{i}.attention."
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [state[a + f"{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")]
        )
        if cfg.qkv_bias:
            out[f"blocks.{i}.attn.qkv.bias"] = torch.cat(
                [state[a + f"{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")]
            )
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


@torch.no_grad()
def max_token_difference(vit: ViT, hf_model: Any, seed: int = 0) -> float:
    """Largest |Δ| between the two models' patch tokens on a random image at the native size, relative to the
    largest token magnitude (both in eval mode, float32; no position interpolation)."""
    c = vit.config
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, c.grid_height * c.patch_size, c.grid_width * c.patch_size, generator=gen)
    vit.eval()
    hf_model.eval()
    ours = vit(x)
    theirs = hf_model(pixel_values=x).last_hidden_state
    if ours.shape != theirs.shape:
        raise CheckpointError(
            f"token shapes differ: planlab {tuple(ours.shape)}, IJepaModel {tuple(theirs.shape)}"
        )
    return float((ours - theirs).abs().max() / ours.abs().max().clamp_min(1e-12))


def _check(vit: ViT, hf_model: Any, what: str) -> float:
    diff = max_token_difference(vit, hf_model)
    if not diff <= TOLERANCE:
        raise CheckpointError(
            f"{what}: converted model disagrees with the source (relative max |Δ| {diff:.2e})"
        )
    return diff


def _publish(tmp: Path, out: Path) -> None:
    """Move a finished directory into place: never a half-written directory where a good one stood."""
    if out.exists():
        backup = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, backup)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(backup, out)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _copy_info(src: Path, dst: Path, extra: dict[str, Any]) -> None:
    info: dict[str, Any] = {}
    if (src / INFO_FILE).is_file():
        try:
            info = json.loads((src / INFO_FILE).read_text())
        except ValueError:
            raise CheckpointError(f"{src / INFO_FILE}: not valid JSON") from None
    info.setdefault("conversions", []).append(extra)
    (dst / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no per-shard bars in CLI output and logs


def export_ijepa(encoder_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Any]:
    """planlab-vit directory → IJepaModel directory (``save_pretrained``); returns what was checked."""
    from transformers import IJepaModel

    _quiet_transformers()
    src, out = Path(encoder_dir), Path(out_dir)
    vit = load_vit(src)
    model = IJepaModel(ijepa_config(vit.config), add_pooling_layer=False)
    missing, unexpected = model.load_state_dict(to_ijepa_state(vit.state_dict(), vit.config), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{src}: IJepaModel keys do not match: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    diff = _check(vit, model, f"export {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        _copy_info(src, tmp, {"from": str(src), "format": "ijepa-hf", "max_rel_diff": diff})
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "max_rel_diff": diff, "image_size": list(model.config.image_size)}


def import_ijepa(hf_dir: str | os.PathLike, out_dir: str | os.PathLike) -> dict[str, Any]:
    """IJepaModel directory (ours or a local public checkpoint) → planlab-vit directory."""
    from planlab.models.encoders import load_ijepa_backbone

    _quiet_transformers()
    src, out = Path(hf_dir), Path(out_dir)
    model = load_ijepa_backbone(src)
    cfg = vit_config_of(model.config, str(src / "config.json"))
    vit = ViT(cfg)
    missing, unexpected = vit.load_state_dict(from_ijepa_state(model.state_dict(), cfg), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{src}: planlab ViT keys do not match: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    diff = _check(vit, model, f"import {src}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_vit(vit, tmp)
        _copy_info(src, tmp, {"from": str(src), "format": "planlab-vit/1", "max_rel_diff": diff})
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"out": str(out), "max_rel_diff": diff, "grid": [cfg.grid_height, cfg.grid_width]}
