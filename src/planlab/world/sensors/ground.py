"""Static ground geometry of a log and its tiled class raster, shared by the camera renderer and the LiDAR.

The ground is the plane z = 0 painted with classes (grass, road, car park, walkway, crosswalk stripes, lane
markings, stop lines). :class:`StaticGeometry` holds the polygons and polylines once per log (global map
coordinates, metres). :class:`GroundRaster` rasterises them lazily into square tiles at a few resolutions
("levels", fine near the ego, coarse far away) with PIL, and keeps the tiles in a toroidal buffer per level, so a
moving ego only rasterises the tiles that come into view and a lookup is a handful of vectorised integer
operations. Each raster cell stores ``class << 4 | variant``: the low nibble is a world-fixed texture variant
(asphalt mottling, grass patches) that the renderer's palette turns into colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from planlab.geometry.polyline import Polyline


class GroundClass(IntEnum):
    """Ground paint classes, in drawing order (a later class covers an earlier one)."""

    GROUND = 0  # non-drivable ground: grass, verges, anything without a map polygon
    ROAD = 1  # roadblocks, roadblock connectors, intersections, generic drivable areas
    CARPARK = 2
    WALKWAY = 3  # sidewalks
    CROSSWALK = 4  # painted crosswalk stripes
    MARKING_WHITE = 5
    MARKING_YELLOW = 6
    STOP_LINE = 7
    BEYOND = 15  # no raster here (beyond the rendered range): drawn as haze


_CLASS_BY_NAME = {c.name.lower(): c for c in GroundClass}


def ground_class(value: GroundClass | str | int) -> GroundClass:
    """Accept a GroundClass, its lower-case name (``"road"``) or its integer value."""
    if isinstance(value, GroundClass):
        return value
    if isinstance(value, str):
        try:
            return _CLASS_BY_NAME[value.lower()]
        except KeyError:
            raise ValueError(f"unknown ground class {value!r}; valid: {', '.join(_CLASS_BY_NAME)}") from None
    return GroundClass(int(value))


@dataclass(frozen=True)
class GroundPolygon:
    """A filled ground area: exterior ring ``(N, 2)`` and optional holes, global coordinates [m]."""

    cls: GroundClass
    exterior: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "cls", ground_class(self.cls))
        ext = np.asarray(self.exterior, dtype=np.float64)[:, :2]
        if len(ext) < 3:
            raise ValueError("a ground polygon needs at least 3 vertices")
        object.__setattr__(self, "exterior", ext)
        object.__setattr__(self, "holes", tuple(np.asarray(h, dtype=np.float64)[:, :2] for h in self.holes))

    @classmethod
    def from_shapely(cls, klass: GroundClass | str, geom) -> list[GroundPolygon]:
        """All polygons of a shapely Polygon/MultiPolygon/GeometryCollection (empty → [])."""
        out: list[GroundPolygon] = []
        if geom is None or geom.is_empty:
            return out
        parts = getattr(geom, "geoms", [geom])
        for g in parts:
            if g.geom_type == "Polygon":
                out.append(
                    cls(
                        ground_class(klass),
                        np.asarray(g.exterior.coords),
                        tuple(np.asarray(r.coords) for r in g.interiors),
                    )
                )
            elif g.geom_type in ("MultiPolygon", "GeometryCollection"):
                out.extend(cls.from_shapely(klass, g))
        return out


@dataclass(frozen=True)
class LaneMarking:
    """Painted line along a polyline ``(N, 2)`` [m]: width [m], class, solid or dashed (dash/gap lengths [m])."""

    points: np.ndarray
    width: float = 0.15
    cls: GroundClass = GroundClass.MARKING_WHITE
    dashed: bool = False
    dash_length: float = 3.0  # US practice: 10 ft dashes, 30 ft gaps
    gap_length: float = 9.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cls", ground_class(self.cls))
        object.__setattr__(self, "points", np.asarray(self.points, dtype=np.float64)[:, :2])
        if self.width <= 0:
            raise ValueError(f"marking width must be positive, got {self.width}")
        if self.dashed and (self.dash_length <= 0 or self.gap_length < 0):
            raise ValueError("dashed marking needs dash_length > 0 and gap_length >= 0")

    def pieces(self) -> list[np.ndarray]:
        """The painted polylines: the whole line, or one short polyline per dash."""
        if len(self.points) < 2:
            return []
        try:
            line = Polyline(self.points)
        except ValueError:
            return []
        if not self.dashed:
            return [line.points]
        period = self.dash_length + self.gap_length
        out = []
        s0 = 0.0
        while s0 < line.length:
            s1 = min(s0 + self.dash_length, line.length)
            inner = line.s[(line.s > s0) & (line.s < s1)]
            s = np.concatenate([[s0], inner, [s1]])
            out.append(line.interpolate(s)[:, :2])
            s0 += period
        return out


def crosswalk_stripes(
    polygon: np.ndarray, stripe_width: float = 0.6, gap: float = 0.6, margin: float = 0.3
) -> list[GroundPolygon]:
    """Zebra stripes for a crosswalk polygon, clipped to it.

    A crosswalk's long side is the walking direction (across the road). Each bar is ``stripe_width`` wide and
    spans the short side (it is parallel to the traffic); bars repeat along the long side with ``gap`` between
    them, ``margin`` inside the polygon's minimum rotated rectangle.
    """
    import shapely

    poly = shapely.Polygon(np.asarray(polygon, dtype=np.float64)[:, :2])
    if not poly.is_valid:
        poly = poly.buffer(0)
    if poly.is_empty or poly.area <= 0:
        return []
    rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
    e0, e1 = rect[1] - rect[0], rect[2] - rect[1]
    long_axis, short_axis = (e0, e1) if np.linalg.norm(e0) >= np.linalg.norm(e1) else (e1, e0)
    ul = long_axis / np.linalg.norm(long_axis)
    us = short_axis / np.linalg.norm(short_axis)
    origin = rect[0]
    rel = rect - origin
    l_min, l_max = (rel @ ul).min(), (rel @ ul).max()
    s_min, s_max = (rel @ us).min() + margin, (rel @ us).max() - margin
    out: list[GroundPolygon] = []
    lo = l_min + margin
    while lo + stripe_width <= l_max - margin + 1e-9:
        hi = lo + stripe_width
        bar = origin + np.array(
            [lo * ul + s_min * us, hi * ul + s_min * us, hi * ul + s_max * us, lo * ul + s_max * us]
        )
        out.extend(GroundPolygon.from_shapely(GroundClass.CROSSWALK, shapely.Polygon(bar).intersection(poly)))
        lo = hi + gap
    return out


@dataclass
class StaticGeometry:
    """Everything static of one log in global coordinates, built once per log: ground paint and buildings.

    ``buildings`` are ``(footprint, height [m])`` pairs (footprint: shapely Polygon or ``(N, 2)`` ring); the
    sensors see them as upright boxes (:meth:`building_boxes`). ``origin`` is subtracted from every coordinate
    before rasterisation so float32 pixel arithmetic stays exact with UTM-sized coordinates (defaults to the
    centre of the geometry's bounding box).
    """

    polygons: list[GroundPolygon] = field(default_factory=list)
    markings: list[LaneMarking] = field(default_factory=list)
    origin: np.ndarray | None = None
    buildings: list[tuple[object, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.polygons = list(self.polygons)
        self.markings = list(self.markings)
        self.buildings = list(self.buildings)
        self._building_boxes: tuple[np.ndarray, np.ndarray] | None = None
        if self.origin is None:
            pts = [p.exterior for p in self.polygons] + [m.points for m in self.markings if len(m.points)]
            if pts:
                allp = np.concatenate(pts)
                self.origin = 0.5 * (allp.min(0) + allp.max(0))
            else:
                self.origin = np.zeros(2)
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(2)
        self._items: list[tuple[int, str, object, float]] | None = None
        self._bboxes: np.ndarray | None = None

    @classmethod
    def from_layers(
        cls,
        layers: dict[GroundClass | str, Iterable],
        markings: Sequence[LaneMarking] = (),
        origin: np.ndarray | None = None,
        buildings: Sequence[tuple[object, float]] = (),
    ) -> StaticGeometry:
        """Build from ``{class: [shapely polygons or (N, 2) arrays]}``; ``"crosswalk"`` areas become stripes."""
        polys: list[GroundPolygon] = []
        for klass, geoms in layers.items():
            k = ground_class(klass)
            for g in geoms:
                if hasattr(g, "geom_type"):
                    if k == GroundClass.CROSSWALK:
                        for p in GroundPolygon.from_shapely(k, g):
                            polys.extend(crosswalk_stripes(p.exterior))
                    else:
                        polys.extend(GroundPolygon.from_shapely(k, g))
                else:
                    arr = np.asarray(g, dtype=np.float64)
                    polys.extend(
                        crosswalk_stripes(arr) if k == GroundClass.CROSSWALK else [GroundPolygon(k, arr)]
                    )
        return cls(polys, list(markings), origin, list(buildings))

    def building_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """Buildings as global boxes ``(K, 7)`` (x, y, z, length, width, height, yaw) and facade colours ``(K, 3)``.

        A footprint that fills its minimum rotated rectangle (≥ 95 %) is that rectangle; any other footprint
        becomes one 0.3 m-thick wall box per edge, set inside the outline (hollow, but opaque from outside).
        """
        if self._building_boxes is None:
            self._building_boxes = _buildings_to_boxes(self.buildings)
        return self._building_boxes

    def items(self) -> tuple[list[tuple[int, str, object, float]], np.ndarray]:
        """Drawable items sorted by class (draw order) and their bounding boxes ``(K, 4)`` (origin-relative)."""
        if self._items is None:
            items: list[tuple[int, str, object, float]] = []
            boxes: list[np.ndarray] = []
            for p in self.polygons:
                ext = p.exterior - self.origin
                holes = tuple(h - self.origin for h in p.holes)
                items.append((int(p.cls), "poly", (ext, holes), 0.0))
                boxes.append(np.concatenate([ext.min(0), ext.max(0)]))
            for m in self.markings:
                for piece in m.pieces():
                    pts = piece - self.origin
                    items.append((int(m.cls), "line", pts, m.width))
                    half = 0.5 * m.width
                    boxes.append(np.concatenate([pts.min(0) - half, pts.max(0) + half]))
            order = sorted(range(len(items)), key=lambda i: items[i][0])  # stable: input order within a class
            self._items = [items[i] for i in order]
            self._bboxes = np.array([boxes[i] for i in order]).reshape(-1, 4)
        assert self._bboxes is not None
        return self._items, self._bboxes


@dataclass(frozen=True)
class RasterLevel:
    """One resolution level: cell size [m], tile size [cells, power of 2], window radius [m] kept around the ego."""

    resolution: float
    radius: float
    tile_cells: int = 256
    texture: float = 1.0  # amplitude of the texture variants (0: flat colours)


@lru_cache(maxsize=16)
def _texture_pattern(size: int, amplitude: float, seed: int) -> np.ndarray:
    """A tileable ``size``×``size`` uint8 field of variants 0…15 (mean 8): smooth blotches plus fine grain.

    Cached (read-only): every log with the same seed shares it.
    """
    from scipy.ndimage import zoom

    rng = np.random.default_rng([seed, size, int(amplitude * 1000)])
    coarse = rng.standard_normal((size // 16, size // 16))
    smooth = zoom(coarse, 16, order=1, mode="grid-wrap")[:size, :size]
    grain = rng.standard_normal((size, size))
    field_ = 0.8 * smooth / max(smooth.std(), 1e-9) + 0.6 * grain
    field_ = 8.0 + amplitude * 3.0 * field_ / max(field_.std(), 1e-9)
    out = np.clip(np.rint(field_), 0, 15).astype(np.uint8)
    out.flags.writeable = False
    return out


class _LevelBuffer:
    """A toroidal buffer of tiles for one level: cell (i, j) of the world lives at ``(j & mask, i & mask)``."""

    def __init__(self, level: RasterLevel, pattern: np.ndarray):
        self.level = level
        t = level.tile_cells
        if t & (t - 1):
            raise ValueError(f"tile_cells must be a power of two, got {t}")
        radius_cells = level.radius / level.resolution
        # A window [c − r, c + r] touches at most floor(2r / t) + 2 tiles per axis: slots never collide.
        tiles_needed = int(math.floor(2 * radius_cells / t)) + 2
        n = 1
        while n < tiles_needed:
            n *= 2
        self.n_tiles = n
        self.size = n * t  # cells per side, a power of two
        self.mask = self.size - 1
        self.shift = int(round(math.log2(self.size)))
        self.data = np.full((self.size, self.size), int(GroundClass.BEYOND) << 4 | 8, dtype=np.uint8)
        self.keys: dict[tuple[int, int], tuple[int, int]] = {}  # slot -> tile key currently stored
        self.pattern = pattern  # (P, P) texture, P a multiple of t
        self.flat = self.data.reshape(-1)


class GroundRaster:
    """Lazily rasterised, multi-resolution class map of a :class:`StaticGeometry` around a moving ego.

    ``seed`` picks the texture pattern (the default gives every log the same world-fixed asphalt and grass).
    """

    DEFAULT_LEVELS: tuple[RasterLevel, ...] = (
        RasterLevel(resolution=0.05, radius=40.0, texture=1.0),
        RasterLevel(resolution=0.2, radius=130.0, texture=0.6),
        RasterLevel(resolution=0.8, radius=420.0, tile_cells=128, texture=0.25),
    )

    def __init__(self, static: StaticGeometry, levels: Sequence[RasterLevel] | None = None, seed: int = 0):
        self.static = static
        self.levels = tuple(levels) if levels is not None else self.DEFAULT_LEVELS
        if not self.levels:
            raise ValueError("GroundRaster needs at least one level")
        self._buffers = []
        for lv in self.levels:
            psize = max(lv.tile_cells, 512)
            psize -= psize % lv.tile_cells
            self._buffers.append(_LevelBuffer(lv, _texture_pattern(psize, lv.texture, seed)))
        self.tiles_rasterised = 0
        self._cols: dict[int, np.ndarray] = {}

    @property
    def origin(self) -> np.ndarray:
        return self.static.origin

    def max_radius(self) -> float:
        return max(lv.radius for lv in self.levels)

    # -- tile management ----------------------------------------------------------------------------------------
    def prepare(self, center_xy: np.ndarray, radius: float | None = None) -> None:
        """Rasterise the tiles each level can be asked for around ``center_xy``: those meeting the ring between
        half the next finer level's radius and this level's radius. ``radius`` optionally shrinks every window."""
        c = np.asarray(center_xy, dtype=np.float64)[:2] - self.static.origin
        inner = 0.0
        for buf in self._buffers:
            lv = buf.level
            r = lv.radius if radius is None else min(radius, lv.radius)
            tsize = lv.tile_cells * lv.resolution
            tx0, tx1 = int(math.floor((c[0] - r) / tsize)), int(math.floor((c[0] + r) / tsize))
            ty0, ty1 = int(math.floor((c[1] - r) / tsize)), int(math.floor((c[1] + r) / tsize))
            for ty in range(ty0, ty1 + 1):
                y0, y1 = ty * tsize - c[1], (ty + 1) * tsize - c[1]
                ny = 0.0 if y0 <= 0.0 <= y1 else min(abs(y0), abs(y1))
                fy = max(abs(y0), abs(y1))
                for tx in range(tx0, tx1 + 1):
                    x0, x1 = tx * tsize - c[0], (tx + 1) * tsize - c[0]
                    nx = 0.0 if x0 <= 0.0 <= x1 else min(abs(x0), abs(x1))
                    fx = max(abs(x0), abs(x1))
                    if math.hypot(nx, ny) > r or math.hypot(fx, fy) < inner:
                        continue  # outside this level's disc, or wholly inside the finer level's
                    slot = (tx % buf.n_tiles, ty % buf.n_tiles)
                    if buf.keys.get(slot) != (tx, ty):
                        self._rasterise(buf, tx, ty)
                        buf.keys[slot] = (tx, ty)
            # Cameras assign whole image rows to a level by the row's farthest pixel, so a coarse row can hold
            # pixels well inside the finer window (its centre is nearer than its ends): keep a wide margin.
            inner = 0.5 * lv.radius

    def _rasterise(self, buf: _LevelBuffer, tx: int, ty: int) -> None:
        lv = buf.level
        t, res = lv.tile_cells, lv.resolution
        x0, y0 = tx * t * res, ty * t * res
        x1, y1 = x0 + t * res, y0 + t * res
        items, bboxes = self.static.items()
        img = Image.new("L", (t, t), int(GroundClass.GROUND) << 4)
        if len(items):
            hit = (bboxes[:, 0] <= x1) & (bboxes[:, 2] >= x0) & (bboxes[:, 1] <= y1) & (bboxes[:, 3] >= y0)
            draw = ImageDraw.Draw(img)
            origin = np.array([x0, y0])
            for i in np.flatnonzero(hit):
                klass, kind, geom, width = items[i]
                value = klass << 4
                if kind == "poly":
                    ext, holes = geom  # type: ignore[misc]
                    pts = ((ext - origin) / res).ravel().tolist()
                    if not holes:
                        draw.polygon(pts, fill=value)
                    else:
                        mask = Image.new("1", (t, t), 0)
                        md = ImageDraw.Draw(mask)
                        md.polygon(pts, fill=1)
                        for h in holes:
                            md.polygon(((h - origin) / res).ravel().tolist(), fill=0)
                        img.paste(value, (0, 0, t, t), mask)
                else:
                    w_px = width / res
                    if w_px < 0.4:  # sub-pixel paint at this level: invisible at the distances it serves
                        continue
                    pts = ((geom - origin) / res).ravel().tolist()  # type: ignore[operator]
                    draw.line(pts, fill=value, width=max(1, int(round(w_px))), joint="curve")
        cls = np.asarray(img, dtype=np.uint8)
        p = buf.pattern.shape[0]
        py, px = (ty * t) % p, (tx * t) % p
        tile = cls | buf.pattern[py : py + t, px : px + t]
        sy, sx = (ty % buf.n_tiles) * t, (tx % buf.n_tiles) * t
        buf.data[sy : sy + t, sx : sx + t] = tile
        self.tiles_rasterised += 1

    # -- lookups ------------------------------------------------------------------------------------------------
    def level_index(self, level: int) -> _LevelBuffer:
        return self._buffers[level]

    def _frame(self, buf: _LevelBuffer, ego_pose: np.ndarray) -> tuple[float, float, float, float]:
        """(cos/res, sin/res, u offset, v offset) mapping ego-frame metres to buffer cells, float32-safe.

        The ego position is split into its cell modulo the buffer size (exact, small) plus a fraction, and a
        positive offset that is a multiple of the buffer size keeps every value positive, so truncation equals
        floor and ``& mask`` wraps into the toroidal buffer without any further integer arithmetic.
        """
        res = buf.level.resolution
        gx = (float(ego_pose[0]) - self.static.origin[0]) / res
        gy = (float(ego_pose[1]) - self.static.origin[1]) / res
        ix, iy = math.floor(gx), math.floor(gy)
        offset = 65536.0  # a multiple of every buffer size (powers of two up to 2^16)
        ou = offset + (ix & buf.mask) + (gx - ix)
        ov = offset + (iy & buf.mask) + (gy - iy)
        return math.cos(ego_pose[2]) / res, math.sin(ego_pose[2]) / res, ou, ov

    def _gather(self, buf: _LevelBuffer, u: np.ndarray, v: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        iu = u.astype(np.int32)
        iu &= buf.mask
        iv = v.astype(np.int32)
        iv &= buf.mask
        iv <<= buf.shift
        iv |= iu
        return np.take(buf.flat, iv, out=out)

    def lookup_local(
        self, level: int, ego_pose: np.ndarray, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Raster values (uint8 ``class << 4 | variant``) at ego-frame ground points ``x, y`` [m].

        The caller must have called :meth:`prepare` for this pose; points outside the level's window read
        whatever tile occupies their slot, so keep them within ``levels[level].radius``.
        """
        buf = self._buffers[level]
        c, s, ou, ov = self._frame(buf, ego_pose)
        u = x * np.float32(c)
        u -= y * np.float32(s)
        u += np.float32(ou)
        v = x * np.float32(s)
        v += y * np.float32(c)
        v += np.float32(ov)
        return self._gather(buf, u, v, out)

    def lookup_rows(
        self, level: int, ego_pose: np.ndarray, rows: np.ndarray, width: int, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Raster values on a grid whose ground points are affine in the column index ``k``: ``rows (R, 4)`` holds
        (x0, y0, dx, dy) per row and point (r, k) = (x0 + k·dx, y0 + k·dy) in the ego frame [m] (a pinhole camera
        without roll). Same result as :meth:`lookup_local` on the expanded points, with half the per-pixel work.
        """
        buf = self._buffers[level]
        c, s, ou, ov = self._frame(buf, ego_pose)
        # Columns: u0, du, v0, dv per row (u = x·c − y·s + ou, v = x·s + y·c + ov).
        coef = rows @ np.array([[c, 0.0, s, 0.0], [-s, 0.0, c, 0.0], [0.0, c, 0.0, s], [0.0, -s, 0.0, c]])
        coef[:, 0] += ou
        coef[:, 2] += ov
        coef = coef.astype(np.float32)
        cols = self._columns(width)
        u = np.multiply.outer(coef[:, 1], cols)
        u += coef[:, 0:1]
        v = np.multiply.outer(coef[:, 3], cols)
        v += coef[:, 2:3]
        return self._gather(buf, u, v, out)

    def _columns(self, width: int) -> np.ndarray:
        cols = self._cols.get(width)
        if cols is None:
            cols = self._cols[width] = np.arange(width, dtype=np.float32)
        return cols

    def classes_local(self, ego_pose: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Ground classes (``GroundClass`` values, uint8) at ego-frame ground points ``x, y`` [m].

        Each point is read from the finest level whose window holds it (call :meth:`prepare` for this pose
        first); points beyond every window get ``GROUND``.
        """
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.float32)
        out = np.full(x.shape, int(GroundClass.GROUND), dtype=np.uint8)
        r = np.hypot(x, y)
        todo = np.ones(x.shape, dtype=bool)
        for k, buf in enumerate(self._buffers):
            # Margin: the window is a square of tiles covering the disc; stay one cell inside the disc.
            sel = todo & (r < buf.level.radius - buf.level.resolution)
            if sel.any():
                out[sel] = self.lookup_local(k, ego_pose, x[sel], y[sel]) >> 4
                todo &= ~sel
        return out


FACADES = np.array(
    [
        (196, 180, 150),
        (170, 168, 162),
        (150, 80, 60),
        (220, 215, 205),
        (120, 118, 115),
        (180, 150, 110),
        (95, 100, 110),
    ],
    dtype=np.uint8,
)


def _buildings_to_boxes(buildings: Sequence[tuple[object, float]]) -> tuple[np.ndarray, np.ndarray]:
    import shapely

    boxes: list[list[float]] = []
    colors: list[np.ndarray] = []
    for i, (footprint, height) in enumerate(buildings):
        poly = footprint if hasattr(footprint, "geom_type") else shapely.Polygon(np.asarray(footprint)[:, :2])
        height = float(height)
        if poly.is_empty or height <= 0 or poly.area <= 0:
            continue
        color = FACADES[(i * 2654435761) % len(FACADES)]  # deterministic variety
        rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
        if poly.area >= 0.95 * shapely.Polygon(rect).area:
            e0, e1 = rect[1] - rect[0], rect[2] - rect[1]
            c = rect.mean(axis=0)
            boxes.append(
                [c[0], c[1], height / 2, np.hypot(*e0), np.hypot(*e1), height, np.arctan2(e0[1], e0[0])]
            )
            colors.append(color)
            continue
        ring = np.asarray(shapely.geometry.polygon.orient(poly, 1.0).exterior.coords)  # counter-clockwise
        for a, b in zip(ring[:-1], ring[1:], strict=True):
            d = b - a
            length = float(np.hypot(*d))
            if length < 0.05:
                continue
            inward = np.array([-d[1], d[0]]) / length  # left of a CCW edge is inside
            c = 0.5 * (a + b) + 0.15 * inward
            boxes.append([c[0], c[1], height / 2, length, 0.3, height, np.arctan2(d[1], d[0])])
            colors.append(color)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 7), np.asarray(colors, dtype=np.uint8).reshape(
        -1, 3
    )
