"""The SQLite index of run dirs: experiments, tags, harvested results and per-scene scores.

The index is a cache of the run dirs (the unit of truth) and can be rebuilt from them at any time.
It lives at ``<root>/_index.sqlite`` in WAL mode; every write holds an ``flock`` on ``<root>/_index.lock``
(one writer at a time, queued rather than failing on SQLITE_BUSY) and replaces an experiment's rows in
one transaction, so concurrent harvesters lose and duplicate nothing. ``reindex`` builds a new database
beside the old one and renames it into place: a crash (even ``kill -9``) leaves the old index or the new
one, never a half-built one. Only login-node commands call this module; jobs never touch the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.errors import PlanlabError
from planlab.experiments import rundir
from planlab.experiments.harvest import EvalResult, harvest_run
from planlab.experiments.ids import check_id
from planlab.experiments.spec import experiment_hash, group_key

SCHEMA_VERSION = 1
LOCK_NAME = "_index.lock"
_TMP_PREFIX = f".{rundir.INDEX_NAME}.tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS experiments (
    exp_id TEXT PRIMARY KEY,
    description TEXT, template TEXT, tags TEXT, notes TEXT, cluster TEXT, seed INTEGER, sweep TEXT,
    status TEXT, phase TEXT, reason TEXT,
    created TEXT, submitted TEXT, started TEXT, finished TEXT, updated TEXT,
    config_hash TEXT, group_key TEXT, config_json TEXT, overrides_json TEXT,
    git_sha TEXT, git_branch TEXT, git_dirty INTEGER,
    launcher TEXT, job_ids TEXT, checkpoint TEXT, checkpoints_json TEXT,
    wall_time_s REAL, gpu_hours REAL,
    run_dir TEXT, fingerprint TEXT, indexed_at TEXT, error TEXT
);
CREATE TABLE IF NOT EXISTS tags (exp_id TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (exp_id, tag));
CREATE TABLE IF NOT EXISTS results (
    exp_id TEXT NOT NULL, split TEXT NOT NULL, format TEXT, metric TEXT, score REAL,
    n_scenarios INTEGER, n_valid INTEGER, subscores_json TEXT, extra_json TEXT, path TEXT,
    PRIMARY KEY (exp_id, split)
);
CREATE TABLE IF NOT EXISTS scenes (
    exp_id TEXT NOT NULL, split TEXT NOT NULL, token TEXT NOT NULL, valid INTEGER, score REAL,
    subscores_json TEXT, PRIMARY KEY (exp_id, split, token)
);
CREATE INDEX IF NOT EXISTS tags_by_tag ON tags (tag);
"""

_EXP_COLUMNS = (
    "exp_id", "description", "template", "tags", "notes", "cluster", "seed", "sweep",
    "status", "phase", "reason", "created", "submitted", "started", "finished", "updated",
    "config_hash", "group_key", "config_json", "overrides_json",
    "git_sha", "git_branch", "git_dirty", "launcher", "job_ids", "checkpoint", "checkpoints_json",
    "wall_time_s", "gpu_hours", "run_dir", "fingerprint", "indexed_at", "error",
)  # fmt: skip


def index_path(root: str | os.PathLike | None) -> Path:
    return rundir.experiments_root(root) / rundir.INDEX_NAME


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, allow_nan=True)


def _connect(path: Path, *, wal: bool = True) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=60000")
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextlib.contextmanager
def writer_lock(root: str | os.PathLike | None) -> Iterator[None]:
    """The single-writer lock of the index (an flock; the kernel releases it if the holder dies)."""
    base = rundir.experiments_root(root)
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _write_conn(root: str | os.PathLike | None) -> Iterator[sqlite3.Connection]:
    with writer_lock(root):
        path = index_path(root)
        conn = _connect(path)
        try:
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            yield conn
        finally:
            conn.close()


def read_conn(root: str | os.PathLike | None) -> sqlite3.Connection:
    """A connection for queries; builds the index first if it does not exist yet."""
    path = index_path(root)
    if not path.is_file():
        reindex(root)
    conn = _connect(path)
    return conn


# --------------------------------------------------------------------------- collecting a run dir


@dataclass
class RunRecord:
    """Everything the index stores about one run dir (read from its files only)."""

    exp: dict[str, Any]
    tags: list[str]
    results: list[EvalResult] = field(default_factory=list)


