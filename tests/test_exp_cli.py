"""``planlab exp`` from the command line: bad input is one line and a non-zero exit; the local launcher runs
a real train + eval on the calibration set end to end (new → submit → list/show → export → aggregate →
compare → report)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

PLANLAB = [sys.executable, "-m", "planlab.cli.main"]


def cli(*args: str, root: Path | None, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [*PLANLAB, "exp", *args] + (["--root", str(root)] if root is not None else [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(
            f"planlab exp {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["new", "--exp-id", "../x", "--template", "ego_mlp"], "invalid experiment id '../x'"),
        (["new", "--exp-id", "a;rm -rf ~", "--template", "ego_mlp"], "invalid experiment id 'a;rm -rf ~'"),
        (["new", "--exp-id", "$(id)", "--template", "ego_mlp"], "invalid experiment id '$(id)'"),
        (
            ["new", "--exp-id", "x", "--template", "ego_mlp", "--set", "optim.lrr=1"],
            "unknown config key 'optim.lrr'",
        ),
        (
            ["new", "--exp-id", "x", "--template", "ego_mlp", "--set", "trainer.max_epochs=ten"],
            "trainer.max_epochs",
        ),
        (
            ["new", "--exp-id", "x", "--template", "nope"],
            "unknown template 'nope'; valid templates: convgru_bev, ego_mlp, ijepa_mlp",
        ),
        (["new", "--exp-id", "x", "--template", "ego_mlp", "--tags", "ok,$(id)"], "invalid tag '$(id)'"),
        (
            ["new", "--exp-id", "x", "--template", "ego_mlp", "--cluster", "mars"],
            "unknown cluster profile 'mars'",
        ),
        (["show", "ghost"], "no experiment 'ghost'"),
        (["submit", "ghost", "--dry-run"], "no experiment 'ghost'"),
        (["harvest"], "name experiments to harvest or pass --all"),
        (["list", "--sort", "colour"], "sort='colour' is not valid"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    out = cli(*args, root=tmp_path, check=False)
    assert out.returncode != 0
    err = out.stderr.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_existing_id_is_never_overwritten_and_no_results_is_not_a_crash(tmp_path):
    cli("new", "--exp-id", "b15", "--template", "ego_mlp", "--description", "first", root=tmp_path)
    spec = (tmp_path / "b15" / "experiment.yaml").read_text()
    out = cli(
        "new",
        "--exp-id",
        "b15",
        "--template",
        "ego_mlp",
        "--description",
        "second",
        root=tmp_path,
        check=False,
    )
    assert out.returncode != 0 and "already exists" in out.stderr
    assert (tmp_path / "b15" / "experiment.yaml").read_text() == spec
    show = cli("show", "b15", root=tmp_path)
    assert "results: no results" in show.stdout and "created" in show.stdout
    assert "no results" in cli("list", root=tmp_path).stdout
    info = json.loads(cli("show", "b15", "--json", root=tmp_path).stdout)
    assert info["results"] == {} and info["status"]["state"] == "created"
    harvested = cli("harvest", "b15", root=tmp_path)
    assert "no results" in harvested.stdout
    assert cli("aggregate", root=tmp_path).stdout.strip().endswith("no results to aggregate")


def test_templates_and_clusters_list(tmp_path):
    assert "ijepa_mlp_ablation" in cli("templates", root=None).stdout
    assert "local-slurm" in cli("clusters", root=None).stdout


@pytest.mark.slow
def test_local_launcher_end_to_end(tmp_path, tiny_dataset, calib_root):
    """a1 trains on the tiny world and is scored by planlab on the calibration set (local launcher); a2
    imports NAVSIM's own per-scene CSV of the constant-velocity agent on the same 42 tokens; then
    list/show/export/compare/aggregate/report."""
    root = tmp_path / "exps"
    common = ["--template", "ego_mlp", "--cluster", "local", "--data-root", str(tiny_dataset), "--epochs", "1",
              "--batch-size", "4", "--set", "data.val_split=null", "--set", "data.num_workers=0",
              "--set", "agent.hidden_dim=16", "--set", "eval.split=calib", "--set", f"eval.data_root={calib_root}",
              "--set", "eval.workers=1", "--set", "logging.tensorboard=false"]  # fmt: skip
    cli(
        "new",
        "--exp-id",
        "a1",
        "--description",
        "lr 1e-3 <b>bold</b>",
        "--learning-rate",
        "1e-3",
        "--tags",
        "e2e",
        *common,
        root=root,
    )
    cli(
        "new",
        "--exp-id",
        "a2",
        "--description",
        "NAVSIM CV agent",
        "--learning-rate",
        "1e-2",
        "--tags",
        "e2e",
        *common,
        root=root,
    )
    out = cli("submit", "a1", "--no-preflight", root=root)
    assert "failed" not in out.stdout
    imported = cli(
        "harvest",
        "a2",
        "--import",
        str(calib_root / "expected" / "constant_velocity.csv"),
        "--split",
        "calib",
        root=root,
    )
    assert "navsim-v1.1" in imported.stdout
    listing = json.loads(cli("list", "--tags", "e2e", "--sort", "exp_id", "--json", root=root).stdout)
    assert [r["status"] for r in listing] == ["completed", "created"]
    assert all(r["primary"]["n_scenarios"] == 42 and r["primary"]["metric"] == "pdms" for r in listing)
    run = root / "a1"
    assert (run / "eval" / "calib" / "pdm_scores.csv").is_file() and (
        run / "checkpoints" / "last.ckpt"
    ).is_file()
    logs = sorted(p.name for p in (run / "logs").iterdir())
    assert any(n.startswith("train-local-") for n in logs) and any(n.startswith("eval-local-") for n in logs)
    show = json.loads(cli("show", "a1", "--json", root=root).stdout)
    assert show["git"]["sha"] and [j["stage"] for j in show["jobs"]] == ["train", "eval"]
    assert show["checkpoint"].endswith("last.ckpt") and show["wall_time_s"] > 0
    cli("export", str(tmp_path / "results_master.csv"), root=root)
    rows = list(csv.DictReader(open(tmp_path / "results_master.csv")))
    assert {r["exp_id"] for r in rows} == {"a1", "a2"} and all(r["pdms"] for r in rows)
    assert {float(r["train.optim.lr"]) for r in rows} == {1e-3, 1e-2}
    cmp = json.loads(cli("compare", "a1", "a2", "--json", root=root).stdout)
    assert [d[0] for d in cmp["config_diff"]] == ["train.optim.lr"] and cmp["test"]["n"] == 42
    assert cmp["score_b"] == pytest.approx(
        float(open(calib_root / "expected" / "constant_velocity.csv").read().splitlines()[-1].split(",")[-1])
    )
    agg = json.loads(cli("aggregate", "--json", root=root).stdout)
    assert sorted(g["n"] for g in agg) == [1, 1]
    cli("report", "--out", str(tmp_path / "report"), root=root)
    html = (tmp_path / "report" / "index.html").read_text()
    assert "lr 1e-3 &lt;b&gt;bold&lt;/b&gt;" in html and "learning_curves.png" in html
    # resubmitting a completed experiment is refused (re-evaluation would need --only eval)
    again = cli("submit", "a1", "--no-preflight", root=root, check=False)
    assert again.returncode != 0 and "is completed" in again.stderr
