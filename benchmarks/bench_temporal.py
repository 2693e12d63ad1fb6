"""Cost of temporal fusion: training throughput and peak memory of ``convgru_bev`` with its 4-frame history
against the same agent with ``use_convgru=false`` (current frame only, same parameters), and the
TransFuser-style baseline, all at the same batch size.

Each figure is an optimizer step (forward + backward + AdamW with every perception loss) on a batch built
from the agent's declared feature/target specs (LiDAR histograms in [0, 1], the ego 5 m further per 0.5 s,
agents inside the grid), median of timed steps after warm-up, the better of 1 thread and torch's default.
Memory: the bytes autograd keeps for backward (activations, device-independent, counted per storage) and
the peak RSS growth of a fresh process over the same steps (allocator included); on a GPU the peak CUDA
allocation is reported too.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.common import Result

SECTION = "temporal fusion"
BATCH = 16
CASES = [
    ("convgru_bev", {}, "ConvGRU, 4 LiDAR BEV frames (128x128), fused 32x32 map"),
    ("convgru_bev", {"agent.use_convgru": False}, "same agent, current frame only (single-frame ablation)"),
    ("transfuser_lite", {}, "TransFuser-style baseline, cameras 64x256 + LiDAR 128x128"),
]


def make_batch(agent, batch: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Plausible random features/targets for ``agent`` from its builders' specs."""
    g = torch.Generator().manual_seed(seed)

    def fill(builders) -> dict[str, torch.Tensor]:
        out = {}
        for b in builders:
            for key, spec in b.specs().items():
                shape = [batch, *[s if isinstance(s, int) else 4 for s in spec.shape]]
                if key == "lidar_bev_seq" or key == "lidar_bev":
                    x = (torch.rand(shape, generator=g) < 0.05).float()
                elif key == "ego_motion":
                    t = shape[1]
                    x = torch.zeros(shape)
                    x[..., 0] = -5.0 * torch.arange(t - 1, -1, -1, dtype=torch.float32)  # 10 m/s, 0.5 s apart
                elif key == "agent_states":
                    x = torch.rand(shape, generator=g) * 40 - 20
                    x[..., 3:5] = torch.tensor([4.5, 2.0])
                elif key == "agent_labels":
                    x = (torch.rand(shape, generator=g) < 0.3).float()
                elif key == "agent_future_valid":
                    x = torch.ones(shape)
                elif key == "bev_semantic_map":
                    x = torch.randint(0, 7, shape, generator=g)
                elif spec.torch_dtype.is_floating_point:
                    x = torch.randn(shape, generator=g)
                else:
                    x = torch.zeros(shape, dtype=spec.torch_dtype)
                out[key] = x
        return out

    return fill(agent.get_feature_builders()), fill(agent.get_target_builders())


def build(name: str, overrides: dict):
    from planlab.agents.registry import build_agent
    from planlab.training.config import build_train_config

    torch.manual_seed(0)
    cfg = build_train_config(name, overrides=overrides)
    return build_agent(name, config=cfg.agent_settings())


def step_fn(agent, feats, targs):
    from planlab.models.optim import build_optimizer

    opt = build_optimizer(agent.parameter_groups(), "adamw", 1e-4)
    agent.train()

    def step() -> None:
        loss = agent.compute_loss(feats, targs, agent(feats))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def throughput(name: str, overrides: dict, steps: int = 4) -> tuple[float, int]:
    """(samples/s, threads): median step time, the better of 1 thread and the default."""
    default = torch.get_num_threads()
    best = (0.0, default)
    for threads in sorted({1, default}):
        torch.set_num_threads(threads)
        try:
            agent = build(name, overrides)
            step = step_fn(agent, *make_batch(agent, BATCH))
            times = []
            for i in range(steps + 1):
                t0 = time.perf_counter()
                step()
                if i:
                    times.append(time.perf_counter() - t0)
            best = max(best, (BATCH / statistics.median(times), threads))
        finally:
            torch.set_num_threads(default)
    return best


def saved_activation_bytes(name: str, overrides: dict) -> int:
    """Bytes autograd saves for backward in one forward + loss (each storage counted once)."""
    agent = build(name, overrides)
    feats, targs = make_batch(agent, BATCH)
    agent.train()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.requires_grad or t.grad_fn is not None or not t.is_leaf:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = agent.compute_loss(feats, targs, agent(feats))["loss"]
    loss.backward()
    return sum(seen.values())


