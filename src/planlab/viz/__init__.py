"""Pictures (matplotlib on the Agg canvas, no pyplot state): scene BEV, camera grid, scene figures.

Modules: ``figures`` (``new_figure``, atomic ``save_figure``), ``bev`` (``plot_bev`` and its layers: map,
route, traffic lights, agents, ego, trajectories), ``cameras`` (``plot_camera_grid``, ``project_boxes``),
``scene`` (``scene_figure``, ``save_scene_figure``, ``visualize_token`` behind ``planlab data viz``).
Import the module you need; this package imports nothing heavy itself.
"""
