"""Figure plumbing: headless (Agg) figures without pyplot's global state, and atomic PNG saving."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from planlab.atomic import atomic_path


def new_figure(width_in: float, height_in: float, dpi: int = 100) -> Figure:
    """A figure on an Agg canvas (no display, no pyplot registry: safe in workers and threads)."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int | None = None) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (a crash never leaves a half-written image there)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi or fig.dpi, facecolor=fig.get_facecolor())
    return path
