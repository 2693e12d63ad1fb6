"""Vocabulary scorer in the Hydra-MDP style (methods_facts §2): a k-means vocabulary of trajectories, an
imitation head trained on soft labels and one BCE head per PDM sub-score (targets from the evaluator's batch
scoring, cached once per token), and weighted-confidence inference that picks the vocabulary entry with the
best combined log-score; optional EP regression (MSE on the sigmoid, weight 50)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from planlab.agents.frozen_encoder import FrozenEncoderAgent
from planlab.agents.learned_config import VocabScorerConfig
from planlab.errors import ConfigError
from planlab.features.vocabulary import VocabularyTargetBuilder
from planlab.models.scorer import VocabularyScorer

EPS = 1e-6


class VocabScorerAgent(FrozenEncoderAgent):
    """Scores every vocabulary trajectory; plans the best one by weighted confidence."""

    config_class = VocabScorerConfig
    registry_name = "vocab_scorer"
    needs_patches = True

    def uses_camera(self) -> bool:
        return bool(self.config.use_camera)

    def __init__(self, config: Any = None, checkpoint_path: str | None = None) -> None:
        super().__init__(config, checkpoint_path)
        cfg: VocabScorerConfig = self.config
        k, t = cfg.vocabulary_size, cfg.trajectory.num_poses
        self.scorer = VocabularyScorer(
            torch.zeros(k, t, 3),
            self.ego_dim,
            list(cfg.sub_scores),
            self.encoder.embed_dim if self.encoder is not None else None,
            cfg.d_model,
            cfg.num_layers,
            cfg.num_heads,
            cfg.ffn_dim,
            cfg.dropout,
        )
        self.has_vocabulary = False
        if cfg.vocabulary_path:
            from planlab.models.vocabulary import load_vocabulary

            self.scorer.set_vocabulary(torch.from_numpy(load_vocabulary(cfg.vocabulary_path, k, t)))
            self.has_vocabulary = True

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # type: ignore[override]
        out = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if "scorer.vocabulary" in state_dict:
            self.has_vocabulary = True
        return out

    @property
    def vocabulary(self) -> torch.Tensor:
        return self.scorer.vocabulary

    def get_target_builders(self) -> list:
        if not self.has_vocabulary:
            raise ConfigError(
                "agent.vocabulary_path is not set: build the vocabulary first "
                "(planlab cache vocabulary --agent vocab_scorer ... --out vocab.npy)"
            )
        cfg = self.config
        return [
            *super().get_target_builders(),
            VocabularyTargetBuilder(
                self.vocabulary.cpu().numpy(), list(cfg.sub_scores), cfg.sigma, cfg.metric_cache
            ),
        ]

    # ------------------------------------------------------------------ forward and inference
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context = self.image_tokens(features) if self.encoder is not None else None
        logits = self.scorer(self.ego_vector(features), context)
        cost = self.selection_cost(logits)
        best = cost.argmin(dim=1)
        out = {f"{k}_logits": v for k, v in logits.items()}
        out["selection_cost"] = cost
        out["selected"] = best
        out["trajectory"] = self.vocabulary[best]
        return out

    def selection_cost(self, logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """Weighted confidence (Hydra-MDP eq. 11): −Σ w·log S, with S_im = softmax over the vocabulary, the
        sub-scores sigmoids, and ``mix`` = log(5·S_TTC + 2·S_C + 5·S_EP)."""
        w = self.config.inference_weights
        cost = -w.get("imitation", 0.0) * torch.log_softmax(logits["imitation"], dim=1)
        probs = {k: torch.sigmoid(v) for k, v in logits.items() if k != "imitation"}
        for name, weight in w.items():
            if name in ("imitation", "mix") or weight == 0:
                continue
            cost = cost - weight * torch.log(probs[name] + EPS)
        if w.get("mix", 0.0):
            mix = (
                5 * probs["time_to_collision_within_bound"] + 2 * probs["comfort"] + 5 * probs["ego_progress"]
            )
            cost = cost - w["mix"] * torch.log(mix + EPS)
        return cost

    # ------------------------------------------------------------------ loss
    def compute_loss(self, features, targets, predictions) -> dict[str, torch.Tensor]:
        cfg = self.config
        # Imitation: cross-entropy against the soft labels (Hydra-MDP eq. 9).
        log_p = torch.log_softmax(predictions["imitation_logits"], dim=1)
        imitation = -(targets["vocab_imitation"] * log_p).sum(dim=1).mean()
        out = {"imitation": imitation.detach()}
        total = cfg.imitation_weight * imitation
        scores = targets["vocab_scores"]
        for m, name in enumerate(cfg.sub_scores):
            logit = predictions[f"{name}_logits"]
            y = scores[..., m]
            if name == "ego_progress" and cfg.ep_regression:
                loss = nn.functional.mse_loss(torch.sigmoid(logit), y)
                weight = cfg.ep_regression_weight
            else:
                loss = nn.functional.binary_cross_entropy_with_logits(logit, y)
                weight = cfg.sub_score_weights[name]
            total = total + weight * loss
            out[name] = loss.detach()
        out["loss"] = total
        return out