def fingerprint(run: Path) -> str:
    """Sizes and mtimes of the files the index reads: a changed fingerprint means re-collect."""
    parts = []
    names = ["experiment.yaml", "config.yaml", "status.json", "meta.json"]
    paths = [run / n for n in names]
    eval_dir = run / "eval"
    if eval_dir.is_dir():
        for split_dir in sorted(eval_dir.iterdir()):
            if split_dir.is_dir():
                paths += sorted(split_dir.glob("*.csv")) + [split_dir / "summary.json"]
    for p in paths:
        try:
            st = p.stat()
            parts.append(f"{p.relative_to(run)}:{st.st_size}:{st.st_mtime_ns}")
        except FileNotFoundError:
            parts.append(f"{p.relative_to(run)}:-")
    return "|".join(parts)


def _first_time(history: list[dict[str, Any]], states: Sequence[str]) -> str | None:
    for ev in history:
        if ev.get("state") in states:
            return ev.get("time")
    return None


def _last_time(history: list[dict[str, Any]], states: Sequence[str]) -> str | None:
    for ev in reversed(history):
        if ev.get("state") in states:
            return ev.get("time")
    return None


def collect_run(run: Path) -> RunRecord:
    """Read one run dir into a :class:`RunRecord`. Problems (a corrupt file) are recorded in ``error``
    rather than raised, so one broken run dir cannot block indexing the others."""
    fp = fingerprint(run)
    exp: dict[str, Any] = {c: None for c in _EXP_COLUMNS}
    exp.update(exp_id=run.name, run_dir=str(run), fingerprint=fp, indexed_at=rundir.now_iso())
    tags: list[str] = []
    results: list[EvalResult] = []
    errors: list[str] = []
    try:
        spec = rundir.read_spec_dict(run)
        tags = [t for t in (spec.get("tags") or []) if isinstance(t, str)]
        exp.update(
            description=spec.get("description"),
            template=spec.get("template"),
            tags=_json(tags),
            notes=spec.get("notes"),
            cluster=spec.get("cluster"),
            seed=spec.get("seed"),
            sweep=spec.get("sweep"),
            created=spec.get("created"),
            overrides_json=_json(spec.get("overrides") or {}),
        )
    except PlanlabError as exc:
        errors.append(str(exc))
    try:
        config = rundir.read_config(run)
        if config:
            exp.update(
                config_json=_json(config), config_hash=experiment_hash(config), group_key=group_key(config)
            )
    except PlanlabError as exc:
        errors.append(str(exc))
    try:
        status = rundir.read_status(run)
        history = status.get("history") or []
        exp.update(
            status=status.get("state", "created"),
            phase=status.get("phase"),
            reason=status.get("reason"),
            submitted=_last_time(history, ("submitted",)),
            started=_first_time(history, ("running",)),
            finished=_last_time(history, rundir.TERMINAL) if status.get("state") in rundir.TERMINAL else None,
            updated=status.get("updated"),
            launcher=status.get("launcher"),
            job_ids=_json(status.get("jobs") or {}),
        )
    except PlanlabError as exc:
        errors.append(str(exc))
    try:
        meta = rundir.read_json(run / "meta.json", {}) or {}
        git = meta.get("git") or {}
        ckpts = meta.get("checkpoints") or {}
        exp.update(
            git_sha=git.get("sha"),
            git_branch=git.get("branch"),
            git_dirty=None if git.get("dirty") is None else int(bool(git.get("dirty"))),
            checkpoint=ckpts.get("best") or ckpts.get("last"),
            checkpoints_json=_json(ckpts),
            wall_time_s=meta.get("wall_time_s"),
            gpu_hours=meta.get("gpu_hours"),
        )
    except PlanlabError as exc:
        errors.append(str(exc))
    try:
        results = harvest_run(run)
    except PlanlabError as exc:
        errors.append(str(exc))
    exp["error"] = "; ".join(errors) or None
    return RunRecord(exp, tags, results)


def _nan_to_none(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _store(conn: sqlite3.Connection, rec: RunRecord) -> None:
    """Replace every row of one experiment (caller holds a transaction)."""
    exp_id = rec.exp["exp_id"]
    for table in ("experiments", "tags", "results", "scenes"):
        conn.execute(f"DELETE FROM {table} WHERE exp_id = ?", (exp_id,))  # noqa: S608 - fixed table names
    cols = ", ".join(_EXP_COLUMNS)
    marks = ", ".join("?" for _ in _EXP_COLUMNS)
    conn.execute(f"INSERT INTO experiments ({cols}) VALUES ({marks})", [rec.exp.get(c) for c in _EXP_COLUMNS])  # noqa: S608
    conn.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)", [(exp_id, t) for t in rec.tags])
    for r in rec.results:
        conn.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exp_id, r.split, r.format, r.metric, _nan_to_none(r.score), r.n_scenarios, r.n_valid,
             _json(r.subscores), _json({k: v for k, v in r.extra.items()}), r.path),
        )  # fmt: skip
        conn.executemany(
            "INSERT OR REPLACE INTO scenes VALUES (?, ?, ?, ?, ?, ?)",
            [
                (exp_id, r.split, s.token, int(s.valid), _nan_to_none(s.score), _json(s.subscores))
                for s in r.scenes
            ],
        )


