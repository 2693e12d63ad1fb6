"""Map writer/validator fixes made for the world: GDAL's date pinned by ``write_map`` itself, and polygon
overlays on a precision grid in ``validate_map`` (robust to floating-point noise)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time

import numpy as np
import shapely

from planlab.maps import write_map
from planlab.maps.examples import small_junction
from planlab.maps.validate import validate_map
from planlab.maps.writer import PINNED_GDAL_DATE


def test_write_map_is_byte_identical_without_any_caller_pin(tmp_path, monkeypatch):
    monkeypatch.delenv("OGR_CURRENT_DATE", raising=False)
    data = small_junction()
    a = write_map(data, tmp_path / "a", "us-ma-boston")
    time.sleep(1.1)  # GDAL's own timestamp would differ by now
    b = write_map(data, tmp_path / "b", "us-ma-boston")
    assert a.read_bytes() == b.read_bytes()
    with sqlite3.connect(a) as con:
        stamps = {row[0] for row in con.execute("SELECT last_change FROM gpkg_contents")}
    assert stamps == {PINNED_GDAL_DATE}
    assert "OGR_CURRENT_DATE" not in os.environ  # the pin is undone afterwards


def _jitter(poly: shapely.Polygon, rng: np.random.Generator, eps: float) -> shapely.Polygon:
    xy = np.asarray(poly.exterior.coords)
    noisy = xy + rng.uniform(-eps, eps, xy.shape)
    noisy[-1] = noisy[0]
    return shapely.Polygon(noisy)


def test_validate_map_overlays_ignore_floating_point_noise():
    data = small_junction()
    rng = np.random.default_rng(0)
    lanes = [dataclasses.replace(r, geometry=_jitter(r.geometry, rng, 1e-7)) for r in data.lanes]
    noisy = dataclasses.replace(data, lanes=lanes)
    tiny = 1e-9  # an area tolerance below the slivers that 0.1 µm of noise leaves along lane edges

    def p11(issues):
        return [i for i in issues if i.rule == "P11" and i.severity == "error"]

    assert p11(validate_map(noisy, area_tol=tiny, grid_size=None))  # full precision: noise shows up
    assert not p11(validate_map(noisy, area_tol=tiny))  # on the 0.1 mm grid it does not
    assert not p11(validate_map(data, area_tol=tiny))
