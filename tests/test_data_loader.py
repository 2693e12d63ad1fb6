"""SceneLoader on the NAVSIM calibration logs and on a hand-built log in the exact real OpenScene layout."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from planlab.data.loader import SceneLoader, scene_windows
from planlab.data.logs import read_log, write_log
from planlab.data.manifest import build_manifest
from planlab.data.sensors import write_jpeg, write_pcd
from planlab.errors import DataError
from planlab.scene import CAMERA_NAMES, Camera, Lidar, SceneFilter, SensorConfig

# --------------------------------------------------------------------------------------------------------
# Calibration set (NAVSIM v1.1's own data and numbers)

CALIB_TOKENS = """
3f7ab572500ee6d5 1eb6316b5c5ab172 db943659b6c760ec c2b5e6604a376ab9 9b2054ee936c1fed 7bd111e02fe3c4a2 ad20146a46a38e0e
f04ee12b6b32d799 5c9ffffe086cecf6 57a908df1857a47a f24e447c59879eb1 1293b42ec2b03250 d289e1db427be5a0 af28055b818356b3
89941511a61816c0 67161fb8332bbbe6 1fc0e824951fd548 2215e08d487f3cbf b6d5de634d9e0d12 6cdfcda2b0fd2f10 529c1618f3bb4f16
b057a739df8e6811 7e5cdcce078df1cd b85c03d721af9768 576428878cd821b6 370d9f2fc252150d 67840d428c626ad2 1dcebfc86bad0965
92c3e9231a63f3d3 070325bdf5dedf12 2da41a1fd1b031e4 57280a0496326772 89827f48cae6846e b31245f2513e2d43 172b3c09f0cadf8a
765c81ed18c6b663 5b2fe958ad294f8d 2445180766b5c4d6 d1b37d2e827a53d6 3f58334482b33ee3 505d9e2a20d285c0 ab6fef13b14536aa
""".split()

CALIB_FILTER = SceneFilter(num_history_frames=4, num_future_frames=10, frame_interval=1, has_route=True)


@pytest.fixture(scope="module")
def calib_loader(calib_root) -> SceneLoader:
    return SceneLoader(calib_root, "calib", CALIB_FILTER, load_maps=False)


def test_calibration_tokens(calib_loader):
    assert calib_loader.tokens == CALIB_TOKENS  # README order: logs sorted, frames 3 … n-11
    assert len(calib_loader) == 42 and calib_loader.split == "calib"
    assert len(calib_loader.logs) == 5
    per_log = calib_loader.get_tokens_list_per_log()
    assert [len(v) for v in per_log.values()] == [7, 9, 8, 9, 9]


def test_calibration_human_family_is_the_logged_future(calib_loader, calib_root):
    human = json.loads((calib_root / "trajectories" / "human.json").read_text())
    assert set(human) == set(CALIB_TOKENS)
    for token in CALIB_TOKENS:
        scene = calib_loader.get_scene_from_token(token)
        assert scene.scene_metadata.initial_token == token
        ours = scene.get_future_trajectory(8).poses.astype(np.float32)
        expected = np.asarray(human[token], dtype=np.float32)
        # NAVSIM rounds its float64 result to float32: allow one float32 ulp
        np.testing.assert_array_less(np.abs(ours - expected), np.spacing(np.abs(expected)) * 1.01 + 1e-12)


def test_calibration_scene_contents(calib_loader):
    scene = calib_loader.get_scene_from_token("db943659b6c760ec")  # calib_01 frame 5 is the 3rd token
    assert len(scene.frames) == 14
    assert scene.scene_metadata.map_name == "us-pa-pittsburgh-hazelwood"
    assert scene.scene_metadata.log_name == "calib_01_scurve_free"
    tl = scene.current_frame.traffic_lights
    assert tl[-1] == (44008, True) and all(type(i) is int and type(r) is bool for i, r in tl)
    assert scene.current_frame.roadblock_ids == ["41006"]
    first = calib_loader.get_scene_from_token("3f7ab572500ee6d5")
    assert first.frames[0].annotations.boxes.shape == (0, 7)  # `[]` in the calibration log
    assert first.frames[0].annotations.velocity_3d.shape == (0, 3)
    # no sensors requested: nothing loaded
    assert first.frames[3].cameras.cam_f0.image is None and first.frames[3].lidar.lidar_pc is None


def test_calibration_sensors_and_agent_input(calib_root):
    config = SensorConfig(cam_f0=[3], cam_l0=[3], cam_r0=[3], lidar_pc=[3])
    loader = SceneLoader(calib_root, "calib", CALIB_FILTER, config, load_maps=False)
    ai = loader.get_agent_input_from_token(CALIB_TOKENS[0])
    assert len(ai.ego_statuses) == 4
    np.testing.assert_array_equal(ai.ego_statuses[-1].ego_pose, [0.0, 0.0, 0.0])
    cams = ai.cameras[3]
    assert cams.cam_f0.image.shape == (27, 48, 3) and cams.cam_f0.image.dtype == np.uint8
    assert cams.cam_f0.intrinsics.shape == (3, 3) and cams.cam_f0.sensor2lidar_rotation.shape == (3, 3)
    assert cams.cam_b0 == Camera() and ai.cameras[2].cam_f0 == Camera()
    assert ai.lidars[3].lidar_pc.shape[0] == 6 and ai.lidars[0] == Lidar()
    assert str(cams.cam_f0.camera_path).endswith(f"calib_01_scurve_free/CAM_F0/{CALIB_TOKENS[0]}.jpg")


def test_manifest_matches_build_manifest(calib_loader, calib_root):
    files = sorted((calib_root / "navsim_logs" / "calib").glob("*.pkl"))
    m = build_manifest("calib", files)
    assert calib_loader.manifest().hash == m.hash
    assert m.num_tokens == 107 and len(m.logs) == 5


# --------------------------------------------------------------------------------------------------------
# A hand-built log that follows the real OpenScene key layout (format contract §2.3), built with numpy


def _hex(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("0123456789abcdef"), 16))


def _quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _pose_matrix(x: float, y: float, z: float, yaw: float) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = [[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]]
    m[:3, 3] = [x, y, z]
    return m


def make_real_style_log(
    log_name: str, n: int, seed: int = 0, no_route: tuple[int, ...] = ()
) -> tuple[list[dict], dict]:
    """Frames with every key of contract §2.3 as numpy arrays (like real OpenScene), plus ground truth."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.5
    # a left-curving drive at ~10 m/s around a UTM-like origin, yaw from 2.9 rad through ±π
    yaw = 2.9 + 0.08 * t + 0.01 * t**2
    speed = 10.0 + 0.3 * np.sin(t)
    x = 664123.25 + np.cumsum(np.r_[0.0, (speed[:-1] * 0.5) * np.cos(yaw[:-1])])
    y = 3997456.75 + np.cumsum(np.r_[0.0, (speed[:-1] * 0.5) * np.sin(yaw[:-1])])
    tokens = [_hex(rng) for _ in range(n)]
    scene_token = _hex(rng)
    track = [_hex(rng) for _ in range(3)]
    intr = np.array([[1545.0, 0.0, 960.0], [0.0, 1545.0, 560.0], [0.0, 0.0, 1.0]])
    frames = []
    for i in range(n):
        cams = {}
        for k, cam in enumerate(CAMERA_NAMES):
            a = np.deg2rad(45.0 * k)
            rot = np.array([[np.sin(a), 0.0, np.cos(a)], [-np.cos(a), 0.0, np.sin(a)], [0.0, -1.0, 0.0]])
            cams[cam] = {
                "data_path": f"{log_name}/{cam}/{tokens[i]}.jpg",
                "sensor2lidar_rotation": rot,
                "sensor2lidar_translation": np.array([1.5 * np.cos(a), 1.5 * np.sin(a), 1.6]),
                "cam_intrinsic": intr.copy(),
                "distortion": np.array([-0.35, 0.12, 0.0, 0.0, -0.02]),
            }
        nb = 3 if i % 4 else 0  # some frames without objects
        boxes = np.column_stack(
            [rng.uniform(-30, 30, (nb, 3)), np.tile([4.5, 1.9, 1.6], (nb, 1)), rng.uniform(-3, 3, (nb, 1))]
        )
        ego2global = _pose_matrix(x[i], y[i], 0.0, yaw[i])
        frames.append(
            {
                "token": tokens[i],
                "frame_idx": i,
                "timestamp": 1_630_000_000_000_000 + i * 500_000,
                "log_name": log_name,
                "log_token": "f" * 16,
                "scene_name": f"{log_name}-scene",
                "scene_token": scene_token,
                "map_location": "us-nv-las-vegas-strip",
                "roadblock_ids": [] if i in no_route else ["1001", "1002", "1003"],
                "vehicle_name": "hand-built",
                "can_bus": np.r_[
                    x[i], y[i], 0.0, _quat(yaw[i]), 0.2, 0.0, 0.0, speed[i], 0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.0
                ],
                "lidar_path": f"{log_name}/MergedPointCloud/{tokens[i]}.pcd",
                "lidar2ego_translation": np.zeros(3),
                "lidar2ego_rotation": np.array([1.0, 0.0, 0.0, 0.0]),
                "ego2global_translation": np.array([x[i], y[i], 0.0]),
                "ego2global_rotation": _quat(yaw[i]),
                "ego_dynamic_state": np.array([speed[i], 0.05, 0.2, -0.1]),
                "traffic_lights": [(np.int64(2001), np.bool_(i % 2 == 0)), (2002, False)],
                "driving_command": np.array([1, 0, 0, 0]),
                "cams": cams,
                "sample_prev": tokens[i - 1] if i else None,
                "sample_next": tokens[i + 1] if i + 1 < n else None,
                "ego2global": ego2global,
                "lidar2ego": np.eye(4),
                "lidar2global": ego2global.copy(),
                "anns": {
                    "gt_boxes": boxes,
                    "gt_names": np.array(["vehicle", "pedestrian", "traffic_cone"][:nb]),
                    "gt_velocity_3d": rng.normal(0, 3, (nb, 3)),
                    "instance_tokens": [_hex(rng) for _ in range(nb)],
                    "track_tokens": track[:nb],
                },
            }
        )
    truth = {"x": x, "y": y, "yaw": yaw, "speed": speed, "tokens": tokens}
    return frames, truth


