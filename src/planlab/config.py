"""Config plumbing shared by every room: safe YAML, typed dataclass schemas, ``key=value`` overrides.

A room declares its settings as a (nested) dataclass; :func:`build_config` merges the dataclass defaults,
optional YAML files and command-line overrides through OmegaConf in struct mode, so an unknown key or a
wrong type is a :class:`~planlab.errors.ConfigError` that names the key and lists the valid choices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from planlab.errors import ConfigError

T = TypeVar("T")


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    """Turn an override's right-hand side into a Python value.

    Numbers in any notation (``2e-4`` is a float, which plain YAML 1.1 would leave a string), booleans,
    ``null``, and YAML flow lists/maps (``[0.1,0.25]``); anything else stays a string.
    """
    s = text.strip()
    low = s.lower()
    if low in ("null", "none", "~"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
        if not math.isnan(f) or low == "nan":
            return f
    except ValueError:
        pass
    if s[:1] in "[{":
        try:
            loaded = yaml.safe_load(s)
        except yaml.YAMLError:
            raise ConfigError(f"cannot parse value {text!r}") from None
        return _coerce_numbers(loaded)
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _coerce_numbers(obj: Any) -> Any:
    if isinstance(obj, str):
        return parse_value(obj)
    if isinstance(obj, list):
        return [_coerce_numbers(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _coerce_numbers(v) for k, v in obj.items()}
    return obj


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``a.b=value`` strings into a flat {dotted key: value} dict (later items win)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        out[key] = parse_value(value)
    return out


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override key {key!r} conflicts with a value set for {part!r}")
            node = nxt
        node[parts[-1]] = value
    return out


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _check_keys(schema: type, data: Mapping[str, Any], prefix: str = "") -> None:
    """Raise ConfigError for the first key in ``data`` that ``schema`` does not declare."""
    fields = _fields(schema)
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in fields:
            choices = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key {full!r}; valid keys here: {choices}")
        ftype = fields[key].type
        sub = _dataclass_type(schema, key, ftype)
        if sub is not None and isinstance(value, Mapping):
            _check_keys(sub, value, prefix=f"{full}.")


def _dataclass_type(owner: type, name: str, ftype: Any) -> type | None:
    import typing

    hints = typing.get_type_hints(owner)
    t = hints.get(name, ftype)
    args = typing.get_args(t)
    if args and type(None) in args:  # Optional[Sub]
        t = next(a for a in args if a is not type(None))
    return t if dataclasses.is_dataclass(t) else None


def build_config(
    schema: type[T],
    *sources: Mapping[str, Any] | str | os.PathLike | None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> T:
    """Merge dataclass defaults, then each source (a dict or YAML path), then overrides, into ``schema``.

    Returns an instance of ``schema`` (plain dataclass objects, no OmegaConf nodes). Unknown keys and
    wrong types raise :class:`ConfigError` naming the dotted key.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if overrides is None:
        over: dict[str, Any] = {}
    elif isinstance(overrides, Mapping):
        over = dict(overrides)
    else:
        over = parse_overrides(overrides)

    layers: list[dict[str, Any]] = []
    for src in sources:
        if src is None:
            continue
        data = load_yaml(src) if isinstance(src, (str, os.PathLike)) else dict(src)
        layers.append(data)
    if over:
        layers.append(nest(over))
    for layer in layers:
        _check_keys(schema, layer)

    base = OmegaConf.structured(schema)
    try:
        merged = OmegaConf.merge(base, *layers) if layers else base
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or "?"
        msg = str(exc).split("\n")[0]
        raise ConfigError(f"config key {key!r}: {msg}") from None
    post = getattr(obj, "validate", None)
    if callable(post):
        post()
    return obj  # type: ignore[return-value]


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain nested dicts/lists (safe for YAML, JSON and checkpoints)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {str(k): to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, Path):
        return str(cfg)
    if hasattr(cfg, "value") and hasattr(cfg, "name") and type(cfg).__module__ != "builtins":  # Enum
        return cfg.value
    return cfg


def to_yaml(cfg: Any) -> str:
    """Serialise a config (dataclass or dict) to YAML with stable key order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)


def get_key(cfg: Any, dotted: str) -> Any:
    """Read ``a.b.c`` from a dataclass/dict config; ConfigError if absent."""
    node = cfg
    for part in dotted.split("."):
        if dataclasses.is_dataclass(node) and hasattr(node, part):
            node = getattr(node, part)
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"unknown config key {dotted!r}")
    return node


def config_hash(cfg: Any, exclude: Iterable[str] = ()) -> str:
    """A short, stable hash of a config, optionally without some dotted keys (e.g. ``train.seed``)."""
    data = to_dict(cfg)
    for dotted in exclude:
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def check_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """ConfigError naming ``key`` and the valid choices unless ``value`` is one of them."""
    options = list(choices)
    if value not in options:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, options))}")
