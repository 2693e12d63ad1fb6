"""planlab: a research toolkit for end-to-end driving planners in the NAVSIM style.

Layers (lower never imports higher) are described in DESIGN.md; start at ``planlab.cli`` for the commands.
"""

__version__ = "0.1.0"