def _write_blobs(blob_root: Path, frames: list[dict]) -> None:
    rng = np.random.default_rng(1)
    for f in frames:
        for cam in CAMERA_NAMES:
            img = np.full((18, 32, 3), rng.integers(0, 255), np.uint8)
            write_jpeg(blob_root / f["cams"][cam]["data_path"], img)
        write_pcd(blob_root / f["lidar_path"], rng.normal(0, 5, (6, 40)).astype(np.float32))


@pytest.fixture
def real_style_root(tmp_path) -> tuple[Path, dict]:
    """Root with split 'mini': one log pickled like OpenScene (plain pickle, numpy arrays), one via write_log."""
    frames_a, truth_a = make_real_style_log(
        "2021.06.07.12.54.00_veh-35_01008_01518", 16, seed=1, no_route=(4,)
    )
    frames_b, truth_b = make_real_style_log("2021.06.08.14.35.24_veh-26_00005_00427", 15, seed=2)
    logs = tmp_path / "navsim_logs" / "mini"
    logs.mkdir(parents=True)
    (logs / f"{frames_a[0]['log_name']}.pkl").write_bytes(
        pickle.dumps(frames_a, protocol=pickle.HIGHEST_PROTOCOL)
    )
    write_log(frames_b, logs / f"{frames_b[0]['log_name']}.pkl")
    _write_blobs(tmp_path / "sensor_blobs" / "mini", frames_a + frames_b)
    return tmp_path, {"a": (frames_a, truth_a), "b": (frames_b, truth_b)}


