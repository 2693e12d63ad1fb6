"""Sensor cost per logged frame: 8 cameras (three resolutions) and the merged LiDAR, on a busy junction.

Scene: the calibration map's ground paint (T-junction, crosswalks, walkways, car park), 40 vehicles and
pedestrians, 6 traffic-light heads and 24 buildings around the ego; the ego drives through the junction so
ground tiles come into view as in a real log. The budget comes from the world room's target of ≥ 20 logged
frames/s/core with all sensors (50 ms per frame for everything), so the sensors should stay well under 30 ms.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Result

ROOT = Path(__file__).resolve().parents[1]
CALIB = ROOT / "tests" / "data" / "navsim_calibration"


def _scene(seed: int = 0):
    import shapely

    from planlab.maps import load_map
    from planlab.world.sensors import SceneObjects, TrafficLightHeads, color_for_token
    from planlab.world.sensors.from_map import static_geometry_from_map
    from planlab.world.sensors.ground import StaticGeometry

    m = load_map(CALIB / "maps", "us-pa-pittsburgh-hazelwood")
    paint = static_geometry_from_map(m)
    cx, cy = 589312.5, 4473687.25  # junction centre (calibration README)
    rng = np.random.default_rng(seed)
    buildings = []
    for k in range(24):
        side = 1 if k % 2 else -1
        x = cx - 120 + 10 * k
        buildings.append(
            (
                shapely.box(x, cy + side * 40, x + 8, cy + side * 40 + side * 12).normalize(),
                6 + 10 * rng.random(),
            )
        )
    static = StaticGeometry(paint.polygons, paint.markings, paint.origin, buildings)
    n = 40
    names = ["vehicle"] * 30 + ["pedestrian"] * 10
    boxes = np.zeros((n, 7))
    boxes[:, 0] = cx + rng.uniform(-60, 60, n)
    boxes[:, 1] = cy + rng.choice([-5.25, 1.75, 5.25], n)  # not in the ego's lane (y = −1.75): no overlaps
    boxes[:30, 3:6] = [4.6, 1.9, 1.6]
    boxes[30:, 3:6] = [0.6, 0.6, 1.75]
    boxes[30:, 1] = cy + rng.choice([-9.0, 9.0], 10)
    boxes[:, 2] = boxes[:, 5] / 2
    boxes[:, 6] = np.where(boxes[:, 1] > cy, math.pi, 0.0)
    colors = np.stack([color_for_token(f"{i:016x}", nm) for i, nm in enumerate(names)])
    objects = SceneObjects(boxes, names, colors)
    lights = TrafficLightHeads(
        np.array(
            [
                [cx + dx, cy + dy, 4.8]
                for dx, dy in [(-14, -9), (14, 9), (9, -16), (-9, 16), (-14, 9), (14, -9)]
            ]
        ),
        np.array([0.0, math.pi, math.pi / 2, -math.pi / 2, 0.0, math.pi]),
        ["red", "green", "yellow", "red", "green", "red"],
    )
    return static, objects, lights, (cx, cy)


def _drive(suite, poses, objects, lights, repeat: int = 2) -> tuple[float, float]:
    """Best-of-``repeat`` mean CPU seconds per frame (cameras, LiDAR) over a drive, both sensors at each frame as
    the world calls them (so each ground tile is rasterised once, by whichever sensor needs it first).

    CPU time of this process (not wall time): on a shared 2-core machine it is the per-core cost that the
    world's frames/s/core target needs, undisturbed by other jobs waiting for the same cores.
    """
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        cams = lidar = 0.0
        for i, pose in enumerate(poses):
            t0 = time.process_time()
            suite.render_cameras(pose, objects, lights, seed=i)
            t1 = time.process_time()
            suite.cast_lidar(pose, objects, lights, seed=i)
            cams += t1 - t0
            lidar += time.process_time() - t1
        if cams + lidar < sum(best):
            best = (cams / len(poses), lidar / len(poses))
    return best


def run(workdir: Path) -> list[Result]:
    from planlab.world.sensors import SensorSuite, SuiteConfig

    static, objects, lights, (cx, cy) = _scene()
    poses = [np.array([cx - 60 + 6.0 * k, cy - 1.75, 0.0]) for k in range(20)]  # 12 m/s, 2 Hz frames
    out: list[Result] = []
    for w, h in [(480, 270), (640, 360), (1920, 1080)]:
        suite = SensorSuite(static, SuiteConfig(width=w, height=h), seed=0)
        frames = poses if w < 1000 else poses[:5]
        cams, lidar = _drive(suite, frames, objects, lights)
        both = cams + lidar
        target = 30.0 if w <= 640 else None
        out.append(
            Result(
                "sensors",
                f"8 cameras {w}×{h} + LiDAR per frame",
                both * 1e3,
                "ms CPU",
                target=target,
                higher_is_better=False,
                notes=f"cameras {cams * 1e3:.1f} ms, LiDAR {lidar * 1e3:.1f} ms; 40 objects, 6 lights, 24 buildings",
            )
        )
        if w == 480:
            cloud = suite.cast_lidar(poses[5], objects, lights, seed=0)
            out.append(
                Result(
                    "sensors",
                    "LiDAR points per frame (5 sensors)",
                    float(cloud.shape[1]),
                    "points",
                    notes=f"{suite.lidar.n_rays} rays cast",
                )
            )
    return out


if __name__ == "__main__":
    for r in run(Path(".")):
        print(f"{r.name}: {r.value:.1f} {r.unit}  ({r.notes})")
