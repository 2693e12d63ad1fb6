"""``planlab exp …``: experiments defined once in YAML, scripts generated, provenance recorded, results in one table.

Each command parses its options and calls one function of :mod:`planlab.experiments`; library imports
happen inside the commands so ``planlab`` starts fast. ``--root`` (or ``PLANLAB_EXP_ROOT``, default
``./experiments``) selects the experiments root.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import typer

from planlab.cli._common import console, parse_int_list, print_json

exp_app = typer.Typer(
    name="exp",
    help="Experiments: templates, SLURM/local launch, run registry, harvest, export, aggregate, compare, report.",
    no_args_is_help=True,
)

_ROOT = typer.Option(None, "--root", help="Experiments root (default: $PLANLAB_EXP_ROOT or ./experiments).")
_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def register(app: typer.Typer) -> None:
    app.add_typer(exp_app, name="exp")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _tags(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [t.strip() for t in v.split(",") if t.strip()]
    return out


def _echo(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- catalog


@exp_app.command("templates")
def templates(as_json: bool = _JSON) -> None:
    """List the packaged experiment templates."""
    from planlab.experiments.spec import list_templates, load_template

    rows = []
    for name in list_templates():
        t = load_template(name)
        agent = ((t.get("train") or {}).get("agent") or {}).get("name")
        rows.append(
            {
                "template": name,
                "agent": agent,
                "sweep": bool(t.get("sweep")),
                "description": t.get("description"),
            }
        )
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("template", "agent", "sweep", "description")
    for r in rows:
        table.add_row(
            r["template"], str(r["agent"]), "yes" if r["sweep"] else "", str(r["description"] or "")
        )
    console.print(table)


@exp_app.command("clusters")
def clusters(as_json: bool = _JSON) -> None:
    """List the packaged cluster profiles."""
    from planlab.experiments.cluster import list_profiles, load_profile

    rows = []
    for name in list_profiles():
        p = load_profile(name)
        rows.append({"profile": name, "launcher": p.launcher, "partition": p.partition,
                     "train": f"{p.train.nodes}x{p.train.gpus_per_node or p.train.cpu_tasks_per_node}"
                              f"{' GPU' if p.train.gpus_per_node else ' CPU task'}", "description": p.description})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("profile", "launcher", "partition", "train", "description")
    for r in rows:
        table.add_row(r["profile"], r["launcher"], str(r["partition"] or "-"), r["train"], r["description"])
    console.print(table)


# --------------------------------------------------------------------------- create & launch


@exp_app.command("new")
def new(
    exp_id: str = typer.Option(..., "--exp-id", help="Identifier: [A-Za-z0-9][A-Za-z0-9._-]{0,63}."),
    template: str = typer.Option(
        ..., "--template", "-t", help="Template name (planlab exp templates) or YAML path."
    ),
    description: str = typer.Option(None, "--description", "-d"),
    learning_rate: float = typer.Option(None, "--learning-rate", help="optim.lr"),
    batch_size: int = typer.Option(None, "--batch-size", help="trainer.batch_size (per device)"),
    epochs: int = typer.Option(None, "--epochs", help="trainer.max_epochs"),
    max_steps: int = typer.Option(None, "--max-steps", help="trainer.max_steps"),
    label_fraction: float = typer.Option(None, "--label-fraction", help="data.label_fraction"),
    data_root: str = typer.Option(None, "--data-root", help="data.root"),
    seed: int = typer.Option(
        None, "--seed", help="Training seed (trainer.seed); default: the template's first."
    ),
    overrides: list[str] = typer.Option(None, "--set", "-s", help="key=value override (repeatable)."),
    tags: list[str] = typer.Option(None, "--tags", help="Comma-separated tags (repeatable)."),
    notes: str = typer.Option(None, "--notes"),
    cluster: str = typer.Option(None, "--cluster", help="Cluster profile name or YAML path."),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Create an experiment from a template (validated now; nothing is submitted)."""
    from planlab.experiments import launch
    from planlab.experiments.spec import SHORTCUTS

    over: list[str] = []
    for name, value in (("learning_rate", learning_rate), ("batch_size", batch_size), ("epochs", epochs),
                        ("max_steps", max_steps), ("label_fraction", label_fraction), ("data_root", data_root)):  # fmt: skip
        if value is not None:
            over.append(f"{SHORTCUTS[name]}={value}")
    run, resolved = launch.new_experiment(
        root, exp_id, template, description=description, overrides=[*over, *(overrides or [])],
        tags=_tags(tags), notes=notes, cluster=cluster, seed=seed,
    )  # fmt: skip
    info = {"exp_id": exp_id, "run_dir": str(run), "config_hash": resolved.config_hash,
            "group_key": resolved.group_key, "warnings": resolved.warnings}  # fmt: skip
    if as_json:
        print_json(info)
        return
    for w in resolved.warnings:
        _echo(f"warning: {w}")
    _echo(f"created {exp_id} (config {resolved.config_hash}, group {resolved.group_key}) in {run}")
    _echo(f"next: planlab exp submit {exp_id} --dry-run")