def _expected_relative(truth: dict, origin: int, idx: list[int]) -> np.ndarray:
    """Poses of frames ``idx`` in the rear-axle frame of frame ``origin``, from the generating yaw."""
    c, s = np.cos(truth["yaw"][origin]), np.sin(truth["yaw"][origin])
    rot_t = np.array([[c, s], [-s, c]])  # R(yaw)^T
    d = np.stack([truth["x"][idx] - truth["x"][origin], truth["y"][idx] - truth["y"][origin]])
    local = (rot_t @ d).T
    heading = np.angle(np.exp(1j * (truth["yaw"][idx] - truth["yaw"][origin])))
    return np.column_stack([local, heading])


def test_real_style_windows_and_route_filter(real_style_root):
    root, data = real_style_root
    loader = SceneLoader(root, "mini", SceneFilter(frame_interval=1), load_maps=False)
    ta, tb = data["a"][1]["tokens"], data["b"][1]["tokens"]
    # log a: 16 frames -> windows start 0, 1, 2 (current frames 3, 4, 5); frame 4 has no route
    # log b: 15 frames -> windows start 0, 1 (current frames 3, 4). Logs in sorted name order.
    assert loader.tokens == [ta[3], ta[5], tb[3], tb[4]]
    no_filter = SceneLoader(root, "mini", SceneFilter(frame_interval=1, has_route=False), load_maps=False)
    assert no_filter.tokens == [ta[3], ta[4], ta[5], tb[3], tb[4]]
    # frame_interval None: non-overlapping windows of 14 frames -> only the first window of each log
    assert SceneLoader(root, "mini", SceneFilter(), load_maps=False).tokens == [ta[3], tb[3]]
    assert SceneLoader(root, "mini", SceneFilter(frame_interval=1, max_scenes=3), load_maps=False).tokens == [
        ta[3],
        ta[5],
        tb[3],
    ]
    only_b = SceneLoader(root, "mini", SceneFilter(frame_interval=1, log_names=[data["b"][0][0]["log_name"]]))
    assert only_b.tokens == [tb[3], tb[4]] and only_b.logs == [data["b"][0][0]["log_name"]]
    picked = SceneLoader(
        root, "mini", SceneFilter(frame_interval=1, tokens=[tb[4], ta[5], "nope"]), load_maps=False
    )
    assert picked.tokens == [ta[5], tb[4]]
    short = SceneFilter(num_history_frames=2, num_future_frames=3, frame_interval=4)
    # starts 0, 4, 8 (start 12 needs frames 12..16 of 16: too short); current = start + 1
    assert [t for t, _ in scene_windows(data["a"][0], short)] == [ta[1], ta[5], ta[9]]


