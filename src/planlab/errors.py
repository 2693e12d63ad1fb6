"""User-facing errors.

Every error a user can cause with bad input (a missing file, a bad key, a corrupt pickle) is raised as a
:class:`PlanlabError` whose message is one line naming the file, key or value. The CLI prints that line and
exits non-zero without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PlanlabError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code: int = 2

    def __init__(self, message: str):
        # One line: newlines inside a message would break log parsers and the "no traceback" promise.
        super().__init__(" ".join(str(message).split("\n")))


class DataError(PlanlabError):
    """Bad or missing data on disk (logs, sensor blobs, maps, caches)."""


class UnsafePickleError(DataError):
    """A pickle referenced a global outside the allow-list; nothing from it was executed."""


class ConfigError(PlanlabError):
    """A config key, type or value is not valid."""


class ContractError(PlanlabError):
    """A feature/target builder or agent broke its declared contract (types, shapes, finiteness)."""


class CheckpointError(PlanlabError):
    """A checkpoint cannot be loaded or does not match what it claims to be."""
