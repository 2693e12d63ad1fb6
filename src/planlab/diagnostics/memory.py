"""Will this job fit in memory? Peak memory of a process tree, measured runs, and a linear fit per setting.

Host memory is what the SLURM cgroup charges and what killed the 16-rank job of lesson M1: the training
process *plus every DataLoader worker*. :class:`MemoryMonitor` samples the whole process tree and keeps the
peak of the summed PSS (proportional set size: shared pages split between the processes that map them, so
the sum is the tree's real footprint; the summed RSS, which counts shared pages once per process as
``sstat``'s MaxRSS does, is kept beside it). On a GPU the peak allocated CUDA memory is recorded too.

:func:`estimate` runs a few short trainings in fresh processes (2–3 batch sizes × worker counts), fits
``peak = a + b·batch + workers·(c + d·batch)`` by least squares (``d``: the batches each worker prefetches)
and the GPU peak as ``a + b·batch``, then recommends batch size and workers for a budget per node.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planlab.errors import ConfigError, PlanlabError

_UNITS = {"": 2**20, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}  # SLURM: a bare number is MiB


def parse_size(text: str | int | float, key: str = "budget") -> int:
    """Bytes of ``"64G"``, ``"400GB"``, ``"512M"``, ``"1.5T"``, ``"16GiB"`` (binary units, as SLURM's --mem)."""
    if isinstance(text, (int, float)):
        return int(text)
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if m is None:
        raise ConfigError(f"{key}={text!r} is not a memory size like 64G, 512M or 1.5T")
    try:
        value = float(m.group(1))
    except ValueError:
        raise ConfigError(f"{key}={text!r} is not a memory size like 64G, 512M or 1.5T") from None
    return int(value * _UNITS[m.group(2).upper()])


def gib(n: float | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


# --------------------------------------------------------------------------------------------- sampling
def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        # the command name (field 2) may contain spaces and parentheses: parse after the last ')'
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > 1:
            children.setdefault(int(rest[1]), []).append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (DataLoader workers, cache builders, their children)."""
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _status_kb(pid: int, field_name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def tree_memory(pid: int) -> tuple[int, int, int]:
    """(summed PSS, summed RSS, number of processes) of the tree, in bytes. PSS falls back to RSS."""
    pss = rss = 0
    pids = process_tree(pid)
    for p in pids:
        r = _status_kb(p, "VmRSS")
        ps = _pss_kb(p)
        rss += r
        pss += ps if ps is not None else r
    return pss * 1024, rss * 1024, len(pids)


@dataclass
class MemoryPeak:
    """Peaks seen while a :class:`MemoryMonitor` was running."""

    host_bytes: int = 0  # summed PSS of the process tree (its real footprint)
    host_rss_bytes: int = 0  # summed RSS (shared pages counted in every process, like sstat MaxRSS)
    main_hwm_bytes: int = 0  # the main process's own high-water mark (VmHWM)
    max_processes: int = 1
    gpu_bytes: int | None = None  # torch.cuda.max_memory_allocated (None: no CUDA)
    gpu_total_bytes: int | None = None
    samples: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MemoryMonitor:
    """Context manager that samples the process tree every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.1, pid: int | None = None) -> None:
        self.interval = float(interval)
        self.pid = pid if pid is not None else os.getpid()
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def sample(self) -> None:
        pss, rss, n = tree_memory(self.pid)
        p = self.peak
        p.host_bytes = max(p.host_bytes, pss)
        p.host_rss_bytes = max(p.host_rss_bytes, rss)
        p.max_processes = max(p.max_processes, n)
        p.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemoryMonitor:
        self._t0 = time.perf_counter()
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="planlab-memory-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        self.peak.main_hwm_bytes = _status_kb(self.pid, "VmHWM") * 1024
        self.peak.seconds = time.perf_counter() - self._t0
        if "torch" in sys.modules:
            import torch

            if torch.cuda.is_available() and torch.cuda.is_initialized():
                self.peak.gpu_bytes = int(torch.cuda.max_memory_allocated())
                self.peak.gpu_total_bytes = int(torch.cuda.get_device_properties(0).total_memory)


# --------------------------------------------------------------------------------------------- measured runs
@dataclass
class MemoryPoint:
    """Peak memory of one short training with ``batch_size`` and ``num_workers``."""

    batch_size: int
    num_workers: int
    host_bytes: int | None = None
    host_rss_bytes: int | None = None
    gpu_bytes: int | None = None
    processes: int | None = None
    seconds: float | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def probe_overrides(batch_size: int, num_workers: int, steps: int) -> dict[str, Any]:
    """A short single-device run: ``steps`` batches of training, then one validation pass (the train→val
    transition is where the job of lesson M2 died), no TensorBoard, no progress bar."""
    return {
        "trainer.batch_size": int(batch_size),
        "trainer.val_batch_size": None,
        "data.num_workers": int(num_workers),
        "data.max_scenes": int(batch_size) * int(steps),
        "trainer.max_epochs": 1,
        "trainer.max_steps": -1,
        "trainer.devices": 1,
        "trainer.num_nodes": 1,
        "trainer.strategy": "auto",
        "trainer.num_sanity_val_steps": 0,
        "trainer.progress_bar": False,
        "checkpoint.every_n_train_steps": 0,
        "logging.tensorboard": False,
    }


def measure_point(
    cfg: Any, batch_size: int, num_workers: int, workdir: Path, steps: int = 3, timeout: float = 900.0
) -> MemoryPoint:
    """Train ``steps`` batches in a fresh Python process (peak memory is per process) and read its peaks."""
    from planlab.config import build_config, to_dict, to_yaml

    point = MemoryPoint(batch_size, num_workers)
    data = to_dict(cfg)
    over = probe_overrides(batch_size, num_workers, steps)
    probe_cfg = build_config(type(cfg), data, overrides=over)
    tag = f"b{batch_size}-w{num_workers}"
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path, run_dir, out = workdir / f"{tag}.yaml", workdir / f"run-{tag}", workdir / f"{tag}.json"
    cfg_path.write_text(to_yaml(probe_cfg))
    cmd = [sys.executable, "-m", "planlab.diagnostics.memory", "probe", str(cfg_path), str(run_dir), str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        point.error = f"timed out after {timeout:.0f} s"
        return point
    result = json.loads(out.read_text()) if out.is_file() else {}
    if proc.returncode != 0 or "error" in result or not result:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        point.error = result.get("error") or (tail[-1] if tail else f"exit code {proc.returncode}")
        return point
    samples = result.get("train_samples")
    if samples is not None and samples < batch_size:
        # the batches were smaller than asked: this is not the memory of batch_size (left out of the fit)
        point.error = f"only {samples} training scenes: batches of {batch_size} were never filled"
        return point
    point.host_bytes = result["host_bytes"]
    point.host_rss_bytes = result["host_rss_bytes"]
    point.gpu_bytes = result.get("gpu_bytes")
    point.processes = result["max_processes"]
    point.seconds = result["seconds"]
    return point


def _probe_main(cfg_path: str, run_dir: str, out: str) -> int:
    """Child side of :func:`measure_point`: train under a MemoryMonitor and write the peaks as JSON."""
    from planlab.atomic import atomic_write_text
    from planlab.training.config import load_train_config
    from planlab.training.train import run_training

    try:
        cfg = load_train_config(cfg_path)
        with MemoryMonitor() as mon:
            run_training(cfg, run_dir, progress=False)
        meta = json.loads((Path(run_dir) / "meta.json").read_text())
        samples = ((meta.get("training") or {}).get("resolved") or {}).get("train_samples")
        atomic_write_text(out, json.dumps({**mon.peak.to_dict(), "train_samples": samples}))
        return 0
    except PlanlabError as exc:
        atomic_write_text(out, json.dumps({"error": str(exc)}))
        return 2


# --------------------------------------------------------------------------------------------- fit
@dataclass
class MemoryModel:
    """``host(B, W) = a + b·B + W·(c + d·B)`` bytes; ``gpu(B) = ga + gb·B`` bytes (GPU runs only)."""

    a: float
    b: float
    c: float
    d: float
    ga: float | None = None
    gb: float | None = None
    max_residual: float = 0.0  # largest |measured − fitted| over the points, bytes

    def host(self, batch_size: float, num_workers: float) -> float:
        return self.a + self.b * batch_size + num_workers * (self.c + self.d * batch_size)

    def gpu(self, batch_size: float) -> float | None:
        if self.ga is None or self.gb is None:
            return None
        return self.ga + self.gb * batch_size

    def per_worker(self, batch_size: float) -> float:
        return self.c + self.d * batch_size

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fit(points: Sequence[MemoryPoint]) -> MemoryModel:
    """Least-squares fit over the successful points; terms the grid cannot determine are left out."""
    import numpy as np

    good = [p for p in points if p.error is None and p.host_bytes is not None]
    if len(good) < 2:
        raise PlanlabError(f"memory fit needs at least 2 successful runs, got {len(good)}")
    B = np.array([p.batch_size for p in good], dtype=np.float64)
    W = np.array([p.num_workers for p in good], dtype=np.float64)
    y = np.array([p.host_bytes for p in good], dtype=np.float64)
    cols = {"a": np.ones_like(B)}
    if len(set(B.tolist())) > 1:
        cols["b"] = B
    if len(set(W.tolist())) > 1:
        cols["c"] = W
        with_workers = {b for b, w in zip(B.tolist(), W.tolist(), strict=True) if w > 0}
        if len(with_workers) > 1:
            cols["d"] = W * B
    X = np.stack(list(cols.values()), axis=1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    values = dict.fromkeys("abcd", 0.0) | {k: float(v) for k, v in zip(cols, coef, strict=True)}
    model = MemoryModel(values["a"], values["b"], values["c"], values["d"])
    model.max_residual = float(np.max(np.abs(X @ coef - y)))
    gpu = [p for p in good if p.gpu_bytes is not None]
    if gpu:
        gb_ = np.array([p.batch_size for p in gpu], dtype=np.float64)
        gy = np.array([p.gpu_bytes for p in gpu], dtype=np.float64)
        if len(set(gb_.tolist())) > 1:
            slope, intercept = np.polyfit(gb_, gy, 1)
            model.ga, model.gb = float(intercept), float(slope)
        else:
            model.ga, model.gb = float(gy.max()), 0.0
    return model


# --------------------------------------------------------------------------------------------- advice
@dataclass
class Recommendation:
    """Settings that fit the budget, with the predicted peaks and the reasoning in words."""

    batch_size: int
    num_workers: int
    accumulate_grad_batches: int
    host_bytes_per_rank: float
    host_bytes_per_node: float
    gpu_bytes: float | None
    budget_per_node: int | None
    budget_per_rank: float | None
    gpu_budget: int | None
    fits: bool
    notes: list[str] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)  # predicted peaks per worker count

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def recommend(
    model: MemoryModel,
    batch_size: int,
    budget_per_node: int | None,
    ranks_per_node: int = 1,
    gpu_budget: int | None = None,
    max_workers: int = 8,
    margin: float = 0.9,
) -> Recommendation:
    """The most DataLoader workers (≤ ``max_workers``) that fit at the configured batch size; a smaller batch
    (with gradient accumulation keeping the global batch) when not even zero workers or the GPU fit.

    ``margin``: keep predicted peaks below this fraction of the budgets (allocator and page-cache slack).
    """
    per_rank = budget_per_node / ranks_per_node if budget_per_node else None
    notes: list[str] = []

    def host_ok(b: int, w: int) -> bool:
        return per_rank is None or model.host(b, w) <= margin * per_rank

    def gpu_ok(b: int) -> bool:
        g = model.gpu(b)
        return gpu_budget is None or g is None or g <= margin * gpu_budget

    b = int(batch_size)
    while b > 1 and not (gpu_ok(b) and host_ok(b, 0)):
        b = max(1, b // 2)
    if b != batch_size:
        why = "GPU memory" if not gpu_ok(batch_size) else "host memory"
        notes.append(f"batch {batch_size} does not fit ({why}); batch {b} does")
    fits = gpu_ok(b) and host_ok(b, 0)
    w = 0
    for cand in range(max_workers, -1, -1):
        if host_ok(b, cand):
            w = cand
            break
    accumulate = max(1, math.ceil(batch_size / b))
    if accumulate > 1:
        notes.append(
            f"trainer.accumulate_grad_batches={accumulate} keeps the global batch at {b * accumulate} "
            f"(configured {batch_size})"
        )
    if not fits:
        notes.append(
            "nothing fits: even batch 1 with 0 workers exceeds the budget; raise --mem or use a smaller model"
        )
    if per_rank is not None and w < max_workers:
        notes.append(
            f"{w} worker(s) per rank: each adds ~{gib(model.per_worker(b))} at batch {b} "
            f"(× {ranks_per_node} rank(s) per node)"
        )
    table = [
        {
            "num_workers": k,
            "host_bytes_per_rank": model.host(b, k),
            "host_bytes_per_node": model.host(b, k) * ranks_per_node,
            "fits": host_ok(b, k),
        }
        for k in range(0, max_workers + 1)
    ]
    return Recommendation(
        batch_size=b,
        num_workers=w,
        accumulate_grad_batches=accumulate,
        host_bytes_per_rank=model.host(b, w),
        host_bytes_per_node=model.host(b, w) * ranks_per_node,
        gpu_bytes=model.gpu(b),
        budget_per_node=budget_per_node,
        budget_per_rank=per_rank,
        gpu_budget=gpu_budget,
        fits=fits,
        notes=notes,
        table=table,
    )


@dataclass
class MemoryEstimate:
    """The measured points, the fit and the recommendation of ``planlab memory estimate``."""

    agent: str
    points: list[MemoryPoint]
    model: MemoryModel
    recommendation: Recommendation
    config_batch_size: int
    config_num_workers: int
    ranks_per_node: int

    def to_dict(self) -> dict[str, Any]:
        m = self.model
        b = self.recommendation.batch_size
        return {
            "agent": self.agent,
            "config": {"batch_size": self.config_batch_size, "num_workers": self.config_num_workers},
            "ranks_per_node": self.ranks_per_node,
            "points": [p.to_dict() for p in self.points],
            "model": m.to_dict(),
            "configured": {
                "host_bytes_per_rank": m.host(self.config_batch_size, self.config_num_workers),
                "host_bytes_per_node": m.host(self.config_batch_size, self.config_num_workers)
                * self.ranks_per_node,
                "gpu_bytes": m.gpu(self.config_batch_size),
            },
            "recommendation": self.recommendation.to_dict(),
            # the two numbers a planlab cluster profile budgets workers with (planlab.experiments.cluster)
            "profile": {
                "process_mem_gb": (m.a + m.b * b) / 2**30,
                "worker_mem_gb": m.per_worker(b) / 2**30,
            },
        }


def default_grid(batch_size: int, num_workers: int) -> tuple[list[int], list[int]]:
    """Three batch sizes up to the configured one and two worker counts (0 and min(configured, 2) or 1)."""
    sizes = sorted({max(1, batch_size // 4), max(1, batch_size // 2), batch_size})
    workers = sorted({0, max(1, min(num_workers, 2))})
    return sizes, workers


def estimate(
    cfg: Any,
    workdir: str | os.PathLike,
    budget_per_node: int | None = None,
    ranks_per_node: int = 1,
    gpu_budget: int | None = None,
    batch_sizes: Sequence[int] | None = None,
    workers: Sequence[int] | None = None,
    steps: int = 3,
    max_workers: int | None = None,
    progress: Any = None,
) -> MemoryEstimate:
    """Measure the grid of (batch size, workers) in fresh processes, fit, and recommend for the budget."""
    b0, w0 = int(cfg.trainer.batch_size), int(cfg.data.num_workers)
    sizes, counts = default_grid(b0, w0)
    sizes = sorted({int(b) for b in batch_sizes}) if batch_sizes else sizes
    counts = sorted({int(w) for w in workers}) if workers else counts
    if min(sizes) < 1 or min(counts) < 0:
        raise ConfigError("batch sizes must be >= 1 and worker counts >= 0")
    root = Path(workdir)
    points = []
    for b in sizes:
        for w in counts:
            point = measure_point(cfg, b, w, root, steps=steps)
            if progress is not None:
                progress(point)
            points.append(point)
    failed = [p for p in points if p.error]
    if len(failed) == len(points):
        raise PlanlabError(
            f"every measured run failed; first: batch {failed[0].batch_size}: {failed[0].error}"
        )
    model = fit(points)
    rec = recommend(
        model,
        b0,
        budget_per_node,
        ranks_per_node,
        gpu_budget,
        max_workers=max_workers if max_workers is not None else max(8, w0),
    )
    return MemoryEstimate(str(cfg.agent_name), points, model, rec, b0, w0, ranks_per_node)


if __name__ == "__main__":  # pragma: no cover - exercised through measure_point's subprocess
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        sys.exit(_probe_main(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.stderr.write("usage: python -m planlab.diagnostics.memory probe CONFIG RUN_DIR OUT_JSON\n")
    sys.exit(2)
