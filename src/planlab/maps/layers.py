"""Names of things in a nuPlan map: semantic layers, their GeoPackage tables, locations and versions.

Everything here is a constant of the nuPlan v1.2 map format (format contract §1.1, §1.5; fact sheet §4).
"""

from __future__ import annotations

from enum import IntEnum

# fact sheet §4 / contract §1.1: nuPlan's maps DB loops over exactly these four names; a log's
# ``map_location`` must be one of them (pitfall P16).
MAP_LOCATIONS: tuple[str, ...] = (
    "sg-one-north",
    "us-ma-boston",
    "us-nv-las-vegas-strip",
    "us-pa-pittsburgh-hazelwood",
)

# Versions of the real nuPlan maps (contract §1.1); used for locations that have no map of their own.
DEFAULT_MAP_VERSIONS: dict[str, str] = {
    "sg-one-north": "9.17.1964",
    "us-ma-boston": "9.12.1817",
    "us-nv-las-vegas-strip": "9.15.1915",
    "us-pa-pittsburgh-hazelwood": "9.17.1937",
}

# The projected CRS of each real location (contract §1.2, third-party reading; lower-case EPSG strings).
DEFAULT_LOCATION_CRS: dict[str, str] = {
    "sg-one-north": "epsg:32648",
    "us-ma-boston": "epsg:32619",
    "us-nv-las-vegas-strip": "epsg:32611",
    "us-pa-pittsburgh-hazelwood": "epsg:32617",
}

# NAVSIM v1.1 hard-codes this map version string; the JSON index is ``<root>/<MAP_INDEX_NAME>.json``.
MAP_INDEX_NAME = "nuplan-maps-v1.0"
MAP_INDEX_FILE = f"{MAP_INDEX_NAME}.json"
MAP_FILE_NAME = "map.gpkg"
MAPLOCKS_DIR = ".maplocks"


class SemanticMapLayer(IntEnum):
    """nuPlan's semantic map layers (same names and integer values), plus two planlab extras.

    ``GENERIC_DRIVABLE_AREAS`` and ``ROAD_SEGMENTS`` are not nuPlan semantic layers (nuPlan reads them only
    inside the virtual ``DRIVABLE_AREA``); planlab exposes them so tools can query every stored table.
    """

    LANE = 0
    INTERSECTION = 1
    STOP_LINE = 2
    TURN_STOP = 3
    CROSSWALK = 4
    DRIVABLE_AREA = 5
    YIELD = 6
    TRAFFIC_LIGHT = 7
    STOP_SIGN = 8
    EXTENDED_PUDO = 9
    SPEED_BUMP = 10
    LANE_CONNECTOR = 11
    BASELINE_PATHS = 12
    BOUNDARIES = 13
    WALKWAYS = 14
    CARPARK_AREA = 15
    PUDO = 16
    ROADBLOCK = 17
    ROADBLOCK_CONNECTOR = 18
    # planlab extras (not in nuPlan's enum)
    GENERIC_DRIVABLE_AREAS = 100
    ROAD_SEGMENTS = 101


class StopLineType(IntEnum):
    """``stop_polygons.stop_polygon_type_fid`` values (nuPlan ``StopLineType``; contract §1.5)."""

    PED_CROSSING = 0
    STOP_SIGN = 1
    TRAFFIC_LIGHT = 2
    TURN_STOP = 3
    YIELD = 4
    UNKNOWN = 5


# GeoPackage table names.
LANES = "lanes_polygons"
LANE_GROUPS = "lane_groups_polygons"
LANE_CONNECTORS = "lane_connectors"
LANE_GROUP_CONNECTORS = "lane_group_connectors"
LANE_CONNECTOR_POLYGONS = "gen_lane_connectors_scaled_width_polygons"
BASELINE_PATHS = "baseline_paths"
BOUNDARIES = "boundaries"
INTERSECTIONS = "intersections"
STOP_POLYGONS = "stop_polygons"
CROSSWALKS = "crosswalks"
WALKWAYS = "walkways"
CARPARK_AREAS = "carpark_areas"
GENERIC_DRIVABLE_AREAS = "generic_drivable_areas"
ROAD_SEGMENTS = "road_segments"
TRAFFIC_LIGHTS = "traffic_lights"
DUBINS_NODES = "dubins_nodes"
META = "meta"