@pytest.mark.parametrize("which", ["a", "b"])
def test_real_style_agent_input_and_future_are_relative_se2(real_style_root, which):
    root, data = real_style_root
    frames, truth = data[which]
    loader = SceneLoader(root, "mini", SceneFilter(frame_interval=1), load_maps=False)
    token = truth["tokens"][3]
    ai = loader.get_agent_input_from_token(token)
    poses = np.stack([s.ego_pose for s in ai.ego_statuses])
    np.testing.assert_allclose(poses, _expected_relative(truth, 3, [0, 1, 2, 3]), atol=2e-5, rtol=0)
    assert poses[0, 0] < -10.0 and abs(poses[0, 2]) > 0.1  # history behind and rotated: a real test
    np.testing.assert_allclose(ai.ego_statuses[1].ego_velocity, [truth["speed"][1], 0.05], rtol=1e-6)
    np.testing.assert_allclose(ai.ego_statuses[1].ego_acceleration, [0.2, -0.1], rtol=1e-6)
    np.testing.assert_array_equal(ai.ego_statuses[3].driving_command, [1, 0, 0, 0])

    scene = loader.get_scene_from_token(token)
    fut = scene.get_future_trajectory(8).poses
    np.testing.assert_allclose(fut, _expected_relative(truth, 3, list(range(4, 12))), atol=1e-8, rtol=0)
    hist = scene.get_history_trajectory().poses
    np.testing.assert_allclose(hist, _expected_relative(truth, 3, [0, 1, 2, 3]), atol=1e-8, rtol=0)
    # global frame pose = translation[:2] + yaw of the (w, x, y, z) quaternion
    g = scene.frames[5].ego_status.ego_pose
    np.testing.assert_allclose(
        g, [truth["x"][5], truth["y"][5], np.angle(np.exp(1j * truth["yaw"][5]))], atol=1e-9
    )
    assert scene.frames[5].ego_status.in_global_frame
    # annotations, arrays or empty; traffic lights as (int, bool)
    f5 = frames[5]["anns"]
    np.testing.assert_array_equal(scene.frames[5].annotations.boxes, f5["gt_boxes"])
    assert scene.frames[5].annotations.names == list(f5["gt_names"])
    assert scene.frames[4].annotations.boxes.shape == (0, 7)
    assert scene.frames[3].traffic_lights == [(2001, False), (2002, False)]
    assert all(type(i) is int and type(r) is bool for i, r in scene.frames[3].traffic_lights)
    meta = loader.get_scene_metadata(token)
    assert (
        meta.initial_token == token
        and meta.num_future_frames == 10
        and meta.map_name == "us-nv-las-vegas-strip"
    )
    window = loader.get_frame_dicts(token)
    assert [f["token"] for f in window] == truth["tokens"][:14]


