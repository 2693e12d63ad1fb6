"""Trajectory vocabularies for scorer agents (methods_facts §2.1): k-means centres of training futures.

A vocabulary is ``(K, num_poses, 3)`` float32 — (x, y, heading) in the current rear-axle frame at the agent's
sampling — stored as ``.npy`` (no pickle) with a JSON sidecar recording where it came from. Clustering runs on
the flattened poses (Hydra-MDP clusters 40 × 3 poses, WoTE 8 × 3; we use the agent's own sampling, 8 × 3).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_path, atomic_write_text
from planlab.errors import ConfigError, DataError
from planlab.features.vocabulary import vocabulary_hash


def kmeans_vocabulary(trajectories: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` cluster centres of ``trajectories (N, T, 3)``, sorted by final x then y (a stable order)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    traj = np.asarray(trajectories, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[2] != 3:
        raise ValueError(f"trajectories must be (N, T, 3), got {traj.shape}")
    n = len(traj)
    if n < k:
        raise ConfigError(
            f"vocabulary size {k} exceeds the {n} training trajectories; lower agent.vocabulary_size"
        )
    flat = traj.reshape(n, -1)
    if n > 20_000:  # Lloyd's over millions of rows is slow; WoTE uses MiniBatchKMeans (batch 1000)
        km = MiniBatchKMeans(n_clusters=k, batch_size=max(1000, 3 * k), random_state=seed, n_init=3)
    else:
        km = KMeans(n_clusters=k, random_state=seed, n_init=4)
    centres = km.fit(flat).cluster_centers_.reshape(k, traj.shape[1], 3)
    order = np.lexsort((centres[:, -1, 1], centres[:, -1, 0]))
    return centres[order].astype(np.float32)


def save_vocabulary(vocab: np.ndarray, path: str | os.PathLike, info: dict[str, Any] | None = None) -> Path:
    p = Path(path)
    with atomic_path(p) as tmp:
        np.save(tmp, np.asarray(vocab, dtype=np.float32), allow_pickle=False)
    sidecar = {"shape": list(vocab.shape), "sha256_16": vocabulary_hash(vocab), **(info or {})}
    atomic_write_text(p.with_suffix(".json"), json.dumps(sidecar, indent=1, default=str) + "\n")
    return p


def load_vocabulary(
    path: str | os.PathLike, size: int | None = None, num_poses: int | None = None
) -> np.ndarray:
    """Read a ``(K, T, 3)`` vocabulary; DataError naming the file if it is missing or malformed."""
    p = Path(path)
    try:
        vocab = np.load(p, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{p}: vocabulary not found (build it with planlab cache vocabulary)") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: not a readable .npy vocabulary ({exc})") from None
    if vocab.ndim != 3 or vocab.shape[2] != 3:
        raise DataError(f"{p}: vocabulary has shape {vocab.shape}, expected (K, num_poses, 3)")
    if size is not None and vocab.shape[0] != size:
        raise DataError(f"{p}: vocabulary has {vocab.shape[0]} entries, agent.vocabulary_size is {size}")
    if num_poses is not None and vocab.shape[1] != num_poses:
        raise DataError(f"{p}: vocabulary has {vocab.shape[1]} poses, the agent plans {num_poses}")
    if not np.isfinite(vocab).all():
        raise DataError(f"{p}: vocabulary has non-finite values")
    return vocab.astype(np.float32)