def _rss() -> int:
    """Current resident set size of this process [bytes] (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _child(name: str, overrides: dict, steps: int) -> dict:
    """Run in a fresh process: current RSS before, and its peak (sampled every millisecond by a thread) over
    ``steps`` training steps; the CUDA peak when a GPU is present."""
    import threading

    torch.set_num_threads(1)
    agent = build(name, overrides)
    feats, targs = make_batch(agent, BATCH)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    agent.to(device)
    feats = {k: v.to(device) for k, v in feats.items()}
    targs = {k: v.to(device) for k, v in targs.items()}
    step = step_fn(agent, feats, targs)
    before = _rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        for _ in range(steps):
            step()
    finally:
        done.set()
        sampler.join()
    out = {"rss_before": before, "rss_peak": max(peak[0], _rss())}
    if device == "cuda":
        out["cuda_peak"] = torch.cuda.max_memory_allocated()
    return out


def peak_memory(name: str, overrides: dict, steps: int = 2) -> dict:
    code = (
        "import json, sys; from benchmarks.bench_temporal import _child; "
        "a = json.loads(sys.argv[1]); print(json.dumps(_child(*a)))"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run(
        [sys.executable, "-c", code, json.dumps([name, overrides, steps])],
        capture_output=True, text=True, check=True, cwd=root, env=env,
    )  # fmt: skip
    return json.loads(res.stdout.strip().splitlines()[-1])


def run(workdir: Path) -> list[Result]:
    rates, acts, mems = [], [], []
    for name, over, _ in CASES:
        rates.append(throughput(name, over))
        acts.append(saved_activation_bytes(name, over))
        mems.append(peak_memory(name, over))
    mb = 2**20
    out: list[Result] = []
    (gru_rate, gru_thr), (one_rate, one_thr), (tf_rate, tf_thr) = rates
    out.append(
        Result(
            SECTION, "train throughput convgru_bev, 4 frames", gru_rate, "samples/s", baseline=one_rate,
            notes=f"baseline: use_convgru=false (current frame only) in the same run; {one_rate / gru_rate:.2f}x "
            f"slower with the history; batch {BATCH}, forward+backward+AdamW with all perception losses, "
            f"{gru_thr}/{one_thr} thread(s)",
        )
    )  # fmt: skip
    out.append(
        Result(
            SECTION, "train throughput transfuser_lite", tf_rate, "samples/s", baseline=one_rate,
            notes=f"baseline: single-frame convgru_bev; batch {BATCH}, {tf_thr} thread(s)",
        )
    )  # fmt: skip
    out.append(
        Result(
            SECTION, "activation memory convgru_bev, 4 frames", acts[0] / mb, "MiB", baseline=acts[1] / mb,
            higher_is_better=False,
            notes=f"bytes saved for backward per step (batch {BATCH}); baseline single-frame: "
            f"{acts[0] / acts[1]:.2f}x; transfuser_lite {acts[2] / mb:.0f} MiB",
        )
    )  # fmt: skip
    grow = [m["rss_peak"] - m["rss_before"] for m in mems]
    out.append(
        Result(
            SECTION, "peak RSS growth convgru_bev, 4 frames", grow[0] / mb, "MiB", baseline=grow[1] / mb,
            higher_is_better=False,
            notes=f"fresh process, 2 training steps, batch {BATCH}, peak over its RSS after building model and batch "
            f"(peak {mems[0]['rss_peak'] / mb:.0f} MiB vs {mems[1]['rss_peak'] / mb:.0f} MiB single-frame); "
            f"transfuser_lite +{grow[2] / mb:.0f} MiB",
        )
    )  # fmt: skip
    if "cuda_peak" in mems[0]:
        out.append(
            Result(
                SECTION, "peak CUDA memory convgru_bev, 4 frames", mems[0]["cuda_peak"] / mb, "MiB",
                baseline=mems[1]["cuda_peak"] / mb, higher_is_better=False,
                notes="torch.cuda.max_memory_allocated over 2 training steps; baseline single-frame",
            )
        )  # fmt: skip
    return out


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for r in run(Path(tmp)):
            print(f"{r.name}: {r.value:.4g} {r.unit} (baseline {r.baseline}) ({r.notes})")
