"""The frozen-embedding cache: run a frozen encoder once per token, train heads on the stored outputs.

An agent with a frozen image encoder exposes :meth:`embedding_spec` (its camera builder, the encoder and
whether the head needs the patch grid or only the pooled vector). The store key combines the encoder's
fingerprint (architecture + weights) with the camera builder's hash, so a changed encoder or camera
setting can never be served stale vectors. Rows are written in shards through memory maps
(:class:`planlab.data.feature_cache.EmbeddingStore`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from planlab.data.feature_cache import EmbeddingStore
from planlab.errors import ConfigError
from planlab.features.base import check_contract
from planlab.models.encoders import EmbeddingSpec
from planlab.training.dataset import EmbeddingSource


def embedding_key(spec: EmbeddingSpec) -> str:
    blob = f"{spec.encoder.fingerprint()}|{spec.camera_builder.config_hash()}"
    kind = "patches" if spec.patches else "pooled"
    return f"{spec.encoder.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}-{kind}"


def open_store(root: str, spec: EmbeddingSpec, dtype: str = "float32") -> EmbeddingStore:
    store = EmbeddingStore(root, embedding_key(spec))
    store.init(
        {
            "encoder": spec.encoder.describe(),
            "camera": {"builder": spec.camera_builder.cache_key, "settings": spec.camera_builder.settings()},
            "dim": spec.encoder.embed_dim,
            "grid": None,
            "dtype": dtype,
            "patches": spec.patches,
        }
    )
    return store


@torch.no_grad()
def build_embedding_cache(
    spec: EmbeddingSpec,
    parts: Sequence[tuple[Any, Sequence[str]]],
    root: str,
    batch_size: int = 32,
    device: str | None = None,
    progress: bool = True,
    shard_rows: int = 4096,
    dtype: str = "float32",
) -> tuple[EmbeddingStore, int]:
    """Encode every token of ``parts`` (``[(scene_loader, tokens), ...]``) not yet in the store.

    Returns (store, number of tokens encoded). ``dtype="float16"`` halves disk and page cache at the cost
    of bit-equality with running the encoder (float32, the default, keeps losses equal).
    """
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"embedding dtype {dtype!r} is not valid; choose float32 or float16")
    from tqdm import tqdm

    store = open_store(root, spec, dtype)
    encoder = spec.encoder
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    was_device = next(iter(encoder.parameters())).device
    encoder.to(device)
    encoder.eval()
    builder = spec.camera_builder
    sensor = builder.sensor_config()
    todo: list[tuple[Any, str]] = []
    for loader, tokens in parts:
        for t in store.missing(tokens):
            todo.append((loader, t))
    seen: set[str] = set()
    todo = [(ld, t) for ld, t in todo if not (t in seen or seen.add(t))]
    bar = tqdm(total=len(todo), desc="embeddings", unit="scene", disable=not progress, leave=False)
    try:
        for start in range(0, len(todo), shard_rows):
            chunk = todo[start : start + shard_rows]
            writer = None
            try:
                for b0 in range(0, len(chunk), batch_size):
                    batch = chunk[b0 : b0 + batch_size]
                    images = []
                    for loader, token in batch:
                        out = check_contract(
                            builder,
                            builder.compute_features(loader.get_agent_input_from_token(token, sensor)),
                        )
                        images.append(out[spec.feature_key])
                    x = torch.stack(images).to(device)
                    pooled, patches = encoder.encode(x)
                    if writer is None:
                        grid = patches.shape[1] if spec.patches else None
                        writer = store.shard_writer(len(chunk), pooled.shape[1], grid, dtype)
                    writer.pooled[b0 : b0 + len(batch)] = pooled.float().cpu().numpy().astype(dtype)
                    if spec.patches:
                        writer.patches[b0 : b0 + len(batch)] = patches.float().cpu().numpy().astype(dtype)
                    bar.update(len(batch))
                if writer is not None:
                    writer.commit([t for _, t in chunk])
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
    finally:
        bar.close()
        encoder.to(was_device)
    return store, len(todo)


def embedding_source_for(
    agent: Any, cfg: Any, parts: Sequence[tuple[Any, Sequence[str]]], build: bool, progress: bool = True
) -> EmbeddingSource | None:
    """The embedding source for training (None without ``data.cache.embeddings``); fills it when ``build``."""
    root = cfg.data.cache.embeddings
    if not root:
        return None
    get_spec = getattr(agent, "embedding_spec", None)
    spec = get_spec() if callable(get_spec) else None
    if spec is None:
        raise ConfigError(
            f"data.cache.embeddings is set, but agent {agent.name()!r} has no frozen image encoder to cache"
        )
    if cfg.optim.finetune.unfreeze_at_epoch is not None:
        raise ConfigError(
            "data.cache.embeddings serves a frozen encoder, but optim.finetune.unfreeze_at_epoch unfreezes it; "
            "fine-tuning needs the images (unset data.cache.embeddings)"
        )
    if build:
        store, _ = build_embedding_cache(
            spec,
            parts,
            root,
            batch_size=cfg.trainer.batch_size,
            progress=progress,
            dtype=cfg.data.cache.embeddings_dtype,
        )
    else:
        store = EmbeddingStore(root, embedding_key(spec))
    missing = sum(len(store.missing(tokens)) for _, tokens in parts)
    if missing:
        from planlab.errors import DataError

        raise DataError(f"{store.dir}: {missing} token(s) have no embedding (run planlab cache embeddings)")
    return EmbeddingSource(store, spec.camera_builder.get_unique_name(), spec.patches)
