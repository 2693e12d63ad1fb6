"""PDM-Closed's route handling on the map API: route dicts, route correction, the centerline search.

Fact sheet §1.9 / contract §2.4, in NAVSIM v1.1's exact order of operations (these decide which
centerline the EP normaliser and the ``oncoming`` flag are measured against):

* route dicts: the frame's ``roadblock_ids`` de-duplicated in order, each resolved as a roadblock or
  else a roadblock connector; on-route lanes = their interior lanes / lane connectors;
* correction: the current roadblock among the blocks within a 1 m square (or the nearest ones), by
  nearest-baseline-vertex heading error < π/4 and displacement < 3 m, preferring on-route blocks;
  if off-route, a backward BFS (depth 15) to the route start, else a forward BFS (depth 30) to one of
  the first three route blocks; forward BFS (depth 30) fills gaps between unlinked neighbours;
  a roadblock connector overlapping an earlier one by more than 1 m² cuts the route (loop);
* centerline: Dijkstra over on-route lanes from the starting lane (cost = baseline length, start
  cost 1) to any lane of the last of the next 30 route blocks; the deepest, cheapest expanded path
  when the goal is unreachable.

The BFS keeps NAVSIM's quirks: no visited set, parents keyed by ``id_depth`` (last writer wins).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import shapely

from planlab.errors import DataError
from planlab.maps.layers import SemanticMapLayer
from planlab.maps.objects import RoadBlockConnector
from planlab.sim.pdm_closed.path import normalize_angle

HEADING_ERROR_THRESHOLD = np.pi / 4
DISPLACEMENT_ERROR_THRESHOLD = 3.0  # m
BACKWARD_SEARCH_DEPTH = 15
FORWARD_SEARCH_DEPTH = 30
CENTERLINE_SEARCH_DEPTH = 30
LOOP_OVERLAP_AREA = 1.0  # m²

_BLOCK_LAYERS = (SemanticMapLayer.ROADBLOCK, SemanticMapLayer.ROADBLOCK_CONNECTOR)


def resolve_block(map_api: Any, block_id: str) -> Any:
    """A route id as a roadblock, else a roadblock connector; None when neither exists."""
    return map_api.get_map_object(block_id, SemanticMapLayer.ROADBLOCK) or map_api.get_map_object(
        block_id, SemanticMapLayer.ROADBLOCK_CONNECTOR
    )


def load_route(map_api: Any, roadblock_ids: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(route blocks by id, on-route lanes / lane connectors by id), both in route order."""
    blocks: dict[str, Any] = {}
    lanes: dict[str, Any] = {}
    for block_id in dict.fromkeys(str(i) for i in roadblock_ids):  # de-duplicate, keep order
        block = resolve_block(map_api, block_id)
        if block is None:
            raise DataError(
                f"route roadblock id {block_id!r} is neither a roadblock nor a roadblock connector"
            )
        blocks[block.id] = block
        for lane in block.interior_edges:
            lanes[lane.id] = lane
    return blocks, lanes


def _nearest_vertex(path: np.ndarray, xy: np.ndarray) -> tuple[float, float]:
    """(displacement, heading) of the baseline vertex nearest to ``xy``."""
    d = ((path[:, :2] - xy[None, :]) ** 2.0).sum(axis=-1) ** 0.5
    i = int(np.argmin(d))
    return float(d[i]), float(path[i, 2])


