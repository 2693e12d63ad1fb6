"""Write-then-rename: a failure leaves the previous file intact; new files get the normal (umask) mode."""

from __future__ import annotations

import os

import pytest

from planlab.atomic import atomic_open, atomic_path, atomic_write_text


def test_failure_keeps_previous_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_open(target) as fh:
        fh.write("partial")
        raise RuntimeError("boom")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_mode_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
        with atomic_path(tmp_path / "c.png") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.png").stat().st_mode & 0o777 == 0o644
