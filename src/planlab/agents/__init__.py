"""Planners: the ``Agent`` base with NAVSIM AbstractAgent semantics and the explicit registry."""
