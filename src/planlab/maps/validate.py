"""``validate_map``: the reader-side conformance checks of contract §3 on a map file, map or ``MapData``.

Errors are what makes nuPlan / NAVSIM crash or score silently wrong (a MUST of the contract); warnings
are SHOULDs (drift from real data or from some consumer). Each issue names the rule (P5 … P12) it checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import shapely

from planlab.errors import DataError
from planlab.maps import layers as L
from planlab.maps.gpkg import GPKGMap, _same_crs, open_map
from planlab.maps.layers import GPKG_LAYERS, NON_EMPTY_LAYERS, REQUIRED_LAYERS, StopLineType
from planlab.maps.records import MapData
from planlab.maps.table import LayerTable, parse_id

Severity = Literal["error", "warning"]

POLYGON_LAYERS = (
    L.LANE_GROUPS,
    L.LANES,
    L.LANE_GROUP_CONNECTORS,
    L.LANE_CONNECTOR_POLYGONS,
    L.INTERSECTIONS,
    L.STOP_POLYGONS,
    L.CROSSWALKS,
    L.WALKWAYS,
    L.CARPARK_AREAS,
    L.GENERIC_DRIVABLE_AREAS,
    L.ROAD_SEGMENTS,
)


@dataclass(frozen=True)
class MapIssue:
    """One finding: severity, table, fid (None for table-level findings), rule and a one-line message."""

    severity: Severity
    layer: str
    fid: int | None
    message: str
    rule: str = ""

    def __str__(self) -> str:
        where = self.layer + (f" fid {self.fid}" if self.fid is not None else "")
        rule = f" [{self.rule}]" if self.rule else ""
        return f"{self.severity}: {where}: {self.message}{rule}"


def errors_of(issues: Iterable[MapIssue]) -> list[MapIssue]:
    """The error-level issues."""
    return [i for i in issues if i.severity == "error"]


def check_map(source: str | os.PathLike | GPKGMap | MapData, **kwargs: float) -> list[MapIssue]:
    """:func:`validate_map`, raising DataError (first issues, count) when there is any error."""
    issues = validate_map(source, **kwargs)
    errors = errors_of(issues)
    if errors:
        shown = "; ".join(str(i) for i in errors[:3])
        raise DataError(f"map has {len(errors)} error(s): {shown}")
    return issues


# Precision grid [m] of the polygon overlays (0.1 mm, the world writer's coordinate grid): far below
# area_tol, far above floating-point noise.
OVERLAY_GRID = 1e-4


def _difference(grid: float | None, a: object, b: object) -> object:
    return shapely.difference(a, b, grid_size=grid)


def _intersection(grid: float | None, a: object, b: object) -> object:
    return shapely.intersection(a, b, grid_size=grid)


def _union_all(grid: float | None, geoms: object) -> object:
    return shapely.union_all(geoms, grid_size=grid)


def validate_map(
    source: str | os.PathLike | GPKGMap | MapData,
    *,
    crs: str = "epsg:32617",
    endpoint_tol: float = 0.1,
    max_vertex_spacing: float = 1.0,
    area_tol: float = 0.01,
    grid_size: float | None = OVERLAY_GRID,
) -> list[MapIssue]:
    """All conformance issues of a map (empty list = conformant).

    ``source``: a map.gpkg path, an open :class:`GPKGMap`, or a :class:`MapData` (validated in memory,
    as the writer would store it; ``crs`` is used only then). Tolerances: ``endpoint_tol`` [m] for
    connector/lane baseline joins (P8), ``max_vertex_spacing`` [m] for baselines (P10), ``area_tol`` [m²]
    for coverage, tiling and overlap (P11). Polygon overlays run on a ``grid_size`` [m] precision grid
    (GEOS snap-rounding: robust to floating-point noise, no slivers from edges that match to 1e-9 m; None
    for full floating precision).
    """
    if isinstance(source, MapData):
        gmap = GPKGMap.from_map_data(source, crs)
    elif isinstance(source, GPKGMap):
        gmap = source
    else:
        try:
            gmap = open_map(source)
        except DataError as exc:
            return [MapIssue("error", "", None, str(exc), "open")]
    v = _Validator(gmap, endpoint_tol, max_vertex_spacing * (1.0 + 1e-6), area_tol, grid_size)
    v.run()
    return v.issues


class _Validator:
    def __init__(
        self, gmap: GPKGMap, endpoint_tol: float, max_spacing: float, area_tol: float, grid: float | None
    ) -> None:
        self.m = gmap
        self.grid = grid
        self.endpoint_tol = endpoint_tol
        self.max_spacing = max_spacing
        self.area_tol = area_tol
        self.issues: list[MapIssue] = []
        self.t: dict[str, LayerTable] = {}

    def add(self, severity: Severity, layer: str, fid: int | None, message: str, rule: str) -> None:
        self.issues.append(MapIssue(severity, layer, None if fid is None else int(fid), message, rule))

    # ---- driver -------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.check_layers()
        if not all(name in self.t for name in REQUIRED_LAYERS):
            return  # the lane graph cannot be checked without its tables
        self.check_fids()
        self.check_geometry()
        self.check_lanes()
        self.check_roadblock_connectors()
        self.check_connectors()
        self.check_connector_polygons()
        self.check_baselines()
        self.check_stop_polygons()
        self.check_coverage()

    # ---- tables -------------------------------------------------------------------------------------------
    def check_layers(self) -> None:
        crs = self.m.crs
        for name in GPKG_LAYERS:
            if not self.m.has_layer(name):
                if name in REQUIRED_LAYERS:
                    self.add("error", name, None, "required layer is missing (nuPlan loads it)", "P9")
                else:
                    self.add("warning", name, None, "layer of the real map layout is missing", "P9")
                continue
            try:
                table = self.m.table(name)
            except DataError as exc:
                self.add("error", name, None, str(exc), "P4")
                continue
            self.t[name] = table
            if table.stored_crs is not None and not _same_crs(table.stored_crs, crs):
                self.add(
                    "warning", name, None, f"stored in {table.stored_crs!r}, not the meta CRS {crs!r}", "P4"
                )
            if name in NON_EMPTY_LAYERS and len(table) == 0:
                self.add(
                    "error", name, None, "layer is empty (the lane graph / nearest queries need rows)", "P9"
                )

    # ---- P5 -----------------------------------------------------------------------------------------------
    def check_fids(self) -> None:
        owner: dict[int, str] = {}
        for name, table in self.t.items():
            fids = table.fids
            for fid in fids[fids < 1].tolist():
                self.add("error", name, fid, "fid is not a positive integer", "P5")
            uniq, counts = np.unique(fids, return_counts=True)
            for fid in uniq[counts > 1].tolist():
                self.add("error", name, fid, "fid is not unique within the layer", "P5")
            for fid in uniq.tolist():
                if fid in owner:
                    pair = {owner[fid], name}
                    if pair in ({L.LANES, L.LANE_CONNECTORS}, {L.LANE_GROUPS, L.LANE_GROUP_CONNECTORS}):
                        self.add(
                            "error",
                            name,
                            fid,
                            f"fid is also used in {owner[fid]} (these must be disjoint)",
                            "P5",
                        )
                    else:
                        self.add(
                            "warning",
                            name,
                            fid,
                            f"fid is also used in {owner[fid]} (not globally unique)",
                            "P5",
                        )
                else:
                    owner[fid] = name

    # ---- P10 ----------------------------------------------------------------------------------------------
    def check_geometry(self) -> None:
        for name in POLYGON_LAYERS:
            table = self.t.get(name)
            if table is None:
                continue
            for row, g in enumerate(table.geometries):
                fid = int(table.fids[row])
                if g is None or g.is_empty:
                    self.add("error", name, fid, "null or empty geometry", "P10")
                    continue
                if g.geom_type != "Polygon":
                    self.add("error", name, fid, f"geometry is a {g.geom_type}, not a single Polygon", "P10")
                    continue
                if not g.is_valid:
                    self.add("error", name, fid, f"invalid polygon: {shapely.is_valid_reason(g)}", "P10")
                if g.has_z:
                    self.add("warning", name, fid, "polygon has Z coordinates", "P10")
        for name, severity in (
            (L.BASELINE_PATHS, "error"),
            (L.BOUNDARIES, "warning"),
            (L.LANE_CONNECTORS, "warning"),
        ):
            table = self.t.get(name)
            if table is None:
                continue
            for row, g in enumerate(table.geometries):
                fid = int(table.fids[row])
                if g is None or g.is_empty:
                    self.add("error", name, fid, "null or empty geometry", "P10")
                    continue
                if g.geom_type != "LineString":
                    self.add(severity, name, fid, f"geometry is a {g.geom_type}, not a LineString", "P10")  # type: ignore[arg-type]
                    continue
                xy = shapely.get_coordinates(g)
                step = np.hypot(*np.diff(xy, axis=0).T)
                if g.length <= 0.0:
                    self.add("error", name, fid, "line has zero length", "P10")
                elif (step == 0.0).any():
                    self.add(
                        severity, name, fid, f"{int((step == 0).sum())} duplicate consecutive vertices", "P10"
                    )  # type: ignore[arg-type]
                if name == L.BASELINE_PATHS and len(step) and step.max() > self.max_spacing:
                    self.add(
                        "warning",
                        name,
                        fid,
                        f"vertex spacing up to {step.max():.2f} m (> {self.max_spacing:.2f} m)",
                        "P10",
                    )

    # ---- foreign keys (P6) ----------------------------------------------------------------------------------
    def _fk(
        self, name: str, column: str, target: str | None, *, severity: Severity = "error", rule: str = "P6"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Check an integer FK column: present, integer-typed, non-null, resolvable in ``target``."""
        table = self.t[name]
        if not table.has_column(column):
            self.add(severity, name, None, f"column {column!r} is missing", rule)
            return np.zeros(len(table), np.int64), np.zeros(len(table), bool)
        raw = table.column(column)
        values, valid = table.int_column(column)
        for row in np.flatnonzero(~valid).tolist():
            self.add(severity, name, int(table.fids[row]), f"{column} is null", rule)
        if valid.all() and raw.dtype.kind not in "iu":
            self.add(severity, name, None, f"{column} is stored as {raw.dtype}, not integer", rule)
        if target is not None and target in self.t:
            tgt = self.t[target]
            for row in np.flatnonzero(valid).tolist():
                if tgt.row(int(values[row])) is None:
                    self.add(
                        severity,
                        name,
                        int(table.fids[row]),
                        f"{column} {int(values[row])} is not a {target} fid",
                        rule,
                    )
        return values, valid

    def check_lanes(self) -> None:
        lanes = self.t[L.LANES]
        if not lanes.has_column("lane_fid"):
            self.add("error", L.LANES, None, "column 'lane_fid' is missing", "P6")
        else:
            values, valid = lanes.int_column("lane_fid")
            for row in np.flatnonzero(~valid | (values != lanes.fids)).tolist():
                self.add("error", L.LANES, int(lanes.fids[row]), "lane_fid differs from fid", "P6")
        groups, ok = self._fk(L.LANES, "lane_group_fid", L.LANE_GROUPS)
        if lanes.has_column("lane_index"):
            idx, idx_ok = lanes.int_column("lane_index")
            seen: dict[tuple[int, int], int] = {}
            for row in np.flatnonzero(ok & idx_ok).tolist():
                key = (int(groups[row]), int(idx[row]))
                if key in seen:
                    self.add(
                        "warning",
                        L.LANES,
                        int(lanes.fids[row]),
                        f"lane_index {key[1]} repeats lane {seen[key]}",
                        "P6",
                    )
                seen[key] = int(lanes.fids[row])
        else:
            self.add("warning", L.LANES, None, "column 'lane_index' is missing", "P6")
        self._speed_limits(L.LANES)

    def _speed_limits(self, name: str) -> None:
        table = self.t[name]
        if not table.has_column("speed_limit_mps"):
            return
        v = np.asarray(table.column("speed_limit_mps"), dtype=np.float64)
        for row in np.flatnonzero(np.isinf(v) | (v < 0)).tolist():
            self.add("warning", name, int(table.fids[row]), f"speed_limit_mps {v[row]} is not a speed", "P6")

    def check_roadblock_connectors(self) -> None:
        self._fk(L.LANE_GROUP_CONNECTORS, "from_lane_group_fid", L.LANE_GROUPS)
        self._fk(L.LANE_GROUP_CONNECTORS, "to_lane_group_fid", L.LANE_GROUPS)
        self._fk(L.LANE_GROUP_CONNECTORS, "intersection_fid", L.INTERSECTIONS, severity="warning")

    def check_connectors(self) -> None:
        lc = self.t[L.LANE_CONNECTORS]
        ex, ex_ok = self._fk(L.LANE_CONNECTORS, "exit_lane_fid", L.LANES)
        en, en_ok = self._fk(L.LANE_CONNECTORS, "entry_lane_fid", L.LANES)
        par, par_ok = self._fk(L.LANE_CONNECTORS, "lane_group_connector_fid", L.LANE_GROUP_CONNECTORS)
        self._speed_limits(L.LANE_CONNECTORS)
        lanes = self.t[L.LANES]
        rbc = self.t[L.LANE_GROUP_CONNECTORS]

        def group_of(lane_fid: int) -> int | None:
            row = lanes.row(lane_fid)
            if row is None or not lanes.has_column("lane_group_fid"):
                return None
            v = lanes.fk_id("lane_group_fid", row)
            return None if v is None else int(v)

        def rbc_fk(row: int, column: str) -> int | None:
            if not rbc.has_column(column):
                return None
            v = rbc.fk_id(column, row)
            return None if v is None else int(v)

        for row in range(len(lc)):
            fid = int(lc.fids[row])
            if not (ex_ok[row] and en_ok[row] and par_ok[row]):
                continue
            prow = rbc.row(int(par[row]))
            if prow is None:
                continue
            # P8: the parent roadblock connector goes from the exit lane's group to the entry lane's group.
            g_ex, g_en = group_of(int(ex[row])), group_of(int(en[row]))
            frm, to = rbc_fk(prow, "from_lane_group_fid"), rbc_fk(prow, "to_lane_group_fid")
            if g_ex is not None and frm is not None and g_ex != frm:
                self.add(
                    "error", L.LANE_CONNECTORS, fid,
                    f"exit lane {int(ex[row])} is in lane group {g_ex}, but its roadblock connector "
                    f"{int(par[row])} comes from {frm}", "P8",
                )  # fmt: skip
            if g_en is not None and to is not None and g_en != to:
                self.add(
                    "error", L.LANE_CONNECTORS, fid,
                    f"entry lane {int(en[row])} is in lane group {g_en}, but its roadblock connector "
                    f"{int(par[row])} goes to {to}", "P8",
                )  # fmt: skip
            for column, expected in (("exit_lane_group_fid", g_ex), ("entry_lane_group_fid", g_en)):
                if lc.has_column(column) and expected is not None:
                    v = lc.fk_id(column, row)
                    if v is not None and int(v) != expected:
                        self.add(
                            "warning", L.LANE_CONNECTORS, fid, f"{column} {v} != lane group {expected}", "P6"
                        )
        self._stop_line_fids()

    def _stop_line_fids(self) -> None:
        lc = self.t[L.LANE_CONNECTORS]
        column = "traffic_light_stop_line_fids"
        if not lc.has_column(column):
            self.add("error", L.LANE_CONNECTORS, None, f"column {column!r} is missing", "P12")
            return
        stops = self.t.get(L.STOP_POLYGONS)
        for row, text in enumerate(lc.column(column)):
            fid = int(lc.fids[row])
            if not isinstance(text, str):
                self.add(
                    "error",
                    L.LANE_CONNECTORS,
                    fid,
                    f"{column} is {text!r}, not a string ('' when none)",
                    "P12",
                )
                continue
            for part in [p for p in text.replace(" ", "").split(",") if p]:
                sid = parse_id(part)
                if sid is None:
                    self.add(
                        "error",
                        L.LANE_CONNECTORS,
                        fid,
                        f"{column} entry {part!r} is not an integer fid",
                        "P12",
                    )
                elif stops is not None and stops.row(sid) is None:
                    self.add(
                        "error",
                        L.LANE_CONNECTORS,
                        fid,
                        f"{column} entry {sid} is not a stop_polygons fid",
                        "P12",
                    )

    def check_connector_polygons(self) -> None:
        gen = self.t[L.LANE_CONNECTOR_POLYGONS]
        values, valid = self._fk(L.LANE_CONNECTOR_POLYGONS, "lane_connector_fid", L.LANE_CONNECTORS)
        counts: dict[int, int] = {}
        for v in values[valid].tolist():
            counts[v] = counts.get(v, 0) + 1
        for fid in self.t[L.LANE_CONNECTORS].fids.tolist():
            n = counts.get(fid, 0)
            if n != 1:
                self.add(
                    "error", L.LANE_CONNECTORS, fid, f"{n} rows in {gen.name} (exactly one needed)", "P7"
                )

    def check_baselines(self) -> None:
        bp = self.t[L.BASELINE_PATHS]
        lanes, conns = self.t[L.LANES], self.t[L.LANE_CONNECTORS]
        cols = {}
        for column, target in (("lane_fid", lanes), ("lane_connector_fid", conns)):
            if bp.has_column(column):
                cols[column] = bp.int_column(column)
            else:
                self.add("error", L.BASELINE_PATHS, None, f"column {column!r} is missing", "P7")
                cols[column] = (np.zeros(len(bp), np.int64), np.zeros(len(bp), bool))
            values, valid = cols[column]
            for row in np.flatnonzero(valid).tolist():
                if target.row(int(values[row])) is None:
                    self.add(
                        "error",
                        L.BASELINE_PATHS,
                        int(bp.fids[row]),
                        f"{column} {int(values[row])} is not a {target.name} fid",
                        "P7",
                    )
        (lv, lok), (cv, cok) = cols["lane_fid"], cols["lane_connector_fid"]
        for row in np.flatnonzero(lok == cok).tolist():
            what = (
                "both lane_fid and lane_connector_fid"
                if lok[row]
                else "neither lane_fid nor lane_connector_fid"
            )
            self.add("warning", L.BASELINE_PATHS, int(bp.fids[row]), f"row has {what}", "P7")
        for table, (values, valid) in ((lanes, (lv, lok)), (conns, (cv, cok))):
            counts: dict[int, int] = {}
            for v in values[valid].tolist():
                counts[v] = counts.get(v, 0) + 1
            for fid in table.fids.tolist():
                n = counts.get(fid, 0)
                if n != 1:
                    self.add("error", table.name, fid, f"{n} baseline paths (exactly one needed)", "P7")
        self._baseline_joins(lv, lok, cv, cok)

    def _baseline_joins(self, lv: np.ndarray, lok: np.ndarray, cv: np.ndarray, cok: np.ndarray) -> None:
        """P8: a connector's baseline starts where its exit lane's ends and ends where its entry lane starts."""
        bp = self.t[L.BASELINE_PATHS]
        lc = self.t[L.LANE_CONNECTORS]

        def ends(values: np.ndarray, valid: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
            out = {}
            for row in np.flatnonzero(valid).tolist():
                g = bp.geometries[row]
                if g is not None and g.geom_type == "LineString" and not g.is_empty:
                    xy = shapely.get_coordinates(g)
                    out.setdefault(int(values[row]), (xy[0], xy[-1]))
            return out

        lane_ends, conn_ends = ends(lv, lok), ends(cv, cok)
        if not (lc.has_column("exit_lane_fid") and lc.has_column("entry_lane_fid")):
            return
        ex, ex_ok = lc.int_column("exit_lane_fid")
        en, en_ok = lc.int_column("entry_lane_fid")
        for row in range(len(lc)):
            fid = int(lc.fids[row])
            if fid not in conn_ends:
                continue
            start, end = conn_ends[fid]
            if ex_ok[row] and int(ex[row]) in lane_ends:
                gap = float(np.hypot(*(start - lane_ends[int(ex[row])][1])))
                if gap > self.endpoint_tol:
                    self.add(
                        "error", L.LANE_CONNECTORS, fid,
                        f"baseline starts {gap:.2f} m from the end of exit lane {int(ex[row])}", "P8",
                    )  # fmt: skip
            if en_ok[row] and int(en[row]) in lane_ends:
                gap = float(np.hypot(*(end - lane_ends[int(en[row])][0])))
                if gap > self.endpoint_tol:
                    self.add(
                        "error", L.LANE_CONNECTORS, fid,
                        f"baseline ends {gap:.2f} m from the start of entry lane {int(en[row])}", "P8",
                    )  # fmt: skip

    def check_stop_polygons(self) -> None:
        stops = self.t[L.STOP_POLYGONS]
        if not stops.has_column("stop_polygon_type_fid"):
            self.add("warning", L.STOP_POLYGONS, None, "column 'stop_polygon_type_fid' is missing", "P12")
            return
        values, valid = stops.int_column("stop_polygon_type_fid")
        known = {int(t) for t in StopLineType}
        for row in range(len(stops)):
            if not valid[row] or int(values[row]) not in known:
                self.add(
                    "warning",
                    L.STOP_POLYGONS,
                    int(stops.fids[row]),
                    "stop_polygon_type_fid is not 0..5",
                    "P12",
                )

    # ---- P11 ----------------------------------------------------------------------------------------------
    def _polys(self, name: str) -> tuple[LayerTable, np.ndarray]:
        """Table and a mask of rows holding a valid Polygon (others were reported by check_geometry)."""
        table = self.t[name]
        ok = np.array(
            [g is not None and g.geom_type == "Polygon" and g.is_valid for g in table.geometries], bool
        )
        return table, ok

    def check_coverage(self) -> None:
        drivable = [self._polys(n) for n in (L.LANE_GROUPS, L.INTERSECTIONS, L.CARPARK_AREAS) if n in self.t]
        d_geoms = (
            np.concatenate([t.geometries[ok] for t, ok in drivable]) if drivable else np.zeros(0, object)
        )
        tree = shapely.STRtree(d_geoms)

        def outside(g: object) -> float:
            near = d_geoms[tree.query(g, predicate="intersects")]
            if len(near) == 0:
                return float(g.area)  # type: ignore[attr-defined]
            return float(_difference(self.grid, g, _union_all(self.grid, near)).area)

        lanes, lane_ok = self._polys(L.LANES)
        gen, gen_ok = self._polys(L.LANE_CONNECTOR_POLYGONS)
        for table, ok in ((lanes, lane_ok), (gen, gen_ok)):
            for row in np.flatnonzero(ok).tolist():
                area = outside(table.geometries[row])
                if area > self.area_tol:
                    self.add(
                        "error", table.name, int(table.fids[row]),
                        f"{area:.3f} m² lies outside lane groups ∪ intersections ∪ car parks (DAC)", "P11",
                    )  # fmt: skip
        self._connectors_in_intersections(gen, gen_ok)
        self._lanes_tile_groups(lanes, lane_ok)
        self._groups_disjoint()

    def _connectors_in_intersections(self, gen: LayerTable, gen_ok: np.ndarray) -> None:
        lc, rbc = self.t[L.LANE_CONNECTORS], self.t[L.LANE_GROUP_CONNECTORS]
        inter = self.t[L.INTERSECTIONS]
        if not (gen.has_column("lane_connector_fid") and lc.has_column("lane_group_connector_fid")):
            return
        conn_fid, conn_ok = gen.int_column("lane_connector_fid")
        for row in np.flatnonzero(gen_ok & conn_ok).tolist():
            crow = lc.row(int(conn_fid[row]))
            parent = None if crow is None else lc.fk_id("lane_group_connector_fid", crow)
            prow = None if parent is None else rbc.row(int(parent))
            if prow is None:
                continue
            poly = gen.geometries[row]
            junction = rbc.fk_id("intersection_fid", prow) if rbc.has_column("intersection_fid") else None
            irow = None if junction is None else inter.row(int(junction))
            if irow is not None:
                jg = inter.geometries[irow]
                if jg is not None and jg.geom_type == "Polygon" and jg.is_valid:
                    area = float(_difference(self.grid, poly, jg).area)
                    if area > self.area_tol:
                        self.add(
                            "error", L.LANE_CONNECTOR_POLYGONS, int(gen.fids[row]),
                            f"connector {int(conn_fid[row])} pokes {area:.3f} m² out of intersection {junction}", "P11",
                        )  # fmt: skip
            pg = rbc.geometries[prow]
            if pg is not None and pg.geom_type == "Polygon" and pg.is_valid:
                area = float(_difference(self.grid, poly, pg).area)
                if area > self.area_tol:
                    self.add(
                        "warning", L.LANE_CONNECTOR_POLYGONS, int(gen.fids[row]),
                        f"connector {int(conn_fid[row])} has {area:.3f} m² outside its roadblock connector {parent}",
                        "P11",
                    )  # fmt: skip

    def _lanes_tile_groups(self, lanes: LayerTable, lane_ok: np.ndarray) -> None:
        groups, group_ok = self._polys(L.LANE_GROUPS)
        if not lanes.has_column("lane_group_fid"):
            return
        gv, gvalid = lanes.int_column("lane_group_fid")
        members: dict[int, list[int]] = {}
        for row in np.flatnonzero(lane_ok & gvalid).tolist():
            members.setdefault(int(gv[row]), []).append(row)
        for grow in np.flatnonzero(group_ok).tolist():
            gfid = int(groups.fids[grow])
            rows = members.get(gfid, [])
            if not rows:
                self.add("warning", L.LANE_GROUPS, gfid, "lane group has no lanes", "P11")
                continue
            polys = lanes.geometries[rows]
            for i in range(len(rows)):
                for j in range(i):
                    area = float(_intersection(self.grid, polys[i], polys[j]).area)
                    if area > self.area_tol:
                        self.add(
                            "error", L.LANES, int(lanes.fids[rows[i]]),
                            f"overlaps lane {int(lanes.fids[rows[j]])} of the same group by {area:.3f} m²", "P11",
                        )  # fmt: skip
            gap = float(_difference(self.grid, groups.geometries[grow], _union_all(self.grid, polys)).area)
            if gap > self.area_tol:
                self.add(
                    "warning",
                    L.LANE_GROUPS,
                    gfid,
                    f"{gap:.3f} m² of the lane group is not covered by its lanes",
                    "P11",
                )
            for row in rows:
                out = float(_difference(self.grid, lanes.geometries[row], groups.geometries[grow]).area)
                if out > self.area_tol:
                    self.add(
                        "warning",
                        L.LANES,
                        int(lanes.fids[row]),
                        f"{out:.3f} m² lies outside its lane group {gfid}",
                        "P11",
                    )

    def _groups_disjoint(self) -> None:
        groups, ok = self._polys(L.LANE_GROUPS)
        rows = np.flatnonzero(ok)
        geoms = groups.geometries[rows]
        if len(geoms) < 2:
            return
        a, b = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        for i, j in zip(a.tolist(), b.tolist(), strict=True):
            if j >= i:
                continue
            area = float(_intersection(self.grid, geoms[i], geoms[j]).area)
            if area > self.area_tol:
                self.add(
                    "error", L.LANE_GROUPS, int(groups.fids[rows[i]]),
                    f"overlaps lane group {int(groups.fids[rows[j]])} by {area:.3f} m²", "P11",
                )  # fmt: skip
