"""SE(2), oriented boxes and polylines against closed-form cases and shapely."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from planlab.geometry import (
    Polyline,
    absolute_to_relative,
    box_corners,
    boxes_overlap,
    compose,
    invert,
    points_in_boxes,
    quaternion_from_yaw,
    relative_to_absolute,
    segment_intersects_boxes,
    transform_points,
    wrap_angle,
    yaw_from_quaternion,
)


def test_wrap_angle_principal_value():
    assert wrap_angle(np.pi) == pytest.approx(np.pi)
    np.testing.assert_allclose(wrap_angle(np.array([3 * np.pi / 2, -3 * np.pi / 2])), [-np.pi / 2, np.pi / 2])


def test_compose_invert_roundtrip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 3)) * [10, 10, 2]
    b = rng.normal(size=(50, 3)) * [10, 10, 2]
    np.testing.assert_allclose(
        compose(invert(a), compose(a, b)), np.c_[b[:, :2], wrap_angle(b[:, 2])], atol=1e-9
    )
    ident = compose(a, invert(a))
    np.testing.assert_allclose(ident, 0.0, atol=1e-9)


def test_relative_absolute_known_case():
    origin = np.array([10.0, 5.0, np.pi / 2])  # facing +y
    glob = np.array([[10.0, 8.0, np.pi / 2], [7.0, 5.0, np.pi]])
    rel = absolute_to_relative(origin, glob)
    np.testing.assert_allclose(rel, [[3.0, 0.0, 0.0], [0.0, 3.0, np.pi / 2]], atol=1e-12)
    np.testing.assert_allclose(relative_to_absolute(origin, rel), glob, atol=1e-12)


def test_transform_points():
    out = transform_points(np.array([1.0, 1.0, np.pi / 2]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(out, [[1.0, 2.0], [0.0, 1.0]], atol=1e-12)


def test_quaternion_yaw_roundtrip():
    for yaw in np.linspace(-3.1, 3.1, 13):
        assert yaw_from_quaternion(quaternion_from_yaw(yaw)) == pytest.approx(yaw)
    assert yaw_from_quaternion(np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(np.pi)


def test_box_corner_order_fl_rl_rr_fr():
    c = box_corners(0.0, 0.0, 0.0, 4.0, 2.0)
    np.testing.assert_allclose(c, [[2, 1], [-2, 1], [-2, -1], [2, -1]])


def _poly(c):
    return shapely.Polygon(c)


def test_box_overlap_matches_shapely_random():
    rng = np.random.default_rng(1)
    n = 2000
    a = box_corners(
        rng.uniform(-3, 3, n),
        rng.uniform(-3, 3, n),
        rng.uniform(-3, 3, n),
        rng.uniform(0.5, 5, n),
        rng.uniform(0.5, 3, n),
    )
    b = box_corners(
        rng.uniform(-3, 3, n),
        rng.uniform(-3, 3, n),
        rng.uniform(-3, 3, n),
        rng.uniform(0.5, 5, n),
        rng.uniform(0.5, 3, n),
    )
    ours = boxes_overlap(a, b)
    ref = shapely.intersects(shapely.polygons(a), shapely.polygons(b))
    assert (ours == ref).all()
    assert 0.2 < ours.mean() < 0.9


def test_box_overlap_broadcasts_pairs():
    a = box_corners(np.zeros(3), np.zeros(3), np.zeros(3), 2.0, 2.0)[:, None]
    b = box_corners(np.array([0.0, 1.9, 2.1, 5.0]), 0.0, 0.0, 2.0, 2.0)[None]
    assert boxes_overlap(a, b).shape == (3, 4)
    assert boxes_overlap(a, b)[0].tolist() == [True, True, False, False]


def test_segment_and_points():
    box = box_corners(0.0, 3.0, 0.3, 1.0, 1.0)
    assert segment_intersects_boxes(np.array([0.0, 0.0]), np.array([0.0, 5.0]), box)
    assert not segment_intersects_boxes(np.array([2.0, 0.0]), np.array([2.0, 5.0]), box)
    rng = np.random.default_rng(2)
    pts = rng.uniform(-1, 1, (500, 2)) + [0, 3]
    ref = shapely.contains_xy(_poly(box), pts[:, 0], pts[:, 1])
    assert (points_in_boxes(pts, box) == ref).all()


def test_polyline_project_matches_shapely():
    rng = np.random.default_rng(3)
    pts = np.cumsum(rng.normal(size=(30, 2)), axis=0)
    line = Polyline(pts)
    q = rng.normal(size=(200, 2)) * 5
    ls = shapely.LineString(line.points)
    np.testing.assert_allclose(line.project(q), shapely.line_locate_point(ls, shapely.points(q)), atol=1e-9)
    np.testing.assert_allclose(line.distance(q), shapely.distance(ls, shapely.points(q)), atol=1e-9)
    assert line.length == pytest.approx(ls.length)


def test_polyline_interpolate_offset_resample():
    line = Polyline(np.array([[0, 0], [10, 0], [10, 10], [10, 10]]))
    assert len(line.points) == 3  # duplicate vertex dropped
    np.testing.assert_allclose(
        line.interpolate([5.0, 15.0, 99.0]), [[5, 0, 0], [10, 5, np.pi / 2], [10, 10, np.pi / 2]]
    )
    np.testing.assert_allclose(line.offset(1.0).points[0], [0, 1])
    rs = line.resample(1.0)
    assert rs.length == pytest.approx(line.length)
    assert np.max(np.diff(rs.s)) <= 1.0 + 1e-9


def test_yaw_matches_pyquaternion_convention_with_pitch_and_roll():
    # A rotation with yaw 0.7, pitch 0.05, roll -0.03 (z-y-x): pyquaternion reads
    # atan2(2(wz - xy), 1 - 2(y^2 + z^2)), which differs from the textbook +xy form.
    cy, sy = np.cos(0.35), np.sin(0.35)
    cp, sp = np.cos(0.025), np.sin(0.025)
    cr, sr = np.cos(-0.015), np.sin(-0.015)
    w = cr * cp * cy + sr * sp * sy
    x = sr * cp * cy - cr * sp * sy
    y = cr * sp * cy + sr * cp * sy
    z = cr * cp * sy - sr * sp * cy
    expected = np.arctan2(2 * (w * z - x * y), 1 - 2 * (y * y + z * z))
    assert yaw_from_quaternion(np.array([w, x, y, z])) == pytest.approx(expected, abs=1e-15)
    assert abs(expected - np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))) > 1e-5