def test_agent_input_never_reads_future_blobs(real_style_root):
    root, data = real_style_root
    frames, truth = data["b"]
    token = truth["tokens"][3]
    blobs = root / "sensor_blobs" / "mini"
    for f in frames[4:]:  # delete every blob of the future frames
        for cam in CAMERA_NAMES:
            (blobs / f["cams"][cam]["data_path"]).unlink()
        (blobs / f["lidar_path"]).unlink()
    loader = SceneLoader(
        root, "mini", SceneFilter(frame_interval=1), SensorConfig.build_all_sensors(), load_maps=False
    )
    ai = loader.get_agent_input_from_token(token)
    assert all(c.image is not None for cams in ai.cameras for _, c in cams.items())
    assert all(lid.lidar_pc is not None and lid.lidar_pc.shape == (6, 40) for lid in ai.lidars)
    # a Scene with all sensors (NAVSIM: every window index) does need the future blobs
    with pytest.raises(DataError) as info:
        loader.get_scene_from_token(token)
    assert frames[4]["token"] in str(info.value) and "not found" in str(info.value)
    # history-only sensors make the Scene loadable, future frames empty
    scene = loader.get_scene_from_token(token, SensorConfig.build_all_sensors(include=[0, 1, 2, 3]))
    assert scene.frames[3].cameras.cam_l2.image is not None and scene.frames[4].cameras.cam_l2 == Camera()


def test_missing_history_blob_names_file_and_token(real_style_root):
    root, data = real_style_root
    frames, truth = data["a"]
    missing = root / "sensor_blobs" / "mini" / frames[2]["cams"]["CAM_F0"]["data_path"]
    missing.unlink()
    loader = SceneLoader(
        root, "mini", SceneFilter(frame_interval=1), SensorConfig(cam_f0=True), load_maps=False
    )
    with pytest.raises(DataError) as info:
        loader.get_agent_input_from_token(truth["tokens"][3])
    msg = str(info.value)
    assert str(missing) in msg and frames[2]["token"] in msg and "\n" not in msg
    # not requested at that index -> not touched
    ok = loader.get_agent_input_from_token(truth["tokens"][3], SensorConfig(cam_f0=[3]))
    assert ok.cameras[3].cam_f0.image is not None


def test_written_log_is_portable_and_reads_back(real_style_root):
    root, data = real_style_root
    frames, _ = data["b"]
    path = root / "navsim_logs" / "mini" / f"{frames[0]['log_name']}.pkl"
    assert b"_core" not in path.read_bytes()
    back = read_log(path)
    np.testing.assert_array_equal(back[7]["ego2global"], frames[7]["ego2global"])
    assert back[7]["traffic_lights"][0] == (2001, False) and type(back[7]["traffic_lights"][0][1]) is bool


