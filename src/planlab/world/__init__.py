"""The embedded synthetic world: seeded towns in nuPlan map layout, traffic (IDM vehicles with right of way,
lights, merges, lane changes; pedestrians; parked cars, cones), an expert ego, and logs in the real
OpenScene/NAVSIM formats with camera and LiDAR blobs (``planlab.world.sensors``).

Entry points::

    from planlab.world.config import load_world_config
    from planlab.world.generate import generate_dataset
    generate_dataset("data/mini", load_world_config("mini"), seed=0, workers=2)   # = planlab data generate

    from planlab.world.towns import build_town              # a RoadNetwork (world coordinates, fids)
    from planlab.world.mapdata import network_to_map_data, write_network
    from planlab.world.episode import EpisodeSpec, simulate  # one log in memory (10 Hz states)
    from planlab.world.checks import check_episode           # the physical checks

Modules: ``curves`` (smooth centre lines), ``network`` (the road network types), ``builder`` (geometry from
nodes and roads), ``towns`` (the four towns), ``mapdata`` (→ GeoPackage), ``paths`` (lanes joined into a
path), ``lights`` (signal plans), ``actors``, ``traffic`` (the 10 Hz world), ``expert`` (the ego's driver),
``scenarios`` (scenario kinds and spawning), ``episode`` (one log), ``logframes`` (OpenScene frame dicts),
``checks`` (physics checks), ``config`` (presets), ``generate`` (the dataset).
"""
