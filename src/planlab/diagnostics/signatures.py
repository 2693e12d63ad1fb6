"""Failure signatures of training jobs: what a line in a SLURM / Lightning / NCCL log means, and the likely fix.

Each :class:`Signature` is a regular expression over one log line plus a one-line explanation and fix, drawn
from failures researchers actually hit (lessons M1–M3, S2–S5, E1–E7, V1–V4). :func:`scan_text` finds them,
together with the last Python exception, and the few multi-line patterns (only some DDP ranks started) that
no single line shows. The catalogue is an explicit list: add a signature by adding an entry.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Signature:
    """A recognisable failure: ``pattern`` matches a log line; ``detail`` turns the match into specifics."""

    id: str
    title: str
    severity: str  # error | warning | info
    pattern: re.Pattern[str]
    fix: str
    detail: Callable[[re.Match[str]], str] | None = None


def _sig(
    id: str,
    title: str,
    severity: str,
    pattern: str,
    fix: str,
    detail: Callable[[re.Match[str]], str] | None = None,
) -> Signature:
    return Signature(id, title, severity, re.compile(pattern), fix, detail)


def _joined(m: re.Match[str]) -> str:
    found = re.search(r"(\d+)/(\d+) clients joined", m.string)
    if found is None:
        return ""
    joined, total = found.group(1), found.group(2)
    if int(joined) == 1:
        return f"only 1 of {total} processes reached the rendezvous (rank 0 alone: launched without srun?)"
    return f"{joined} of {total} processes reached the rendezvous"


SIGNATURES: list[Signature] = [
    _sig(
        "cuda_oom",
        "CUDA out of memory (GPU memory)",
        "error",
        r"CUDA out of memory|OutOfMemoryError: CUDA|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation"
        r"|HIP out of memory",
        "lower trainer.batch_size (keep the global batch with trainer.accumulate_grad_batches), use "
        "trainer.precision=bf16-mixed, or take a GPU with more memory; `planlab memory estimate` fits the batch",
        lambda m: _tried(m.string),
    ),
    _sig(
        "host_oom_kill",
        "host RAM exhausted: SLURM/kernel OOM killer",
        "error",
        r"oom[-_ ]kill|OUT_OF_MEMORY|OUT_OF_ME\+|Out Of Memory|out-of-memory handler|Killed process \d+ \(|"
        r"Memory cgroup out of memory|DataLoader worker \(pid \d+\) is killed by signal: Killed",
        "host RAM (--mem), not GPU memory: every DataLoader worker of every rank holds its own prefetched "
        "batches; lower data.num_workers, set data.persistent_workers=false and data.prefetch_factor lower, or "
        "raise --mem; `planlab memory estimate --budget <mem>` recommends settings (lessons M1, M2)",
        lambda m: _oom_events(m.string),
    ),
    _sig(
        "ddp_rendezvous_timeout",
        "DDP rendezvous timed out",
        "error",
        r"DistStoreError|Timed out after \d+ seconds waiting for clients|\d+/\d+ clients joined"
        r"|RendezvousTimeoutError|Timed out initializing process group",
        "start one process per GPU with `srun python …` (--ntasks-per-node = GPUs per node), export MASTER_ADDR "
        "(first host of the allocation) and a fixed MASTER_PORT, and keep trainer.num_nodes/devices equal to "
        "the allocation; `planlab exp submit` generates such scripts (lessons S2, S5)",
        _joined,
    ),
    _sig(
        "nccl_timeout",
        "NCCL collective timed out or failed",
        "error",
        r"Watchdog caught collective operation timeout|ran for \d+ milliseconds before timing out"
        r"|NCCL (?:error|timeout|communicator was aborted)|ncclSystemError|ncclInternalError|ncclUnhandledCudaError"
        r"|ncclRemoteError|ProcessGroupNCCL.*(?:[Tt]imeout|[Tt]imed out)",
        "a rank stopped answering an all-reduce: look for an earlier crash or OOM of another rank first; else a "
        "rank hangs in data loading or got fewer batches; NCCL_DEBUG=INFO shows network problems",
        lambda m: _collective(m.string),
    ),
    _sig(
        "time_limit",
        "SLURM time limit reached",
        "error",
        r"DUE TO TIME LIMIT|JobState=TIMEOUT|\bTIMEOUT[ \t]+\d+:\d+\b",
        "resume in the same run dir from checkpoints/last.ckpt (`planlab train --resume`; SLURM requeues "
        "resume automatically with #SBATCH --signal=USR1@120 --requeue), or request more --time",
    ),
    _sig(
        "preempted",
        "job preempted or requeued",
        "warning",
        r"DUE TO PREEMPTION|JobState=PREEMPTED|\bPREEMPTED\b|[Rr]equeu(?:e|e?ing) job \d+|"
        r"Requeue of job \d+|handling auto-requeue signal|Received SIGUSR1|Received SIGTERM",
        "the job was stopped by the scheduler; the requeued attempt must resume in the same run directory from "
        "the newest checkpoint (training.json lists the attempts; a new run dir means the resume was lost, S7)",
    ),
    _sig(
        "ntasks_devices_mismatch",
        "Lightning devices do not match SLURM tasks per node",
        "error",
        r"You set `?devices=(?P<devices>\d+)`? in Lightning, but the number of tasks per node configured in SLURM "
        r"`?--ntasks-per-node=(?P<ntasks>\d+)`? does not match",
        "Lightning under SLURM needs one task per GPU: #SBATCH --ntasks-per-node=<GPUs per node> with "
        "--gres=gpu:<same>, trainer.devices=<same> (lesson S4)",
        lambda m: f"devices={m.group('devices')}, --ntasks-per-node={m.group('ntasks')}",
    ),
    _sig(
        "srun_not_used",
        "`srun` available but not used",
        "warning",
        r"The `srun` command is available on your system but is not used",
        "inside an sbatch job launch `srun python …`, otherwise only one process (rank 0) starts (lesson S5)",
    ),
    _sig(
        "module_not_found",
        "Python package missing in the job's environment",
        "error",
        r"ModuleNotFoundError: No module named '(?P<module>[^'\n]+)'",
        "the batch job's Python is not the environment you installed into: activate it in the script (by full "
        "path) and install the package there (`pip install -e .` for the project itself) (lessons E3, E5)",
        lambda m: f"module {m.group('module')!r}",
    ),
    _sig(
        "shm_bus_error",
        "shared memory (/dev/shm) exhausted",
        "error",
        r"Bus error|killed by signal: Bus error|insufficient shared memory \(shm\)|No space left on device.*shm",
        "DataLoader workers pass batches through /dev/shm: give containers --shm-size=16g (or --ipc=host), or "
        "use fewer data.num_workers (lesson M3)",
    ),
    _sig(
        "nonfinite_loss",
        "loss became NaN/Inf",
        "error",
        r"loss is not finite|[Ll]oss (?:is|became) (?:NaN|nan|inf)|TrainingDiverged|\bloss(?:_step)?=(?:nan|inf)\b",
        "training diverged: lower optim.lr, add optim.warmup_steps and trainer.gradient_clip_val, check the inputs "
        "(`planlab smoke` checks features for NaN); resume from the last good checkpoint",
    ),
    _sig(
        "feature_contract",
        "feature builder returned something other than tensors",
        "error",
        r"ContractError: builder|'list' object has no attribute 'unsqueeze'|returned list, expected torch\.Tensor",
        "a feature builder returns a list (or wrong shape/dtype): fix the builder; `planlab smoke` runs every "
        "builder's contract check before a long job (lesson V1)",
    ),
    _sig(
        "device_mismatch",
        "tensors on different devices",
        "error",
        r"Expected all tensors to be on the same device|can't convert cuda:\d+ device type tensor to numpy",
        "move inputs to the model's device and outputs to the CPU before numpy (TorchAgent.compute_trajectory "
        "does both, lesson V4)",
    ),
    _sig(
        "state_dict_mismatch",
        "checkpoint does not fit the model",
        "error",
        r"Error\(s\) in loading state_dict|size mismatch for |Missing key\(s\) in state_dict|"
        r"Unexpected key\(s\) in state_dict|does not fit agent",
        "the checkpoint comes from another agent or config: `planlab ckpt validate CKPT` lists missing, "
        "unexpected and mis-shaped keys",
    ),
    _sig(
        "unsafe_checkpoint",
        "checkpoint refused by weights-only loading",
        "error",
        r"Weights only load failed|was not an allowed global",
        "the checkpoint stores a Python object; `planlab ckpt validate` names it — re-save with plain data",
    ),
    _sig(
        "cuda_error",
        "CUDA runtime error",
        "error",
        r"CUDA error: (?:an illegal memory access|device-side assert|unspecified launch failure|misaligned address)"
        r"|CUDNN_STATUS_(?:INTERNAL_ERROR|EXECUTION_FAILED)",
        "rerun with CUDA_LAUNCH_BLOCKING=1 to find the op; device-side asserts are usually an index out of range "
        "(class ids, vocabulary indices)",
    ),
    _sig(
        "node_failure",
        "node failure",
        "error",
        r"DUE TO NODE FAILURE|JobState=NODE_FAIL|\bNODE_FAIL\b",
        "a node died: resubmit (the run resumes from last.ckpt) and report the node to the admins",
    ),
    _sig(
        "cancelled",
        "job cancelled",
        "warning",
        r"\*\*\* (?:JOB|STEP) [\d.]+ ON \S+ CANCELLED AT \S+(?: \*\*\*| BY)",
        "cancelled by scancel (user or admin); resume with `planlab train --resume` if wanted",
    ),
    _sig(
        "container_missing",
        "container image not found",
        "error",
        r"FATAL:[ \t]+could not open image",
        "the image path does not exist on this cluster: fix the cluster profile's setup lines (lesson E1)",
    ),
    _sig(
        "python_not_found",
        "python not found in the job",
        "error",
        r"python[\d.]*: (?:command|executable) not found|conda: command not found",
        "conda/venv is not initialised in batch jobs: source the env's activate script by full path (lesson E3)",
    ),
    _sig(
        "disk_full",
        "disk full or quota exceeded",
        "error",
        r"No space left on device|Disk quota exceeded|inode quota",
        "free space or move the run/cache directory to a filesystem with quota left (lesson E7)",
    ),
    _sig(
        "segfault",
        "segmentation fault",
        "error",
        r"Segmentation fault|SIGSEGV|signal 11\b",
        "a native crash (often a DataLoader worker): rerun with data.num_workers=0 to see the Python stack",
    ),
]

# Literal fragments, one of which every line a signature matches contains. They are a prefilter: ``str.find``
# over a 22 MB log is far faster than running two dozen regular expressions over all of it.
KEYWORDS: dict[str, tuple[str, ...]] = {
    "cuda_oom": ("out of memory", "OutOfMemoryError", "CUBLAS_STATUS_ALLOC_FAILED", "cudaErrorMemoryAllocation"),
    "host_oom_kill": ("oom", "OUT_OF_ME", "Out Of Memory", "out-of-memory", "Killed process", "Memory cgroup",
                      "killed by signal: Killed"),
    "ddp_rendezvous_timeout": ("DistStoreError", "waiting for clients", "clients joined", "RendezvousTimeoutError",
                               "Timed out initializing"),
    "nccl_timeout": ("collective operation timeout", "before timing out", "NCCL error", "NCCL timeout",
                     "NCCL communicator", "ncclSystemError", "ncclInternalError", "ncclUnhandledCudaError",
                     "ncclRemoteError", "ProcessGroupNCCL"),
    "time_limit": ("TIME LIMIT", "TIMEOUT"),
    "preempted": ("PREEMPT", "equeu", "Received SIGUSR1", "Received SIGTERM"),
    "ntasks_devices_mismatch": ("ntasks-per-node",),
    "srun_not_used": ("srun` command is available",),
    "module_not_found": ("ModuleNotFoundError",),
    "shm_bus_error": ("Bus error", "insufficient shared memory", "No space left on device"),
    "nonfinite_loss": ("not finite", "oss is ", "oss became ", "TrainingDiverged", "=nan", "=inf"),
    "feature_contract": ("ContractError: builder", "no attribute 'unsqueeze'", "returned list"),
    "device_mismatch": ("same device", "device type tensor to numpy"),
    "state_dict_mismatch": ("in loading state_dict", "size mismatch for", "in state_dict", "does not fit agent"),
    "unsafe_checkpoint": ("Weights only load failed", "allowed global"),
    "cuda_error": ("CUDA error:", "CUDNN_STATUS_"),
    "node_failure": ("NODE FAILURE", "NODE_FAIL"),
    "cancelled": ("CANCELLED AT",),
    "container_missing": ("could not open image",),
    "python_not_found": (": command not found", ": executable not found"),
    "disk_full": ("No space left on device", "Disk quota exceeded", "inode quota"),
    "segfault": ("Segmentation fault", "SIGSEGV", "signal 11"),
}  # fmt: skip

# Lightning prints one line per process as it joins: "Initializing distributed: GLOBAL_RANK: 3, MEMBER: 4/16".
_MEMBER = re.compile(r"Initializing distributed: GLOBAL_RANK: (\d+), MEMBER: (\d+)/(\d+)")
# The last line of a Python traceback: "pkg.module.SomeError: message" at the start of a line.
_EXCEPTION = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Diverged|Failure))(?::\s*(?P<msg>.*))?$"
)
_TRACEBACK = "Traceback (most recent call last):"
# torch.distributed prefixes every line of a rank's error output with "[rank3]: ".
_RANK_PREFIX = re.compile(r"^\[rank\d+\]:\s?")


def _tried(line: str) -> str:
    m = re.search(r"Tried to allocate ([\d.]+ [KMGT]iB)", line)
    cap = re.search(r"total capacity of ([\d.]+ [KMGT]iB)", line)
    parts = []
    if m:
        parts.append(f"tried to allocate {m.group(1)}")
    if cap:
        parts.append(f"GPU capacity {cap.group(1)}")
    return ", ".join(parts)


def _oom_events(line: str) -> str:
    m = re.search(r"Detected (\d+) oom[-_ ]kill events? in (StepId=\S+)", line)
    if m:
        return f"{m.group(1)} oom_kill event(s) in {m.group(2).rstrip('.')}"
    m = re.search(r"task (\d+): Out Of Memory", line)
    if m:
        return f"task {m.group(1)} killed"
    return ""


def _collective(line: str) -> str:
    m = re.search(r"OpType=(\w+).*?Timeout\(ms\)=(\d+)", line)
    if m:
        return f"{m.group(1)} timed out after {int(m.group(2)) / 1000:.0f} s"
    return ""


@dataclass
class Finding:
    """One recognised signature in one file (first occurrence, with the number of matching lines)."""

    id: str
    title: str
    severity: str
    fix: str
    source: str
    line_no: int
    line: str
    count: int = 1
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TextScan:
    """What :func:`scan_text` found in one log."""

    source: str
    findings: list[Finding] = field(default_factory=list)
    last_exception: str | None = None
    last_exception_line: int | None = None
    lines: int = 0


class _Lines:
    """Line lookup in a whole log: a match offset → (line number, the carriage-return segment around it).

    Signatures are searched over the whole text at once (C speed; a 22 MB log in about a second) rather
    than line by line; tqdm's redraws are ``\r``-separated segments of one line, shown on their own.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def __len__(self) -> int:
        return len(self.starts)

    def locate(self, pos: int) -> tuple[int, str]:
        i = bisect.bisect_right(self.starts, pos) - 1
        line_start = self.starts[i]
        end = self.text.find("\n", pos)
        end = len(self.text) if end < 0 else end
        seg_start = max(line_start, self.text.rfind("\r", line_start, pos) + 1)
        seg_end = self.text.find("\r", pos, end)
        return i + 1, self.text[seg_start : end if seg_end < 0 else seg_end]

    def line(self, no: int) -> str:
        start = self.starts[no - 1]
        end = self.text.find("\n", start)
        return self.text[start : len(self.text) if end < 0 else end].rstrip("\r")


