"""Hydra-MDP-style vocabulary scorer head (methods_facts §2.2): every vocabulary trajectory becomes a query
token; a transformer decoder lets the queries attend to the scene context (image tokens and/or an ego
token); per query an imitation logit and one logit per PDM sub-score come out."""

from __future__ import annotations

import torch
from torch import nn

from planlab.models.heads import MLP


class VocabularyScorer(nn.Module):
    """``(context [B, C, d_ctx] or None, ego [B, E]) → {"imitation": [B, K], <sub-score>: [B, K]}``."""

    def __init__(
        self,
        vocabulary: torch.Tensor,
        ego_dim: int,
        sub_scores: list[str],
        context_dim: int | None = None,
        d_model: int = 256,
        num_layers: int = 2,
        num_heads: int = 8,
        ffn_dim: int = 1024,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        k, t, _ = vocabulary.shape
        # The vocabulary is part of the model (saved in checkpoints); it is filled from the .npy at training.
        self.register_buffer("vocabulary", vocabulary.clone().float())
        self.register_buffer("scale", torch.ones(3))  # per-coordinate normalisation of the vocab input
        self.vocab_embed = MLP(t * 3, 4 * d_model if d_model <= 256 else d_model, d_model, 1)
        self.ego_embed = nn.Linear(ego_dim, d_model)
        self.context_proj = nn.Linear(context_dim, d_model) if context_dim else None
        layer = nn.TransformerDecoderLayer(
            d_model, num_heads, ffn_dim, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.decoder = nn.TransformerDecoder(layer, num_layers, norm=nn.LayerNorm(d_model))
        self.imitation_head = MLP(d_model, d_model, 1, 2)
        self.sub_scores = list(sub_scores)
        self.score_heads = nn.ModuleDict({name: MLP(d_model, d_model, 1, 1) for name in self.sub_scores})

    def set_vocabulary(self, vocabulary: torch.Tensor) -> None:
        if tuple(vocabulary.shape) != tuple(self.vocabulary.shape):
            raise ValueError(f"vocabulary shape {tuple(vocabulary.shape)} != {tuple(self.vocabulary.shape)}")
        self.vocabulary.copy_(vocabulary.to(self.vocabulary))
        spread = vocabulary.float().reshape(-1, 3).abs().amax(dim=0).clamp(min=1e-3)
        self.scale.copy_(spread.to(self.scale))

    def forward(self, ego: torch.Tensor, context: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        b = ego.shape[0]
        v = (self.vocabulary / self.scale).flatten(1)  # (K, T*3)
        ego_tok = self.ego_embed(ego)  # (B, d)
        queries = self.vocab_embed(v).unsqueeze(0) + ego_tok.unsqueeze(1)  # (B, K, d): + ego encoding (GTRS)
        memory = [ego_tok.unsqueeze(1)]
        if context is not None and self.context_proj is not None:
            memory.insert(0, self.context_proj(context))
        out = self.decoder(queries.expand(b, -1, -1), torch.cat(memory, dim=1))
        logits = {"imitation": self.imitation_head(out).squeeze(-1)}
        for name, head in self.score_heads.items():
            logits[name] = head(out).squeeze(-1)
        return logits