@exp_app.command("submit")
def submit(
    exp_id: str = typer.Argument(...),
    launcher: str = typer.Option(None, "--launcher", help="slurm or local (default: the cluster profile's)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write and print the scripts; submit nothing."),
    only: list[str] = typer.Option(None, "--only", help="Only these stages: train, eval (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Submit even if jobs are recorded as live."),
    detach: bool = typer.Option(False, "--detach", help="Local launcher: run in the background."),
    no_preflight: bool = typer.Option(False, "--no-preflight", help="Skip the smoke run before submitting."),
    root: Path = _ROOT,
) -> None:
    """Submit an experiment: train, then evaluate (afterok), or run it locally."""
    import sys

    from planlab.experiments import launch

    if not (dry_run or no_preflight):  # diagnostics room: `planlab smoke` on this experiment first
        from planlab.cli.smoke import preflight

        preflight(root, exp_id, only or None, force)
    sub = launch.submit(root, exp_id, launcher=launcher, only=only or None, dry_run=dry_run, force=force,
                        detach=detach, echo=_echo)  # fmt: skip
    if not dry_run and sub.launcher == "slurm":
        _echo(f"{exp_id}: " + ", ".join(f"{k}={v}" for k, v in sub.jobs.items()))
    if sub.exit_code:
        _echo(f"{exp_id}: a local stage failed (exit {sub.exit_code}); see planlab exp show {exp_id}")
        sys.exit(1)


@exp_app.command("sweep")
def sweep(
    template: str = typer.Option(..., "--template", "-t"),
    sweep_id: str = typer.Option(
        ..., "--sweep-id", help="Prefix of the experiment ids (<sweep>-p<i>-s<seed>)."
    ),
    grid: list[str] = typer.Option(
        None, "--grid", "-g", help="key=v1,v2,... (repeatable; default: the template's)."
    ),
    seeds: str = typer.Option(None, "--seeds", help="Comma-separated seeds, e.g. 0,1,2."),
    overrides: list[str] = typer.Option(None, "--set", "-s", help="key=value for every point (repeatable)."),
    description: str = typer.Option(None, "--description", "-d"),
    tags: list[str] = typer.Option(None, "--tags"),
    notes: str = typer.Option(None, "--notes"),
    cluster: str = typer.Option(None, "--cluster"),
    launcher: str = typer.Option(None, "--launcher"),
    max_parallel: int = typer.Option(None, "--max-parallel", help="Array throttle (%N)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Create the experiments and scripts; submit nothing."
    ),
    no_submit: bool = typer.Option(False, "--no-submit", help="Only create the experiments."),
    root: Path = _ROOT,
) -> None:
    """Create one experiment per grid point × seed and submit them as one SLURM job array."""
    import sys

    from planlab.experiments import launch

    sdir, ids = launch.new_sweep(root, sweep_id, template, grid=grid or None, seeds=parse_int_list(seeds),
                                 overrides=overrides or None, description=description, tags=_tags(tags),
                                 notes=notes, cluster=cluster)  # fmt: skip
    _echo(
        f"created sweep {sweep_id}: {len(ids)} experiments ({ids[0]} … {ids[-1]}); map in {sdir / 'array_map.tsv'}"
    )
    if no_submit:
        return
    sub = launch.submit_sweep(
        root, sweep_id, launcher=launcher, dry_run=dry_run, max_parallel=max_parallel, echo=_echo
    )
    if sub.exit_code:
        sys.exit(1)


