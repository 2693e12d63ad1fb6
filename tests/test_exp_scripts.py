"""Generated SLURM scripts: layout consistent by construction, every value quoted, never overwritten."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from planlab.experiments import launch, rundir, slurm
from planlab.experiments.scripts import TEMPLATES, eval_script, merge_script, train_script
from planlab.experiments.spec import make_spec, resolve

NASTY = "it's \"quoted\" $(touch PWNED_DOLLAR) `touch PWNED_TICK` ${HOME} ; rm -rf ~ &&\nsecond line \\ 'x'\n\tend"


def sbatch_options(text: str) -> dict[str, str]:
    """The #SBATCH options of a script as {name: value} (value '' for flags), as sbatch reads them."""
    opts: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH "):
            words = __import__("shlex").split(line[len("#SBATCH ") :])
            assert len(words) == 1, line
            name, _, value = words[0].partition("=")
            opts[name] = value
    return opts


def _resolved(exp_id="e1", cluster="example-gpu-multinode", description=NASTY, overrides=()):
    spec, tmpl = make_spec(
        exp_id, "ego_mlp", cluster=cluster, description=description, overrides=list(overrides)
    )
    return resolve(spec, tmpl)


def test_every_template_value_goes_through_a_filter():
    """Static guard: each {{ }} in a shell template is quoted (|q) or an int (|int); setup lines are the
    cluster profile's trusted shell code and the only exception."""
    for path in TEMPLATES.glob("*.j2"):
        if path.name.startswith("report"):
            continue
        for expr in re.findall(r"{{(.*?)}}", path.read_text()):
            expr = expr.strip()
            assert expr.endswith("|q") or expr.endswith("|int") or expr == "line", (
                f"{path.name}: {{{{ {expr} }}}}"
            )


def test_train_layout_matches_lightning_config(tmp_path):
    r = _resolved()
    s = train_script(r, run=tmp_path / "e1", log_dir=tmp_path / "logs", workdir=tmp_path, created="now")
    o = sbatch_options(s.text)
    t = r.train.trainer
    assert int(o["--nodes"]) == t.num_nodes == 4
    assert int(o["--ntasks-per-node"]) == t.devices == 4  # one task per GPU (lessons S4)
    assert (
        o["--gres"] == "gpu:l40s:4"
        and o["--partition"] == "l40s_public"
        and o["--account"] == "pr_000_general"
    )
    assert o["--signal"] == "SIGUSR1@300" and "--requeue" in o and o["--mem"] == "400G"
    assert o["--comment"] == "preemption=yes;requeue=yes"
    assert t.accelerator == "gpu" and t.strategy == "ddp"
    body = s.text
    assert re.search(r"^srun .*planlab\.experiments\.job train --run-dir", body, re.M), "always srun (S5)"
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST"' in body and "MASTER_PORT=" in body
    assert not re.search(r"^\s*trap\b", body, re.M), "SIGUSR1 belongs to Lightning; the script must not trap"
    assert (
        "conda activate" in body and "module load anaconda3/2025.06" in body
    )  # profile setup lines, verbatim
    assert "export HF_HUB_OFFLINE=1" in body


def test_cpu_ddp_layout(tmp_path):
    r = _resolved(cluster="local-slurm", overrides=["resources.train.cpu_tasks_per_node=2"])
    s = train_script(r, run=tmp_path, log_dir=tmp_path, workdir=tmp_path, created="now")
    o = sbatch_options(s.text)
    assert o["--ntasks-per-node"] == "2" and "--gres" not in o
    assert (r.train.trainer.devices, r.train.trainer.accelerator, r.train.trainer.strategy) == (
        2,
        "cpu",
        "ddp",
    )


