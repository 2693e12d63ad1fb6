"""I-JEPA pre-training end to end on the calibration set: run dir contents, the exported encoder loads into
the frozen-encoder agents, SIGTERM checkpoint + resume equals the uninterrupted run, the CLI's errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings

import pytest
import torch

from planlab.errors import PlanlabError
from planlab.models.vit import load_vit
from planlab.ssl import pretrain as pretrain_mod
from planlab.ssl.config import build_pretrain_config, packaged_configs
from planlab.ssl.pretrain import load_checkpoint, run_pretraining

pytestmark = pytest.mark.slow


def _cfg(calib_root, cache, **extra):
    over = {
        "data.root": str(calib_root),
        "data.split": "calib",
        "data.cache_dir": str(cache),
        "probe.split": "calib",
        "probe.every_n_epochs": 2,
        "trainer.epochs": 3,
        "trainer.batch_size": 16,
        "trainer.progress_bar": False,
        "trainer.log_every_n_steps": 1,
        "trainer.checkpoint_every_n_steps": 0,
        "encoder.depth": 2,
        "encoder.embed_dim": 32,
        "encoder.num_heads": 2,
        "predictor.embed_dim": 16,
        "predictor.depth": 1,
        "predictor.num_heads": 2,
    }
    over.update(extra)
    return build_pretrain_config(overrides=over)


@pytest.fixture(scope="module")
def finished(calib_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    cfg = _cfg(calib_root, root / "frames")
    with warnings.catch_warnings():
        # logging the loss every step must not convert a graph-attached tensor (torch warns, once per process)
        warnings.filterwarnings("error", message="Converting a tensor with requires_grad")
        result = run_pretraining(cfg, root / "run")
    return cfg, result, root


def test_run_dir_and_monitors(finished):
    cfg, result, _ = finished
    run = result.run_dir
    assert result.state == "completed" and result.step == 3 * (107 // 16)
    for name in ("config.yaml", "meta.json", "training.json", "status.json", "metrics.csv", "probe.json",
                 "checkpoints/last.pt", "encoder/config.json", "encoder/model.safetensors", "encoder/planlab.json"):  # fmt: skip
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["pretraining"]["frames"]["count"] == 107 and "sha256" in meta["lock"]
    assert meta["pretraining"]["total_steps"] == result.step
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    for key in ("train/loss", "monitor/target_std", "monitor/pooled_std", "train/ema_momentum", "probe/ssl_speed_r2",
                "probe/random_speed_r2"):  # fmt: skip
        assert key in header, key
    probe = json.loads((run / "probe.json").read_text())
    assert [h["epoch"] for h in probe["history"]] == [0, 2, 3]
    # at epoch 0 the probed encoder *is* the random-init encoder: the comparison starts at exactly 0
    assert probe["history"][0]["ssl_minus_random"]["speed_r2"] == pytest.approx(0.0, abs=1e-9)
    info = json.loads((run / "encoder" / "planlab.json").read_text())
    assert info["source"] == "target_encoder" and info["camera"]["image_width"] == 256
    assert json.loads((run / "status.json").read_text())["state"] == "completed"


def test_exported_encoder_is_the_target_encoder_and_loads_into_an_agent(finished):
    cfg, result, _ = finished
    ck = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")
    vit = load_vit(result.encoder_dir)
    target = {
        k[len("target_encoder.") :]: v for k, v in ck["model"].items() if k.startswith("target_encoder.")
    }
    assert all(torch.equal(v, target[k]) for k, v in vit.state_dict().items())
    context = {
        k[len("context_encoder.") :]: v for k, v in ck["model"].items() if k.startswith("context_encoder.")
    }
    assert not torch.equal(
        context["blocks.0.attn.qkv.weight"], target["blocks.0.attn.qkv.weight"]
    )  # EMA lags

    from planlab.agents.registry import build_agent

    agent = build_agent(
        "encoder_mlp",
        config={"camera": {"image_height": 64, "image_width": 256},
                "encoder": {"kind": "vit", "path": str(result.encoder_dir)}},
    )  # fmt: skip
    assert agent.encoder.fully_frozen and agent.encoder.embed_dim == 32
    assert agent.external_state()["encoder."]["path"] == str(result.encoder_dir)


def test_sigterm_checkpoint_and_resume_equal_the_uninterrupted_run(finished, calib_root, monkeypatch):
    cfg, result, root = finished
    calls = {"n": 0}
    real_crop = pretrain_mod.random_crop

    def crop_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # during step 8 (epoch 1): SIGTERM arrives mid-epoch
            os.kill(os.getpid(), signal.SIGTERM)
        return real_crop(*args, **kwargs)

    monkeypatch.setattr(pretrain_mod, "random_crop", crop_then_signal)
    stopped = run_pretraining(cfg, root / "resumed")
    assert stopped.state == "interrupted" and stopped.stopped_by_signal == "SIGTERM" and stopped.step == 8
    assert load_checkpoint(root / "resumed" / "checkpoints" / "last.pt")["step"] == 8
    with pytest.raises(PlanlabError, match="--resume"):
        run_pretraining(cfg, root / "resumed")
    monkeypatch.setattr(pretrain_mod, "random_crop", real_crop)
    done = run_pretraining(cfg, root / "resumed", resume=True)
    assert done.state == "completed" and done.step == result.step and done.resumed_from is not None
    a = load_checkpoint(result.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(root / "resumed" / "checkpoints" / "last.pt")["model"]
    for k, v in a.items():
        assert torch.allclose(v, b[k], atol=1e-5, rtol=1e-4), k
    steps = [int(r.split(",")[0]) for r in (root / "resumed" / "metrics.csv").read_text().splitlines()[1:]]
    assert len([s for s in steps if s == 9]) == 1  # rows after the checkpoint were not duplicated
    with pytest.raises(PlanlabError, match="finished run"):
        run_pretraining(cfg, root / "resumed", resume=True)
    changed = _cfg(calib_root, root / "frames", **{"optim.lr": 5e-4})
    with pytest.raises(PlanlabError, match="different config"):
        run_pretraining(changed, root / "resumed", resume=True)


def test_packaged_configs_validate():
    names = [p.name for p in packaged_configs()]
    assert "ijepa_small.yaml" in names
    for path in packaged_configs():
        assert path.read_text().startswith("# planlab ssl pretrain"), path
        build_pretrain_config([path])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "planlab.cli.main", "ssl", *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_cli_errors_are_one_line(tmp_path):
    bad = _cli("pretrain", "--dry-run", "trainer.epoch=3")
    assert bad.returncode != 0 and "trainer.epoch" in bad.stderr and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    ok = _cli("pretrain", "--dry-run", "trainer.epochs=3")
    assert ok.returncode == 0 and "epochs: 3" in ok.stdout
    missing = _cli("export", "--encoder", str(tmp_path / "nope"), "--out", str(tmp_path / "hf"))
    assert (
        missing.returncode != 0
        and "ViT config not found" in missing.stderr
        and "Traceback" not in missing.stderr
    )
    odd = _cli("pretrain", "--dry-run", "camera.image_width=250")
    assert odd.returncode != 0 and "multiple of encoder.patch_size" in odd.stderr


def test_probe_cli_on_the_exported_encoder(finished, calib_root):
    """`planlab ssl probe` reads the encoder's camera settings from its planlab.json (a CameraFeatureConfig
    validated with its prefix) and compares it with the random-init ViT of the same shape."""
    cfg, result, root = finished
    out = _cli("probe", "--encoder", str(result.encoder_dir), "--split", "calib", "--data-root", str(calib_root),
               "--cache-dir", str(root / "frames"), "--pooling", "grid", "--train-split", "calib",
               "--random-seeds", "0,1", "--out", str(root / "probe_out.json"), "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    # one split for fitting and scoring: divided by log instead of scoring the frames the probe was fitted on
    assert data["pooling"] == "grid" and data["frames"] == 107 and data["protocol"].startswith("log split")
    assert set(data["ssl_minus_random"]) == {"speed_r2", "command_bacc", "lead_bacc"}
    assert [r["seed"] for r in data["random_inits"]] == [0, 1]
    ci = data["ssl_minus_random_ci"]["speed_r2"]
    assert ci["ci"][0] <= ci["diff"] <= ci["ci"][1]
    assert json.loads((root / "probe_out.json").read_text())["protocol"] == data["protocol"]
    bad_seeds = _cli("probe", "--encoder", str(result.encoder_dir), "--random-seeds", "x")
    assert (
        bad_seeds.returncode != 0
        and "--random-seeds" in bad_seeds.stderr
        and "Traceback" not in bad_seeds.stderr
    )
    bad = json.loads((result.encoder_dir / "planlab.json").read_text())
    bad["camera"]["cameras"] = []
    broken = root / "broken_encoder"
    broken.mkdir()
    for f in result.encoder_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "planlab.json").write_text(json.dumps(bad))
    err = _cli("probe", "--encoder", str(broken), "--split", "calib", "--data-root", str(calib_root),
               "--cache-dir", str(root / "frames"))  # fmt: skip
    assert err.returncode != 0 and "camera.cameras must name at least one camera" in err.stderr
    assert "Traceback" not in err.stderr


def test_snapshot_exports_the_checkpoint_target_encoder(finished, tmp_path):
    """`planlab ssl snapshot` writes the newest checkpoint's target encoder: for a finished run, the same
    weights as the run's own export; a directory without a checkpoint is a one-line error."""
    import torch

    _, result, _ = finished
    out = _cli("snapshot", "--run-dir", str(result.run_dir), "--out", str(tmp_path / "snap"))
    assert out.returncode == 0, out.stderr
    a, b = load_vit(result.encoder_dir), load_vit(tmp_path / "snap")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka
    info = json.loads((tmp_path / "snap" / "planlab.json").read_text())
    assert info["snapshot"] is True and info["step"] == result.step
    err = _cli("snapshot", "--run-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "x"))
    assert (
        err.returncode != 0 and "no pre-training checkpoint" in err.stderr and "Traceback" not in err.stderr
    )


def test_extra_roots_add_unlabelled_frames(calib_root, tmp_path):
    # a second dataset root (here a link to the same logs under another path) adds its frames of the split
    other = tmp_path / "other_world"
    other.mkdir()
    for name in ("navsim_logs", "sensor_blobs", "maps"):
        (other / name).symlink_to(calib_root / name)
    cfg = _cfg(calib_root, tmp_path / "frames", **{"data.extra_roots": [str(other)], "trainer.epochs": 1,
                                                    "probe.enabled": False})  # fmt: skip
    result = run_pretraining(cfg, tmp_path / "run")
    assert result.state == "completed" and result.step == (2 * 107) // 16
    frames = json.loads((result.run_dir / "meta.json").read_text())["pretraining"]["frames"]
    assert frames["count"] == 214 and [s["count"] for s in frames["sources"]] == [107, 107]
    assert frames["sources"][1]["root"] == str(other)
    info = json.loads((result.run_dir / "encoder" / "planlab.json").read_text())
    assert info["frames"]["count"] == 214


@pytest.mark.parametrize("roots", ["not-a-list", [""], ["a", "a"]])
def test_extra_roots_are_validated(roots):
    from planlab.errors import ConfigError

    with pytest.raises(ConfigError, match="data.extra_roots"):
        build_pretrain_config(overrides={"data.extra_roots": roots})


def test_variants_table_reads_the_run_dirs(finished, tmp_path):
    # scripts/ssl_variants.py: one row per run dir, "changes" = the resolved config's difference to --base
    _, result, _ = finished
    script = os.path.join(os.path.dirname(__file__), os.pardir, "scripts", "ssl_variants.py")
    base = str(next(p for p in packaged_configs() if p.name == "ijepa_small.yaml"))
    ok = subprocess.run([sys.executable, script, "--base", base, "--run", str(result.run_dir), "--out", str(tmp_path)],
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    data = json.loads((tmp_path / "ssl_variants.json").read_text())
    row = data["runs"][0]
    assert "encoder.depth=2" in row["changes"] and "trainer.epochs=3" in row["changes"]
    assert not any(c.startswith(("data.cache_dir", "probe.")) for c in row["changes"])
    probe = json.loads((result.run_dir / "probe.json").read_text())["final"]
    assert (
        row["delta"]["lead_bacc"] == probe["ssl_minus_random_ci"]["lead_bacc"] and row["steps"] == result.step
    )
    md = (tmp_path / "ssl_variants.md").read_text()
    assert f"`{result.run_dir.name}`" in md and "`encoder.depth=2`" in md
    bad = subprocess.run([sys.executable, script, "--base", base, "--run", str(tmp_path / "nope"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "not a finished pre-training run" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