def current_block_candidates(
    pose: np.ndarray, map_api: Any, route_blocks: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """(most likely current block, candidate blocks) for the rear-axle ``pose`` (x, y, heading)."""
    xy = np.asarray(pose[:2], dtype=np.float64)
    near = map_api.get_proximal_map_objects((xy[0], xy[1]), 1.0, list(_BLOCK_LAYERS))
    candidates = list(near[SemanticMapLayer.ROADBLOCK]) + list(near[SemanticMapLayer.ROADBLOCK_CONNECTOR])
    if not candidates:
        for layer in _BLOCK_LAYERS:
            block_id, _ = map_api.get_distance_to_nearest_map_object((xy[0], xy[1]), layer)
            block = None if block_id is None else map_api.get_map_object(block_id, layer)
            if block:
                candidates.append(block)
    if not candidates:
        raise DataError(f"no roadblock or roadblock connector near ({xy[0]:.2f}, {xy[1]:.2f})")

    on_route, on_route_disp, others, others_disp = [], [], [], []
    block_disp = []
    for block in candidates:
        best_disp = np.inf
        for lane in block.interior_edges:
            disp, heading = _nearest_vertex(lane.baseline_path.discrete_path, xy)
            heading_error = abs(float(normalize_angle(heading - pose[2])))
            if disp < best_disp:
                best_disp = disp
            if heading_error < HEADING_ERROR_THRESHOLD and disp < DISPLACEMENT_ERROR_THRESHOLD:
                if block.id in route_blocks:
                    on_route.append(block)
                    on_route_disp.append(disp)
                else:
                    others.append(block)
                    others_disp.append(disp)
        block_disp.append(best_disp)
    if on_route:
        return on_route[int(np.argmin(on_route_disp))], on_route
    if others:
        return others[int(np.argmin(others_disp))], others
    return candidates[int(np.argmin(block_disp))], candidates


class BlockBFS:
    """Breadth-first search over roadblocks (NAVSIM's ``BreadthFirstSearchRoadBlock``, quirks kept)."""

    def __init__(self, start_id: str, map_api: Any, forward: bool = True) -> None:
        start = resolve_block(map_api, start_id)
        if start is None:
            raise DataError(f"route search from unknown block {start_id!r}")
        self._queue: deque[Any] = deque([start, None])
        self._parent: dict[str, Any] = {}
        self._forward = forward

    def search(self, targets: str | list[str], max_depth: int) -> tuple[tuple[list[Any], list[str]], bool]:
        """((path blocks, path ids), found). The path runs start → target for a forward search."""
        target_ids = [targets] if isinstance(targets, str) else list(targets)
        start = self._queue[0]
        found = False
        end, end_depth, depth = start, 1, 1
        self._parent[f"{start.id}_{depth}"] = None
        while self._queue:
            current = self._queue.popleft()
            if depth > max_depth:
                break
            if current is None:
                depth += 1
                self._queue.append(None)
                if self._queue[0] is None:
                    break
                continue
            if current.id in target_ids and depth <= max_depth:
                end, end_depth, found = current, depth, True
                break
            neighbours = current.outgoing_edges if self._forward else current.incoming_edges
            for nxt in neighbours:
                self._queue.append(nxt)
                self._parent[f"{nxt.id}_{depth + 1}"] = current
                end, end_depth = nxt, depth + 1
        return self._path(end, end_depth), found

    def _path(self, end: Any, depth: int) -> tuple[list[Any], list[str]]:
        path, ids = [end], [end.id]
        while self._parent[f"{end.id}_{depth}"] is not None:
            end = self._parent[f"{end.id}_{depth}"]
            path.append(end)
            ids.append(end.id)
            depth -= 1
        if self._forward:
            path.reverse()
            ids.reverse()
        return path, ids


def remove_route_loops(blocks: list[Any], ids: list[str]) -> tuple[list[Any], list[str]]:
    """Cut the route at the first roadblock connector overlapping an earlier one by more than 1 m²."""
    seen: list[Any] = []
    loop_idx = None
    for idx, block in enumerate(blocks):
        if not isinstance(block, RoadBlockConnector):
            continue
        poly = block.polygon
        if seen:
            earlier = np.array(seen, dtype=object)
            cand = shapely.intersects(shapely.envelope(earlier), shapely.envelope(poly))
            areas = shapely.area(shapely.intersection(earlier[cand], poly))
            if np.any(areas > LOOP_OVERLAP_AREA):
                loop_idx = idx
                break
        seen.append(poly)
    if loop_idx:
        return blocks[:loop_idx], ids[:loop_idx]
    return blocks, ids


def correct_route(pose: np.ndarray, map_api: Any, route_blocks: dict[str, Any]) -> list[str]:
    """NAVSIM's ``route_roadblock_correction``: the corrected list of route block ids."""
    start_block, start_candidates = current_block_candidates(pose, map_api, route_blocks)
    start_ids = [b.id for b in start_candidates]
    blocks = list(route_blocks.values())
    ids = list(route_blocks.keys())

    # Fix 1: the ego starts off the route
    if start_block.id not in ids:
        (path, path_ids), found = BlockBFS(ids[0], map_api, forward=False).search(
            start_ids, BACKWARD_SEARCH_DEPTH
        )
        if found:
            blocks[:0] = path[:-1]
            ids[:0] = path_ids[:-1]
        else:
            (path, path_ids), found = BlockBFS(start_block.id, map_api, forward=True).search(
                ids[:3], FORWARD_SEARCH_DEPTH
            )
            if found:
                end_idx = int(np.argmax(np.array(ids) == path_ids[-1]))
                blocks = blocks[end_idx + 1 :]
                ids = ids[end_idx + 1 :]
                blocks[:0] = path
                ids[:0] = path_ids

    # Fix 2: link consecutive blocks that are not neighbours
    to_insert: dict[int, tuple[list[Any], list[str]]] = {}
    for i in range(len(blocks) - 1):
        incoming = [b.id for b in blocks[i + 1].incoming_edges]
        if ids[i] in incoming:
            continue
        (path, path_ids), found = BlockBFS(ids[i], map_api, forward=True).search(
            ids[i + 1], FORWARD_SEARCH_DEPTH
        )
        if found and path and len(path) >= 3:
            to_insert[i] = (path[1:-1], path_ids[1:-1])
    offset = 1
    for i, (path, path_ids) in to_insert.items():
        blocks[i + offset : i + offset] = path
        ids[i + offset : i + offset] = path_ids
        offset += len(path)

    # Fix 3: cut loops
    blocks, ids = remove_route_loops(blocks, ids)
    return ids


def dijkstra_lanes(start: Any, candidate_ids: list[str], target_block_id: str) -> tuple[list[Any], bool]:
    """NAVSIM's lane-level Dijkstra from ``start`` to any lane of ``target_block_id`` (ties: first index)."""
    queue = [start]
    parent: dict[str, Any] = {start.id: None}
    frontier = [start.id]
    dist = [1]
    depth = [1]
    expanded: list[Any] = []
    expanded_ids: list[str] = []
    expanded_dist: list[float] = []
    expanded_depth: list[int] = []
    candidates = set(candidate_ids)
    end = start
    found = False
    while queue:
        d, idx = min((val, i) for i, val in enumerate(dist))
        current = queue[idx]
        current_depth = depth[idx]
        del dist[idx], queue[idx], frontier[idx], depth[idx]
        if current.get_roadblock_id() == target_block_id:
            end, found = current, True
            break
        expanded.append(current)
        expanded_ids.append(current.id)
        expanded_dist.append(d)
        expanded_depth.append(current_depth)
        for nxt in current.outgoing_edges:
            if nxt.id not in candidates:
                continue
            alt = d + nxt.baseline_path.length
            if nxt.id not in expanded_ids and nxt.id not in frontier:
                parent[nxt.id] = current
                queue.append(nxt)
                frontier.append(nxt.id)
                dist.append(alt)
                depth.append(current_depth + 1)
                end = nxt
            elif nxt.id in frontier:
                j = frontier.index(nxt.id)
                if alt < dist[j]:
                    parent[nxt.id] = current
                    dist[j] = alt
                    depth[j] = current_depth + 1
    if not found:
        max_depth = max(expanded_depth)
        at_max = [i for i, dep in enumerate(expanded_depth) if dep == max_depth]
        _, j = min((expanded_dist[i], k) for k, i in enumerate(at_max))
        end = expanded[at_max[j]]
    path = [end]
    while parent[end.id] is not None:
        end = parent[end.id]
        path.append(end)
    path.reverse()
    return path, found


def centerline_poses(
    start_lane: Any,
    route_blocks: dict[str, Any],
    route_lanes: dict[str, Any],
    search_depth: int = CENTERLINE_SEARCH_DEPTH,
) -> np.ndarray:
    """Concatenated baseline poses ``(N, 3)`` of the Dijkstra lane path (duplicate joint vertices kept)."""
    blocks = list(route_blocks.values())
    block_ids = list(route_blocks.keys())
    start_idx = int(np.argmax(np.array(block_ids) == start_lane.get_roadblock_id()))
    window = blocks[start_idx : start_idx + search_depth]
    lanes, _ = dijkstra_lanes(start_lane, list(route_lanes.keys()), window[-1].id)
    return np.concatenate(
        [np.asarray(lane.baseline_path.discrete_path, dtype=np.float64) for lane in lanes], axis=0
    )