# Semantic layer -> the GeoPackage table whose rows are that layer's objects (contract §1.5).
# LANE_CONNECTOR objects are rows of ``lane_connectors``; their polygons live in
# ``gen_lane_connectors_scaled_width_polygons``. DRIVABLE_AREA is virtual (see DRIVABLE_AREA_LAYERS).
LAYER_TABLES: dict[SemanticMapLayer, str] = {
    SemanticMapLayer.LANE: LANES,
    SemanticMapLayer.ROADBLOCK: LANE_GROUPS,
    SemanticMapLayer.INTERSECTION: INTERSECTIONS,
    SemanticMapLayer.STOP_LINE: STOP_POLYGONS,
    SemanticMapLayer.TURN_STOP: STOP_POLYGONS,
    SemanticMapLayer.CROSSWALK: CROSSWALKS,
    SemanticMapLayer.LANE_CONNECTOR: LANE_CONNECTORS,
    SemanticMapLayer.ROADBLOCK_CONNECTOR: LANE_GROUP_CONNECTORS,
    SemanticMapLayer.BASELINE_PATHS: BASELINE_PATHS,
    SemanticMapLayer.BOUNDARIES: BOUNDARIES,
    SemanticMapLayer.WALKWAYS: WALKWAYS,
    SemanticMapLayer.CARPARK_AREA: CARPARK_AREAS,
    SemanticMapLayer.GENERIC_DRIVABLE_AREAS: GENERIC_DRIVABLE_AREAS,
    SemanticMapLayer.ROAD_SEGMENTS: ROAD_SEGMENTS,
}

# contract §1.2: the virtual DRIVABLE_AREA layer concatenates these tables, in this order.
DRIVABLE_AREA_LAYERS: tuple[str, ...] = (ROAD_SEGMENTS, INTERSECTIONS, GENERIC_DRIVABLE_AREAS, CARPARK_AREAS)

# The 16 feature tables of a real map.gpkg (fact sheet §4), in the order planlab writes them.
GPKG_LAYERS: tuple[str, ...] = (
    LANE_GROUPS,
    LANES,
    LANE_GROUP_CONNECTORS,
    LANE_CONNECTORS,
    LANE_CONNECTOR_POLYGONS,
    BASELINE_PATHS,
    BOUNDARIES,
    INTERSECTIONS,
    STOP_POLYGONS,
    CROSSWALKS,
    WALKWAYS,
    CARPARK_AREAS,
    GENERIC_DRIVABLE_AREAS,
    ROAD_SEGMENTS,
    TRAFFIC_LIGHTS,
    DUBINS_NODES,
)

# contract §1.2: building any lane / connector / roadblock object makes nuPlan load these; they MUST exist.
REQUIRED_LAYERS: tuple[str, ...] = (
    LANES,
    LANE_CONNECTORS,
    BASELINE_PATHS,
    BOUNDARIES,
    STOP_POLYGONS,
    LANE_CONNECTOR_POLYGONS,
    LANE_GROUPS,
    LANE_GROUP_CONNECTORS,
    INTERSECTIONS,
)

# contract §1.6 / P9: ``get_distance_to_nearest_map_object`` raises on an empty layer and the lane graph
# needs rows, so these tables MUST have at least one feature.
NON_EMPTY_LAYERS: tuple[str, ...] = (
    LANES,
    LANE_CONNECTORS,
    BASELINE_PATHS,
    LANE_CONNECTOR_POLYGONS,
    LANE_GROUPS,
    LANE_GROUP_CONNECTORS,
)

# Layers whose objects ``get_map_object`` / ``get_proximal_map_objects`` may return (nuPlan's list,
# contract §1.6, plus the planlab extras and the two polyline tables).
QUERYABLE_LAYERS: frozenset[SemanticMapLayer] = frozenset(
    {
        SemanticMapLayer.LANE,
        SemanticMapLayer.LANE_CONNECTOR,
        SemanticMapLayer.ROADBLOCK,
        SemanticMapLayer.ROADBLOCK_CONNECTOR,
        SemanticMapLayer.STOP_LINE,
        SemanticMapLayer.CROSSWALK,
        SemanticMapLayer.INTERSECTION,
        SemanticMapLayer.WALKWAYS,
        SemanticMapLayer.CARPARK_AREA,
        SemanticMapLayer.GENERIC_DRIVABLE_AREAS,
        SemanticMapLayer.ROAD_SEGMENTS,
        SemanticMapLayer.BOUNDARIES,
        SemanticMapLayer.BASELINE_PATHS,
    }
)


def table_of(layer: SemanticMapLayer) -> str:
    """The GeoPackage table holding ``layer``'s objects (ValueError for layers with no table)."""
    try:
        return LAYER_TABLES[SemanticMapLayer(layer)]
    except KeyError:
        raise ValueError(f"semantic layer {SemanticMapLayer(layer).name} has no GeoPackage table") from None
