"""Bad input to the map reader: every failure is a one-line DataError naming the path, location or layer."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from planlab.errors import DataError
from planlab.maps import SemanticMapLayer, clear_map_cache, load_map, open_map, read_maps_index

LOCATION = "us-pa-pittsburgh-hazelwood"
VERSION = "9.17.1937"


@pytest.fixture
def root(tmp_path, calib_root) -> Path:
    """A private copy of the calibration maps root that tests may break."""
    dst = tmp_path / "maps"
    shutil.copytree(calib_root / "maps", dst)
    clear_map_cache()
    return dst


def _gpkg(root: Path) -> Path:
    return root / LOCATION / VERSION / "map.gpkg"


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_missing_root(tmp_path, monkeypatch):
    monkeypatch.delenv("NUPLAN_MAPS_ROOT", raising=False)
    with pytest.raises(DataError) as exc:
        load_map(None, LOCATION)
    assert "NUPLAN_MAPS_ROOT" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        load_map(tmp_path / "nope", LOCATION)
    assert str(tmp_path / "nope") in _one_line(exc)


def test_missing_and_bad_json(root):
    (root / "nuplan-maps-v1.0.json").unlink()
    with pytest.raises(DataError) as exc:
        load_map(root, LOCATION)
    assert "nuplan-maps-v1.0.json" in _one_line(exc)
    # An explicit version does not need the index.
    assert load_map(root, LOCATION, VERSION).version == VERSION
    (root / "nuplan-maps-v1.0.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot parse map index"):
        read_maps_index(root)
    (root / "nuplan-maps-v1.0.json").write_text(json.dumps({LOCATION: {"no_version": 1}}))
    with pytest.raises(DataError, match=f"{LOCATION}.*no 'version'"):
        read_maps_index(root)


def test_location_missing_from_json(root):
    index = json.loads((root / "nuplan-maps-v1.0.json").read_text())
    del index["us-ma-boston"]
    (root / "nuplan-maps-v1.0.json").write_text(json.dumps(index))
    with pytest.raises(DataError) as exc:
        load_map(root, "us-ma-boston")
    assert "'us-ma-boston'" in _one_line(exc)


def test_missing_gpkg(root):
    _gpkg(root).unlink()
    with pytest.raises(DataError) as exc:
        load_map(root, LOCATION)
    assert str(_gpkg(root)) in _one_line(exc)


def test_corrupt_gpkg(root):
    _gpkg(root).write_bytes(b"this is not a geopackage" * 10)
    with pytest.raises(DataError) as exc:
        load_map(root, LOCATION)
    assert str(_gpkg(root)) in _one_line(exc)


def test_missing_layer_is_named_when_needed(root):
    with sqlite3.connect(_gpkg(root)) as con:
        con.execute("DROP TABLE boundaries")
        con.execute("DELETE FROM gpkg_contents WHERE table_name = 'boundaries'")
        con.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = 'boundaries'")
    m = load_map(root, LOCATION)  # lazy: opening does not need the layer
    assert m.get_map_object("41001", SemanticMapLayer.ROADBLOCK) is not None
    with pytest.raises(DataError) as exc:
        _ = m.get_map_object("42001", SemanticMapLayer.LANE).left_boundary
    msg = _one_line(exc)
    assert "'boundaries'" in msg and str(_gpkg(root)) in msg


def test_missing_meta_crs(root):
    with sqlite3.connect(_gpkg(root)) as con:
        con.execute("DELETE FROM meta WHERE key = 'projectedCoordSystem'")
    with pytest.raises(DataError) as exc:
        load_map(root, LOCATION)
    assert "projectedCoordSystem" in _one_line(exc)


def test_layer_without_crs(root):
    with sqlite3.connect(_gpkg(root)) as con:
        con.execute("UPDATE gpkg_geometry_columns SET srs_id = 0 WHERE table_name = 'lane_groups_polygons'")
        con.execute("UPDATE gpkg_contents SET srs_id = 0 WHERE table_name = 'lane_groups_polygons'")
    m = open_map(_gpkg(root))
    with pytest.raises(DataError) as exc:
        m.get_map_object("41001", SemanticMapLayer.ROADBLOCK)
    msg = _one_line(exc)
    assert "lane_groups_polygons" in msg


def test_unsafe_location_or_version(root):
    with pytest.raises(DataError, match="not a safe directory name"):
        load_map(root, "../../etc")
    index = json.loads((root / "nuplan-maps-v1.0.json").read_text())
    index[LOCATION] = {"version": "../../x"}
    (root / "nuplan-maps-v1.0.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match="'../../x'"):
        load_map(root, LOCATION)
