"""Planners: the ``Agent`` base with NAVSIM AbstractAgent semantics and the explicit registry.

Importing this package does not import torch: learned agents live in their own modules and are
loaded by name through :mod:`planlab.agents.registry`.
"""

from planlab.agents.base import Agent
from planlab.agents.registry import AgentSpec, build_agent, get_spec, list_agents

__all__ = ["Agent", "AgentSpec", "build_agent", "get_spec", "list_agents"]
