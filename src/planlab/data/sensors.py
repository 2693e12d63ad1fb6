"""Sensor blobs: camera JPEGs and merged-LiDAR binary PCDs in the form NAVSIM/nuPlan read them.

PCD rules (format contract §2.7, pitfall P19): ASCII header with exactly the keys VERSION, FIELDS, SIZE,
TYPE, COUNT, WIDTH, HEIGHT, VIEWPOINT, POINTS, DATA (``#`` lines skipped, no blank lines), integer literals
for SIZE/COUNT/WIDTH/HEIGHT/POINTS/VIEWPOINT, ``DATA binary``, then POINTS packed little-endian records in
FIELDS order. nuPlan picks the rows ``x y z intensity ring lidar_info`` by name, so the 6th field must be
called ``lidar_info``. Points are in the ego rear-axle frame (P13).
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from planlab.errors import DataError

PCD_KEYS: tuple[str, ...] = (
    "VERSION",
    "FIELDS",
    "SIZE",
    "TYPE",
    "COUNT",
    "WIDTH",
    "HEIGHT",
    "VIEWPOINT",
    "POINTS",
    "DATA",
)
# The rows of a merged cloud, in LidarIndex order; the file field of row 5 is "lidar_info" (contract §2.7).
PCD_FIELDS: tuple[str, ...] = ("x", "y", "z", "intensity", "ring", "lidar_info")
_PCD_COMMENT = "# .PCD v0.7 - Point Cloud Data file format"
_INT_KEYS = ("WIDTH", "HEIGHT", "POINTS")
_TYPE_CODES = {"F": "f", "I": "i", "U": "u"}


def _write_replace(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over ``path``: never a partial blob at ``path``.

    No fsync: a world writes tens of thousands of blobs and a per-file fsync costs milliseconds; the rename
    alone guarantees a reader sees either the old file or the complete new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# Cameras


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an RGB uint8 image (H, W, 3)."""
    from PIL import Image

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"camera image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def write_jpeg(path: str | os.PathLike, image: np.ndarray, quality: int = 95) -> None:
    """Write an RGB uint8 image (H, W, 3) as a JPEG; the file appears complete or not at all."""
    _write_replace(Path(path), encode_jpeg(image, quality))


def read_jpeg(path: str | os.PathLike) -> np.ndarray:
    """Decode a camera JPEG to RGB uint8 (H, W, 3) at full resolution (NAVSIM: ``np.array(Image.open)``)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as img:
            if img.mode != "RGB":
                img = img.convert("RGB")
            else:
                img.load()
            # np.array, not np.asarray: a writable array that owns its memory, as NAVSIM's reader returns
            return np.array(img)
    except FileNotFoundError:
        raise DataError(f"{p}: camera image not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{p}: not a readable image ({exc})") from None


# ---------------------------------------------------------------------------------------------------------
# LiDAR point clouds


@dataclass(frozen=True)
class PcdHeader:
    """A parsed PCD header; ``data_offset`` is the byte where the point records start."""

    version: str
    fields: tuple[str, ...]
    sizes: tuple[int, ...]
    types: tuple[str, ...]
    counts: tuple[int, ...]
    width: int
    height: int
    viewpoint: tuple[int, ...]
    points: int
    data: str
    data_offset: int

    def record_dtype(self) -> np.dtype:
        """Packed little-endian record type of one point (FIELDS order, no padding)."""
        return np.dtype(
            [
                (f, f"<{_TYPE_CODES[t]}{s}")
                for f, t, s in zip(self.fields, self.types, self.sizes, strict=True)
            ]
        )


def _int_values(source: str, key: str, values: list[str]) -> tuple[int, ...]:
    out = []
    for v in values:
        # nuPlan converts these with int(): "1.0" or "1e3" would fail there, so they fail here too.
        if not v.lstrip("-").isdigit():
            raise DataError(f"{source}: PCD header {key} must be integer literals, got {' '.join(values)!r}")
        out.append(int(v))
    return tuple(out)


def parse_pcd_header(data: bytes, source: str = "<bytes>") -> PcdHeader:
    """Parse a PCD header with the rules nuPlan's reader enforces; anything else is a DataError."""
    fields: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise DataError(f"{source}: PCD header ends before a DATA line")
        raw = data[pos:end]
        pos = end + 1
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise DataError(f"{source}: PCD header is not ASCII") from None
        if line.startswith("#"):
            continue
        if not line:
            raise DataError(f"{source}: blank line in the PCD header (nuPlan's parser rejects it)")
        key, *values = line.split()
        key = key.upper()
        if key not in PCD_KEYS:
            raise DataError(f"{source}: unexpected PCD header key {key!r} (allowed: {' '.join(PCD_KEYS)})")
        if key in fields:
            raise DataError(f"{source}: PCD header key {key} appears twice")
        fields[key] = values
        if key == "DATA":
            break
    missing = [k for k in PCD_KEYS if k not in fields]
    if missing:
        raise DataError(f"{source}: PCD header lacks {', '.join(missing)}")
    if fields["DATA"] != ["binary"]:
        raise DataError(f"{source}: PCD DATA must be 'binary', got {' '.join(fields['DATA'])!r}")
    names = tuple(fields["FIELDS"])
    sizes = _int_values(source, "SIZE", fields["SIZE"])
    counts = _int_values(source, "COUNT", fields["COUNT"])
    types = tuple(fields["TYPE"])
    if not (len(names) == len(sizes) == len(types) == len(counts)) or not names:
        raise DataError(f"{source}: PCD FIELDS, SIZE, TYPE and COUNT differ in length")
    if any(c != 1 for c in counts):
        raise DataError(f"{source}: PCD COUNT must be 1 for every field, got {' '.join(fields['COUNT'])}")
    for t, s in zip(types, sizes, strict=True):
        if t not in _TYPE_CODES or (t == "F" and s not in (4, 8)) or (t != "F" and s not in (1, 2, 4, 8)):
            raise DataError(f"{source}: unsupported PCD field type {t}{s}")
    if len(set(names)) != len(names):
        raise DataError(f"{source}: duplicate PCD field names {' '.join(names)}")
    lacking = [f for f in PCD_FIELDS if f not in names]
    if lacking:
        raise DataError(
            f"{source}: PCD FIELDS lack {' '.join(lacking)} (the 6th row must be named lidar_info)"
        )
    width, height, points = (_int_values(source, k, fields[k]) for k in _INT_KEYS)
    if len(width) != 1 or len(height) != 1 or len(points) != 1:
        raise DataError(f"{source}: PCD WIDTH, HEIGHT and POINTS take one value each")
    viewpoint = _int_values(source, "VIEWPOINT", fields["VIEWPOINT"])
    if len(viewpoint) != 7:
        raise DataError(f"{source}: PCD VIEWPOINT needs 7 integers, got {len(viewpoint)}")
    if points[0] < 0:
        raise DataError(f"{source}: PCD POINTS is negative")
    if len(fields["VERSION"]) != 1:
        raise DataError(f"{source}: PCD VERSION takes one value")
    return PcdHeader(
        version=fields["VERSION"][0],
        fields=names,
        sizes=sizes,
        types=types,
        counts=counts,
        width=width[0],
        height=height[0],
        viewpoint=viewpoint,
        points=points[0],
        data="binary",
        data_offset=pos,
    )