@exp_app.command("status")
def status(
    exp_ids: list[str] = typer.Argument(None, help="Experiments (default: all)."),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Refresh job states from the scheduler (one batched sacct call) and print them."""
    from planlab.experiments import launch

    rows = launch.refresh_status(root, exp_ids or None)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("experiment", "state", "jobs", "reason")
    for r in rows:
        changed = f"{r['recorded']} -> {r['state']}" if r["state"] != r["recorded"] else r["state"]
        table.add_row(
            r["exp_id"], changed, ", ".join(f"{k}:{v}" for k, v in r["jobs"].items()), str(r["reason"] or "")
        )
    console.print(table)


@exp_app.command("cancel")
def cancel(exp_id: str = typer.Argument(...), root: Path = _ROOT) -> None:
    """Cancel every job of an experiment."""
    from planlab.experiments import launch

    jobs = launch.cancel(root, exp_id)
    _echo(f"cancelled {exp_id}: {', '.join(jobs) or '(no jobs)'}")


# --------------------------------------------------------------------------- registry


@exp_app.command("reindex")
def reindex(root: Path = _ROOT) -> None:
    """Rebuild the index from the run dirs (atomic: the old index stays until the new one is complete)."""
    from planlab.experiments import registry

    records = registry.reindex(root)
    bad = [r.exp["exp_id"] for r in records if r.exp.get("error")]
    _echo(f"indexed {len(records)} experiment(s) into {registry.index_path(root)}")
    for exp_id in bad:
        _echo(f"warning: {exp_id}: {next(r.exp['error'] for r in records if r.exp['exp_id'] == exp_id)}")


@exp_app.command("harvest")
def harvest(
    exp_ids: list[str] = typer.Argument(None),
    all_: bool = typer.Option(False, "--all", help="Every experiment."),
    import_csv: Path = typer.Option(
        None, "--import", help="Copy a NAVSIM run_pdm_score CSV into the run dir first."
    ),
    split: str = typer.Option(None, "--split", help="Split name for --import (eval/<split>/)."),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Read evaluation outputs (planlab's and NAVSIM's CSVs) into the index."""
    from planlab.errors import ConfigError
    from planlab.experiments import registry, rundir
    from planlab.experiments.harvest import import_csv as do_import

    if not exp_ids and not all_:
        raise ConfigError("name experiments to harvest or pass --all")
    if import_csv is not None:
        if not exp_ids or len(exp_ids) != 1 or not split:
            raise ConfigError("--import needs exactly one experiment and --split")
        dest = do_import(rundir.existing_run_dir(root, exp_ids[0]), import_csv, split)
        _echo(f"imported {import_csv} -> {dest}")
    records = registry.harvest(root, None if all_ else exp_ids)
    rows = []
    for rec in records:
        for r in rec.results:
            rows.append({"exp_id": rec.exp["exp_id"], "split": r.split, "format": r.format, "metric": r.metric,
                         "score": r.score, "n_scenarios": r.n_scenarios, "n_valid": r.n_valid})  # fmt: skip
        if not rec.results:
            rows.append({"exp_id": rec.exp["exp_id"], "split": None, "format": None, "metric": None,
                         "score": None, "n_scenarios": 0, "n_valid": 0, "error": rec.exp.get("error")})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("experiment", "split", "metric", "score", "scenes", "failed", "format")
    for r in rows:
        if r["split"] is None:
            table.add_row(
                r["exp_id"],
                "-",
                "-",
                "no results" + (f" ({r.get('error')})" if r.get("error") else ""),
                "0",
                "-",
                "-",
            )
        else:
            table.add_row(r["exp_id"], r["split"], r["metric"], _fmt(r["score"]), str(r["n_scenarios"]),
                          str(r["n_scenarios"] - r["n_valid"]), r["format"])  # fmt: skip
    console.print(table)


@exp_app.command("list")
def list_(
    status: list[str] = typer.Option(
        None, "--status", help="created/submitted/running/completed/failed/cancelled/requeued"
    ),
    tags: list[str] = typer.Option(None, "--tags", help="Experiments carrying all of these tags."),
    template: str = typer.Option(None, "--template"),
    text: str = typer.Option(None, "--text", help="Substring of id, description or notes."),
    sort: str = typer.Option("created", "--sort", help="exp_id, created, status, score, template, updated"),
    desc: bool = typer.Option(False, "--desc", help="Descending order."),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """List experiments with their status and headline score."""
    from planlab.experiments import registry

    rows = registry.list_experiments(root, status=status or None, tags=_tags(tags) or None, template=template,
                                     text=text, sort=sort, descending=desc)  # fmt: skip
    if as_json:
        print_json([{k: v for k, v in r.items() if k not in ("config_json",)} for r in rows])
        return
    from rich.table import Table

    table = Table("experiment", "status", "template", "tags", "score", "scenes", "description")
    for r in rows:
        p = r["primary"]
        score = f"{p['metric']} {_fmt(p['score'])}" if p else "no results"
        table.add_row(r["exp_id"], str(r["status"]), str(r["template"]), ",".join(json.loads(r["tags"] or "[]")),
                      score, str(p["n_scenarios"]) if p else "-", (r["description"] or "").splitlines()[0][:60] if r["description"] else "")  # fmt: skip
    console.print(table)
    if not rows:
        _echo("no experiments match")


@exp_app.command("show")
def show(exp_id: str = typer.Argument(...), root: Path = _ROOT, as_json: bool = _JSON) -> None:
    """Everything about one experiment: config, status, provenance, results, files and scripts."""
    from planlab.experiments import registry, rundir

    row = registry.get_experiment(root, exp_id)
    run = Path(row["run_dir"])
    status_data = rundir.read_status(run)
    meta = rundir.read_json(run / "meta.json", {}) or {}
    scripts = sorted(str(p) for p in (run / "scripts").glob("*")) if (run / "scripts").is_dir() else []
    files = sorted(
        str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.startswith(".")
    )
    info = {
        "exp_id": exp_id,
        "description": row["description"],
        "template": row["template"],
        "tags": json.loads(row["tags"] or "[]"),
        "notes": row["notes"],
        "status": status_data,
        "config_hash": row["config_hash"],
        "group_key": row["group_key"],
        "config": json.loads(row["config_json"] or "{}"),
        "git": {"sha": row["git_sha"], "branch": row["git_branch"], "dirty": row["git_dirty"]},
        "checkpoint": row["checkpoint"],
        "wall_time_s": row["wall_time_s"],
        "gpu_hours": row["gpu_hours"],
        "jobs": meta.get("jobs") or [],
        "results": row["results"],
        "scripts": scripts,
        "files": files,
        "error": row.get("error"),
    }
    if as_json:
        print_json(info)
        return
    import yaml

    _echo(
        f"{exp_id}: {row['status']}"
        + (f" ({status_data.get('reason')})" if status_data.get("reason") else "")
    )
    _echo(f"description: {row['description'] or ''}")
    _echo(
        f"template: {row['template']}   tags: {', '.join(info['tags'])}   config {row['config_hash']} group {row['group_key']}"
    )
    if row["notes"]:
        _echo(f"notes: {row['notes']}")
    _echo(f"git: {row['git_sha'] or '-'} ({row['git_branch'] or '-'}){' dirty' if row['git_dirty'] else ''}")
    _echo(
        f"jobs: {status_data.get('jobs') or '-'}   wall {_fmt(row['wall_time_s'], 1)} s   GPU-h {_fmt(row['gpu_hours'], 3)}"
    )
    _echo(f"checkpoint: {row['checkpoint'] or '-'}")
    if row.get("error"):
        _echo(f"warning: {row['error']}")
    if not row["results"]:
        _echo("results: no results")
    for split, r in row["results"].items():
        subs = ", ".join(f"{k}={_fmt(v)}" for k, v in r["subscores"].items())
        _echo(f"results [{split}] {r['metric']}={_fmt(r['score'])} on {r['n_scenarios']} scenes "
              f"({r['n_scenarios'] - r['n_valid']} failed; {r['format']}): {subs}")  # fmt: skip
    _echo("config:")
    _echo(yaml.safe_dump(info["config"], sort_keys=False).rstrip())
    _echo("scripts: " + (", ".join(scripts) or "-"))
    _echo(f"files ({len(files)}): " + ", ".join(files[:40]) + (" …" if len(files) > 40 else ""))


# --------------------------------------------------------------------------- tables and report


@exp_app.command("export")
def export(
    out: Path = typer.Argument(Path("results_master.csv"), help="CSV to write (atomically)."),
    tags: list[str] = typer.Option(None, "--tags"),
    status: list[str] = typer.Option(None, "--status"),
    root: Path = _ROOT,
) -> None:
    """Write results_master.csv: one row per experiment, every hyperparameter and metric, stable columns."""
    from planlab.experiments.export import export_master

    n, cols = export_master(root, out, tags=_tags(tags) or None, status=status or None)
    _echo(f"wrote {out} ({n} experiments, {cols} columns)")


@exp_app.command("aggregate")
def aggregate(
    out: Path = typer.Option(None, "--out", help="Also write the table as CSV."),
    ignore: list[str] = typer.Option(
        None, "--ignore", help="More config keys to ignore when grouping, e.g. train.data.subset_seed."
    ),
    tags: list[str] = typer.Option(None, "--tags"),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Group experiments by config without the seed: mean, std, n and 95 % bootstrap CI per metric."""
    from planlab.atomic import atomic_write_text
    from planlab.experiments import registry
    from planlab.experiments.export import aggregate as agg
    from planlab.experiments.export import to_csv

    rows = registry.list_experiments(root, tags=_tags(tags) or None, sort="exp_id")
    columns, groups = agg(rows, ignore=ignore or ())
    if out is not None:
        atomic_write_text(out, to_csv(columns, groups))
        _echo(f"wrote {out} ({len(groups)} groups)")
    if as_json:
        print_json(groups)
        return
    from rich.table import Table

    varying = [c for c in columns if c.startswith("train.") or c.startswith("eval.")]
    table = Table("group", "n", *varying, "score mean", "std", "95% CI", "experiments")
    for g in groups:
        table.add_row(g["group_key"][:10], str(g["n"]), *[_fmt(g.get(c)) for c in varying], _fmt(g.get("score_mean")),
                      _fmt(g.get("score_std")), f"[{_fmt(g.get('score_ci_low'))}, {_fmt(g.get('score_ci_high'))}]",
                      g["exp_ids"])  # fmt: skip
    console.print(table)
    if not groups:
        _echo("no results to aggregate")


@exp_app.command("compare")
def compare(
    a: str = typer.Argument(...),
    b: str = typer.Argument(...),
    split: str = typer.Option(None, "--split"),
    root: Path = _ROOT,
    as_json: bool = _JSON,
) -> None:
    """Config diff of two experiments and a paired per-scene bootstrap test on the score."""
    from planlab.experiments.export import compare as cmp

    res = cmp(root, a, b, split)
    if as_json:
        print_json(res)
        return
    _echo(f"config differences ({len(res['config_diff'])}):")
    for key, va, vb in res["config_diff"]:
        _echo(f"  {key}: {va!r} -> {vb!r}")
    if res["test"] is None:
        _echo(res.get("note", "no results"))
        return
    t = res["test"]
    _echo(f"split {res['split']}: {a} {_fmt(res['score_a'])} vs {b} {_fmt(res['score_b'])}")
    _echo(f"paired over {t['n']} scenes: mean({a} - {b}) = {_fmt(t['diff'])} "
          f"[95% CI {_fmt(t['ci_low'])}, {_fmt(t['ci_high'])}], p = {_fmt(t['p_value'])}"
          + (f" ({t['only_a']} scenes only in {a}, {t['only_b']} only in {b})" if t["only_a"] or t["only_b"] else ""))  # fmt: skip


@exp_app.command("report")
def report(
    out: Path = typer.Option(..., "--out", help="Directory for index.html and the PNG plots."),
    title: str = typer.Option("planlab experiments", "--title"),
    tags: list[str] = typer.Option(None, "--tags"),
    root: Path = _ROOT,
) -> None:
    """Write a static HTML report (tables, learning curves, score bars, score vs label fraction)."""
    from planlab.experiments.report import write_report

    path = write_report(root, out, title=title, tags=_tags(tags) or None)
    _echo(f"wrote {path}")