def _exception_after(lines: _Lines, first_line: int, limit: int = 2000) -> tuple[int, str] | None:
    """The exception line that ends the traceback starting on ``first_line`` (None if it never ends)."""
    for no in range(first_line + 1, min(len(lines), first_line + limit) + 1):
        body = _RANK_PREFIX.sub("", lines.line(no).rstrip())
        if not body or body.startswith((" ", "\t")):
            continue
        if _EXCEPTION.match(body.strip()):
            return no, body.strip()[:300]
        if _TRACEBACK in body:
            return None
    return None


def _candidate_lines(text: str, lines: _Lines, keywords: tuple[str, ...] | None) -> list[int]:
    """Numbers of the lines holding any of ``keywords`` (every line when a signature has none)."""
    if not keywords:
        return list(range(1, len(lines) + 1))
    found: set[int] = set()
    for kw in keywords:
        pos = text.find(kw)
        while pos >= 0:
            no = bisect.bisect_right(lines.starts, pos)
            found.add(no)
            nxt = lines.starts[no] if no < len(lines.starts) else len(text)
            pos = text.find(kw, nxt)  # one hit per line is enough
    return sorted(found)


def scan_text(text: str, source: str = "<text>") -> TextScan:
    """Every signature in ``text`` (first line, count of lines, detail), the last Python exception, and
    DDP ranks that never started."""
    scan = TextScan(source)
    lines = _Lines(text)
    scan.lines = len(lines)
    found: dict[str, Finding] = {}
    for sig in SIGNATURES:
        hit: list[tuple[int, str]] = []
        for no in _candidate_lines(text, lines, KEYWORDS.get(sig.id)):
            for segment in lines.line(no).split("\r"):
                m = sig.pattern.search(segment)
                if m is not None:
                    hit.append((no, segment))
                    break
        if not hit:
            continue
        detail = ""
        if sig.detail is not None:
            for _, segment in hit[:50]:
                m = sig.pattern.search(segment)
                detail = sig.detail(m) if m is not None else ""
                if detail:
                    break
        no, segment = hit[0]
        found[sig.id] = Finding(
            sig.id, sig.title, sig.severity, sig.fix, source, no, segment.strip()[:300],
            count=len(hit), detail=detail,
        )  # fmt: skip
    members: dict[int, set[int]] = {}
    for mm in _MEMBER.finditer(text):
        members.setdefault(int(mm.group(3)), set()).add(int(mm.group(2)))
    for total, seen in members.items():
        if len(seen) < total:
            found["missing_ranks"] = Finding(
                "missing_ranks",
                "only some DDP processes started",
                "error",
                "launch with `srun python …` and --ntasks-per-node = GPUs per node (one task per GPU); with 1 "
                "task and N GPUs only rank 0 starts and the others never join (lessons S2, S5)",
                source,
                0,
                f"MEMBER lines seen: {', '.join(f'{m}/{total}' for m in sorted(seen))}",
                detail=f"{len(seen)} of {total} processes printed 'Initializing distributed'",
            )
    for tb in reversed([m.start() for m in re.finditer(re.escape(_TRACEBACK), text)]):
        exc = _exception_after(lines, lines.locate(tb)[0])
        if exc is not None:
            scan.last_exception_line, scan.last_exception = exc
            break
    scan.findings = sorted(found.values(), key=lambda f: (f.line_no or 10**9, f.id))
    return scan


def merge_findings(scans: Iterable[TextScan]) -> list[Finding]:
    """All findings of several logs, errors first, then by file and line."""
    order = {"error": 0, "warning": 1, "info": 2}
    out = [f for s in scans for f in s.findings]
    return sorted(out, key=lambda f: (order.get(f.severity, 3), f.source, f.line_no))
