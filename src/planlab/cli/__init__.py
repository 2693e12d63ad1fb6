"""The front door: one Typer app; each command parses, calls one library function and prints with rich.

No logic lives here, and nothing heavy (torch, lightning) is imported at module level, so that
``planlab --help`` and ``planlab eval ...`` start fast.
"""
