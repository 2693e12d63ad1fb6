"""``planlab ckpt validate`` on real checkpoints written by planlab training, and on damaged copies of them:
truncated, bit-flipped, NaN-injected, from another agent, with a pickled object in the metadata, renamed,
stripped of optimizer state — each with its own diagnosis and exit code."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from planlab.agents import registry
from planlab.agents.ego_mlp import EgoStatusMLPAgent
from planlab.agents.learned_config import AGENT_CONFIG_SCHEMAS, EgoStatusMLPConfig
from planlab.diagnostics.checkpoint import Failure, pickle_globals, validate, validate_checkpoint
from planlab.training.config import build_train_config, train_config_from_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tiny_dataset, tmp_path_factory) -> Path:
    """A real planlab training run of the ego MLP on the tiny synthetic world, with validation
    (last.ckpt + top-k + index.json)."""
    from planlab.training.train import run_training

    root = tmp_path_factory.mktemp("diag_ckpt")
    overrides = {
        "data.root": str(tiny_dataset),
        "data.train_split": "train",
        "data.val_split": "val",
        "data.num_workers": 0,
        "trainer.max_epochs": 2,
        "trainer.batch_size": 2,
        "trainer.log_every_n_steps": 1,
        "trainer.progress_bar": False,
        "agent.hidden_dim": 32,
        "checkpoint.save_top_k": 2,
    }
    result = run_training(
        build_train_config("ego_status_mlp", overrides=overrides), root / "run", progress=False
    )
    assert result.state == "completed"
    return result.run_dir


@pytest.fixture()
def good(run, tmp_path) -> Path:
    dst = tmp_path / "good.ckpt"
    shutil.copy(run / "checkpoints" / "last.ckpt", dst)
    return dst


def resave(src: Path, dst: Path, edit) -> Path:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst


def test_good_run_dir_is_valid_and_lists_every_checkpoint(run):
    rep = validate(run)
    assert rep.kind == "run_dir" and rep.exit_code == 0, [r.diagnosis for r in rep.checkpoints]
    names = [r.path.name for r in rep.checkpoints]
    assert names[-1] == "last.ckpt" and len(names) == 3  # two top-k + last
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    for r in rep.checkpoints:
        assert r.ok and r.agent_name == "ego_status_mlp" and r.size > 0 and r.mtime is not None
        if r.path.name != "last.ckpt":
            # the top-k name's epoch/step agree with the contents; the metric comes from the index
            assert any(c.name == "name" and c.status == "ok" for c in r.checks)
            assert r.metric == {"name": "val/loss", "value": pytest.approx(index["top_k"][r.path.name])}
    last = rep.checkpoints[-1]
    agent = EgoStatusMLPAgent({"hidden_dim": 32})
    assert last.total_params == sum(p.numel() for p in agent.parameters())
    assert [m.name for m in last.modules] == ["mlp"] and last.modules[0].frozen is False
    n_train = json.loads((run / "meta.json").read_text())["data"]["train"]["num_tokens"]
    assert last.global_step == 2 * math.ceil(n_train / 2) and last.epoch == 1  # 2 epochs, batch 2
    assert {c.name: c.status for c in last.checks}["optimizer"] == "ok"
    assert any(c.name == "index" and c.status == "ok" for c in rep.checks)


def test_truncated_copy_is_corrupt(good, tmp_path):
    data = good.read_bytes()
    bad = tmp_path / "truncated.ckpt"
    bad.write_bytes(data[: len(data) * 2 // 3])
    r = validate_checkpoint(bad)
    assert r.exit_code == Failure.CORRUPT == 4
    assert "truncated" in r.diagnosis and "end-of-archive" in r.diagnosis


def test_bit_flip_is_caught_by_crc_although_torch_loads_it(good, tmp_path):
    # flip one bit inside the largest tensor's stored bytes: torch.load does not notice, the CRC-32 does
    with zipfile.ZipFile(good) as zf:
        info = max((i for i in zf.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        header = zf.fp
        header.seek(info.header_offset + 26)
        name_len, extra_len = (
            int.from_bytes(header.read(2), "little"),
            int.from_bytes(header.read(2), "little"),
        )
        offset = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data = bytearray(good.read_bytes())
    data[offset] ^= 0x04
    bad = tmp_path / "flipped.ckpt"
    bad.write_bytes(bytes(data))
    torch.load(bad, weights_only=True)  # the reason this check exists: no error from torch
    r = validate_checkpoint(bad)
    assert r.exit_code == Failure.CORRUPT
    assert "CRC-32" in r.diagnosis and info.filename in r.diagnosis


def test_injected_nan_is_named(good, tmp_path):
    def inject(ckpt):
        ckpt["state_dict"]["agent.mlp.net.2.weight"][3, 5] = float("nan")
        ckpt["state_dict"]["agent.mlp.net.2.bias"][0] = float("inf")

    r = validate_checkpoint(resave(good, tmp_path / "nan.ckpt", inject))
    assert r.exit_code == Failure.NONFINITE == 7
    bad = {x["key"]: (x["nan"], x["inf"]) for x in r.nonfinite}
    assert bad == {"agent.mlp.net.2.weight": (1, 0), "agent.mlp.net.2.bias": (0, 1)}
    assert "agent.mlp.net.2.weight" in r.diagnosis


def test_nan_in_optimizer_state_is_named_by_parameter(good, tmp_path):
    def inject(ckpt):
        ckpt["optimizer_states"][0]["state"][0]["exp_avg_sq"].fill_(float("nan"))

    r = validate_checkpoint(resave(good, tmp_path / "optnan.ckpt", inject))
    assert r.exit_code == Failure.NONFINITE
    assert r.nonfinite[0]["key"] == "exp_avg_sq" and "(mlp.net.0.weight)" in r.nonfinite[0]["where"]


class OtherAgent(EgoStatusMLPAgent):
    """A different planner: same inputs, a different network (a single linear layer named ``head``)."""

    registry_name = "other_mlp"

    def __init__(self, config=None, checkpoint_path=None):
        super().__init__(config, checkpoint_path)
        del self.mlp
        self.head = torch.nn.Linear(8, self.config.trajectory.num_poses * 3)


def test_checkpoint_of_a_different_agent_is_a_mismatch(good, tmp_path):
    other = OtherAgent({"hidden_dim": 32})

    def swap_weights(ckpt):  # another agent's weights under the ego MLP's metadata
        ckpt["state_dict"] = {f"agent.{k}": v for k, v in other.state_dict().items()}

    r = validate_checkpoint(resave(good, tmp_path / "other.ckpt", swap_weights))
    assert r.exit_code == Failure.MISMATCH == 8
    assert "mlp.net.0.weight" in r.keys["missing"] and "head.weight" in r.keys["unexpected"]
    assert "does not fit agent 'ego_status_mlp'" in r.diagnosis

    def wider(ckpt):  # the same agent trained with another hidden size, mislabelled
        agent = EgoStatusMLPAgent({"hidden_dim": 48})
        ckpt["state_dict"] = {f"agent.{k}": v for k, v in agent.state_dict().items()}

    r = validate_checkpoint(resave(good, tmp_path / "wider.ckpt", wider))
    assert r.exit_code == Failure.MISMATCH
    assert r.keys["mismatched"][0] == {"key": "mlp.net.0.weight", "checkpoint": [48, 8], "agent": [32, 8]}
    assert "mis-shaped" in r.diagnosis
    # the caller expected another agent than the one recorded
    r = validate_checkpoint(good, expected_agent="other_mlp")
    assert r.exit_code == Failure.MISMATCH and "expected 'other_mlp'" in r.diagnosis


def test_unknown_agent_cannot_be_rebuilt(good, tmp_path):
    def rename(ckpt):
        ckpt["planlab"]["agent_name"] = "retired_agent"

    r = validate_checkpoint(resave(good, tmp_path / "retired.ckpt", rename))
    assert r.exit_code == Failure.REBUILD == 9 and "retired_agent" in r.diagnosis


class Custom:
    """A custom object someone stored in the checkpoint metadata."""

    def __init__(self) -> None:
        self.note = "trained on the cluster"


def test_pickled_object_in_metadata_is_refused_and_named(good, tmp_path):
    def add_object(ckpt):
        ckpt["planlab"]["extra"] = Custom()

    bad = resave(good, tmp_path / "pickled.ckpt", add_object)
    r = validate_checkpoint(bad)
    assert r.exit_code == Failure.UNSAFE == 5
    assert r.unsafe_globals == [f"{Custom.__module__}.Custom"]
    assert f"{Custom.__module__}.Custom" in r.diagnosis
    # the scan reads the pickle's opcodes without executing them
    assert f"{Custom.__module__}.Custom" in pickle_globals(bad)


def test_renamed_checkpoint_disagrees_with_its_name(run, tmp_path):
    top = sorted((run / "checkpoints").glob("epoch*.ckpt"))[0]
    dst = tmp_path / "epoch=9-step=999.ckpt"
    shutil.copy(top, dst)
    r = validate_checkpoint(dst)
    assert r.exit_code == Failure.STRUCTURE == 6
    assert "file name says epoch 9, step 999" in r.diagnosis


def test_missing_optimizer_state_and_metadata_disagreement_are_structure_failures(good, tmp_path):
    def strip(ckpt):
        del ckpt["optimizer_states"]
        ckpt["planlab"]["global_step"] = 1

    r = validate_checkpoint(resave(good, tmp_path / "stripped.ckpt", strip))
    assert r.exit_code == Failure.STRUCTURE
    assert "missing optimizer_states" in r.diagnosis and "planlab metadata says global_step 1" in r.diagnosis


def test_optimizer_layout_must_fit_the_agent(good, tmp_path):
    def drop_group(ckpt):
        ckpt["optimizer_states"][0]["param_groups"] = ckpt["optimizer_states"][0]["param_groups"][:1]

    r = validate_checkpoint(resave(good, tmp_path / "opt.ckpt", drop_group))
    assert r.exit_code == Failure.MISMATCH and "parameter group" in r.diagnosis


def test_empty_lfs_pointer_and_missing_files(tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert validate_checkpoint(empty).exit_code == Failure.CORRUPT
    lfs = tmp_path / "lfs.ckpt"
    lfs.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 909000000\n")
    r = validate_checkpoint(lfs)
    assert r.exit_code == Failure.CORRUPT and "git lfs pull" in r.diagnosis
    assert validate(tmp_path / "nope.ckpt").exit_code == Failure.NOT_FOUND == 3
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert validate(tmp_path / "run").exit_code == Failure.NOT_FOUND


class FrozenEncoderAgent(EgoStatusMLPAgent):
    """Ego MLP plus a frozen 'encoder' loaded by reference (declared external, like a local I-JEPA)."""

    registry_name = "frozen_enc_mlp"
    fingerprint = "abc123"

    def __init__(self, config=None, checkpoint_path=None):
        super().__init__(config, checkpoint_path)
        self.encoder = torch.nn.Linear(8, 8)
        self.encoder.requires_grad_(False)

    def parameter_groups(self):
        return {"head": list(self.mlp.parameters())}

    def external_state(self):
        return {"encoder.": {"path": "/models/enc", "fingerprint": self.fingerprint}}


@pytest.fixture()
def frozen_agent(monkeypatch):
    monkeypatch.setitem(
        registry.AGENTS,
        "frozen_enc_mlp",
        registry.AgentSpec("frozen_enc_mlp", f"{__name__}:FrozenEncoderAgent", "test", trainable=True),
    )
    monkeypatch.setitem(AGENT_CONFIG_SCHEMAS, "frozen_enc_mlp", EgoStatusMLPConfig)
    return FrozenEncoderAgent({"hidden_dim": 32})


def frozen_ckpt(good: Path, dst: Path, agent, store_encoder: bool, record: bool) -> Path:
    def edit(ckpt):
        sd = agent.state_dict()
        ckpt["state_dict"] = {
            f"agent.{k}": v for k, v in sd.items() if store_encoder or not k.startswith("encoder.")
        }
        meta = ckpt["planlab"]
        meta["agent_name"] = "frozen_enc_mlp"
        meta["external_state"] = agent.external_state() if record else {}
        cfg = train_config_from_dict(meta["train_config"])
        ckpt["optimizer_states"] = [agent.get_optimizers(cfg.optim, 1)["optimizer"].state_dict()]

    return resave(good, dst, edit)


def test_frozen_encoder_excluded_by_policy_or_missing(good, tmp_path, frozen_agent):
    r = validate_checkpoint(frozen_ckpt(good, tmp_path / "a.ckpt", frozen_agent, False, True))
    checks = {c.name: c for c in r.checks}
    assert r.exit_code == 0, r.diagnosis
    assert checks["frozen"].status == "ok" and "excluded by the agent's policy" in checks["frozen"].detail
    # excluded but not recorded: the weights are simply gone
    r = validate_checkpoint(frozen_ckpt(good, tmp_path / "b.ckpt", frozen_agent, False, False))
    assert r.exit_code == Failure.MISMATCH and "encoder.weight" in r.keys["missing"]
    # stored although recorded external: valid, with a warning about the wasted bytes
    r = validate_checkpoint(frozen_ckpt(good, tmp_path / "c.ckpt", frozen_agent, True, True))
    assert r.exit_code == 0 and {c.name: c.status for c in r.checks}["frozen"] == "warn"
    assert [m.frozen for m in r.modules if m.name == "encoder"] == [True]
    # recorded from another source than the agent loads now
    FrozenEncoderAgent.fingerprint = "other"
    try:
        r = validate_checkpoint(tmp_path / "a.ckpt")
    finally:
        FrozenEncoderAgent.fingerprint = "abc123"
    assert r.exit_code == Failure.MISMATCH and "fingerprint" in r.diagnosis


def test_cli_table_json_and_exit_codes(run, good, tmp_path):
    from planlab.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["ckpt", "validate", str(run)])
    assert res.exit_code == 0, res.output
    assert "last.ckpt" in res.output and "val/loss=" in res.output and "mlp" in res.output
    res = runner.invoke(app, ["ckpt", "validate", str(good), "--json"])
    data = json.loads(res.output)
    assert res.exit_code == 0 and data["verdict"] == "OK" and data["checkpoints"][0]["params"] > 0
    trunc = tmp_path / "t.ckpt"
    trunc.write_bytes(good.read_bytes()[:1000])
    # a real process: the exit code reaches the shell, the one-line diagnosis the terminal
    proc = subprocess.run(
        [sys.executable, "-m", "planlab.cli.main", "ckpt", "validate", str(trunc)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 4 and "truncated" in proc.stdout and "Traceback" not in proc.stderr
