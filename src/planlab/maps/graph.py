"""The lane graph of a map as plain dicts of id strings, built in one pass over the foreign-key columns.

Route search (Dijkstra over lanes, BFS over roadblocks) and on-route masks want ids and edges, not map
objects; this gives them the same edges as the object API (contract §1.6, P8) without building objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from planlab.maps.table import LayerTable


@dataclass(frozen=True)
class LaneGraph:
    """Edges between lanes and lane connectors, and between roadblocks and roadblock connectors.

    Every lane and lane connector id is a key of ``successors``, ``predecessors``, ``parent`` and
    ``length``; every roadblock and roadblock connector id is a key of ``block_successors``,
    ``block_predecessors`` and ``interior``. Lists keep table row order.
    """

    lane_ids: tuple[str, ...]
    connector_ids: tuple[str, ...]
    roadblock_ids: tuple[str, ...]
    roadblock_connector_ids: tuple[str, ...]
    # lane -> connectors leaving it; connector -> [its entry lane]
    successors: dict[str, tuple[str, ...]]
    # lane -> connectors entering it; connector -> [its exit lane]
    predecessors: dict[str, tuple[str, ...]]
    # lane -> roadblock id; connector -> roadblock-connector id
    parent: dict[str, str]
    # lane / connector -> baseline length [m]
    length: dict[str, float]
    # roadblock -> roadblock connectors leaving it; roadblock connector -> [to roadblock]
    block_successors: dict[str, tuple[str, ...]]
    # roadblock -> roadblock connectors entering it; roadblock connector -> [from roadblock]
    block_predecessors: dict[str, tuple[str, ...]]
    # roadblock -> its lanes; roadblock connector -> its lane connectors
    interior: dict[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lanes", frozenset(self.lane_ids))
        object.__setattr__(self, "_connectors", frozenset(self.connector_ids))
        object.__setattr__(self, "_roadblocks", frozenset(self.roadblock_ids))
        object.__setattr__(self, "_roadblock_connectors", frozenset(self.roadblock_connector_ids))

    def is_lane(self, object_id: str) -> bool:
        return object_id in self._lanes  # type: ignore[attr-defined]

    def is_lane_connector(self, object_id: str) -> bool:
        return object_id in self._connectors  # type: ignore[attr-defined]

    def is_roadblock(self, object_id: str) -> bool:
        return object_id in self._roadblocks  # type: ignore[attr-defined]

    def is_roadblock_connector(self, object_id: str) -> bool:
        return object_id in self._roadblock_connectors  # type: ignore[attr-defined]


def _fk_ids(table: LayerTable, column: str) -> list[str | None]:
    values, valid = table.int_column(column)
    return [str(int(v)) if ok else None for v, ok in zip(values.tolist(), valid.tolist(), strict=True)]


def _group(keys: list[str | None], values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in zip(keys, values, strict=True):
        if k is not None:
            out.setdefault(k, []).append(v)
    return out


def build_lane_graph(
    lanes: LayerTable,
    connectors: LayerTable,
    roadblocks: LayerTable,
    roadblock_connectors: LayerTable,
    baselines: LayerTable,
) -> LaneGraph:
    """Build the :class:`LaneGraph` from the five tables (dangling or null keys are simply dropped)."""
    lane_ids = lanes.ids
    conn_ids = connectors.ids
    rb_ids = roadblocks.ids
    rbc_ids = roadblock_connectors.ids

    exit_lane = _fk_ids(connectors, "exit_lane_fid")
    entry_lane = _fk_ids(connectors, "entry_lane_fid")
    lane_set = set(lane_ids)
    out_of_lane = _group(exit_lane, conn_ids)
    into_lane = _group(entry_lane, conn_ids)

    successors: dict[str, tuple[str, ...]] = {lid: tuple(out_of_lane.get(lid, ())) for lid in lane_ids}
    predecessors: dict[str, tuple[str, ...]] = {lid: tuple(into_lane.get(lid, ())) for lid in lane_ids}
    for cid, ex, en in zip(conn_ids, exit_lane, entry_lane, strict=True):
        successors[cid] = (en,) if en in lane_set else ()
        predecessors[cid] = (ex,) if ex in lane_set else ()

    parent: dict[str, str] = {}
    for lid, rb in zip(lane_ids, _fk_ids(lanes, "lane_group_fid"), strict=True):
        if rb is not None:
            parent[lid] = rb
    for cid, rbc in zip(conn_ids, _fk_ids(connectors, "lane_group_connector_fid"), strict=True):
        if rbc is not None:
            parent[cid] = rbc

    # Baseline lengths: one row per lane / connector (P7); the first match wins if the map breaks P7.
    length: dict[str, float] = {}
    if len(baselines):
        lens = shapely.length(baselines.geometries)
        for column in ("lane_fid", "lane_connector_fid"):
            if not baselines.has_column(column):
                continue
            values, valid = baselines.int_column(column)
            for row in np.flatnonzero(valid).tolist():
                length.setdefault(str(int(values[row])), float(lens[row]))

    from_rb = _fk_ids(roadblock_connectors, "from_lane_group_fid")
    to_rb = _fk_ids(roadblock_connectors, "to_lane_group_fid")
    rb_set = set(rb_ids)
    out_of_rb = _group(from_rb, rbc_ids)
    into_rb = _group(to_rb, rbc_ids)
    block_successors: dict[str, tuple[str, ...]] = {r: tuple(out_of_rb.get(r, ())) for r in rb_ids}
    block_predecessors: dict[str, tuple[str, ...]] = {r: tuple(into_rb.get(r, ())) for r in rb_ids}
    for cid, fr, to in zip(rbc_ids, from_rb, to_rb, strict=True):
        block_successors[cid] = (to,) if to in rb_set else ()
        block_predecessors[cid] = (fr,) if fr in rb_set else ()

    lanes_of = _group([parent.get(lid) for lid in lane_ids], list(lane_ids))
    conns_of = _group([parent.get(cid) for cid in conn_ids], list(conn_ids))
    interior: dict[str, tuple[str, ...]] = {r: tuple(lanes_of.get(r, ())) for r in rb_ids}
    interior.update({c: tuple(conns_of.get(c, ())) for c in rbc_ids})

    return LaneGraph(
        lane_ids=tuple(lane_ids),
        connector_ids=tuple(conn_ids),
        roadblock_ids=tuple(rb_ids),
        roadblock_connector_ids=tuple(rbc_ids),
        successors=successors,
        predecessors=predecessors,
        parent=parent,
        length=length,
        block_successors=block_successors,
        block_predecessors=block_predecessors,
        interior=interior,
    )
