"""Checkpoints of ``planlab train``: what they hold and how to load an agent from one.

``load_agent_from_checkpoint(path_or_run_dir)`` is what ``planlab eval run --checkpoint`` calls: give it a
``.ckpt`` file, a run directory or its ``checkpoints/`` folder; it returns the agent in eval mode with the
trained weights (``torch.load(weights_only=True)``; metadata is plain data). The implementation lives in
:mod:`planlab.agents.checkpoint_io` so that agents can load weights without importing Lightning.
"""

from __future__ import annotations

from planlab.agents.checkpoint_io import (
    FORMAT_VERSION,
    INDEX_FILE,
    STATE_PREFIX,
    agent_state_dict,
    checkpoint_meta,
    load_agent_from_checkpoint,
    load_agent_weights,
    read_checkpoint,
    resolve_checkpoint,
)

__all__ = [
    "FORMAT_VERSION",
    "INDEX_FILE",
    "STATE_PREFIX",
    "agent_state_dict",
    "checkpoint_meta",
    "load_agent_from_checkpoint",
    "load_agent_weights",
    "read_checkpoint",
    "resolve_checkpoint",
]