def test_write_log_rejects_contract_violations(tmp_path):
    frames, _ = make_real_style_log("log_x", 5)
    with pytest.raises(DataError, match="file stem"):
        write_log(frames, tmp_path / "other_name.pkl")
    bad = [dict(f) for f in frames]
    bad[3]["timestamp"] = bad[2]["timestamp"]
    with pytest.raises(DataError, match="does not increase"):
        write_log(bad, tmp_path / "log_x.pkl")
    bad = [dict(f) for f in frames]
    bad[2]["token"] = bad[1]["token"]
    with pytest.raises(DataError, match="twice"):
        write_log(bad, tmp_path / "log_x.pkl")
    bad = [dict(f) for f in frames]
    bad[1]["anns"] = dict(bad[1]["anns"], gt_names=np.array(["vehicle", "ego", "barrier"]))
    with pytest.raises(DataError, match="ego"):
        write_log(bad, tmp_path / "log_x.pkl")
    bad = [dict(f) for f in frames]
    bad[0]["cams"] = {k: v for k, v in bad[0]["cams"].items() if k != "CAM_B0"}
    with pytest.raises(DataError, match="CAM_B0"):
        write_log(bad, tmp_path / "log_x.pkl")
    assert not (tmp_path / "log_x.pkl").exists()


def test_loader_errors(real_style_root, tmp_path):
    root, _ = real_style_root
    loader = SceneLoader(root, "mini", SceneFilter(frame_interval=1), load_maps=False)
    with pytest.raises(DataError, match="deadbeef"):
        loader.get_scene_from_token("deadbeef")
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        SceneLoader(tmp_path / "nowhere", "mini")
    with pytest.raises(DataError, match="navsim_logs/test"):
        SceneLoader(root, "test")
    with pytest.raises(DataError, match="not found: missing_log"):
        SceneLoader(root, "mini", SceneFilter(log_names=["missing_log"]))
    shutil.rmtree(root / "sensor_blobs")
    with pytest.raises(DataError, match="sensor-blob directory"):
        SceneLoader(root, "mini", SceneFilter(frame_interval=1), SensorConfig(cam_f0=True))


def test_env_root_and_explicit_paths(real_style_root, monkeypatch):
    root, _ = real_style_root
    monkeypatch.setenv("OPENSCENE_DATA_ROOT", str(root))
    a = SceneLoader(split="mini", scene_filter=SceneFilter(frame_interval=1), load_maps=False)
    b = SceneLoader(
        scene_filter=SceneFilter(frame_interval=1),
        log_path=root / "navsim_logs" / "mini",
        sensor_blobs_path=root / "sensor_blobs" / "mini",
        sensor_config=SensorConfig(cam_f0=[3]),
        load_maps=False,
    )
    assert a.tokens == b.tokens and b.split == "mini"
    assert b.get_agent_input_from_token(b.tokens[0]).cameras[3].cam_f0.image.shape == (18, 32, 3)


def test_log_cache_eviction_and_pickling(real_style_root):
    root, _ = real_style_root
    loader = SceneLoader(root, "mini", SceneFilter(frame_interval=1), load_maps=False, log_cache_size=1)
    first = [loader.get_agent_input_from_token(t).ego_statuses[0].ego_pose for t in loader.tokens]
    clone = pickle.loads(pickle.dumps(loader))  # what a DataLoader worker receives: index, no parsed logs
    assert clone.tokens == loader.tokens and not clone._cache
    again = [clone.get_agent_input_from_token(t).ego_statuses[0].ego_pose for t in clone.tokens]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    # a log rewritten behind the loader's back is detected
    log = sorted((root / "navsim_logs" / "mini").glob("*.pkl"))[0]
    frames = read_log(log)
    frames[0]["vehicle_name"] = "changed"
    write_log(frames, log)
    clone._cache.clear()
    with pytest.raises(DataError, match="changed on disk"):
        clone.get_frame_dicts(clone.tokens[0])


def test_maps_attach_lazily_once_per_location(calib_root):
    maps = pytest.importorskip("planlab.maps")
    if not hasattr(maps, "load_map"):
        pytest.skip("planlab.maps.load_map not available yet")
    loader = SceneLoader(calib_root, "calib", CALIB_FILTER)
    assert loader.layout.maps_root == calib_root / "maps"
    assert not loader._maps  # nothing loaded at construction
    s1 = loader.get_scene_from_token(CALIB_TOKENS[0])
    s2 = loader.get_scene_from_token(CALIB_TOKENS[-1])
    assert s1.map_api is not None and s1.map_api is s2.map_api
    assert list(loader._maps) == ["us-pa-pittsburgh-hazelwood"]


