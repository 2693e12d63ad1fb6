"""Feature cache (parallel build, reuse, validation on load) and the embedding store (shards, memory maps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.data.feature_cache import EmbeddingStore, FeatureCache
from planlab.data.loader import SceneLoader
from planlab.errors import ContractError, DataError
from planlab.features.ego import EgoStatusFeatureBuilder
from planlab.features.trajectory import TrajectoryTargetBuilder
from planlab.scene import SceneFilter
from planlab.training.dataset import PlanningDataset, build_feature_cache


@pytest.mark.slow
def test_parallel_build_reuse_and_validation(calib_root, tmp_path):
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1))
    fbs, tbs = [EgoStatusFeatureBuilder(1)], [TrajectoryTargetBuilder(8)]
    stats = build_feature_cache(loader, loader.tokens, fbs, tbs, tmp_path / "c", workers=2, progress=False)
    assert stats == {"tokens": 42, "computed": 42}
    assert (
        build_feature_cache(loader, loader.tokens, fbs, tbs, tmp_path / "c", progress=False)["computed"] == 0
    )
    cache = FeatureCache(tmp_path / "c")
    ds = PlanningDataset(loader.tokens, fbs, tbs, loader, cache)
    feats, targs = ds[3]
    direct = fbs[0].compute_features(loader.get_agent_input_from_token(loader.tokens[3]))
    assert torch.equal(feats["ego_status"], direct["ego_status"]) and targs["trajectory"].shape == (8, 3)
    # a truncated entry is reported by path
    logs = {t: log for log, ts in loader.get_tokens_list_per_log().items() for t in ts}
    path = cache.entry_path(fbs[0].cache_key, logs[loader.tokens[5]], loader.tokens[5])
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=str(path.name)):
        ds[5]
    # an entry that no longer fits the declared specs is refused when read (validated on load)
    tok = loader.tokens[6]
    cache.write(
        fbs[0].cache_key,
        logs[tok],
        tok,
        {"ego_status": np.zeros(8, np.float32), "ego_history": np.zeros((2, 3), np.float32)},
    )
    with pytest.raises(ContractError, match=r"key 'ego_history' has shape \(2, 3\), declared \(1, 3\)"):
        ds[6]


def test_embedding_store_shards_and_descriptions(tmp_path):
    store = EmbeddingStore(tmp_path, "vit-abc-pooled")
    store.init(
        {
            "encoder": {"fingerprint": "a"},
            "camera": {"x": 1},
            "dim": 4,
            "grid": None,
            "dtype": "float32",
            "patches": False,
        }
    )
    store.write_shard(["t1", "t2"], np.arange(8, dtype=np.float32).reshape(2, 4))
    writer = store.shard_writer(1, 4, None, "float32")
    writer.pooled[0] = 7.0
    writer.commit(["t3"])
    again = EmbeddingStore(tmp_path, "vit-abc-pooled")
    assert again.tokens() == {"t1", "t2", "t3"} and again.missing(["t1", "t4"]) == ["t4"]
    pooled, patches = again.get("t2")
    assert pooled.tolist() == [4, 5, 6, 7] and patches is None and pooled.flags.writeable
    assert again.get("t3")[0].tolist() == [7, 7, 7, 7]
    with pytest.raises(DataError, match="pooled vectors only"):
        again.get("t1", patches=True)
    with pytest.raises(DataError, match="no embedding for token t9"):
        again.get("t9")
    with pytest.raises(DataError, match="made with dim=4, now 8"):
        again.init(
            {
                "encoder": {"fingerprint": "a"},
                "camera": {"x": 1},
                "dim": 8,
                "grid": None,
                "dtype": "float32",
                "patches": False,
            }
        )
    # an aborted shard leaves no trace
    w = store.shard_writer(2, 4, None, "float32")
    w.abort()
    assert EmbeddingStore(tmp_path, "vit-abc-pooled").tokens() == {"t1", "t2", "t3"}
    with pytest.raises(DataError, match="not a safe file name"):
        EmbeddingStore(tmp_path, "../escape")
