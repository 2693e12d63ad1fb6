"""The generated dataset (tiny preset): every frame in the OpenScene/NAVSIM format of contract §2, routes and
traffic lights resolving in the written maps, sensor blobs in place, loadable by the data room's SceneLoader."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import shapely

from planlab.data import SceneLoader, read_log
from planlab.data.sensors import read_jpeg, read_pcd
from planlab.maps import MAP_LOCATIONS, SemanticMapLayer, load_map, validate_map
from planlab.scene import SceneFilter
from planlab.scene.enums import BOX_NAMES, CAMERA_NAMES
from planlab.world.generate import MARKER, SUMMARY

FRAME_KEYS = {
    "token",
    "timestamp",
    "log_name",
    "scene_token",
    "map_location",
    "roadblock_ids",
    "traffic_lights",
    "ego2global_translation",
    "ego2global_rotation",
    "ego_dynamic_state",
    "driving_command",
    "cams",
    "lidar_path",
    "frame_idx",
    "log_token",
    "scene_name",
    "vehicle_name",
    "can_bus",
    "lidar2ego_translation",
    "lidar2ego_rotation",
    "ego2global",
    "lidar2ego",
    "lidar2global",
    "sample_prev",
    "sample_next",
    "anns",
}
ANN_KEYS = {"gt_boxes", "gt_names", "gt_velocity_3d", "instance_tokens", "track_tokens"}
CAM_KEYS = {"data_path", "sensor2lidar_rotation", "sensor2lidar_translation", "cam_intrinsic", "distortion"}


def _is_hex16(t: str) -> bool:
    return isinstance(t, str) and len(t) == 16 and all(c in "0123456789abcdef" for c in t)


@pytest.fixture(scope="module")
def logs(tiny_dataset: Path) -> dict[str, tuple[str, list[dict]]]:
    out = {}
    for path in sorted((tiny_dataset / "navsim_logs").glob("*/*.pkl")):
        out[path.stem] = (path.parent.name, read_log(path))
    return out


def test_layout_and_summary(tiny_dataset: Path, logs):
    summary = json.loads((tiny_dataset / SUMMARY).read_text())
    assert not (tiny_dataset / MARKER).exists()
    assert summary["logs"] == len(logs) == 3
    assert set(summary["splits"]) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert (tiny_dataset / "sensor_blobs" / split).is_dir()
        assert [p.suffix for p in (tiny_dataset / "navsim_logs" / split).iterdir()] == [".pkl"]  # P15
    index = json.loads((tiny_dataset / "maps" / "nuplan-maps-v1.0.json").read_text())
    assert set(index) == set(MAP_LOCATIONS)
    for loc, entry in index.items():
        assert (tiny_dataset / "maps" / loc / entry["version"] / "map.gpkg").is_file()
    assert (tiny_dataset / "maps" / ".maplocks").is_dir()


def test_every_frame_has_the_contract_keys_and_types(tiny_dataset: Path, logs):
    all_tokens = []
    for name, (_split, frames) in logs.items():
        assert len(frames) == 20
        for k, f in enumerate(frames):
            assert FRAME_KEYS <= set(f), FRAME_KEYS - set(f)
            assert _is_hex16(f["token"])
            all_tokens.append(f["token"])
            assert f["log_name"] == name and f["frame_idx"] == k
            assert isinstance(f["timestamp"], int) and f["timestamp"] >= 0
            if k:
                assert f["timestamp"] - frames[k - 1]["timestamp"] == 500_000  # P17
                assert f["sample_prev"] == frames[k - 1]["token"]
            assert f["map_location"] in MAP_LOCATIONS
            assert f["roadblock_ids"] and all(
                isinstance(r, str) and str(int(r)) == r for r in f["roadblock_ids"]
            )
            for tl in f["traffic_lights"]:
                assert isinstance(tl, tuple) and type(tl[0]) is int and type(tl[1]) is bool  # P12
            t = np.asarray(f["ego2global_translation"])
            q = np.asarray(f["ego2global_rotation"])
            assert t.shape == (3,) and t.dtype == np.float64 and abs(t[0]) > 1e5, "UTM, float64 (P4)"
            assert q.shape == (4,) and abs(np.linalg.norm(q) - 1) < 1e-9 and q[1] == q[2] == 0.0
            assert np.asarray(f["ego_dynamic_state"]).shape == (4,)
            cmd = np.asarray(f["driving_command"])
            assert cmd.shape == (4,) and cmd.sum() == 1 and set(np.unique(cmd)) <= {0, 1}
            assert set(f["cams"]) == set(CAMERA_NAMES)
            for cam, entry in f["cams"].items():
                assert set(entry) == CAM_KEYS
                assert entry["data_path"] == f"{name}/{cam}/{f['token']}.jpg"
                assert np.asarray(entry["cam_intrinsic"]).shape == (3, 3)
                assert np.asarray(entry["sensor2lidar_rotation"]).shape == (3, 3)
            assert f["lidar_path"] == f"{name}/MergedPointCloud/{f['token']}.pcd"
            assert np.array_equal(f["lidar2ego"], np.eye(4))
            assert np.asarray(f["can_bus"]).shape == (18,)
            anns = f["anns"]
            assert set(anns) == ANN_KEYS
            n = len(anns["track_tokens"])
            assert np.asarray(anns["gt_boxes"]).shape == (n, 7)
            assert np.asarray(anns["gt_velocity_3d"]).shape == (n, 3)
            assert len(anns["gt_names"]) == len(anns["instance_tokens"]) == n
            assert set(map(str, anns["gt_names"])) <= set(BOX_NAMES)  # never "ego" (P14)
            assert len(set(anns["track_tokens"])) == n
            assert all(_is_hex16(tok) and "red_light" not in tok for tok in anns["track_tokens"])
            if n:
                assert np.hypot(*np.asarray(anns["gt_boxes"])[:, :2].T).max() <= 100.0 + 1e-6
    assert len(set(all_tokens)) == len(all_tokens), "tokens are unique across the dataset"


def test_boxes_are_in_the_ego_frame_and_tracks_are_stable(logs):
    for _split, frames in logs.values():
        seen: dict[str, str] = {}
        for f in frames:
            x, y = f["ego2global_translation"][:2]
            q = f["ego2global_rotation"]
            yaw = 2.0 * math.atan2(q[3], q[0])
            anns = f["anns"]
            for tok, name, box in zip(anns["track_tokens"], anns["gt_names"], anns["gt_boxes"], strict=True):
                seen.setdefault(tok, str(name))
                assert seen[tok] == str(name), "a track keeps its class"
                assert -math.pi <= box[6] <= math.pi
            # a box's global position is ego + R(yaw)·(x, y) and lies within 100 m
            if len(anns["gt_boxes"]):
                b = np.asarray(anns["gt_boxes"])
                gx = x + math.cos(yaw) * b[:, 0] - math.sin(yaw) * b[:, 1]
                assert np.all(np.isfinite(gx))


def test_routes_and_lights_resolve_in_the_written_maps(tiny_dataset: Path, logs):
    maps_root = tiny_dataset / "maps"
    for _name, (_split, frames) in logs.items():
        gmap = load_map(maps_root, frames[0]["map_location"])
        route = frames[0]["roadblock_ids"]
        objs = []
        for rid in route:
            obj = gmap.get_map_object(rid, SemanticMapLayer.ROADBLOCK) or gmap.get_map_object(
                rid, SemanticMapLayer.ROADBLOCK_CONNECTOR
            )
            assert obj is not None, f"route id {rid} does not resolve"
            objs.append(obj)
        # ordered and linked: roadblock -> connector -> roadblock (P18)
        for a, b in zip(objs[:-1], objs[1:], strict=True):
            assert b.id in {e.id for e in a.outgoing_edges}
        # never the same junction twice
        junctions = [o.intersection.id for o in objs[1::2]]
        assert len(junctions) == len(set(junctions))
        # every light id is a lane connector of the map
        for f in frames:
            for cid, _red in f["traffic_lights"]:
                assert gmap.get_map_object(str(cid), SemanticMapLayer.LANE_CONNECTOR) is not None
        # the route reaches >= 100 m beyond the last frame (contract P18, fact sheet §1.9)
        last = np.asarray(frames[-1]["ego2global_translation"][:2])
        lanes = [e for o in objs for e in o.interior_edges]
        pts = np.concatenate([np.asarray(e.baseline_path.polyline.points) for e in lanes])
        d = np.hypot(*(pts - last).T)
        assert d.min() < 2.5, "the last pose lies on the route's lanes"
        # walk the route's blocks after the one holding the last pose
        holder = max(i for i, o in enumerate(objs) if o.polygon.distance(shapely.Point(*last)) < 1.0)
        remaining = sum(
            min(e.baseline_path.polyline.length for e in o.interior_edges) for o in objs[holder + 1 :]
        )
        assert remaining >= 100.0, f"route ends {remaining:.0f} m after the last frame"


def test_maps_validate(tiny_dataset: Path):
    for loc in MAP_LOCATIONS:
        path = next((tiny_dataset / "maps" / loc).glob("*/map.gpkg"))
        assert [str(i) for i in validate_map(path) if i.severity == "error"] == []


def test_sensor_blobs_exist_and_decode(tiny_dataset: Path, logs):
    for name, (split, frames) in logs.items():
        blob = tiny_dataset / "sensor_blobs" / split
        f = frames[len(frames) // 2]
        img = read_jpeg(blob / f["cams"]["CAM_F0"]["data_path"])
        assert img.shape == (90, 160, 3) and img.dtype == np.uint8
        cloud = read_pcd(blob / f["lidar_path"])
        assert cloud.shape[0] == 6 and cloud.shape[1] > 1000
        for cam in CAMERA_NAMES:
            assert (blob / f["cams"][cam]["data_path"]).is_file()
        assert (blob / f["lidar_path"]).is_file()
        assert len(list((blob / name / "CAM_B0").iterdir())) == len(frames)


def test_pickles_are_portable(tiny_dataset: Path):
    for path in (tiny_dataset / "navsim_logs").glob("*/*.pkl"):
        data = path.read_bytes()
        assert b"_core" not in data  # numpy 1.x can read them (P1)
        assert isinstance(pickle.loads(data), list)


def test_scene_loader_reads_every_split(tiny_dataset: Path):
    summary = json.loads((tiny_dataset / SUMMARY).read_text())
    for split in ("train", "val", "test"):
        loader = SceneLoader(tiny_dataset, split, SceneFilter(frame_interval=1))
        assert len(loader) == summary["splits"][split]["scenes"] == 7
        scene = loader.get_scene_from_token(loader.tokens[0])
        traj = scene.get_future_trajectory(8)
        assert traj.poses.shape == (8, 3)
        assert 0.0 <= traj.poses[-1, 0] < 4.0 * 26.0  # 4 s ahead, forward, at most highway speed
        ai = loader.get_agent_input_from_token(loader.tokens[-1])
        assert len(ai.ego_statuses) == 4
