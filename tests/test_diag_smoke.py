"""``planlab smoke``: passes on every registered trainable agent (train, validate the checkpoint, 5-scene
evaluation through the real runner), and fails with the right criterion on a planted feature builder that
returns a list, on a planted NaN loss and on a memory budget that is too small."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from planlab.agents import registry
from planlab.agents.ego_mlp import EgoStatusMLPAgent
from planlab.agents.learned_config import AGENT_CONFIG_SCHEMAS, EgoStatusMLPConfig
from planlab.diagnostics.smoke import SmokeOptions, run_smoke
from planlab.features.ego import EgoStatusFeatureBuilder
from planlab.training import config as train_config
from planlab.training.config import build_train_config

pytestmark = pytest.mark.slow

# Tiny settings per trainable agent (a registered agent without an entry runs with its shipped defaults).
_TINY_ENCODER = {
    "agent.camera.image_height": 32,
    "agent.camera.image_width": 128,
    "agent.encoder.embed_dim": 32,
    "agent.encoder.depth": 1,
    "agent.encoder.num_heads": 2,
}
TINY: dict[str, dict] = {
    "ego_status_mlp": {"agent.hidden_dim": 32},
    "encoder_mlp": {**_TINY_ENCODER, "agent.hidden_dim": 32},
    "encoder_transformer": {
        **_TINY_ENCODER,
        "agent.d_model": 32,
        "agent.num_layers": 1,
        "agent.num_heads": 2,
        "agent.ffn_dim": 64,
    },
    "vocab_scorer": {
        **_TINY_ENCODER,
        "agent.vocabulary_size": 4,
        "agent.d_model": 32,
        "agent.num_layers": 1,
        "agent.num_heads": 2,
        "agent.ffn_dim": 64,
    },
}
TRAINABLE = [spec.name for spec in registry.list_agents() if spec.trainable]


@pytest.fixture(scope="module")
def data(tiny_dataset, tmp_path_factory) -> dict:
    """The tiny synthetic world, one metric cache of its train and val scenes (shared by the evaluations
    and the vocabulary scorer's targets) and a k-means vocabulary of the training futures."""
    from planlab.data.loader import SceneLoader
    from planlab.evaluation.cache import build_cache
    from planlab.scene import SceneFilter
    from planlab.training.cache_jobs import build_vocabulary

    root = tmp_path_factory.mktemp("diag_smoke")
    cache = root / "metric_cache"
    for split in ("train", "val"):
        build_cache(SceneLoader(tiny_dataset, split, SceneFilter(frame_interval=1)), cache, progress=False)
    overrides = {
        "data.root": str(tiny_dataset),
        "data.train_split": "train",
        "data.val_split": "val",
        "data.num_workers": 0,
        "trainer.batch_size": 4,
        "optim.lr": 1e-3,
    }
    vocab_cfg = build_train_config("vocab_scorer", overrides={**overrides, **TINY["vocab_scorer"]})
    vocab = build_vocabulary(vocab_cfg, str(root / "vocab.npy"), progress=False)["path"]
    TINY["vocab_scorer"].update(
        {
            "agent.vocabulary_path": str(vocab),
            "agent.metric_cache": str(cache),
            "data.cache.path": str(root / "feature_cache"),  # its targets are computed once per token
        }
    )
    return {"overrides": overrides, "eval_cache": str(cache), "root": tiny_dataset}


def options(data: dict, **kw) -> SmokeOptions:
    base = {"steps": 4, "scenes": 16, "eval_scenes": 5, "eval_cache": data["eval_cache"]}
    base.update(kw)
    return SmokeOptions(**base)


@pytest.mark.parametrize("agent", TRAINABLE)
def test_smoke_passes_on_every_registered_trainable_agent(agent, data, tmp_path):
    cfg = build_train_config(agent, overrides={**data["overrides"], **TINY.get(agent, {})})
    report = run_smoke(cfg, tmp_path / "smoke", options(data, host_budget=64 * 2**30))
    assert report.passed, report.to_markdown()
    crit = report.criteria
    assert {n for n, c in crit.items() if c.status == "pass"} >= {
        "shapes", "completes", "checkpoint", "host_memory", "loss_decreases", "finite", "evaluation"
    }  # fmt: skip
    assert report.memory["host_bytes"] > 50 * 2**20
    assert report.losses["train_subset"]["after"] < report.losses["train_subset"]["before"]
    assert report.losses["train_subset"]["samples"] == 7  # every scene of the tiny world's train log
    assert report.evaluation["num_valid"] == report.evaluation["num_scenes"] == 5
    # the report files, and the evaluation really ran through the runner into the run dir
    saved = json.loads((tmp_path / "smoke" / "smoke.json").read_text())
    assert saved["passed"] is True and saved["agent"] == agent
    assert "PASSED" in (tmp_path / "smoke" / "smoke.md").read_text()
    assert (tmp_path / "smoke" / "smoke_eval" / "pdm_scores.csv").is_file()


class ListEgoBuilder(EgoStatusFeatureBuilder):
    """A builder with the bug of lesson V1: it returns a Python list instead of a tensor."""

    def compute_features(self, agent_input):
        out = super().compute_features(agent_input)
        out["ego_status"] = out["ego_status"].tolist()
        return out


class ListFeatureAgent(EgoStatusMLPAgent):
    registry_name = "list_feature_mlp"

    def get_feature_builders(self):
        return [ListEgoBuilder(self.config.ego.history_poses)]


class NaNLossAgent(EgoStatusMLPAgent):
    """Ego MLP whose training loss turns NaN at its third training step."""

    registry_name = "nan_loss_mlp"

    def compute_loss(self, features, targets, predictions):
        out = super().compute_loss(features, targets, predictions)
        if self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls >= 3:
                out["loss"] = out["loss"] * float("nan")
        return out


@pytest.fixture()
def planted(monkeypatch):
    for cls in (ListFeatureAgent, NaNLossAgent):
        name = cls.registry_name
        spec = registry.AgentSpec(name, f"{__name__}:{cls.__name__}", "planted bug", trainable=True)
        monkeypatch.setitem(registry.AGENTS, name, spec)
        monkeypatch.setitem(AGENT_CONFIG_SCHEMAS, name, EgoStatusMLPConfig)
    train_config._schema_for.cache_clear()
    yield
    train_config._schema_for.cache_clear()


def test_list_returning_builder_fails_naming_builder_and_key(planted, data, tmp_path):
    from planlab.cli.main import app

    args = [
        "smoke",
        "--agent",
        "list_feature_mlp",
        "--run-dir",
        str(tmp_path / "s"),
        "--json",
        "--steps",
        "2",
    ]
    args += [f"{k}={v}" for k, v in {**data["overrides"], "agent.hidden_dim": 16}.items()]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    out = json.loads(res.output[res.output.index("{") :])
    crit = {c["name"]: c for c in out["criteria"]}
    assert crit["shapes"]["status"] == "fail"
    assert (
        "builder 'ego_status' key 'ego_status' returned list, expected torch.Tensor"
        in crit["shapes"]["detail"]
    )
    # nothing was trained on a broken contract; the later criteria are marked as not reached
    assert crit["completes"]["status"] == "skip" and not (tmp_path / "s" / "checkpoints").exists()
    assert json.loads((tmp_path / "s" / "smoke.json").read_text())["passed"] is False


def test_nan_loss_and_memory_budget_fail(planted, data, tmp_path):
    cfg = build_train_config("nan_loss_mlp", overrides={**data["overrides"], "agent.hidden_dim": 16})
    report = run_smoke(cfg, tmp_path / "s", options(data, host_budget=2**20))
    crit = report.criteria
    assert not report.passed
    assert crit["finite"].status == "fail" and "loss is not finite at epoch" in crit["finite"].detail
    assert crit["completes"].status == "fail"
    assert crit["shapes"].status == "pass"  # the contract was fine; the loss was not
    # 1 MiB is far below any real process: the budget criterion reports the measured peak
    assert crit["host_memory"].status == "fail" and crit["host_memory"].limit == "0.00 GiB"
    assert report.memory["host_bytes"] > 2**20
    md = (tmp_path / "s" / "smoke.md").read_text()
    assert "FAILED" in md and "| finite | FAIL |" in md


def test_smoke_config_keeps_the_job_settings(data):
    from planlab.diagnostics.smoke import build_smoke_config

    cfg = build_train_config(
        "ego_status_mlp",
        overrides={**data["overrides"], "trainer.devices": 4, "trainer.num_nodes": 2, "optim.warmup_steps": 500,
                   "data.num_workers": 3, "trainer.precision": "32"},
    )  # fmt: skip
    smoke, over = build_smoke_config(cfg, SmokeOptions(steps=10, scenes=24))
    assert (smoke.trainer.devices, smoke.trainer.num_nodes, smoke.trainer.max_steps) == (1, 1, 10)
    assert smoke.data.max_scenes == 24 and smoke.optim.warmup_steps == 2
    # what decides memory and numerics stays as the job has it
    assert smoke.trainer.batch_size == 4 and smoke.data.num_workers == 3 and smoke.optim.lr == 1e-3
    assert smoke.trainer.precision == "32" and over["trainer.max_steps"] == 10


def test_evaluation_uses_the_eval_path_split_and_filter(data):
    from planlab.diagnostics.smoke import eval_loader

    cfg = build_train_config("ego_status_mlp", overrides=data["overrides"])
    loader = eval_loader(cfg, 5)
    assert len(loader.tokens) == 5 and loader.split == "val"
    val_logs = {p.stem for p in (data["root"] / "navsim_logs" / "val").glob("*.pkl")}
    assert set(loader.get_tokens_list_per_log()) <= val_logs


def test_exp_submit_runs_the_preflight_and_refuses_a_broken_experiment(planted, data, tmp_path):
    from planlab.cli.main import app
    from planlab.experiments.launch import new_experiment

    root = tmp_path / "exps"
    over = {**data["overrides"], "agent.hidden_dim": 16, "agent.name": "list_feature_mlp"}
    run, _ = new_experiment(root, "broken", "ego_mlp", overrides=over, cluster="local")
    res = CliRunner().invoke(app, ["exp", "submit", "broken", "--root", str(root)])
    assert res.exit_code != 0
    # one line naming the failed criterion, builder and key; nothing was submitted
    assert "preflight of 'broken' failed (shapes: builder 'ego_status' key 'ego_status' returned list" in str(
        res.exception
    )
    assert json.loads((run / "status.json").read_text())["state"] == "created"
    (report,) = (run / "logs" / "preflight").glob("*/smoke.json")
    assert json.loads(report.read_text())["passed"] is False


def test_preflight_is_skipped_when_nothing_trains_or_submit_will_refuse(data, tmp_path):
    from planlab.diagnostics.preflight import experiment_target, preflight_experiment
    from planlab.experiments import rundir
    from planlab.experiments.launch import new_experiment

    root = tmp_path / "exps"
    run, _ = new_experiment(root, "e1", "ego_mlp", overrides=data["overrides"], cluster="local")
    target = experiment_target(root, "e1")
    # the local profile gives 8G to one task: that is the smoke run's host budget
    assert (target.node_budget, target.ranks_per_node, target.rank_budget) == (8 * 2**30, 1, 8 * 2**30)
    assert target.cfg.data.root == data["overrides"]["data.root"]
    assert preflight_experiment(root, "e1", only=["eval"]) is None
    rundir.set_status(run, "running")
    assert preflight_experiment(root, "e1") is None
    assert not (run / "logs" / "preflight").exists()
