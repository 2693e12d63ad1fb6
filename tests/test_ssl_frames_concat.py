"""``ConcatImages``: several frame caches read as one array (pre-training on more than one dataset root)."""

from __future__ import annotations

import numpy as np
import pytest

from planlab.errors import DataError
from planlab.ssl.frames import ConcatImages


def test_rows_come_from_the_right_part_in_the_asked_order():
    a = np.arange(3 * 2, dtype=np.float16).reshape(3, 1, 2, 1)
    b = 100 + np.arange(4 * 2, dtype=np.float16).reshape(4, 1, 2, 1)
    view = ConcatImages([a, b])
    both = np.concatenate([a, b])
    assert len(view) == 7 and view.shape == (7, 1, 2, 1) and view.dtype == np.float16
    for idx in (np.array([0, 2, 3, 6]), np.array([6, 0, 4]), np.array([], dtype=np.int64)):
        np.testing.assert_array_equal(view[idx], both[idx])
    np.testing.assert_array_equal(view[5], both[5:6])
    np.testing.assert_array_equal(view[1:5], both[1:5])
    with pytest.raises(IndexError, match="out of range"):
        view[np.array([7])]


def test_parts_of_different_image_shapes_are_refused():
    with pytest.raises(DataError, match="different image shapes"):
        ConcatImages([np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 8))])