def check_pcd_header_strict(header: PcdHeader, source: str = "<bytes>") -> None:
    """Our writer's exact form (pitfall P19): the 6 float32 fields in order, WIDTH = POINTS, HEIGHT 1,
    VIEWPOINT ``0 0 0 1 0 0 0``. Raises a DataError naming what differs."""
    problems = []
    if header.fields != PCD_FIELDS:
        problems.append(f"FIELDS {' '.join(header.fields)} != {' '.join(PCD_FIELDS)}")
    if header.types != ("F",) * 6 or header.sizes != (4,) * 6:
        problems.append("fields are not all float32 (TYPE F, SIZE 4)")
    if header.height != 1 or header.width != header.points:
        problems.append(f"WIDTH {header.width} / HEIGHT {header.height} is not POINTS {header.points} / 1")
    if header.viewpoint != (0, 0, 0, 1, 0, 0, 0):
        problems.append(f"VIEWPOINT {header.viewpoint} is not the identity")
    if problems:
        raise DataError(f"{source}: PCD header not in the strict form: {'; '.join(problems)}")


def encode_pcd(points: np.ndarray) -> bytes:
    """Binary PCD bytes of a merged cloud ``(6, N)`` (rows x, y, z, intensity, ring, lidar id)."""
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[0] != 6:
        raise ValueError(f"point cloud must have shape (6, N), got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("point cloud contains NaN or inf")
    n = pts.shape[1]
    header = "\n".join(
        [
            _PCD_COMMENT,
            "VERSION 0.7",
            "FIELDS " + " ".join(PCD_FIELDS),
            "SIZE 4 4 4 4 4 4",
            "TYPE F F F F F F",
            "COUNT 1 1 1 1 1 1",
            f"WIDTH {n}",
            "HEIGHT 1",
            "VIEWPOINT 0 0 0 1 0 0 0",  # integer literals: nuPlan parses them with int()
            f"POINTS {n}",
            "DATA binary",
        ]
    )
    # Point-major packed records: transpose to (N, 6) little-endian float32.
    body = np.ascontiguousarray(pts.T, dtype="<f4").tobytes()
    return header.encode("ascii") + b"\n" + body


def decode_pcd(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Rows ``x y z intensity ring lidar_info`` of a binary PCD as float32 ``(6, N)``."""
    header = parse_pcd_header(data, source)
    dtype = header.record_dtype()
    need = header.points * dtype.itemsize
    if len(data) - header.data_offset < need:
        raise DataError(
            f"{source}: PCD body is short: {len(data) - header.data_offset} bytes for "
            f"{header.points} points of {dtype.itemsize} bytes"
        )
    records = np.frombuffer(data, dtype=dtype, count=header.points, offset=header.data_offset)
    out = np.empty((len(PCD_FIELDS), header.points), dtype=np.float32)
    for row, name in enumerate(PCD_FIELDS):
        out[row] = records[name]
    return out


def write_pcd(path: str | os.PathLike, points: np.ndarray) -> None:
    """Write a merged cloud ``(6, N)`` as a strict binary PCD; the file appears complete or not at all."""
    _write_replace(Path(path), encode_pcd(points))


def read_pcd(path: str | os.PathLike) -> np.ndarray:
    """Read a binary PCD as float32 ``(6, N)``; a missing file or malformed header names the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: point cloud not found") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return decode_pcd(data, str(p))


def check_pcd_file(path: str | os.PathLike) -> PcdHeader:
    """Strict check of a PCD file: nuPlan-readable, in our writer's exact form, body complete."""
    p = Path(path)
    data = p.read_bytes() if p.is_file() else None
    if data is None:
        raise DataError(f"{p}: point cloud not found")
    header = parse_pcd_header(data, str(p))
    check_pcd_header_strict(header, str(p))
    decode_pcd(data, str(p))
    return header
