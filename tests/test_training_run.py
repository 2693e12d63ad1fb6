"""End-to-end training of the ego-status MLP on the calibration set: run dir contract, checkpoints,
train/eval parity, run-dir protection, the NaN guard, the CLI's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from planlab.agents import registry
from planlab.agents.ego_mlp import EgoStatusMLPAgent
from planlab.agents.learned_config import AGENT_CONFIG_SCHEMAS, EgoStatusMLPConfig
from planlab.data.loader import SceneLoader
from planlab.errors import PlanlabError
from planlab.scene import SceneFilter
from planlab.training.checkpoint import load_agent_from_checkpoint
from planlab.training.config import build_train_config
from planlab.training.module import TrainingDiverged
from planlab.training.train import run_training

pytestmark = pytest.mark.slow


def overrides(calib_root, **extra):
    base = {
        "data.root": str(calib_root),
        "data.train_split": "calib",
        "data.val_split": None,
        "data.num_workers": 0,
        "trainer.max_epochs": 2,
        "trainer.batch_size": 8,
        "trainer.log_every_n_steps": 2,
        "agent.hidden_dim": 32,
        "checkpoint.every_n_train_steps": 2,
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def trained(calib_root, tmp_path_factory):
    """One finished run (with a feature cache), shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("ego")
    cfg = build_train_config(
        "ego_status_mlp", overrides=overrides(calib_root, **{"data.cache.path": str(root / "cache")})
    )
    result = run_training(cfg, root / "run", progress=False)
    return cfg, result, root


def test_run_dir_contents(trained):
    cfg, result, root = trained
    run = result.run_dir
    assert result.state == "completed" and result.global_step == 2 * 6  # 42 scenes / 8 -> 6 batches per epoch
    for name in (
        "config.yaml",
        "meta.json",
        "training.json",
        "status.json",
        "metrics.csv",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    assert (run / "tb").is_dir()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["git"]["available"] in (True, False) and "sha256" in meta["lock"]
    assert meta["data"]["train"]["num_tokens"] == 42 and len(meta["data"]["train"]["manifest_hash"]) == 64
    assert meta["seeds"]["trainer.seed"] == 0 and "torch" in meta["packages"]
    assert json.loads((run / "status.json").read_text())["state"] == "completed"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    # every loss component the agent returns is logged (lesson C5), plus throughput
    assert {"step", "train/loss_step", "train/trajectory_l1_step", "perf/samples_per_s"} <= set(header)
    # the feature cache holds one safetensors file per builder and token
    assert len(list((root / "cache").glob("ego_status-*/*/*.safetensors"))) == 42


def test_checkpoint_is_plain_data_and_parity_with_batched_forward(trained, calib_root):
    cfg, result, _ = trained
    ckpt = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["planlab"]["agent_name"] == "ego_status_mlp" and ckpt["global_step"] == 12
    agent = load_agent_from_checkpoint(result.run_dir, device="cpu")
    assert isinstance(agent, EgoStatusMLPAgent) and not agent.training
    # train/eval parity: compute_trajectory(AgentInput) == batched forward on the cached features
    from planlab.data.feature_cache import FeatureCache

    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1))
    cache = FeatureCache(cfg.data.cache.path)
    builder = agent.get_feature_builders()[0]
    logs = {t: log for log, ts in loader.get_tokens_list_per_log().items() for t in ts}
    tokens = loader.tokens[:10]
    batch = torch.stack(
        [torch.from_numpy(cache.read(builder.cache_key, logs[t], t)["ego_status"]) for t in tokens]
    )
    with torch.no_grad():
        batched = agent({"ego_status": batch})["trajectory"].numpy()
    single = np.stack([agent.compute_trajectory(loader.get_agent_input_from_token(t)).poses for t in tokens])
    np.testing.assert_allclose(single, batched, atol=1e-6)