def test_description_with_shell_metacharacters_stays_inert(tmp_path):
    r = _resolved()
    run = tmp_path / "e1"
    scripts = [
        train_script(r, run=run, log_dir=tmp_path, workdir=tmp_path, created="now"),
        eval_script(r, run=run, log_dir=tmp_path, workdir=tmp_path, created="now", after_train=True),
        merge_script(r, run=run, log_dir=tmp_path, workdir=tmp_path, created="now"),
    ]
    work = tmp_path / "work"
    work.mkdir()
    for s in scripts:
        f = tmp_path / f"{s.kind}.sbatch"
        f.write_text(s.text)
        check = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        # Execute the rendered header (the lines that carry user text) for real.
        header = s.text.split("# --- header: inert data only")[1].split("# --- end header ---")[0]
        out = subprocess.run(["bash", "-c", header.split("\n", 1)[1]], cwd=work, capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert f"description: {NASTY}\n" in out.stdout  # printed literally, byte for byte
        assert not list(work.iterdir()), "a $() or backtick in the description was executed"
        # No raw user text outside quotes: the description never appears in a comment line.
        for line in s.text.splitlines():
            if line.startswith("#") and not line.startswith("#!"):
                assert "PWNED" not in line


def test_sharded_eval_is_an_array_plus_merge(tmp_path):
    r = _resolved(cluster="local-slurm", overrides=["eval.shards=4"])
    e = eval_script(r, run=tmp_path, log_dir=tmp_path, workdir=tmp_path, created="now", after_train=True)
    o = sbatch_options(e.text)
    assert o["--array"] == "0-3" and "--kill-on-invalid-dep" in o and e.depends_on == "train"
    assert '--shard "${SLURM_ARRAY_TASK_ID}/4"' in e.text
    m = merge_script(r, run=tmp_path, log_dir=tmp_path, workdir=tmp_path, created="now")
    assert m.depends_on == "eval" and m.dependency_type == "afterok" and "job merge" in m.text
    assert launch.plan_stages(r, None, "slurm") == ["train", "eval", "merge"]
    assert launch.plan_stages(r, None, "local") == ["train", "eval"]
    assert launch.plan_stages(r, ["eval"], "slurm") == ["eval", "merge"]


def test_dry_run_writes_numbered_scripts_and_submits_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(slurm, "sbatch", lambda *a, **k: calls.append(a) or "1")
    launch.new_experiment(tmp_path, "b15", "ego_mlp", description=NASTY, cluster="local-slurm")
    printed: list[str] = []
    sub1 = launch.submit(tmp_path, "b15", dry_run=True, echo=printed.append)
    first = {p.name: p.read_text() for p in sub1.scripts}
    sub2 = launch.submit(tmp_path, "b15", dry_run=True, echo=printed.append)
    assert calls == []
    assert [p.name for p in sub1.scripts] == ["train.sbatch", "eval.sbatch"]
    assert [p.name for p in sub2.scripts] == ["train.2.sbatch", "eval.2.sbatch"]
    for name, text in first.items():  # the first scripts are untouched
        assert (tmp_path / "b15" / "scripts" / name).read_text() == text
    assert any("dry run" in line for line in printed) and any(
        "#SBATCH --job-name=pl-b15-train" in p for p in printed
    )
    assert rundir.read_status(tmp_path / "b15")["state"] == "created"
    # a script path that exists is never reused, even if someone left a stray file
    (tmp_path / "b15" / "scripts" / "train.3.sbatch").write_text("keep me")
    sub3 = launch.submit(tmp_path, "b15", dry_run=True)
    assert [p.name for p in sub3.scripts] == ["train.4.sbatch", "eval.4.sbatch"]
    assert (tmp_path / "b15" / "scripts" / "train.3.sbatch").read_text() == "keep me"


def test_sweep_array_map_and_scripts(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "sbatch", lambda *a, **k: pytest.fail("dry run submitted"))
    sdir, ids = launch.new_sweep(tmp_path, "lf", "ego_mlp", grid=["data.label_fraction=0.5,1.0", "optim.lr=1e-4,3e-4,1e-3"],
                                 seeds=[0], cluster="local-slurm")  # fmt: skip
    assert len(ids) == 6 and ids[0] == "lf-p0-s0"
    lines = [
        ln.split("\t") for ln in (sdir / "array_map.tsv").read_text().splitlines() if not ln.startswith("#")
    ]
    assert [ln[0] for ln in lines] == [str(i) for i in range(6)] and [ln[1] for ln in lines] == ids
    from planlab.experiments.job import read_array_map

    assert read_array_map(sdir / "array_map.tsv", 4) == Path(lines[4][2]) and Path(lines[4][2]).name == ids[4]
    sub = launch.submit_sweep(tmp_path, "lf", dry_run=True)
    texts = {p.name: p.read_text() for p in sub.scripts}
    assert sbatch_options(texts["train.sbatch"])["--array"] == "0-5"
    assert "--array-map" in texts["train.sbatch"] and "--array-map" in texts["eval.sbatch"]
    # every point carries its override; seeds differ only by seed
    cfgs = [rundir.read_config(tmp_path / e)["train"] for e in ids]
    assert [c["data"]["label_fraction"] for c in cfgs] == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0]
    with pytest.raises(Exception, match="already exists"):
        launch.new_sweep(tmp_path, "lf", "ego_mlp", grid=["optim.lr=1e-4"], cluster="local-slurm")
    with pytest.raises(Exception, match="one allocation"):
        launch.new_sweep(
            tmp_path, "bad", "ego_mlp", grid=["resources.train.nodes=1,2"], cluster="local-slurm"
        )