def test_make_frame_dict_has_the_real_layout_and_loads(calib_root, tmp_path):
    from planlab.data.frame_dicts import link_samples, make_frame_dict

    real = read_log(calib_root / "navsim_logs" / "calib" / "calib_02_follow_lead.pkl")[5]
    cams = {c: {k: real["cams"][c][k] for k in real["cams"][c] if k != "data_path"} for c in CAMERA_NAMES}
    frames = []
    for i in range(15):
        yaw = -3.0 - 0.05 * i  # crosses -pi: the stored quaternion must still give the right yaw
        frames.append(
            make_frame_dict(
                token=f"{0xABC000 + i:016x}",
                timestamp=1_000_000 + 500_000 * i,
                log_name="built_log",
                map_location="sg-one-north",
                ego_pose=(365000.0 + 4.0 * i, 143000.0 - 0.5 * i, yaw),
                ego_velocity=(8.0, 0.0),
                ego_acceleration=(0.5, 0.1),
                driving_command=[0, 0, 1, 0],
                roadblock_ids=["5", "6"],
                traffic_lights=[(7, True)],
                cameras=cams,
            )
        )
    link_samples(frames)
    assert set(frames[0]) == set(real), set(frames[0]) ^ set(real)
    assert set(frames[0]["cams"]["CAM_F0"]) == set(real["cams"]["CAM_F0"])
    np.testing.assert_allclose(
        frames[3]["can_bus"][:7], np.r_[frames[3]["ego2global_translation"], frames[3]["ego2global_rotation"]]
    )
    assert frames[0]["sample_prev"] is None and frames[1]["sample_prev"] == frames[0]["token"]
    write_log(frames, tmp_path / "navsim_logs" / "x" / "built_log.pkl")
    loader = SceneLoader(tmp_path, "x", SceneFilter(frame_interval=1), load_maps=False)
    scene = loader.get_scene_from_token(frames[3]["token"])
    np.testing.assert_allclose(
        scene.frames[3].ego_status.ego_pose, [365012.0, 142998.5, -3.15 + 2 * np.pi], atol=1e-9
    )
    assert frames[3]["lidar_path"] == f"built_log/MergedPointCloud/{frames[3]['token']}.pcd"
    assert scene.frames[0].traffic_lights == [(7, True)] and scene.frames[0].annotations.boxes.shape == (0, 7)


def _agent_input_in_child(loader: SceneLoader, token: str, queue) -> None:
    ai = loader.get_agent_input_from_token(token)
    queue.put(ai.cameras[3].cam_f0.image.shape)


def test_forked_worker_after_parent_used_sensors(real_style_root):
    """DataLoader workers fork the dataset: a thread pool created in the parent must not hang the child."""
    import multiprocessing as mp

    root, _ = real_style_root
    loader = SceneLoader(
        root, "mini", SceneFilter(frame_interval=1), SensorConfig.build_all_sensors(), load_maps=False
    )
    loader.get_agent_input_from_token(loader.tokens[0])  # parent creates its decode pool
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_agent_input_in_child, args=(loader, loader.tokens[1], queue))
    child.start()
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung on the inherited thread pool")
    assert child.exitcode == 0 and queue.get(timeout=5) == (18, 32, 3)


def test_navsim_yaw_matches_pyquaternion_arithmetic():
    from planlab.data.frames import navsim_yaw
    from planlab.geometry import quaternion_from_yaw

    yaws = np.array([-3.1, -1.0, 0.0, 0.5, 3.14])
    np.testing.assert_allclose(navsim_yaw(quaternion_from_yaw(yaws)), yaws, atol=1e-15)
    # a real OpenScene pose has small pitch and roll: pyquaternion's yaw uses (w z - x y)
    w, x, y, z = 0.7, 0.03, -0.02, 0.713
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    expected = np.arctan2(2 * (w * z - x * y), 1 - 2 * (y * y + z * z))
    assert navsim_yaw(np.array([[w, x, y, z]]))[0] == expected
    assert abs(expected - np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))) > 1e-5
    # a quaternion that is unit within 1e-14 is used as is (no renormalisation round-off)
    q = np.array([0.6, 0.0, 0.0, 0.8 + 2e-15])
    assert navsim_yaw(q[None])[0] == np.arctan2(2 * q[0] * q[3], 1 - 2 * q[3] ** 2)
