"""Temporal BEV fusion and BEV perception: grid conventions, ego-motion warping, a ConvGRU, BEV backbones,
perception heads with their losses and decoders, and the perception evaluation loop.

Conventions shared by every module here (and by ``planlab.features.lidar`` / ``planlab.features.perception``):
a BEV raster is ``(..., H, W)`` in the rear-axle frame of its frame of reference, x forward, y left, metres;
**row 0 is the farthest ahead (largest x), column 0 the farthest left (largest y)**, so the raster reads like
a map with the ego driving up. :class:`~planlab.models.temporal.grid.BEVGrid` holds the extents.
"""