def test_run_dir_is_never_overwritten(trained, calib_root, tmp_path):
    cfg, result, _ = trained
    with pytest.raises(PlanlabError, match="finished run"):
        run_training(cfg, result.run_dir, resume=True, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(PlanlabError, match="holds no planlab training run"):
        run_training(cfg, foreign, progress=False)
    # an unfinished run: refused without --resume, refused with another config
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "training.json").write_text(
        (result.run_dir / "training.json").read_text().replace('"state": "completed"', '"state": "running"')
    )
    with pytest.raises(PlanlabError, match="pass --resume"):
        run_training(cfg, unfinished, progress=False)
    other = build_train_config("ego_status_mlp", overrides=overrides(calib_root, **{"agent.hidden_dim": 64}))
    with pytest.raises(PlanlabError, match=r"different config \(first difference: agent.hidden_dim"):
        run_training(other, unfinished, resume=True, progress=False)


def test_label_fraction_trains_on_the_saved_subset(calib_root, tmp_path):
    cfg = build_train_config(
        "ego_status_mlp",
        overrides=overrides(
            calib_root, **{"data.label_fraction": 0.5, "data.subset_seed": 3, "trainer.max_epochs": 1}
        ),
    )
    result = run_training(cfg, tmp_path / "half", progress=False)
    subset = json.loads((result.run_dir / "subset.json").read_text())
    assert subset["num_tokens"] == 21 and subset["seed"] == 3 and subset["fraction"] == 0.5
    meta = json.loads((result.run_dir / "meta.json").read_text())
    assert (
        meta["data"]["train"]["num_tokens"] == 21
        and meta["data"]["train"]["subset"]["sha256"] == subset["sha256"]
    )
    assert result.global_step == 3  # 21 scenes / batch 8: every epoch sees the same 21 labels (lesson C6)
    manifest = json.loads((result.run_dir / "manifests" / "calib.json").read_text())
    assert manifest["hash"] == meta["data"]["train"]["manifest_hash"] and manifest["num_logs"] == 5


class NaNAfterAgent(EgoStatusMLPAgent):
    """Ego MLP whose loss turns NaN at its 4th training call."""

    registry_name = "nan_mlp"

    def compute_loss(self, features, targets, predictions):
        self.calls = getattr(self, "calls", 0) + 1
        out = super().compute_loss(features, targets, predictions)
        if self.training and self.calls >= 4:
            out["loss"] = out["loss"] * float("nan")
        return out


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(calib_root, tmp_path, monkeypatch):
    monkeypatch.setitem(
        registry.AGENTS,
        "nan_mlp",
        registry.AgentSpec("nan_mlp", f"{__name__}:NaNAfterAgent", "test", trainable=True),
    )
    monkeypatch.setitem(AGENT_CONFIG_SCHEMAS, "nan_mlp", EgoStatusMLPConfig)
    from planlab.training import config as tc

    tc._schema_for.cache_clear()
    cfg = build_train_config("nan_mlp", overrides=overrides(calib_root))
    run = tmp_path / "nan"
    with pytest.raises(
        TrainingDiverged, match=r"loss is not finite at epoch 0, step 3.*last good checkpoint: .*last\.ckpt"
    ):
        run_training(cfg, run, progress=False)
    tc._schema_for.cache_clear()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2  # written after step 2; the NaN step 3 left it alone
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())
    assert json.loads((run / "training.json").read_text())["state"] == "failed"
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from planlab.cli.main import main

    def cli(*args):
        with pytest.raises(SystemExit) as exit_info:
            main(["train", *args])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, " ".join(captured.err.split())

    code, _, err = cli("--agent", "nope", "--run-dir", str(tmp_path / "r"))
    assert code != 0 and "unknown agent 'nope'; valid agents:" in err and "ego_status_mlp" in err
    assert "Traceback" not in err
    code, _, err = cli("--agent", "ego_status_mlp", "--run-dir", str(tmp_path / "r"), "trainer.max_epoch=3")
    assert code != 0 and "'trainer.max_epoch'" in err and "max_epochs" in err
    code, _, err = cli(
        "--agent", "ego_status_mlp", "--run-dir", str(tmp_path / "r"), "trainer.batch_size=big"
    )
    assert code != 0 and "trainer.batch_size" in err and "Traceback" not in err
    code, out, _ = cli("--agent", "ego_status_mlp", "--dry-run", "agent.hidden_dim=7")
    assert code == 0 and "hidden_dim: 7" in out
    assert not (tmp_path / "r").exists()  # nothing was written for the refused runs
