"""Vocabulary targets of scorer agents (methods_facts §2.3), computed once per token and cached.

- ``vocab_imitation`` (K,): soft imitation labels ``softmax_i(−Σ_t Σ_{x,y,θ} (T̂_t − V_{i,t})² / σ)`` of the
  logged future T̂ against every vocabulary entry V_i (Hydra-MDP eqs. 8–9, σ = 0.5).
- ``vocab_scores`` (K, M): PDM sub-scores of every vocabulary entry driven in the scene, from the evaluator's
  batch API with NAVSIM's official two-proposal scoring (each candidate jointly with PDM-Closed, so EP is
  normalised as in a real evaluation — not by the best candidate as WoTE's generator does). NC and DDC
  values of 0.5 become 0 (GTRS ``three2two``), so every column is a binary or [0, 1] BCE target.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from planlab.errors import ConfigError
from planlab.features.base import TargetBuilder, TensorSpec
from planlab.scene import Scene

THREE_TO_TWO = ("no_at_fault_collisions", "driving_direction_compliance")


def vocabulary_hash(vocab: np.ndarray) -> str:
    """16 hex digits identifying a vocabulary's values and shape (part of the target builder's hash)."""
    import hashlib

    v = np.ascontiguousarray(vocab, dtype=np.float32)
    return hashlib.sha256(v.tobytes() + str(v.shape).encode()).hexdigest()[:16]


def imitation_targets(future: np.ndarray, vocab: np.ndarray, sigma: float) -> np.ndarray:
    """Soft labels (K,) of one future (T, 3) over ``vocab`` (K, T, 3)."""
    d = vocab.astype(np.float64) - future[None].astype(np.float64)
    d[..., 2] = np.arctan2(np.sin(d[..., 2]), np.cos(d[..., 2]))
    cost = (d**2).sum(axis=(1, 2)) / sigma
    z = -(cost - cost.min())
    p = np.exp(z)
    return (p / p.sum()).astype(np.float32)


class VocabularyTargetBuilder(TargetBuilder):
    """``vocab_imitation`` (K,) and ``vocab_scores`` (K, M) for the sub-scores in ``sub_scores`` order."""

    expensive = True

    def __init__(
        self, vocabulary: np.ndarray, sub_scores: list[str], sigma: float, metric_cache: str | None
    ) -> None:
        self.vocabulary = np.asarray(vocabulary, dtype=np.float32)
        self.sub_scores = list(sub_scores)
        self.sigma = float(sigma)
        self.metric_cache = metric_cache
        self._cache: Any = None

    def get_unique_name(self) -> str:
        return "vocab_targets"

    def settings(self) -> dict[str, Any]:
        from planlab.evaluation.cache import SCORER_VERSION

        # The metric-cache path is where the numbers come from, not what they are: left out of the hash.
        return {
            "vocabulary": vocabulary_hash(self.vocabulary),
            "sub_scores": self.sub_scores,
            "sigma": self.sigma,
            "scorer": SCORER_VERSION,
        }

    def specs(self) -> dict[str, TensorSpec]:
        k = len(self.vocabulary)
        return {
            "vocab_imitation": TensorSpec((k,), "float32", (0.0, 1.0), "soft imitation labels"),
            "vocab_scores": TensorSpec((k, len(self.sub_scores)), "float32", (0.0, 1.0), "PDM sub-scores"),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    def _entry(self, token: str) -> Any:
        if not self.metric_cache:
            raise ConfigError(
                "agent.metric_cache is not set: the vocabulary scorer's targets need the metric cache of its "
                "training splits (planlab eval cache --data ROOT --split SPLIT --out DIR)"
            )
        from planlab.evaluation.cache import MetricCache

        if self._cache is None:
            self._cache = MetricCache(self.metric_cache)
        return self._cache.load(token)

    def scores(self, entry: Any) -> np.ndarray:
        """(K, M) sub-scores of every vocabulary entry in the scene of ``entry``."""
        from planlab.evaluation.scoring import joint_with_pdm_v11, score_states_v11, simulate_agent

        k = len(self.vocabulary)
        row = np.zeros(k, dtype=np.int64)
        states = simulate_agent([entry], self.vocabulary.astype(np.float64), 0.5, row)
        joint = joint_with_pdm_v11([entry], score_states_v11([entry], states, row), row)
        cols = []
        for name in self.sub_scores:
            v = np.asarray(joint[name], dtype=np.float64)
            if name in THREE_TO_TWO:
                v = np.where(v == 0.5, 0.0, v)
            cols.append(np.clip(np.nan_to_num(v, nan=0.0), 0.0, 1.0))
        return np.stack(cols, axis=1).astype(np.float32)

    def compute_targets(self, scene: Scene) -> dict[str, torch.Tensor]:
        future = scene.get_future_trajectory(self.vocabulary.shape[1]).poses
        entry = self._entry(scene.token)
        return {
            "vocab_imitation": torch.from_numpy(imitation_targets(future, self.vocabulary, self.sigma)),
            "vocab_scores": torch.from_numpy(self.scores(entry)),
        }
