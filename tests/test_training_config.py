"""Training config schema: layering, typed agent section, errors that name the key, packaged YAMLs."""

from __future__ import annotations

import pytest

from planlab.agents.registry import build_agent, list_agents
from planlab.config import load_yaml, to_yaml
from planlab.errors import ConfigError
from planlab.training.config import (
    build_train_config,
    load_train_config,
    packaged_agent_yaml,
    packaged_train_configs,
    trainable_agents,
)


def test_defaults_and_overrides():
    cfg = build_train_config(
        "ego_status_mlp", overrides=["agent.hidden_dim=64", "trainer.max_epochs=3", "optim.lr=2e-4"]
    )
    assert cfg.agent_name == "ego_status_mlp"
    assert cfg.agent.hidden_dim == 64 and cfg.trainer.max_epochs == 3 and cfg.optim.lr == pytest.approx(2e-4)
    assert "name" not in cfg.agent_settings() and cfg.agent_settings()["hidden_dim"] == 64


def test_bad_keys_and_types_name_the_key():
    with pytest.raises(ConfigError, match=r"'agent\.hiden_dim'.*hidden_dim"):
        build_train_config("ego_status_mlp", overrides=["agent.hiden_dim=3"])
    with pytest.raises(ConfigError, match=r"'trainer\.max_epoch'.*max_epochs"):
        build_train_config("ego_status_mlp", overrides=["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match=r"trainer\.batch_size"):
        build_train_config("ego_status_mlp", overrides=["trainer.batch_size=abc"])
    with pytest.raises(ConfigError, match=r"data\.label_fraction"):
        build_train_config("ego_status_mlp", overrides=["data.label_fraction=1.5"])
    with pytest.raises(ConfigError, match=r"trainer\.precision"):
        build_train_config("ego_status_mlp", overrides=["trainer.precision=fp8"])


def test_unknown_agent_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown agent 'nope'; valid agents: .*ego_status_mlp"):
        build_train_config("nope")


def test_agent_name_conflict_and_roundtrip(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("agent:\n  name: ego_status_mlp\n  hidden_dim: 16\ntrainer:\n  batch_size: 8\n")
    cfg = build_train_config(config_files=[y])
    assert cfg.agent.hidden_dim == 16 and cfg.trainer.batch_size == 8
    out = tmp_path / "resolved.yaml"
    out.write_text(to_yaml(cfg))
    again = load_train_config(out)
    assert to_yaml(again) == to_yaml(cfg)
    y2 = tmp_path / "other.yaml"
    y2.write_text("agent:\n  name: encoder_mlp\n")
    if "encoder_mlp" in trainable_agents():
        with pytest.raises(ConfigError, match="conflicts"):
            build_train_config("ego_status_mlp", config_files=[y2])


def test_packaged_configs_load_and_agents_instantiate():
    for name in trainable_agents():
        path = packaged_agent_yaml(name)
        assert path.is_file(), f"trainable agent {name} has no packaged YAML"
        assert path.read_text().startswith("# planlab "), f"{path} must start with the command that uses it"
        cfg = build_train_config(name)
        agent = build_agent(name, config=cfg.agent_settings())
        assert agent.name() == name
    for path in packaged_train_configs():
        assert path.read_text().startswith("# planlab "), f"{path} must start with the command that uses it"
        data = load_yaml(path)
        cfg = build_train_config(config_files=[path])
        assert cfg.agent_name == data.get("agent", {}).get("name", cfg.agent_name)
    assert {s.name for s in list_agents() if s.trainable} >= set(trainable_agents())
