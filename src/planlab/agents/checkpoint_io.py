"""Reading planlab training checkpoints back into agents (``torch.load(weights_only=True)`` only).

A checkpoint is Lightning's dict plus a plain-data ``"planlab"`` entry (format below); agent weights sit in
``state_dict`` under ``agent.``. This module is below ``planlab.training`` so that an agent's
``initialize()`` and the evaluation CLI can load weights without importing Lightning.

``ckpt["planlab"]`` (format_version 1)::

    format_version: 1
    agent_name: registry name          agent_settings: the agent's settings (plain data)
    external_state: {prefix: {path, fingerprint}}   sub-modules stored by reference (frozen encoders)
    train_config: the resolved training config      run: {run_dir, run_id, git_sha, ...}
    epoch, global_step, saved_at
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planlab.errors import CheckpointError

FORMAT_VERSION = 1
STATE_PREFIX = "agent."
INDEX_FILE = "index.json"  # written beside the checkpoints: {"last": ..., "best": ..., "monitor": ...}


def _torch():
    import torch

    return torch


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint file on the CPU with ``weights_only=True``; CheckpointError naming the file otherwise."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    torch = _torch()
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling/format problem becomes one user-facing line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot load checkpoint {p} safely (weights_only=True): {first[:200]}"
        ) from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{p} is not a planlab checkpoint (top level is {type(ckpt).__name__})")
    return ckpt


def checkpoint_meta(ckpt: Mapping[str, Any], path: str | os.PathLike = "?") -> dict[str, Any]:
    """The validated ``"planlab"`` entry of a loaded checkpoint."""
    meta = ckpt.get("planlab")
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"{path} has no 'planlab' metadata: not written by planlab train")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format_version {version!r}; this planlab reads {FORMAT_VERSION}"
        )
    for key in ("agent_name", "agent_settings"):
        if key not in meta:
            raise CheckpointError(f"{path}: checkpoint metadata lacks {key!r}")
    if not isinstance(ckpt.get("state_dict"), Mapping):
        raise CheckpointError(f"{path}: checkpoint has no state_dict")
    return dict(meta)


def resolve_checkpoint(path_or_run_dir: str | os.PathLike, which: str = "best") -> Path:
    """A checkpoint file from a file path, a run directory or its ``checkpoints/`` directory.

    ``which="best"``: the best top-k checkpoint recorded in ``checkpoints/index.json`` (falls back to
    ``last.ckpt`` when no validation metric was tracked); ``which="last"``: ``last.ckpt``.
    """
    if which not in ("best", "last"):
        raise CheckpointError(f"which={which!r} is not valid; choose best or last")
    p = Path(path_or_run_dir)
    if p.is_file():
        return p
    if not p.exists():
        raise CheckpointError(f"checkpoint or run directory not found: {p}")
    ckdir = p / "checkpoints" if (p / "checkpoints").is_dir() else p
    last = ckdir / "last.ckpt"
    if which == "best":
        index = ckdir / INDEX_FILE
        if index.is_file():
            try:
                data = json.loads(index.read_text())
            except (OSError, json.JSONDecodeError):
                raise CheckpointError(f"{index} is not valid JSON") from None
            best = data.get("best")
            if best and (ckdir / Path(best).name).is_file():
                return ckdir / Path(best).name
    if last.is_file():
        return last
    found = sorted(ckdir.glob("*.ckpt"))
    if not found:
        raise CheckpointError(f"no checkpoint in {ckdir}")
    raise CheckpointError(f"{ckdir} has no last.ckpt; pass one of: {', '.join(f.name for f in found)}")


def agent_state_dict(ckpt: Mapping[str, Any]) -> dict[str, Any]:
    """The agent's own entries of a Lightning state dict (prefix ``agent.`` stripped)."""
    return {k[len(STATE_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(STATE_PREFIX)}


def load_state_into(
    agent: Any, state: Mapping[str, Any], external: Mapping[str, Any], path: Any = "?"
) -> None:
    """Load ``state`` into ``agent``: every key must match, except sub-modules recorded as external."""
    agent.check_external_state(external)
    missing, unexpected = agent.load_state_dict(dict(state), strict=False)
    missing = [k for k in missing if not any(k.startswith(pref) for pref in external)]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[0]!r}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[0]!r}")
        raise CheckpointError(f"{path} does not fit agent {agent.name()!r}: " + "; ".join(parts))


def load_agent_weights(agent: Any, path_or_run_dir: str | os.PathLike, which: str = "best") -> dict[str, Any]:
    """Load checkpoint weights into an existing agent (its name must match); returns the metadata."""
    path = resolve_checkpoint(path_or_run_dir, which)
    ckpt = read_checkpoint(path)
    meta = checkpoint_meta(ckpt, path)
    if meta["agent_name"] != agent.name():
        raise CheckpointError(f"{path} holds agent {meta['agent_name']!r}, not {agent.name()!r}")
    load_state_into(agent, agent_state_dict(ckpt), meta.get("external_state") or {}, path)
    return meta


def load_agent_from_checkpoint(
    path_or_run_dir: str | os.PathLike,
    device: str | None = None,
    which: str = "best",
) -> Any:
    """Rebuild the trained agent recorded in a checkpoint (file, run dir or ``checkpoints/``), in eval mode.

    The agent class and settings come from the checkpoint's metadata (through the registry), the weights
    from its state dict; ``device`` defaults to CUDA when available, else CPU.
    """
    from planlab.agents.registry import build_agent, get_spec

    path = resolve_checkpoint(path_or_run_dir, which)
    ckpt = read_checkpoint(path)
    meta = checkpoint_meta(ckpt, path)
    settings = dict(meta["agent_settings"])
    legacy = getattr(get_spec(meta["agent_name"]).load_class(), "legacy_settings", {})
    for key, value in legacy.items():  # a checkpoint older than the setting: its behaviour back then
        settings.setdefault(key, value)
    agent = build_agent(meta["agent_name"], config=settings)
    load_state_into(agent, agent_state_dict(ckpt), meta.get("external_state") or {}, path)
    torch = _torch()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    agent.to(device)
    agent.eval()
    agent._checkpoint_path = None  # weights are loaded; initialize() must not reload
    agent.checkpoint_meta = {k: v for k, v in meta.items() if k not in ("rng", "train_config")}
    agent.checkpoint_meta["checkpoint_path"] = str(path)
    return agent
