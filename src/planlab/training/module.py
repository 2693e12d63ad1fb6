"""``AgentLightningModule``: Lightning around any :class:`~planlab.agents.torch_agent.TorchAgent`.

One shared step runs ``agent.forward`` and ``agent.compute_loss`` and logs **every** component the agent
returns (``train/<name>``, ``val/<name>``; lesson C5: no hard-coded loss keys), plus open-loop ADE/FDE of
the trajectory in validation. A non-finite loss stops training with a one-line error before the optimizer
step, so the last good checkpoint stays the last one written. Checkpoints get a plain-data ``"planlab"``
entry (agent name and settings, resolved config, RNG states, data position) and leave out the weights of
sub-modules the agent loads by reference (frozen encoders from a local directory).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from planlab.agents.checkpoint_io import FORMAT_VERSION, STATE_PREFIX
from planlab.config import to_dict
from planlab.errors import CheckpointError, ContractError, PlanlabError


class TrainingDiverged(PlanlabError):
    """The loss became NaN/Inf; training stopped and the last good checkpoint was kept."""


def rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as plain data (tensors and ints only: weights_only-safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": _python_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _python_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    nps = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            nps["keys"].numpy().astype(np.uint32),
            nps["pos"],
            nps["has_gauss"],
            nps["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["internal"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class AgentLightningModule(pl.LightningModule):
    """Trains ``agent`` with the optimiser/schedule it builds from ``cfg.optim``."""

    def __init__(
        self, agent: Any, cfg: Any, total_steps: int, run_info: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.agent = agent
        self.cfg = cfg
        self.total_steps = int(total_steps)
        self.run_info = dict(run_info or {})
        self.batches_per_epoch: int | None = None

    # ------------------------------------------------------------------ steps
    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.agent(features)

    def _losses(self, batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
        features, targets = batch
        predictions = self.agent(features)
        losses = self.agent.compute_loss(features, targets, predictions)
        name = self.agent.name()
        if not isinstance(losses, Mapping) or "loss" not in losses:
            got = type(losses).__name__ if not isinstance(losses, Mapping) else f"keys {sorted(losses)}"
            raise ContractError(f"agent {name!r} compute_loss must return a dict with 'loss', got {got}")
        for k, v in losses.items():
            if not isinstance(v, torch.Tensor) or v.numel() != 1:
                raise ContractError(f"agent {name!r} loss component {k!r} is not a scalar tensor")
        bsz = int(next(iter(features.values())).shape[0])
        return losses, predictions, bsz

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        losses, _, bsz = self._losses(batch)
        loss = losses["loss"]
        bad = not bool(torch.isfinite(loss.detach()).all())
        # Every rank must agree, or the healthy ranks would wait forever in the next all-reduce.
        if self.trainer.world_size > 1:
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            comps = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
            raise TrainingDiverged(
                f"loss is not finite at epoch {self.current_epoch}, step {self.global_step}, batch {batch_idx} "
                f"({comps}); training stopped, the last good checkpoint is kept"
            )
        for k, v in losses.items():
            self.log(
                f"train/{k}",
                v.detach(),
                on_step=True,
                on_epoch=True,
                prog_bar=(k == "loss"),
                batch_size=bsz,
                sync_dist=self.trainer.world_size > 1,
            )
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        losses, predictions, bsz = self._losses(batch)
        for k, v in losses.items():
            self.log(
                f"val/{k}", v.detach(), on_epoch=True, prog_bar=(k == "loss"), batch_size=bsz, sync_dist=True
            )
        _, targets = batch
        if "trajectory" in targets and "trajectory" in predictions:
            err = torch.linalg.vector_norm(
                predictions["trajectory"][..., :2] - targets["trajectory"][..., :2], dim=-1
            )
            self.log("val/ade", err.mean(), on_epoch=True, batch_size=bsz, sync_dist=True)
            self.log("val/fde", err[:, -1].mean(), on_epoch=True, batch_size=bsz, sync_dist=True)

    def configure_optimizers(self) -> Any:
        return self.agent.get_optimizers(self.cfg.optim, self.total_steps)

    # ------------------------------------------------------------------ checkpoints
    def _position(self) -> dict[str, int]:
        loop = self.trainer.fit_loop.epoch_loop
        return {
            "epoch": int(self.trainer.current_epoch),
            "batches_done": int(loop.batch_progress.current.processed),
            "batches_per_epoch": int(self.batches_per_epoch or 0),
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        sd = checkpoint["state_dict"]
        external = self.agent.external_state()  # now: a fine-tuned encoder is no longer stored by reference
        for prefix in external:
            for key in [k for k in sd if k.startswith(STATE_PREFIX + prefix)]:
                del sd[key]
        checkpoint["planlab"] = {
            "format_version": FORMAT_VERSION,
            "agent_name": self.agent.name(),
            "agent_settings": self.agent.settings(),
            "external_state": {k: dict(v) for k, v in external.items()},
            "train_config": to_dict(self.cfg),
            "run": dict(self.run_info),
            "epoch": int(self.trainer.current_epoch),
            "global_step": int(self.trainer.global_step),
            "position": self._position(),
            "rng": rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        meta = checkpoint.get("planlab")
        if not isinstance(meta, Mapping):
            raise CheckpointError("resume checkpoint has no planlab metadata")
        if meta.get("agent_name") != self.agent.name():
            raise CheckpointError(
                f"resume checkpoint holds agent {meta.get('agent_name')!r}, not {self.agent.name()!r}"
            )
        self.agent.check_external_state(meta.get("external_state") or {})
        # Put the by-reference weights back (from the agent as loaded) so Lightning's strict load passes.
        own = self.state_dict()
        for prefix in meta.get("external_state") or {}:
            for key, value in own.items():
                if key.startswith(STATE_PREFIX + prefix):
                    checkpoint["state_dict"][key] = value
        if "rng" in meta:
            set_rng_state(meta["rng"])
