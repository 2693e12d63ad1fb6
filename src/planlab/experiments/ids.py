"""Identifiers that reach a shell or a path: experiment ids, sweep ids, tags (DESIGN.md contract)."""

from __future__ import annotations

import re

from planlab.errors import ConfigError

# DESIGN.md: identifiers match [A-Za-z0-9][A-Za-z0-9._-]*; the experiment room caps them at 64 characters
# so that run-dir paths and SLURM job names stay readable.
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_ID_RE = re.compile(rf"\A{ID_PATTERN}\Z")


def check_id(value: object, what: str = "experiment id") -> str:
    """Return ``value`` if it is a valid identifier, else a ConfigError naming it and the rule."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-64 characters from A-Z a-z 0-9 . _ - starting with a letter or digit"
        )
    return value


def is_valid_id(value: object) -> bool:
    """True when ``value`` would pass :func:`check_id`."""
    return isinstance(value, str) and bool(_ID_RE.match(value))


def check_tags(tags: object) -> list[str]:
    """Validate a list of tags (each an identifier); duplicates are dropped, order kept."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [t for t in (s.strip() for s in tags.split(",")) if t]
    if not isinstance(tags, (list, tuple)):
        raise ConfigError(f"tags must be a list of identifiers, got {type(tags).__name__}")
    out: list[str] = []
    for tag in tags:
        check_id(tag, "tag")
        if tag not in out:
            out.append(tag)
    return out