def _store_many(conn: sqlite3.Connection, records: Iterable[RunRecord]) -> int:
    n = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for rec in records:
            _store(conn, rec)
            n += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return n


def _delete(conn: sqlite3.Connection, exp_ids: Iterable[str]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for exp_id in exp_ids:
        for table in ("experiments", "tags", "results", "scenes"):
            conn.execute(f"DELETE FROM {table} WHERE exp_id = ?", (exp_id,))  # noqa: S608
    conn.execute("COMMIT")


def harvest(
    root: str | os.PathLike | None, exp_ids: Sequence[str] | None = None, batch: int = 25
) -> list[RunRecord]:
    """Re-read the given run dirs (all when None) and replace their rows in the index.

    Run dirs are read without the lock; each batch of records is written in one locked transaction.
    """
    if exp_ids is None:
        runs = rundir.list_run_dirs(root)
    else:
        runs = [rundir.existing_run_dir(root, check_id(e)) for e in exp_ids]
    records: list[RunRecord] = []
    for start in range(0, len(runs), batch):
        chunk = [collect_run(r) for r in runs[start : start + batch]]
        with _write_conn(root) as conn:
            _store_many(conn, chunk)
        records.extend(chunk)
    if not index_path(root).is_file():  # nothing to harvest still creates an (empty) index
        with _write_conn(root):
            pass
    return records


def sync(root: str | os.PathLike | None) -> int:
    """Bring the index up to date cheaply: re-collect run dirs whose files changed, drop vanished ones.

    Returns the number of experiments re-collected.
    """
    path = index_path(root)
    if not path.is_file():
        return len(reindex(root))
    runs = {r.name: r for r in rundir.list_run_dirs(root)}
    conn = _connect(path)
    try:
        known = {
            row["exp_id"]: row["fingerprint"]
            for row in conn.execute("SELECT exp_id, fingerprint FROM experiments")
        }
    except sqlite3.DatabaseError:
        conn.close()
        return len(reindex(root))
    conn.close()
    changed = [name for name, run in runs.items() if known.get(name) != fingerprint(run)]
    gone = [name for name in known if name not in runs]
    if changed:
        harvest(root, changed)
    if gone:
        with _write_conn(root) as wconn:
            _delete(wconn, gone)
    return len(changed)


def _clean_temps(base: Path) -> None:
    for p in base.glob(f"{_TMP_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _truncate_wal(path: Path, attempts: int = 50) -> bool:
    """Checkpoint the live index and empty its WAL, so no stale frame can apply to a renamed-in file."""
    wal = Path(f"{path}-wal")
    if not path.exists():
        return True
    for _ in range(attempts):
        try:
            conn = _connect(path, wal=False)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            return not wal.exists() or wal.stat().st_size == 0
        if not wal.exists() or wal.stat().st_size == 0:
            return True
        time.sleep(0.1)
    return False


def reindex(root: str | os.PathLike | None) -> list[RunRecord]:
    """Rebuild the index from scratch out of the run dirs, atomically (temp DB, then rename)."""
    base = rundir.experiments_root(root)
    base.mkdir(parents=True, exist_ok=True)
    with writer_lock(root):
        _clean_temps(base)  # leftovers of a reindex that was killed; we hold the lock, none is running
        tmp = base / f"{_TMP_PREFIX}{os.getpid()}"
        records = [collect_run(r) for r in rundir.list_run_dirs(root)]
        conn = sqlite3.connect(str(tmp), isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")  # a private file: the rename is the commit
            conn.execute("PRAGMA synchronous=OFF")
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR REPLACE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR REPLACE INTO info VALUES ('built', ?)", (rundir.now_iso(),))
            _store_many(conn, records)
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        live = index_path(root)
        if _truncate_wal(live):
            os.replace(tmp, live)
        else:
            # Readers keep the old WAL busy: copy the new content in through SQLite's own transaction.
            src = sqlite3.connect(str(tmp))
            dst = _connect(live)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
                tmp.unlink()
        dfd = os.open(base, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return records


# --------------------------------------------------------------------------- queries


SORT_KEYS = ("exp_id", "created", "status", "score", "template", "updated")


def list_experiments(
    root: str | os.PathLike | None,
    *,
    status: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    template: str | None = None,
    text: str | None = None,
    sort: str = "created",
    descending: bool = False,
    split: str | None = None,
) -> list[dict[str, Any]]:
    """Experiments matching every filter (tags: all must be present), with their primary result."""
    from planlab.config import check_choice

    check_choice("sort", sort, SORT_KEYS)
    if not rundir.experiments_root(root).is_dir():
        return []  # nothing created yet; a query must not create directories
    sync(root)
    where, params = [], []
    if status:
        where.append(f"e.status IN ({', '.join('?' for _ in status)})")
        params += list(status)
    for tag in tags or []:
        where.append("EXISTS (SELECT 1 FROM tags t WHERE t.exp_id = e.exp_id AND t.tag = ?)")
        params.append(tag)
    if template:
        where.append("e.template = ?")
        params.append(template)
    if text:
        where.append("(e.exp_id LIKE ? OR e.description LIKE ? OR e.notes LIKE ?)")
        params += [f"%{text}%"] * 3
    sql = "SELECT e.* FROM experiments e"
    if where:
        sql += " WHERE " + " AND ".join(where)
    conn = read_conn(root)
    try:
        rows = [dict(r) for r in conn.execute(sql, params)]
        results = _results_by_exp(conn, [r["exp_id"] for r in rows])
    finally:
        conn.close()
    for row in rows:
        row["results"] = results.get(row["exp_id"], {})
        row["primary"] = primary_result(row, split)
    if sort == "score":
        scored = [r for r in rows if r["primary"] is not None and r["primary"].get("score") is not None]
        unscored = [r for r in rows if r not in scored]
        scored.sort(key=lambda r: r["primary"]["score"], reverse=descending)
        rows = scored + unscored
    else:
        rows.sort(key=lambda r: (r.get(sort) is None, r.get(sort) or "", r["exp_id"]), reverse=descending)
    return rows


def _results_by_exp(conn: sqlite3.Connection, exp_ids: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if not exp_ids:
        return out
    wanted = set(exp_ids)
    for r in conn.execute("SELECT * FROM results ORDER BY exp_id, split"):
        if r["exp_id"] not in wanted:
            continue
        d = dict(r)
        d["subscores"] = json.loads(d.pop("subscores_json") or "{}")
        d["extra"] = json.loads(d.pop("extra_json") or "{}")
        out.setdefault(r["exp_id"], {})[r["split"]] = d
    return out


def primary_result(row: dict[str, Any], split: str | None = None) -> dict[str, Any] | None:
    """The result on ``split``, else the configured eval split, else the only/first one; None if none."""
    results = row.get("results") or {}
    if not results:
        return None
    if split is not None:
        return results.get(split)
    try:
        cfg_split = json.loads(row.get("config_json") or "{}").get("eval", {}).get("split")
    except (TypeError, ValueError):
        cfg_split = None
    if cfg_split in results:
        return results[cfg_split]
    return results[sorted(results)[0]]


def get_experiment(root: str | os.PathLike | None, exp_id: str) -> dict[str, Any]:
    """One experiment's row plus its results; a PlanlabError if it does not exist."""
    rundir.existing_run_dir(root, exp_id)
    harvest(root, [exp_id])
    conn = read_conn(root)
    try:
        row = conn.execute("SELECT * FROM experiments WHERE exp_id = ?", (exp_id,)).fetchone()
        if row is None:
            raise PlanlabError(f"no experiment {exp_id!r} in the index")
        out = dict(row)
        out["results"] = _results_by_exp(conn, [exp_id]).get(exp_id, {})
    finally:
        conn.close()
    out["primary"] = primary_result(out)
    return out


def scene_scores(root: str | os.PathLike | None, exp_id: str, split: str) -> dict[str, float]:
    """{token: score} of the valid scenes of one evaluated split."""
    conn = read_conn(root)
    try:
        rows = conn.execute(
            "SELECT token, score FROM scenes WHERE exp_id = ? AND split = ? AND valid = 1 AND score IS NOT NULL",
            (exp_id, split),
        ).fetchall()
    finally:
        conn.close()
    return {r["token"]: r["score"] for r in rows}


def counts(root: str | os.PathLike | None) -> dict[str, int]:
    """Row counts per table (diagnostics and tests)."""
    conn = read_conn(root)
    try:
        return {
            t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("experiments", "tags", "results", "scenes")
        }  # noqa: S608
    finally:
        conn.close()
