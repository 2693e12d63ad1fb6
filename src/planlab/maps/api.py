"""The ``MapAPI`` protocol: what planners, the evaluator and feature builders may ask of a map.

It mirrors the part of nuPlan's ``AbstractMap`` that NAVSIM v1.1 uses (contract §1.6), plus whole-layer
array access and a precomputed lane graph for vectorised consumers. ``GPKGMap`` implements it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from planlab.maps.layers import SemanticMapLayer

if TYPE_CHECKING:
    from planlab.maps.graph import LaneGraph
    from planlab.maps.objects import MapObject


@runtime_checkable
class MapAPI(Protocol):
    """A read-only vector map of one location; ids are decimal strings of integer fids."""

    @property
    def map_name(self) -> str:
        """nuPlan's map name: the location (e.g. ``us-pa-pittsburgh-hazelwood``)."""
        ...

    @property
    def location(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def crs(self) -> str:
        """The ``meta.projectedCoordSystem`` value; all coordinates are in this frame (metres)."""
        ...

    def get_map_object(self, object_id: str, layer: SemanticMapLayer) -> MapObject | None:
        """The object with this id in ``layer``, or None when absent."""
        ...

    def get_proximal_map_objects(
        self, point: Any, radius: float, layers: list[SemanticMapLayer]
    ) -> dict[SemanticMapLayer, list[MapObject]]:
        """Per layer, objects whose geometry intersects the axis-aligned square of half-side ``radius``."""
        ...

    def get_distance_to_nearest_map_object(
        self, point: Any, layer: SemanticMapLayer
    ) -> tuple[str | None, float]:
        """(id, distance [m]) of the nearest object of ``layer``; (None, inf) for an empty layer."""
        ...

    def is_in_layer(self, point: Any, layer: SemanticMapLayer) -> bool:
        """True when some polygon of ``layer`` strictly contains the point."""
        ...

    def get_all_map_objects(self, point: Any, layer: SemanticMapLayer) -> list[MapObject]:
        """Objects of ``layer`` whose polygon contains the point, in table order."""
        ...

    def get_one_map_object(self, point: Any, layer: SemanticMapLayer) -> MapObject | None:
        """The single object containing the point (None if none; DataError if several)."""
        ...

    def layer_polygons(self, layer: SemanticMapLayer) -> tuple[list[str], np.ndarray]:
        """(ids, shapely polygons) of every object of ``layer``, aligned, in table order (cached)."""
        ...

    def points_in_layer(self, points: np.ndarray, layer: SemanticMapLayer) -> np.ndarray:
        """Vectorised ``is_in_layer`` for ``points (..., 2)``: a bool array of shape ``(...)``."""
        ...

    @property
    def lane_graph(self) -> LaneGraph:
        """Ids and edges of lanes, lane connectors, roadblocks and roadblock connectors as plain dicts."""
        ...
