"""Fast synthetic camera images for the 8-camera rig: sky, painted ground, shaded boxes, traffic lights.

How a frame is drawn, per camera:

1. **Background**: a precomputed sky gradient (haze at the horizon, blue at the zenith).
2. **Ground**: for a rig without roll, every image row below the horizon hits the ground plane at one depth, so
   the ego-frame ground point of each pixel is fixed for the whole log. Per frame those points are moved by the
   ego pose into the :class:`~planlab.world.sensors.ground.GroundRaster` (fine cells near the ego, coarse ones
   far away), and one palette gather turns ``(fog level, class, texture variant)`` into colour. That is a few
   vectorised passes over the ground pixels and no per-polygon work at all.
3. **Objects and buildings**: box parts projected with proper near-plane clipping (Sutherland–Hodgman against
   z = near in camera coordinates), back faces culled, Lambert-shaded faces filled with PIL; contact shadows
   first, then groups (an object, a traffic light, a building) far to near — painter's algorithm ordered by
   separating axes of their ground footprints; traffic-light lamps on their housing's front face.
4. **Sensor noise**: a seeded, precomputed noise field at a random offset, added in place.

Images are uint8 ``(H, W, 3)`` RGB. The camera model and pixel convention are :mod:`.rig`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cmp_to_key, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from planlab.world.sensors.ground import GroundClass, GroundRaster, RasterLevel, StaticGeometry
from planlab.world.sensors.lighting import Lighting
from planlab.world.sensors.objects import (
    FACES,
    LAMP_RADIUS,
    Parts,
    SceneObjects,
    TrafficLightHeads,
    boxes_near,
    build_parts,
    face_normals,
    part_corners,
)
from planlab.world.sensors.rig import CameraRig, PinholeCamera

# Albedo (sRGB) and texture amplitude (relative brightness swing over the 16 variants) per ground class.
GROUND_ALBEDO: dict[GroundClass, tuple[tuple[float, float, float], float]] = {
    GroundClass.GROUND: ((92.0, 108.0, 64.0), 0.22),
    GroundClass.ROAD: ((86.0, 87.0, 90.0), 0.08),
    GroundClass.CARPARK: ((100.0, 99.0, 98.0), 0.09),
    GroundClass.WALKWAY: ((165.0, 160.0, 150.0), 0.07),
    GroundClass.CROSSWALK: ((220.0, 220.0, 214.0), 0.05),
    GroundClass.MARKING_WHITE: ((226.0, 226.0, 220.0), 0.04),
    GroundClass.MARKING_YELLOW: ((222.0, 178.0, 52.0), 0.04),
    GroundClass.STOP_LINE: ((228.0, 228.0, 222.0), 0.04),
}
_FACE_LISTS = FACES.tolist()


def default_levels(rig: CameraRig) -> tuple[RasterLevel, ...]:
    """Raster levels for a rig: the fine (5 cm) window grows with the focal length, so pixels stay finer
    than cells for about the first 40 m at 480×270 and 80 m at 1920×1080."""
    fx = max(c.fx for c in rig)
    fine = float(np.clip(0.1 * fx, 40.0, 80.0))
    return (
        RasterLevel(resolution=0.05, radius=fine, texture=1.0),
        RasterLevel(resolution=0.2, radius=max(130.0, 1.6 * fine), texture=0.6),
        RasterLevel(resolution=0.8, radius=420.0, tile_cells=128, texture=0.25),
    )


@dataclass(frozen=True)
class RenderConfig:
    """Renderer knobs: near plane [m], object draw distance [m], sensor noise σ [8-bit units], fog quantisation,
    raster levels (None: :func:`default_levels`), contact shadows."""

    near: float = 0.25
    max_object_distance: float = 180.0
    noise_std: float = 2.0
    fog_levels: int = 32
    levels: tuple[RasterLevel, ...] | None = None
    shadows: bool = True

    def __post_init__(self) -> None:
        if self.near <= 0:
            raise ValueError(f"near plane must be positive, got {self.near}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if not 2 <= self.fog_levels <= 255:
            raise ValueError(f"fog_levels must be in [2, 255], got {self.fog_levels}")


@dataclass
class _GroundSegment:
    level: int
    row0: int
    row1: int
    # Ego-frame ground point of pixel (row r, column k): (x0 + k·dx, y0 + k·dy) [m], rows = (x0, y0, dx, dy).
    rows: np.ndarray
    fog: np.ndarray  # (rows, W) uint16: fog level * 256


@dataclass
class _CameraPlan:
    cam: PinholeCamera
    background: np.ndarray  # (H, W, 3) uint8
    segments: list[_GroundSegment] = field(default_factory=list)


def clip_polygon_near(points: list[list[float]], near: float) -> list[list[float]]:
    """Sutherland–Hodgman clip of a camera-frame polygon (list of [x, y, z]) to the half-space z ≥ near."""
    out: list[list[float]] = []
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append([a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]), near])
    return out


_SKY_LUT = 1024  # sky colour table entries over elevations 0 … 90°
_NOISE_PAD = 64  # the noise field is this much larger than the image: 64 × 64 random offsets per frame


@lru_cache(maxsize=8)
def _noise_field(h: int, w: int, std: float, k: int) -> np.ndarray:
    """A fixed field of Gaussian sensor noise ``(h, w, 3)`` as uint8 in [0, 2k] (add, then subtract k);
    each frame reads it at a seeded random offset. Cached and read-only."""
    rng = np.random.default_rng(20240601)
    field_ = np.clip(np.rint(rng.standard_normal((h, w, 3)) * std) + k, 0, 2 * k).astype(np.uint8)
    field_.flags.writeable = False
    return field_


@dataclass(frozen=True)
class _CameraGeometry:
    """Lighting-independent precomputation of one camera: sky LUT index per pixel and ground row segments
    ``(level, row0, row1, rows (R, 4) = x0, y0, dx, dy, distance (R, W) float32, fog dither (R, W))``."""

    sky_index: np.ndarray
    segments: tuple[tuple[int, int, int, np.ndarray, np.ndarray, np.ndarray], ...]


def _camera_key(cam: PinholeCamera) -> tuple:
    return (
        cam.width,
        cam.height,
        cam.intrinsics.tobytes(),
        cam.sensor2lidar_rotation.tobytes(),
        cam.sensor2lidar_translation.tobytes(),
    )


@lru_cache(maxsize=64)
def _camera_geometry(key: tuple, levels: tuple[RasterLevel, ...], max_ground: float) -> _CameraGeometry:
    """Per-pixel rays of a camera and where they meet the ground; shared by every log with the same rig."""
    w, h = key[0], key[1]
    k = np.frombuffer(key[2]).reshape(3, 3)
    rot = np.frombuffer(key[3]).reshape(3, 3)
    o = np.frombuffer(key[4])
    u = np.arange(w) + 0.5
    v = np.arange(h) + 0.5
    uu, vv = np.meshgrid(u, v)
    # Unnormalised rays with camera-z = 1, so the ray parameter of a hit equals its depth.
    d_cam = np.stack([(uu - k[0, 2]) / k[0, 0], (vv - k[1, 2]) / k[1, 1], np.ones_like(uu)], axis=-1)
    d = d_cam @ rot.T  # (H, W, 3) ego frame
    elev = np.arctan2(d[..., 2], np.hypot(d[..., 0], d[..., 1]))
    sky_index = np.rint(np.clip(elev, 0.0, math.pi / 2) / (math.pi / 2) * (_SKY_LUT - 1)).astype(np.int32)
    dz = d[:, 0, 2]  # constant along a row without roll
    with np.errstate(divide="ignore"):
        t_row = np.where(dz < -1e-9, -o[2] / np.where(dz < -1e-9, dz, -1.0), np.inf)
    gx = o[0] + t_row[:, None] * d[..., 0]
    gy = o[1] + t_row[:, None] * d[..., 1]
    with np.errstate(invalid="ignore"):
        dist = np.hypot(gx, gy).max(axis=1)
    row_level = np.full(h, -1, dtype=np.int64)
    for r in range(h):
        if not np.isfinite(t_row[r]) or dist[r] > max_ground:
            continue
        for lvl, lv in enumerate(levels):
            if dist[r] < lv.radius - 2.0 * lv.resolution:
                row_level[r] = lvl
                break
    dither_rng = np.random.default_rng(12345)  # a fixed dither pattern: part of the camera, not of a log
    segments = []
    r = 0
    while r < h:
        lvl = row_level[r]
        r1 = r + 1
        while r1 < h and row_level[r1] == lvl:
            r1 += 1
        if lvl >= 0:
            x0, y0 = gx[r:r1, 0], gy[r:r1, 0]
            dx = (gx[r:r1, -1] - x0) / max(w - 1, 1)
            dy = (gy[r:r1, -1] - y0) / max(w - 1, 1)
            rows = np.stack([x0, y0, dx, dy], axis=1)
            ray_dist = (t_row[r:r1, None] * np.linalg.norm(d[r:r1], axis=-1)).astype(np.float32)
            dither = dither_rng.random(ray_dist.shape, dtype=np.float32)
            segments.append((int(lvl), r, r1, rows, ray_dist, dither))
        r = r1
    return _CameraGeometry(sky_index, tuple(segments))


class CameraRenderer:
    """Renders all cameras of a rig for one log (static geometry fixed, ego and objects moving).

    Build once per log (it precomputes per-camera ground rays, palettes and noise) and call :meth:`render` for
    every logged frame. Give a ``seed`` per frame for reproducible sensor noise.
    """

    def __init__(
        self,
        rig: CameraRig,
        static: StaticGeometry | GroundRaster,
        lighting: Lighting | None = None,
        config: RenderConfig | None = None,
        seed: int = 0,
    ):
        self.rig = rig
        self.config = config or RenderConfig()
        self.lighting = lighting or Lighting()
        if isinstance(static, GroundRaster):
            self.raster = static
        else:
            self.raster = GroundRaster(static, self.config.levels or default_levels(rig))
        for cam in rig:
            right = cam.sensor2lidar_rotation[:, 0]
            if abs(right[2]) > 1e-6:
                raise ValueError(
                    f"{cam.name}: camera roll is not supported by the renderer (x axis not horizontal)"
                )
        self._rng = np.random.default_rng(seed)
        # Noise headroom: all colours are compressed into [k, 255 - k] so adding uint8 noise in [0, 2k] and
        # subtracting k can neither overflow nor underflow.
        self._k = int(math.ceil(3.0 * self.config.noise_std)) if self.config.noise_std > 0 else 0
        self._haze = self.lighting.haze_color
        self._max_ground = 0.95 * min(lv.radius for lv in self.raster.levels[-1:])
        self._palette = self._build_palette()
        self._shadow_color = self.lighting.shade(
            np.array(GROUND_ALBEDO[GroundClass.ROAD][0]) * 0.45, np.array([0.0, 0.0, 1.0])
        )
        self._plans = [self._plan(cam) for cam in rig]
        self._noise = self._build_noise()

    # -- precomputation ----------------------------------------------------------------------------------------
    def _compress(self, colors: np.ndarray) -> np.ndarray:
        k = self._k
        c = np.clip(np.asarray(colors, dtype=np.float64), 0.0, 255.0)
        return c * ((255.0 - 2 * k) / 255.0) + k

    def _build_palette(self) -> np.ndarray:
        """``(fog_levels * 256, 3)`` uint8: colour of raster value ``class << 4 | variant`` at each fog level."""
        values = np.arange(256)
        albedo = np.tile(self._haze, (256, 1))
        known = np.zeros(256, dtype=bool)
        for klass, (color, amp) in GROUND_ALBEDO.items():
            sel = values >> 4 == int(klass)
            albedo[sel] = np.outer(1.0 + amp * ((values[sel] & 15) - 8) / 8.0, color)
            known |= sel
        base = np.where(known[:, None], self.lighting.shade(albedo, np.array([0.0, 0.0, 1.0])), self._haze)
        nf = self.config.fog_levels
        f = (np.arange(nf) / (nf - 1))[:, None, None]
        pal = (1.0 - f) * base[None] + f * self._haze
        pal[:, values >> 4 == int(GroundClass.BEYOND)] = self._haze
        return np.rint(self._compress(pal.reshape(-1, 3))).astype(np.uint8)

    def _plan(self, cam: PinholeCamera) -> _CameraPlan:
        """Background and ground segments of one camera: cached geometry + this renderer's lighting."""
        geo = _camera_geometry(_camera_key(cam), self.raster.levels, self._max_ground)
        lut = np.rint(self._compress(self.lighting.sky(np.linspace(0.0, math.pi / 2, _SKY_LUT)))).astype(
            np.uint8
        )
        background = np.take(lut, geo.sky_index, axis=0)
        plan = _CameraPlan(cam, background)
        nf = self.config.fog_levels
        for level, r0, r1, rows, dist, dither in geo.segments:
            # Fog: by the Euclidean distance camera → ground point, dithered between the quantised levels.
            f = self.lighting.fog(dist, self._max_ground) * (nf - 1)
            f = np.clip(np.floor(f + dither), 0, nf - 1)
            plan.segments.append(_GroundSegment(level, r0, r1, rows, (f * 256).astype(np.uint16)))
        return plan

    def _build_noise(self) -> np.ndarray | None:
        if self._k == 0:
            return None
        h = max(c.height for c in self.rig) + _NOISE_PAD
        w = max(c.width for c in self.rig) + _NOISE_PAD
        return _noise_field(h, w, self.config.noise_std, self._k)

    # -- per frame ---------------------------------------------------------------------------------------------
    def render(
        self,
        ego_pose: np.ndarray,
        objects: SceneObjects | None = None,
        lights: TrafficLightHeads | None = None,
        seed: int | None = None,
        cameras: tuple[str, ...] | None = None,
    ) -> dict[str, np.ndarray]:
        """Images ``{CAM_xx: (H, W, 3) uint8}`` for the ego at global ``ego_pose = (x, y, heading)``.

        ``objects``/``lights`` are in the global frame; ``seed`` fixes the sensor noise of this frame;
        ``cameras`` restricts the output to some camera names.
        """
        ego_pose = np.asarray(ego_pose, dtype=np.float64).reshape(3)
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        self.raster.prepare(ego_pose[:2])
        plans = [p for p in self._plans if cameras is None or p.cam.name in cameras]
        static = boxes_near(self.raster.static.building_boxes(), ego_pose, self.config.max_object_distance)
        scene = _EgoScene.build(build_parts(objects, lights, static), ego_pose, self.lighting)
        views = self._object_views(scene, [p.cam for p in plans]) if len(scene.parts) else [None] * len(plans)
        out: dict[str, np.ndarray] = {}
        for plan, view in zip(plans, views, strict=True):
            out[plan.cam.name] = self._render_one(plan, ego_pose, scene, view, rng)
        return out

    def _render_one(self, plan: _CameraPlan, ego_pose: np.ndarray, scene: _EgoScene, view, rng) -> np.ndarray:
        cam = plan.cam
        img = plan.background.copy()
        for seg in plan.segments:
            values = self.raster.lookup_rows(seg.level, ego_pose, seg.rows, cam.width)
            idx = seg.fog + values
            np.take(self._palette, idx, axis=0, out=img[seg.row0 : seg.row1])
        if view is not None:
            img = self._draw_objects(img, cam, scene, view)
        if self._noise is not None:
            nh, nw = self._noise.shape[:2]
            oy = int(rng.integers(0, nh - cam.height + 1))
            ox = int(rng.integers(0, nw - cam.width + 1))
            img += self._noise[oy : oy + cam.height, ox : ox + cam.width]
            img -= np.uint8(self._k)
        return img

    def _fogged(self, colors: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Fog then noise-headroom compression of shaded colours; int64 for PIL fills."""
        f = self.lighting.fog(distance, self._max_ground)[..., None]
        return np.rint(self._compress((1.0 - f) * colors + f * self._haze)).astype(np.int64)

    def _object_views(self, scene: _EgoScene, cams: list[PinholeCamera]) -> list[_ObjectView | None]:
        """Project every part into every camera at once (vectorised over cameras × parts); None: nothing visible."""
        cfg = self.config
        near = cfg.near
        rot = np.stack([c.sensor2lidar_rotation for c in cams])  # (C, 3, 3)
        pos = np.stack([c.sensor2lidar_translation for c in cams])  # (C, 3)
        k = np.array([[c.fx, c.fy, c.cx, c.cy, c.width, c.height] for c in cams])
        pc = (
            np.einsum("pki,cij->cpkj", scene.corners, rot)
            - np.einsum("ci,cij->cj", pos, rot)[:, None, None, :]
        )
        z = pc[..., 2]  # (C, P, 8)
        # Nearest possible distance of each part (centre distance − bounding radius): long buildings count.
        part_dist = np.linalg.norm(scene.center[None] - pos[:, None], axis=-1) - np.linalg.norm(
            scene.parts.half, axis=-1
        )  # (C, P)
        zc = np.maximum(z, near)
        u = k[:, 0, None, None] * pc[..., 0] / zc + k[:, 2, None, None]
        v = k[:, 1, None, None] * pc[..., 1] / zc + k[:, 3, None, None]
        front = z.min(axis=2) > near
        off = front & (
            (u.min(axis=2) > k[:, 4, None])
            | (u.max(axis=2) < 0)
            | (v.min(axis=2) > k[:, 5, None])
            | (v.max(axis=2) < 0)
        )
        cand = (z.max(axis=2) > near) & (part_dist < cfg.max_object_distance) & ~off  # (C, P)
        if not cand.any():
            return [None] * len(cams)
        # Back-face culling: a face is visible if the camera is on the outer side of its plane.
        to_cam = pos[:, None, None, :] - scene.face_center[None]  # (C, P, 6, 3)
        visible = np.einsum("pfk,cpfk->cpf", scene.normals, to_cam) > 1e-9
        colors = self._fogged(scene.face_color[None], np.linalg.norm(to_cam, axis=-1))  # (C, P, 6, 3)
        face_in_front = (z[:, :, FACES] > near).all(axis=-1)  # (C, P, 6)
        group_dist = np.linalg.norm(scene.group_center[None] - pos[:, None], axis=-1)  # (C, G)
        shadow_colors = self._fogged(self._shadow_color, group_dist)  # (C, G, 3)
        # Python lists once for all cameras (the drawing loop indexes them element by element).
        visible &= cand[..., None]
        faces_l = [[[f for f in range(6) if row[f]] for row in cam_rows] for cam_rows in visible.tolist()]
        uv_l = np.stack([u, v], axis=-1).tolist()
        colors_l = colors.tolist()
        front_l = face_in_front.tolist()
        views: list[_ObjectView | None] = []
        for ci in range(len(cams)):
            sel = np.flatnonzero(cand[ci])
            if not len(sel):
                views.append(None)
                continue
            groups = np.unique(scene.parts.group[sel])
            groups = _painter_order(groups, scene.footprints[groups], pos[ci, :2], group_dist[ci, groups])
            cam = cams[ci]
            shadows: list[tuple[list[float], tuple]] = []
            if cfg.shadows:
                sg = groups[scene.shadow_mask[groups]]
                if len(sg):
                    polys = self._project_polys(cam, (scene.shadow_poly[sg] - pos[ci]) @ rot[ci])
                    shadows = [
                        (pts, tuple(col))
                        for pts, col in zip(polys, shadow_colors[ci, sg].tolist(), strict=True)
                        if pts
                    ]
            lamps: dict[int, list[tuple[list[float], tuple]]] = {}
            if len(scene.lamp_center):
                q = np.flatnonzero(np.isin(scene.parts.lamp_group, groups))
                q = q[
                    np.einsum("qk,qk->q", scene.lamp_normal[q], pos[ci] - scene.lamp_center[q]) > 0
                ]  # facing us
                if len(q):
                    polys = self._project_polys(cam, (scene.lamp_poly[q] - pos[ci]) @ rot[ci])
                    # Lamps are emissive: not shaded by the sun, only fogged.
                    cols = self._fogged(
                        scene.lamp_color[q], np.linalg.norm(scene.lamp_center[q] - pos[ci], axis=-1)
                    )
                    for g, pts, col in zip(
                        scene.parts.lamp_group[q].tolist(), polys, cols.tolist(), strict=True
                    ):
                        if pts:
                            lamps.setdefault(g, []).append((pts, tuple(col)))
            views.append(
                _ObjectView(
                    groups=groups.tolist(),
                    uv=uv_l[ci],
                    pc=pc[ci],
                    faces=faces_l[ci],
                    in_front=front_l[ci],
                    colors=colors_l[ci],
                    shadows=shadows,
                    lamps=lamps,
                )
            )
        return views

    def _draw_objects(
        self, img: np.ndarray, cam: PinholeCamera, scene: _EgoScene, view: _ObjectView
    ) -> np.ndarray:
        pos = cam.sensor2lidar_translation
        pil = Image.fromarray(img)
        draw = ImageDraw.Draw(pil)
        for pts, col in view.shadows:
            draw.polygon(pts, fill=col)
        cam_z = float(pos[2])
        uv, faces, in_front, colors = view.uv, view.faces, view.in_front, view.colors
        for g in view.groups:
            plist = scene.group_parts[g]
            if cam_z < scene.group_split[g] and len(plist) > 1:
                # Camera below the joint of the top two parts: the lower one hides the upper one.
                plist = [*plist[:-2], plist[-1], plist[-2]]
            for i in plist:
                uvi = uv[i]
                for f in faces[i]:
                    face = _FACE_LISTS[f]
                    if in_front[i][f]:
                        pts = [*uvi[face[0]], *uvi[face[1]], *uvi[face[2]], *uvi[face[3]]]
                    else:
                        pts = self._project_clipped(cam, view.pc[i, face].tolist())
                        if pts is None:
                            continue
                    draw.polygon(pts, fill=tuple(colors[i][f]))
            for pts, col in view.lamps.get(g, ()):
                draw.polygon(pts, fill=col)
        return np.array(pil)

    def _project_clipped(self, cam: PinholeCamera, pts: list[list[float]]) -> list[float] | None:
        """Clip a camera-frame polygon at the near plane and project it; None if nothing is left."""
        near = self.config.near
        if min(p[2] for p in pts) < near:
            pts = clip_polygon_near(pts, near)
            if len(pts) < 3:
                return None
        out: list[float] = []
        fx, fy, cx, cy = cam.fx, cam.fy, cam.cx, cam.cy
        for x, y, zz in pts:
            out += [fx * x / zz + cx, fy * y / zz + cy]
        return out

    def _project_polys(self, cam: PinholeCamera, polys: np.ndarray) -> list[list[float] | None]:
        """Pixel rings of camera-frame polygons ``(N, V, 3)``: vectorised when in front, clipped otherwise."""
        near = self.config.near
        z = polys[..., 2]
        zc = np.maximum(z, near)
        uv = np.stack([cam.fx * polys[..., 0] / zc + cam.cx, cam.fy * polys[..., 1] / zc + cam.cy], axis=-1)
        flat = uv.reshape(len(polys), -1).tolist()
        out: list[list[float] | None] = []
        for i, (zmin, zmax) in enumerate(zip(z.min(axis=1).tolist(), z.max(axis=1).tolist(), strict=True)):
            if zmax <= near:
                out.append(None)
            elif zmin > near:
                out.append(flat[i])
            else:
                out.append(self._project_clipped(cam, polys[i].tolist()))
        return out


def _painter_order(
    groups: np.ndarray, corners: np.ndarray, cam_xy: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    """Groups sorted far → near for the painter's algorithm.

    Every group stands on the ground inside its footprint rectangle ``corners (G, 4, 2)``, so two groups with
    disjoint footprints are ordered exactly by a separating axis of the two rectangles (separating-axis
    theorem): the one on the camera's side of the separating line is in front. That stays right for long
    boxes (buildings, trucks) where centre distances mislead. Overlapping footprints fall back to the camera
    distance ``dist``.
    """
    g = len(groups)
    order = np.argsort(-dist, kind="stable")
    if g < 2:
        return groups[order]
    e = np.stack([corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]], axis=1)  # (G, 2, 2)
    axes = (e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)).reshape(-1, 2)  # (2G, 2)
    proj = np.einsum("ak,gck->agc", axes, corners)  # (2G, G, 4)
    lo, hi = proj.min(axis=-1), proj.max(axis=-1)  # (2G, G)
    cam = axes @ cam_xy  # (2G,)
    idx = np.arange(g)
    a = np.empty((g, g, 4), dtype=np.int64)  # the candidate axes of pair (i, j): both edges of i, both of j
    a[..., 0] = 2 * idx[:, None]
    a[..., 1] = 2 * idx[:, None] + 1
    a[..., 2] = 2 * idx[None, :]
    a[..., 3] = 2 * idx[None, :] + 1
    ii = np.broadcast_to(idx[:, None, None], a.shape)
    jj = np.broadcast_to(idx[None, :, None], a.shape)
    lo_i, hi_i, lo_j, hi_j, c = lo[a, ii], hi[a, ii], lo[a, jj], hi[a, jj], cam[a]
    i_low = hi_i < lo_j  # i entirely on the low side of j along the axis
    j_low = hi_j < lo_i
    # +1: i is in front of j (draw i after j); −1: behind.
    rel = np.where(
        i_low,
        np.where(c < 0.5 * (hi_i + lo_j), 1, -1),
        np.where(j_low, np.where(c > 0.5 * (hi_j + lo_i), 1, -1), 0),
    )
    first = np.argmax(rel != 0, axis=-1)
    rel = np.take_along_axis(rel, first[..., None], axis=-1)[..., 0].tolist()
    d = dist.tolist()

    def cmp(i: int, j: int) -> int:
        r = rel[i][j]
        if r:
            return r  # in front → later
        return (d[j] > d[i]) - (d[j] < d[i])  # farther first

    return groups[np.array(sorted(order.tolist(), key=cmp_to_key(cmp)), dtype=np.int64)]


@dataclass
class _ObjectView:
    """What one camera sees of the parts (indexed by part): groups far → near, pixels, visible faces, colours."""

    groups: list[int]
    uv: list  # (P, 8, 2) pixels of the corners (z clamped at the near plane)
    pc: np.ndarray  # (P, 8, 3) camera-frame corners, for near-plane clipping
    faces: list[list[int]]  # visible faces per part ([] when the part is culled)
    in_front: list  # (P, 6) face entirely beyond the near plane
    colors: list  # (P, 6, 3) fogged face colours
    shadows: list  # (pixels, colour) of contact shadows, far → near
    lamps: dict  # group → [(pixels, colour)] of its lamps facing the camera


@dataclass
class _EgoScene:
    """Per-frame object geometry in the ego frame, shared by all cameras."""

    parts: Parts
    corners: np.ndarray  # (P, 8, 3)
    center: np.ndarray  # (P, 3)
    normals: np.ndarray  # (P, 6, 3)
    face_center: np.ndarray  # (P, 6, 3)
    face_color: np.ndarray  # (P, 6, 3) shaded, not fogged
    group_center: np.ndarray  # (G, 3)
    footprints: np.ndarray  # (G, 4, 2) ego-frame footprint rectangles
    group_split: list[float]
    group_parts: list[list[int]]
    shadow: list[bool]
    shadow_mask: np.ndarray  # (G,) bool
    shadow_poly: np.ndarray  # (G, 4, 3)
    group_lamps: dict[int, list[int]]
    lamp_center: np.ndarray
    lamp_normal: np.ndarray
    lamp_poly: np.ndarray  # (Q, 8, 3)
    lamp_color: np.ndarray

    @classmethod
    def build(cls, parts: Parts, ego_pose: np.ndarray, lighting: Lighting) -> _EgoScene:
        ex, ey, eh = ego_pose
        c, s = math.cos(eh), math.sin(eh)

        def to_ego_xy(x, y):
            dx, dy = x - ex, y - ey
            return c * dx + s * dy, -s * dx + c * dy

        p = len(parts)
        center = parts.center.copy()
        center[:, 0], center[:, 1] = to_ego_xy(parts.center[:, 0], parts.center[:, 1])
        yaw = parts.yaw - eh
        corners = part_corners(center, parts.half, yaw) if p else np.zeros((0, 8, 3))
        normals = face_normals(yaw) if p else np.zeros((0, 6, 3))
        face_center = corners[:, FACES].mean(axis=2) if p else np.zeros((0, 6, 3))
        # Shading uses world-frame normals (the sun is fixed in the map frame).
        world_normals = face_normals(parts.yaw) if p else np.zeros((0, 6, 3))
        face_color = (
            lighting.shade(np.repeat(parts.albedo[:, None, :], 6, axis=1), world_normals)
            if p
            else np.zeros((0, 6, 3))
        )

        gc = parts.group_center.copy()
        if len(gc):
            gc[:, 0], gc[:, 1] = to_ego_xy(parts.group_center[:, 0], parts.group_center[:, 1])
        group_parts: list[list[int]] = [[] for _ in range(parts.n_groups)]
        for i, g in enumerate(parts.group.tolist()):
            group_parts[g].append(i)
        gyaw = parts.group_yaw - eh
        footprints = np.zeros((parts.n_groups, 4, 2))
        if parts.n_groups:
            hl, hw = parts.group_half[:, 0:1], parts.group_half[:, 1:2]
            cg, sg = np.cos(gyaw)[:, None], np.sin(gyaw)[:, None]
            fx = np.array([1.0, -1.0, -1.0, 1.0])[None] * hl
            fy = np.array([1.0, 1.0, -1.0, -1.0])[None] * hw
            footprints[..., 0] = gc[:, 0:1] + cg * fx - sg * fy
            footprints[..., 1] = gc[:, 1:2] + sg * fx + cg * fy
        shadow_poly = np.zeros((parts.n_groups, 4, 3))
        if parts.n_groups:
            # Contact shadow: the footprint grown by 8 % + 0.1 m, 2 cm above the ground.
            hl = parts.group_half[:, 0] * 1.08 + 0.1
            hw = parts.group_half[:, 1] * 1.08 + 0.1
            sx = np.array([1.0, -1.0, -1.0, 1.0])
            sy = np.array([1.0, 1.0, -1.0, -1.0])
            cg, sg = np.cos(gyaw)[:, None], np.sin(gyaw)[:, None]
            lx, ly = sx[None] * hl[:, None], sy[None] * hw[:, None]
            shadow_poly[..., 0] = gc[:, 0:1] + cg * lx - sg * ly
            shadow_poly[..., 1] = gc[:, 1:2] + sg * lx + cg * ly
            shadow_poly[..., 2] = 0.02

        q = len(parts.lamp_center)
        lamp_center = parts.lamp_center.copy()
        group_lamps: dict[int, list[int]] = {}
        lamp_normal = np.zeros((q, 3))
        lamp_poly = np.zeros((q, 8, 3))
        if q:
            lamp_center[:, 0], lamp_center[:, 1] = to_ego_xy(parts.lamp_center[:, 0], parts.lamp_center[:, 1])
            lyaw = parts.lamp_yaw - eh
            lamp_normal = np.stack([np.cos(lyaw), np.sin(lyaw), np.zeros(q)], axis=-1)
            side = np.stack([-np.sin(lyaw), np.cos(lyaw), np.zeros(q)], axis=-1)
            ang = np.arange(8) * (2 * math.pi / 8) + math.pi / 8
            lamp_poly = (
                lamp_center[:, None, :]
                + LAMP_RADIUS * np.cos(ang)[None, :, None] * side[:, None, :]
                + LAMP_RADIUS * np.sin(ang)[None, :, None] * np.array([0.0, 0.0, 1.0])
            )
            for i, g in enumerate(parts.lamp_group.tolist()):
                group_lamps.setdefault(g, []).append(i)
        return cls(
            parts=parts,
            corners=corners,
            center=center,
            normals=normals,
            face_center=face_center,
            face_color=face_color,
            group_center=gc,
            footprints=footprints,
            group_split=parts.group_split.tolist(),
            group_parts=group_parts,
            shadow=parts.shadow.tolist(),
            shadow_mask=parts.shadow.astype(bool),
            shadow_poly=shadow_poly,
            group_lamps=group_lamps,
            lamp_center=lamp_center,
            lamp_normal=lamp_normal,
            lamp_poly=lamp_poly,
            lamp_color=parts.lamp_color,
        )
