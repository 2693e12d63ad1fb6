"""The embedded synthetic world: road networks, traffic, the expert ego, camera and LiDAR sensors; written via ``planlab.data`` and ``planlab.maps``."""
