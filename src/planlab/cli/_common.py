"""Shared CLI helpers: consoles, error-to-exit-code mapping, small parsers."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (machine readable, no rich markup)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def parse_int_list(text: str | None) -> list[int] | None:
    if text is None or text == "":
        return None
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def parse_float_list(text: str | None) -> list[float] | None:
    if text is None or text == "":
        return None
    return [float(x) for x in text.replace(" ", "").split(",") if x]
