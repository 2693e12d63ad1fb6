"""nuPlan-layout GeoPackage maps: the ``MapAPI`` protocol, the reader (pyogrio + STRtree, lane graph) and the writer.

Typical use::

    from planlab.maps import SemanticMapLayer, load_map
    m = load_map(None, "us-pa-pittsburgh-hazelwood")        # $NUPLAN_MAPS_ROOT, version from the JSON
    lane = m.get_map_object("42010", SemanticMapLayer.LANE)
    near = m.get_proximal_map_objects((x, y), 100.0, [SemanticMapLayer.ROADBLOCK])

    from planlab.maps import MapData, finalize_maps_root, validate_map, write_map
    write_map(data, root, "us-pa-pittsburgh-hazelwood")     # validated, atomic, all 16 layers + meta
    finalize_maps_root(root)                                 # index JSON, .maplocks, all four locations
"""

from planlab.maps.api import MapAPI
from planlab.maps.gpkg import (
    MAPS_ROOT_ENV,
    GPKGMap,
    clear_map_cache,
    load_map,
    map_path,
    open_map,
    read_maps_index,
    resolve_maps_root,
)
from planlab.maps.graph import LaneGraph
from planlab.maps.layers import (
    DEFAULT_LOCATION_CRS,
    DEFAULT_MAP_VERSIONS,
    GPKG_LAYERS,
    MAP_INDEX_FILE,
    MAP_LOCATIONS,
    SemanticMapLayer,
    StopLineType,
)
from planlab.maps.objects import (
    BaselinePath,
    Boundary,
    CarparkArea,
    Crosswalk,
    GenericDrivableArea,
    Intersection,
    Lane,
    LaneConnector,
    MapObject,
    RoadBlock,
    RoadBlockConnector,
    RoadSegment,
    StopLine,
    Walkway,
)
from planlab.maps.records import (
    BaselinePathRecord,
    BoundaryRecord,
    CarparkAreaRecord,
    CrosswalkRecord,
    DubinsNodeRecord,
    GenericDrivableAreaRecord,
    IntersectionRecord,
    LaneConnectorPolygonRecord,
    LaneConnectorRecord,
    LaneGroupConnectorRecord,
    LaneGroupRecord,
    LaneRecord,
    MapData,
    Record,
    RoadSegmentRecord,
    StopPolygonRecord,
    TrafficLightRecord,
    WalkwayRecord,
)
from planlab.maps.table import LayerTable
from planlab.maps.validate import MapIssue, check_map, errors_of, validate_map
from planlab.maps.writer import fill_missing_locations, finalize_maps_root, write_map, write_maps_index

__all__ = [
    "BaselinePathRecord",
    "BoundaryRecord",
    "CarparkAreaRecord",
    "CrosswalkRecord",
    "DubinsNodeRecord",
    "GenericDrivableAreaRecord",
    "IntersectionRecord",
    "LaneConnectorPolygonRecord",
    "LaneConnectorRecord",
    "LaneGroupConnectorRecord",
    "LaneGroupRecord",
    "LaneRecord",
    "MapData",
    "MapIssue",
    "Record",
    "RoadSegmentRecord",
    "StopPolygonRecord",
    "TrafficLightRecord",
    "WalkwayRecord",
    "check_map",
    "errors_of",
    "fill_missing_locations",
    "finalize_maps_root",
    "validate_map",
    "write_map",
    "write_maps_index",
    "DEFAULT_LOCATION_CRS",
    "DEFAULT_MAP_VERSIONS",
    "GPKG_LAYERS",
    "MAPS_ROOT_ENV",
    "MAP_INDEX_FILE",
    "MAP_LOCATIONS",
    "BaselinePath",
    "Boundary",
    "CarparkArea",
    "Crosswalk",
    "GPKGMap",
    "GenericDrivableArea",
    "Intersection",
    "Lane",
    "LaneConnector",
    "LaneGraph",
    "LayerTable",
    "MapAPI",
    "MapObject",
    "RoadBlock",
    "RoadBlockConnector",
    "RoadSegment",
    "SemanticMapLayer",
    "StopLine",
    "StopLineType",
    "Walkway",
    "clear_map_cache",
    "load_map",
    "map_path",
    "open_map",
    "read_maps_index",
    "resolve_maps_root",
]
