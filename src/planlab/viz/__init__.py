"""Pictures: BEV and camera figures, learning curves, report plots (matplotlib, Agg backend)."""
