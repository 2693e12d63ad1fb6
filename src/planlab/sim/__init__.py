"""Motion: trajectory resampling, kinematic bicycle, batched LQR tracker, IDM, the PDM-Closed reference planner."""
