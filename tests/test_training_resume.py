"""Resume after kill -9 mid-epoch reproduces the uninterrupted run; 2-process CPU DDP writes the same format."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

pytestmark = pytest.mark.slow


def overrides(root):
    return [
        f"data.root={root}",
        "data.train_split=calib",
        "data.val_split=null",
        "data.num_workers=0",
        "trainer.max_epochs=2",
        "trainer.batch_size=4",
        "trainer.deterministic=true",
        "optim.warmup_steps=4",
        "agent.hidden_dim=32",
        "agent.ego.history_poses=2",
        "checkpoint.every_n_train_steps=3",
    ]


JOB = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    import lightning.pytorch as pl
    from planlab.training.config import build_train_config
    from planlab.training.train import run_training

    class PauseAt(pl.Callback):
        '''Write a marker after optimizer step N (its checkpoint is on disk) and wait to be killed.'''
        def __init__(self, step, marker):
            self.step, self.marker = step, Path(marker)
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == self.step:
                self.marker.write_text(str(trainer.global_step))
                time.sleep(600)

    torch.set_num_threads(1)  # the same reduction order in every run (and no OpenMP spinning on shared cores)
    root, run_dir, resume, pause = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4])
    cfg = build_train_config("ego_status_mlp", overrides=OVERRIDES(root))
    callbacks = [PauseAt(pause, run_dir + ".marker")] if pause else []
    result = run_training(cfg, run_dir, resume=resume, progress=False, callbacks=callbacks)
    print("DONE", result.global_step, result.resumed_from)
    """
).replace("OVERRIDES(root)", "overrides(root)")


def test_kill9_mid_epoch_then_resume_matches_uninterrupted(calib_root, tmp_path):
    import inspect

    job = tmp_path / "job.py"
    job.write_text(inspect.getsource(overrides) + JOB)
    py = [sys.executable, str(job), str(calib_root)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, cut = tmp_path / "full", tmp_path / "cut"
    # the uninterrupted run and the run that gets killed go side by side
    baseline = subprocess.Popen(
        [*py, str(full), "0", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    # 42 scenes / batch 4 = 11 batches per epoch; checkpoints every 3 steps; killed during step 17's pause,
    # so the newest checkpoint is step 15 = epoch 1 after 4 of its 11 batches.
    proc = subprocess.Popen(
        [*py, str(cut), "0", "17"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    marker = tmp_path / "cut.marker"
    t0 = time.monotonic()
    while not marker.exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.monotonic() - t0 < 300
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 15
    assert ckpt["planlab"]["position"] == {"epoch": 1, "batches_done": 4, "batches_per_epoch": 11}

    # without --resume the unfinished run dir is refused
    from planlab.errors import PlanlabError
    from planlab.training.config import build_train_config
    from planlab.training.train import run_training

    with pytest.raises(PlanlabError, match="pass --resume"):
        run_training(
            build_train_config("ego_status_mlp", overrides=overrides(calib_root)), cut, progress=False
        )

    out = subprocess.run([*py, str(cut), "1", "0"], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DONE 22" in out.stdout and "last.ckpt" in out.stdout
    assert baseline.wait(timeout=300) == 0, baseline.stderr.read()[-3000:]
    a = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 22
    diff = max(float((a["state_dict"][k] - b["state_dict"][k]).abs().max()) for k in a["state_dict"])
    assert diff <= 1e-6
    # metrics.csv has no duplicated steps from the killed attempt
    rows = (cut / "metrics.csv").read_text().splitlines()[1:]
    step_rows = [r.split(",")[0] for r in rows if r.split(",")[-1] != ""]
    assert len(step_rows) == len(set(step_rows))


def test_ddp_two_cpu_processes(calib_root, tmp_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "planlab.cli.main",
        "train",
        "--agent",
        "ego_status_mlp",
        "--run-dir",
        str(run),
        "--no-progress",
        f"data.root={calib_root}",
        "data.train_split=calib",
        "data.val_split=null",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.batch_size=4",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.strategy=ddp",
        "agent.hidden_dim=32",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    # 42 scenes over 2 ranks = 21 each -> 6 batches of 4 per epoch
    assert ckpt["global_step"] == 6 and ckpt["planlab"]["format_version"] == 1
    import json

    meta = json.loads((run / "meta.json").read_text())
    assert (
        meta["training"]["resolved"]["world_size"] == 2 and meta["training"]["resolved"]["strategy"] == "ddp"
    )
    from planlab.training.checkpoint import load_agent_from_checkpoint

    assert load_agent_from_checkpoint(run, device="cpu").name() == "ego_status_mlp"
    assert out.stdout.count("trained ego_status_mlp") == 1
