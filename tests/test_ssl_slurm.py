"""Pre-training as a SLURM job: the rendered script (quoted, srun, requeue signal, frozen config), and on the
real local SLURM a submitted pre-training that finishes with an exported encoder."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from planlab.errors import ConfigError
from planlab.ssl.config import build_pretrain_config
from planlab.ssl.slurm import submit_pretraining

TINY = [
    "data.split=train",
    "probe.split=val",
    "trainer.epochs=1",
    "trainer.batch_size=4",
    "trainer.progress_bar=false",
    "encoder.depth=1",
    "encoder.embed_dim=32",
    "encoder.num_heads=2",
    "predictor.embed_dim=16",
    "predictor.depth=1",
    "predictor.num_heads=2",
]


def test_dry_run_script(tmp_path):
    run = tmp_path / "run with 'quote'"
    info = submit_pretraining([], [*TINY, "data.root=/data/x"], run, "example-gpu-multinode", time="01:00:00",
                              dry_run=True)  # fmt: skip
    text = (run / "scripts" / "pretrain.sbatch").read_text()
    assert info["script"].endswith("pretrain.sbatch") and "job_id" not in info
    assert (
        "#SBATCH --nodes=1" in text
        and "#SBATCH --gres=gpu:l40s:1" in text
        and "#SBATCH --time=01:00:00" in text
    )
    assert "#SBATCH --signal=SIGUSR1@" in text and "#SBATCH --requeue" in text
    assert "srun --kill-on-bad-exit=1 --ntasks=1" in text and "ssl pretrain" in text and "--resume" in text
    assert "'" + str(run).replace("'", "'\"'\"'") + "'" in text  # the run dir is shell-quoted
    frozen = yaml.safe_load((run / "scripts" / "pretrain.yaml").read_text())
    assert build_pretrain_config([run / "scripts" / "pretrain.yaml"]).data.root == "/data/x"
    assert frozen["trainer"]["epochs"] == 1
    # a second submission gets new numbered files, never overwriting what an earlier job ran
    again = submit_pretraining([], [*TINY, "data.root=/data/x"], run, "local-slurm", dry_run=True)
    assert (
        again["script"].endswith("pretrain.2.sbatch")
        and (run / "scripts" / "pretrain.sbatch").read_text() == text
    )
    with pytest.raises(ConfigError, match="time"):
        submit_pretraining([], TINY, tmp_path / "r2", "local-slurm", time="soon", dry_run=True)
    with pytest.raises(ConfigError, match="unknown cluster profile"):
        submit_pretraining([], TINY, tmp_path / "r3", "nope", dry_run=True)


@pytest.mark.slurm
@pytest.mark.slow
def test_submitted_pretraining_finishes(tiny_dataset, tmp_path):
    from planlab.experiments import slurm

    run = tmp_path / "ssl"
    info = submit_pretraining([], [*TINY, f"data.root={tiny_dataset}"], run, "local-slurm", time="00:15:00")
    t0 = time.monotonic()
    while True:
        states = slurm.query([info["job_id"]])
        word = slurm.combine(slurm.states_of(states, info["job_id"]))
        if word in ("completed", "failed", "cancelled"):
            break
        assert time.monotonic() - t0 < 600, "pre-training job did not finish in 10 min"
        time.sleep(2)
    log = "\n".join(p.read_text() for p in (run / "logs").glob("pretrain-*.out"))
    assert word == "completed", log[-2000:]
    assert (run / "encoder" / "model.safetensors").is_file()
    assert json.loads((run / "training.json").read_text())["state"] == "completed"
    meta = json.loads((run / "meta.json").read_text())
    assert meta["slurm"].get("SLURM_JOB_ID") == info["job_id"]
