"""The static HTML report: tables, plots, escaping; rendered and painted by headless Chromium."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import chromium_path
from planlab.experiments.report import read_curves, write_report
from test_exp_registry import make_run

EVIL = (
    '<script>document.title=\'pwned\'</script><img src=x onerror="document.body.dataset.pwned=1"> & "quotes"'
)


def _report_root(tmp_path: Path) -> Path:
    root = tmp_path / "exps"
    for i in range(8):
        run = make_run(root, i)
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        cfg["train"]["data"] = {"label_fraction": [0.1, 0.5, 1.0, 1.0][i % 4]}
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    spec = yaml.safe_load((root / "r0001" / "experiment.yaml").read_text())
    spec["description"] = EVIL
    (root / "r0001" / "experiment.yaml").write_text(yaml.safe_dump(spec))
    lines = ["epoch,step,train/loss_step,val/loss,perf/samples_per_s"]
    for s in range(1, 30):
        lines.append(f"0,{s},{1.0 / s:.4f},,{100 + s}")
        if s % 10 == 0:
            lines.append(f"0,{s},,{1.2 / s:.4f},")
    (root / "r0002" / "metrics.csv").write_text("\n".join(lines) + "\n")
    make_run(root, 50, with_results=False)
    return root


def test_report_files_and_escaping(tmp_path):
    root = _report_root(tmp_path)
    html_path = write_report(root, tmp_path / "report", title="t <b>x</b>")
    html = html_path.read_text()
    for png in ("scores.png", "groups.png", "label_fraction.png", "learning_curves.png"):
        assert (tmp_path / "report" / png).is_file(), png
        assert f'src="{png}"' in html
        with Image.open(tmp_path / "report" / png) as im:
            assert im.size[0] > 200 and im.size[1] > 100
    assert (
        "<script>document.title" not in html
        and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    )
    assert "t &lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("<script>") == 1  # only the report's own image self-check
    assert 'data-exp-id="r0050"' in html  # an experiment without results is listed, not a crash
    curves = read_curves(root / "r0002" / "metrics.csv")
    assert len(curves["train/loss_step"]) == 29 and len(curves["val/loss"]) == 2


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path):
    root = _report_root(tmp_path)
    html_path = write_report(root, tmp_path / "report")
    browser = chromium_path()
    assert browser is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]  # fmt: skip
    url = html_path.resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    out = dom.stdout
    assert 'data-ready="1"' in out, "the page's load handler did not run"
    assert "data-pwned" not in out and "<title>planlab experiments</title>" in out
    imgs = re.findall(r"<img[^>]*>", out)
    assert len(imgs) == 4 and all('data-loaded="1"' in tag for tag in imgs), imgs  # every PNG decoded
    rows = re.findall(r'<tr data-exp-id="([^"]+)"', out)
    assert rows == sorted(rows) and len(rows) == 9 and "r0050" in rows
    # the malicious description is text in its cell, not markup
    cell = re.search(r'<tr data-exp-id="r0001">.*?<td class="desc">(.*?)</td>', out, re.S).group(1)
    assert cell.startswith("&lt;script&gt;document.title=") and "<img" not in cell
    shot = tmp_path / "shot.png"
    paint = subprocess.run([browser, *flags, "--window-size=1280,2400", f"--screenshot={shot}", url],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert paint.returncode == 0 and shot.is_file(), paint.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert px.std() > 10  # not a blank page
    blue = (px[..., 2] > 120) & (px[..., 0] < 110) & (px[..., 1] < 160)
    assert blue.sum() > 500, "the plots (matplotlib blue bars/lines) did not paint"
