"""Sensor blobs: binary PCD exactly per format contract §2.7 (strict header), JPEG round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from planlab.data.sensors import (
    PCD_FIELDS,
    check_pcd_file,
    check_pcd_header_strict,
    decode_pcd,
    encode_jpeg,
    parse_pcd_header,
    read_jpeg,
    read_pcd,
    write_jpeg,
    write_pcd,
)
from planlab.errors import DataError


def _cloud(n: int = 257, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.empty((6, n), dtype=np.float32)
    pts[:3] = rng.normal(0, 20, (3, n))
    pts[3] = rng.uniform(0, 255, n)
    pts[4] = rng.integers(0, 64, n)
    pts[5] = rng.integers(0, 5, n)
    return pts


def _header_lines(data: bytes) -> list[str]:
    head = data[: data.index(b"DATA binary\n") + len(b"DATA binary")]
    return head.decode("ascii").split("\n")


def test_pcd_round_trip_and_exact_header(tmp_path):
    pts = _cloud()
    path = tmp_path / "MergedPointCloud" / "abc.pcd"
    write_pcd(path, pts)
    data = path.read_bytes()
    lines = [ln for ln in _header_lines(data) if not ln.startswith("#")]
    assert lines == [
        "VERSION 0.7",
        "FIELDS x y z intensity ring lidar_info",
        "SIZE 4 4 4 4 4 4",
        "TYPE F F F F F F",
        "COUNT 1 1 1 1 1 1",
        f"WIDTH {pts.shape[1]}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {pts.shape[1]}",
        "DATA binary",
    ]
    header = parse_pcd_header(data)
    # packed little-endian float32 records, point-major, right after the header
    body = np.frombuffer(data, dtype="<f4", offset=header.data_offset).reshape(-1, 6)
    np.testing.assert_array_equal(body.T, pts)
    assert len(data) == header.data_offset + pts.size * 4
    back = read_pcd(path)
    assert back.dtype == np.float32 and back.shape == (6, pts.shape[1])
    np.testing.assert_array_equal(back, pts)
    check_pcd_file(path)


def test_empty_cloud_round_trip(tmp_path):
    path = tmp_path / "empty.pcd"
    write_pcd(path, np.zeros((6, 0), dtype=np.float32))
    assert read_pcd(path).shape == (6, 0)


def test_calibration_pcds_are_strict(calib_root):
    files = sorted((calib_root / "sensor_blobs" / "calib").glob("*/MergedPointCloud/*.pcd"))
    assert len(files) == 107
    for f in files[:20]:
        header = check_pcd_file(f)
        assert header.fields == PCD_FIELDS
        assert read_pcd(f).shape == (6, header.points)


def _pcd(header_lines: list[str], body: bytes) -> bytes:
    return ("\n".join(header_lines) + "\n").encode() + body


_GOOD = [
    "VERSION 0.7",
    "FIELDS x y z intensity ring lidar_info",
    "SIZE 4 4 4 4 4 4",
    "TYPE F F F F F F",
    "COUNT 1 1 1 1 1 1",
    "WIDTH 2",
    "HEIGHT 1",
    "VIEWPOINT 0 0 0 1 0 0 0",
    "POINTS 2",
    "DATA binary",
]


@pytest.mark.parametrize(
    ("index", "line", "why"),
    [
        (7, "VIEWPOINT 0 0 0 1.0 0 0 0", "integer"),
        (1, "FIELDS x y z intensity ring lidar_id", "lidar_info"),
        (9, "DATA ascii", "binary"),
        (4, "COUNT 1 1 1 1 1 2", "COUNT"),
        (2, "SIZE 4 4 4 4 4", "differ in length"),
        (3, "TYPE F F F F F X", "unsupported"),
        (8, "POINTS 2.0", "integer"),
    ],
)
def test_malformed_pcd_headers_name_the_file(tmp_path, index, line, why):
    lines = list(_GOOD)
    lines[index] = line
    path = tmp_path / "bad.pcd"
    path.write_bytes(_pcd(lines, np.zeros(12, "<f4").tobytes()))
    with pytest.raises(DataError, match=why) as info:
        read_pcd(path)
    assert str(path) in str(info.value)


def test_extra_key_blank_line_short_body(tmp_path):
    body = np.zeros(12, "<f4").tobytes()
    with pytest.raises(DataError, match="unexpected PCD header key"):
        decode_pcd(_pcd([*_GOOD[:9], "TIMESTAMP 5", "DATA binary"], body), "f")
    with pytest.raises(DataError, match="blank line"):
        decode_pcd(_pcd([*_GOOD[:5], "", *_GOOD[5:]], body), "f")
    with pytest.raises(DataError, match="lacks VIEWPOINT"):
        decode_pcd(_pcd([*_GOOD[:7], *_GOOD[8:]], body), "f")
    with pytest.raises(DataError, match="short"):
        decode_pcd(_pcd(_GOOD, body[:-1]), "f")
    # trailing bytes are ignored, like nuPlan's reader
    assert decode_pcd(_pcd(_GOOD, body + b"xx"), "f").shape == (6, 2)


def test_nuplan_readable_but_not_strict():
    """Extra fields and other numeric types load (nuPlan converts to float32) but fail the strict check."""
    fields = ["x", "y", "z", "intensity", "ring", "lidar_info", "t"]
    dtype = np.dtype(
        [(f, "<f4") for f in fields[:4]] + [("ring", "<u2"), ("lidar_info", "<u1"), ("t", "<f8")]
    )
    rec = np.zeros(3, dtype=dtype)
    rec["x"] = [1, 2, 3]
    rec["ring"] = [7, 8, 9]
    lines = [
        "VERSION 0.7",
        "FIELDS " + " ".join(fields),
        "SIZE 4 4 4 4 2 1 8",
        "TYPE F F F F U U F",
        "COUNT 1 1 1 1 1 1 1",
        "WIDTH 3",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        "POINTS 3",
        "DATA binary",
    ]
    data = _pcd(lines, rec.tobytes())
    pts = decode_pcd(data)
    np.testing.assert_array_equal(pts[0], [1, 2, 3])
    np.testing.assert_array_equal(pts[4], [7, 8, 9])
    with pytest.raises(DataError, match="strict"):
        check_pcd_header_strict(parse_pcd_header(data))


def test_write_pcd_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError):
        write_pcd(tmp_path / "x.pcd", np.zeros((3, 5)))
    with pytest.raises(ValueError):
        write_pcd(tmp_path / "x.pcd", np.full((6, 2), np.nan))
    assert not list(tmp_path.iterdir())  # nothing half-written


def _smooth_image(h: int = 90, w: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], -1).astype(np.uint8)


def test_jpeg_round_trip(tmp_path):
    img = _smooth_image()
    path = tmp_path / "CAM_F0" / "t.jpg"
    write_jpeg(path, img, quality=95)
    back = read_jpeg(path)
    assert back.dtype == np.uint8 and back.shape == img.shape
    assert back.flags.writeable and back.flags.owndata  # like NAVSIM's np.array(Image.open(...))
    assert np.abs(back.astype(int) - img).mean() < 2.0
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (160, 90)
    # lower quality is smaller and still close
    assert len(encode_jpeg(img, 50)) < len(encode_jpeg(img, 95))


def test_jpeg_reader_converts_and_reports(tmp_path):
    gray = tmp_path / "g.jpg"
    Image.fromarray(np.full((8, 12), 100, np.uint8), mode="L").save(gray, format="JPEG")
    assert read_jpeg(gray).shape == (8, 12, 3)
    broken = tmp_path / "broken.jpg"
    buf = io.BytesIO()
    Image.fromarray(_smooth_image()).save(buf, format="JPEG")
    broken.write_bytes(buf.getvalue()[:40])
    with pytest.raises(DataError, match="broken.jpg"):
        read_jpeg(broken)
    with pytest.raises(DataError, match="not found"):
        read_jpeg(tmp_path / "none.jpg")
    with pytest.raises(ValueError):
        write_jpeg(tmp_path / "f.jpg", np.zeros((4, 4, 3), np.float32))
