"""Typed configs: unknown keys and wrong types name the key; overrides parse numbers in any notation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from planlab.config import build_config, config_hash, parse_overrides, parse_value, to_yaml
from planlab.errors import ConfigError


@dataclass
class Optim:
    lr: float = 1e-4
    weight_decay: float = 0.0


@dataclass
class Cfg:
    name: str = "x"
    epochs: int = 3
    optim: Optim = field(default_factory=Optim)
    fractions: list[float] = field(default_factory=lambda: [1.0])


def test_parse_value_notations():
    assert parse_value("2e-4") == pytest.approx(2e-4)
    assert parse_value("3") == 3 and isinstance(parse_value("3"), int)
    assert parse_value("true") is True and parse_value("null") is None
    assert parse_value("[0.1,0.25,1]") == [0.1, 0.25, 1]
    assert parse_value("abc") == "abc"


def test_build_config_overrides_and_errors(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("epochs: 5\noptim:\n  lr: 0.001\n")
    cfg = build_config(Cfg, y, overrides=["optim.weight_decay=0.01", "fractions=[0.1,0.5]"])
    assert cfg.epochs == 5 and cfg.optim.lr == pytest.approx(1e-3) and cfg.optim.weight_decay == 0.01
    assert cfg.fractions == [0.1, 0.5]
    with pytest.raises(ConfigError, match=r"optim\.lrr.*valid keys here: lr, weight_decay"):
        build_config(Cfg, overrides=["optim.lrr=1"])
    with pytest.raises(ConfigError, match="epochs"):
        build_config(Cfg, overrides=["epochs=many"])
    with pytest.raises(ConfigError, match="not of the form"):
        parse_overrides(["epochs"])


def test_config_hash_excludes_keys():
    a, b = Cfg(epochs=1), Cfg(epochs=2)
    assert config_hash(a) != config_hash(b)
    assert config_hash(a, exclude=["epochs"]) == config_hash(b, exclude=["epochs"])
    assert "optim:" in to_yaml(a)
