"""Is this checkpoint good? ``planlab ckpt validate`` in one function, one check per concern.

A checkpoint is examined the way a careful researcher would by hand (seed 002), but in seconds and with a
verdict a script can act on: the archive's own CRC-32s (``torch.load`` does not verify them, so a bit flip
loads silently), the pickle's globals (refused under ``weights_only=True``; we name the one it wanted), the
Lightning and planlab entries, epoch/step against the file name, NaN/Inf in every tensor, and the keys and
shapes against the agent rebuilt from the checkpoint's own config (frozen encoders stored or excluded by
the agent's declared policy; the optimizer's layout against the agent's parameter groups).

Exit codes (one per failure class; when several fail, the most fundamental — lowest — wins):

====  ==========  =====================================================================================
code  class       meaning
====  ==========  =====================================================================================
0     OK          valid (warnings allowed)
3     NOT_FOUND   no such file, or no checkpoint in the run directory
4     CORRUPT     empty, truncated, CRC mismatch (bit flip), not a torch archive, unreadable
5     UNSAFE      needs arbitrary unpickling (a global outside the weights-only allow-list)
6     STRUCTURE   Lightning/planlab entries missing or ill-typed; epoch/step disagree with name or metadata
7     NONFINITE   NaN/Inf in weights, optimizer state or the AMP scaler
8     MISMATCH    keys/shapes differ from the rebuilt agent, wrong agent, frozen-weight policy, optimizer layout
9     REBUILD     the agent cannot be rebuilt from the embedded config (unknown name, bad settings, source)
====  ==========  =====================================================================================
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickletools
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from planlab.errors import PlanlabError


class Failure(IntEnum):
    """Failure classes of a checkpoint; the value is the CLI's exit code."""

    OK = 0
    NOT_FOUND = 3
    CORRUPT = 4
    UNSAFE = 5
    STRUCTURE = 6
    NONFINITE = 7
    MISMATCH = 8
    REBUILD = 9


# Lightning's own entries of a full training checkpoint (resume needs all of them).
LIGHTNING_KEYS = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "callbacks")
RESUME_KEYS = ("optimizer_states", "lr_schedulers")
PLANLAB_KEY = "planlab"
STATE_PREFIX = "agent."
# Lightning's default "epoch=3-step=120.ckpt" and planlab's "epoch003-step000120.ckpt".
NAME_PATTERN = re.compile(r"epoch[=_]?(\d+)[-_]step[=_]?(\d+)")
_UNSAFE_MESSAGE = re.compile(r"GLOBAL ([\w.]+) was not an allowed global")


@dataclass
class Check:
    """One examined concern: ``status`` is ok, warn, fail or skip; ``failure`` the class when it fails."""

    name: str
    status: str
    detail: str
    failure: Failure = Failure.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "failure": self.failure.name if self.status == "fail" else None,
        }


@dataclass
class ModuleStat:
    """Parameter count and bytes of one top-level module of the agent (``agent.<name>.*``)."""

    name: str
    tensors: int
    params: int
    bytes: int
    frozen: bool | None = None  # every parameter frozen in the rebuilt agent (None: not rebuilt)


@dataclass
class CheckpointReport:
    """Everything ``validate_checkpoint`` found about one file."""

    path: Path
    size: int | None = None
    mtime: float | None = None
    epoch: int | None = None
    global_step: int | None = None
    agent_name: str | None = None
    lightning_version: str | None = None
    metric: dict[str, Any] | None = None  # {"name", "value"} of the validation metric at save time
    checks: list[Check] = field(default_factory=list)
    modules: list[ModuleStat] = field(default_factory=list)
    nonfinite: list[dict[str, Any]] = field(default_factory=list)
    keys: dict[str, Any] = field(default_factory=dict)  # missing / unexpected / mismatched vs the agent
    unsafe_globals: list[str] = field(default_factory=list)

    def add(self, name: str, status: str, detail: str, failure: Failure = Failure.OK) -> Check:
        check = Check(name, status, detail, failure if status == "fail" else Failure.OK)
        self.checks.append(check)
        return check

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    @property
    def exit_code(self) -> int:
        codes = [int(c.failure) for c in self.failures]
        return min(codes) if codes else 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def verdict(self) -> str:
        return Failure(self.exit_code).name if self.exit_code else "OK"

    @property
    def diagnosis(self) -> str:
        """One line: the most fundamental failure, or 'valid'."""
        fails = sorted(self.failures, key=lambda c: int(c.failure))
        if not fails:
            n = len(self.warnings)
            return "valid" + (f" ({n} warning{'s' if n != 1 else ''})" if n else "")
        return f"{fails[0].failure.name}: {fails[0].detail}"

    @property
    def total_params(self) -> int:
        return sum(m.params for m in self.modules)

    @property
    def total_bytes(self) -> int:
        return sum(m.bytes for m in self.modules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "diagnosis": self.diagnosis,
            "size_bytes": self.size,
            "modified": _iso(self.mtime),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "agent": self.agent_name,
            "lightning_version": self.lightning_version,
            "metric": self.metric,
            "params": self.total_params,
            "param_bytes": self.total_bytes,
            "modules": [m.__dict__ for m in self.modules],
            "nonfinite": self.nonfinite,
            "keys": self.keys,
            "unsafe_globals": self.unsafe_globals,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass
class ValidationReport:
    """The result for a file or a run directory (every checkpoint in it, plus the index)."""

    target: Path
    kind: str  # "file" | "run_dir"
    checkpoints: list[CheckpointReport] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)  # directory-level (index.json, presence)

    @property
    def exit_code(self) -> int:
        codes = [r.exit_code for r in self.checkpoints if r.exit_code]
        codes += [int(c.failure) for c in self.checks if c.status == "fail"]
        return min(codes) if codes else 0

    @property
    def verdict(self) -> str:
        return Failure(self.exit_code).name if self.exit_code else "OK"

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "kind": self.kind,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "checks": [c.to_dict() for c in self.checks],
            "checkpoints": [r.to_dict() for r in self.checkpoints],
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def human_bytes(n: float | None) -> str:
    """``1536 -> '1.5 KiB'`` (binary units, as ``ls -lh`` and SLURM's MaxRSS)."""
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TiB"


# --------------------------------------------------------------------------------------------- archive
def _first_bytes(path: Path, n: int = 64) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def check_archive(path: Path, report: CheckpointReport) -> str | None:
    """CRC-check the zip container; returns "zip", "legacy" or None when the file is unusable."""
    size = path.stat().st_size
    if size == 0:
        report.add("archive", "fail", "empty file (0 bytes): the write never happened", Failure.CORRUPT)
        return None
    head = _first_bytes(path)
    if head.startswith(b"version https://git-lfs"):
        report.add(
            "archive", "fail", "a Git LFS pointer, not the checkpoint (run git lfs pull)", Failure.CORRUPT
        )
        return None
    if head[:1] == b"\x80":
        # torch's pre-1.6 format: a bare pickle stream, no container checksums.
        report.add("archive", "warn", "legacy (non-zip) torch format: no checksums to verify")
        return "legacy"
    if not head.startswith(b"PK"):
        kind = "text" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "binary"
        report.add(
            "archive",
            "fail",
            f"not a torch checkpoint: starts with {head[:16]!r} ({kind} data)",
            Failure.CORRUPT,
        )
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # reads every member and verifies its CRC-32
            members = zf.infolist()
    except zipfile.BadZipFile as exc:
        if "not a zip file" in str(exc).lower():
            detail = (
                f"truncated: the zip's end-of-archive record is missing ({human_bytes(size)} on disk; "
                "an interrupted write or copy?)"
            )
        else:
            detail = f"corrupt zip container: {exc}"
        report.add("archive", "fail", detail, Failure.CORRUPT)
        return None
    except (OSError, EOFError, ValueError) as exc:
        report.add("archive", "fail", f"unreadable zip container: {exc}", Failure.CORRUPT)
        return None
    except zipfile.LargeZipFile as exc:  # pragma: no cover - zipfile allows zip64 by default
        report.add("archive", "fail", f"unreadable zip container: {exc}", Failure.CORRUPT)
        return None
    if bad is not None:
        report.add(
            "archive",
            "fail",
            f"member {bad} fails its CRC-32 check (a bit flip or partial overwrite; the data are not what was saved)",
            Failure.CORRUPT,
        )
        return None
    if not any(m.filename.endswith("data.pkl") for m in members):
        report.add("archive", "fail", "zip archive without data.pkl: not a torch checkpoint", Failure.CORRUPT)
        return None
    report.add("archive", "ok", f"zip container, {len(members)} members, every CRC-32 matches")
    return "zip"


# --------------------------------------------------------------------------------------------- pickle safety
def pickle_globals(path: str | os.PathLike) -> list[str]:
    """Every global (``module.name``) the checkpoint's pickle references, found without unpickling anything."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        data = zf.read(name)
    found: list[str] = []
    strings: list[Any] = []  # recent string pushes, for STACK_GLOBAL (protocol >= 4)
    memo: dict[Any, Any] = {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("GLOBAL", "INST"):
                mod, _, qual = str(arg).partition(" ")
                found.append(f"{mod}.{qual}")
            elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                strings.append(arg)
            elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                memo[arg] = strings[-1]
            elif op.name == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                strings.append(memo[arg])
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
    except (ValueError, EOFError):
        pass  # a damaged stream: report what was readable
    return list(dict.fromkeys(found))


def _allowed_global(name: str) -> bool:
    """Whether ``torch.load(weights_only=True)`` accepts ``name`` (its allow-list plus registered safe globals)."""
    import torch

    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        allowed = set()
    for g in torch.serialization.get_safe_globals():
        obj = g[0] if isinstance(g, tuple) else g
        allowed.add(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
    if name in allowed:
        return True
    mod, _, attr = name.rpartition(".")
    # storage classes and tensor rebuild functions are handled by the weights-only unpickler itself
    return (mod == "torch" and attr.endswith("Storage")) or (
        mod.startswith("torch") and attr.startswith("_rebuild_")
    )


def unsafe_globals(path: str | os.PathLike) -> list[str]:
    """Globals of the checkpoint outside the weights-only allow-list (empty for a plain-data checkpoint)."""
    return [g for g in pickle_globals(path) if not _allowed_global(g)]


# --------------------------------------------------------------------------------------------- loading
def _load(path: Path, container: str, report: CheckpointReport) -> Any:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=(container == "zip"))
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "weights only" in text.lower() or "weights_only" in text.lower():
            names = unsafe_globals(path) if container == "zip" else []
            if not names:
                names = _UNSAFE_MESSAGE.findall(text)
            report.unsafe_globals = names
            wanted = ", ".join(names) if names else "an object outside the allow-list"
            report.add(
                "safety",
                "fail",
                f"refused by torch.load(weights_only=True): it wants to unpickle {wanted} "
                "(arbitrary code; re-save the checkpoint with plain data only)",
                Failure.UNSAFE,
            )
            return None
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        report.add("load", "fail", f"unreadable pickle stream: {first[:200]}", Failure.CORRUPT)
        return None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a one-line diagnosis
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        report.add("load", "fail", f"torch.load failed: {type(exc).__name__}: {first[:200]}", Failure.CORRUPT)
        return None


# --------------------------------------------------------------------------------------------- structure
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_structure(ckpt: Any, path: Path, report: CheckpointReport) -> bool:
    """Lightning and planlab entries; returns False when the rest cannot be examined."""
    import torch

    if not isinstance(ckpt, Mapping):
        report.add("structure", "fail", f"top level is {type(ckpt).__name__}, not a dict", Failure.STRUCTURE)
        return False
    problems: list[str] = []
    missing = [k for k in (*LIGHTNING_KEYS, *RESUME_KEYS, PLANLAB_KEY) if k not in ckpt]
    if missing:
        problems.append("missing " + ", ".join(missing))
    epoch, step = ckpt.get("epoch"), ckpt.get("global_step")
    if "epoch" in ckpt and not (_is_int(epoch) and epoch >= 0):
        problems.append(f"epoch is {epoch!r}")
    if "global_step" in ckpt and not (_is_int(step) and step >= 0):
        problems.append(f"global_step is {step!r}")
    report.epoch = epoch if _is_int(epoch) else None
    report.global_step = step if _is_int(step) else None
    report.lightning_version = ckpt.get("pytorch-lightning_version")
    sd = ckpt.get("state_dict")
    if "state_dict" in ckpt:
        if not isinstance(sd, Mapping):
            problems.append(f"state_dict is {type(sd).__name__}")
        elif not sd:
            problems.append("state_dict is empty")
        else:
            bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
            if bad:
                problems.append(f"state_dict entry {bad[0]!r} is {type(sd[bad[0]]).__name__}, not a tensor")
    opt = ckpt.get("optimizer_states")
    if "optimizer_states" in ckpt:
        if not isinstance(opt, list) or not opt:
            problems.append("optimizer_states is empty (weights-only save: cannot resume)")
        else:
            for i, o in enumerate(opt):
                if not isinstance(o, Mapping) or "state" not in o or "param_groups" not in o:
                    problems.append(f"optimizer_states[{i}] lacks state/param_groups")
    sch = ckpt.get("lr_schedulers")
    if "lr_schedulers" in ckpt and not isinstance(sch, list):
        problems.append(f"lr_schedulers is {type(sch).__name__}")
    loops = ckpt.get("loops")
    if "loops" in ckpt and not (isinstance(loops, Mapping) and "fit_loop" in loops):
        problems.append("loops has no fit_loop state (cannot resume mid-training)")
    if "callbacks" in ckpt and not isinstance(ckpt.get("callbacks"), Mapping):
        problems.append("callbacks is not a dict")
    meta = ckpt.get(PLANLAB_KEY)
    if PLANLAB_KEY in ckpt:
        if not isinstance(meta, Mapping):
            problems.append(f"planlab metadata is {type(meta).__name__}")
        else:
            from planlab.agents.checkpoint_io import FORMAT_VERSION

            if meta.get("format_version") != FORMAT_VERSION:
                problems.append(
                    f"planlab format_version {meta.get('format_version')!r} (this planlab reads {FORMAT_VERSION})"
                )
            for key in ("agent_name", "agent_settings", "train_config"):
                if key not in meta:
                    problems.append(f"planlab metadata lacks {key!r}")
            report.agent_name = meta.get("agent_name") if isinstance(meta.get("agent_name"), str) else None
            for key, top in (("epoch", epoch), ("global_step", step)):
                if key in meta and top is not None and meta[key] != top:
                    problems.append(f"planlab metadata says {key} {meta[key]}, Lightning says {top}")
            pos = meta.get("position")
            if isinstance(pos, Mapping):
                done, per = pos.get("batches_done", 0), pos.get("batches_per_epoch", 0)
                if _is_int(done) and _is_int(per) and per and not 0 <= done <= per:
                    problems.append(f"data position {done}/{per} batches is outside the epoch")
    if problems:
        report.add("structure", "fail", "; ".join(problems), Failure.STRUCTURE)
    else:
        n_opt = len(opt) if isinstance(opt, list) else 0
        report.add(
            "structure",
            "ok",
            f"Lightning {report.lightning_version}: state_dict ({len(sd)} tensors), {n_opt} optimizer state(s), "
            f"{len(sch) if isinstance(sch, list) else 0} scheduler(s), loops, callbacks, planlab metadata",
        )
    _check_precision(ckpt, report)
    _check_name(path, report)
    return isinstance(sd, Mapping) and bool(sd)


def _check_precision(ckpt: Mapping[str, Any], report: CheckpointReport) -> None:
    """AMP scaler state (16-mixed): present when the config asked for it, finite and positive."""
    import torch

    scaler = ckpt.get("MixedPrecision") or ckpt.get("native_amp_scaling_state")
    meta = ckpt.get(PLANLAB_KEY) if isinstance(ckpt.get(PLANLAB_KEY), Mapping) else {}
    tc = meta.get("train_config") if isinstance(meta.get("train_config"), Mapping) else {}
    precision = (tc.get("trainer") or {}).get("precision") if isinstance(tc.get("trainer"), Mapping) else None
    if isinstance(scaler, Mapping) and "scale" in scaler:
        scale = scaler["scale"]
        value = float(scale) if isinstance(scale, (torch.Tensor, float, int)) else float("nan")
        if not (value > 0 and value < float("inf")):
            report.add("precision", "fail", f"AMP grad-scaler scale is {value}", Failure.NONFINITE)
        else:
            report.add("precision", "ok", f"16-bit mixed precision, grad-scaler scale {value:g}")
    elif precision == "16-mixed":
        report.add("precision", "warn", "config asks for 16-mixed but no grad-scaler state was saved")
    else:
        report.add("precision", "ok", f"no grad-scaler state (precision {precision or 'unknown'})")


def _check_name(path: Path, report: CheckpointReport) -> None:
    m = NAME_PATTERN.search(path.stem)
    if m is None:
        return
    e, s = int(m.group(1)), int(m.group(2))
    if report.epoch is None or report.global_step is None:
        return
    if (e, s) != (report.epoch, report.global_step):
        report.add(
            "name",
            "fail",
            f"file name says epoch {e}, step {s}; the checkpoint holds epoch {report.epoch}, "
            f"step {report.global_step} (renamed or overwritten by another run?)",
            Failure.STRUCTURE,
        )
    else:
        report.add("name", "ok", f"epoch {e}, step {s} agree with the file name")


# --------------------------------------------------------------------------------------------- tensors
def _tensors(obj: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    import torch

    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}[{i}]")


def _bad_counts(t: Any) -> tuple[int, int]:
    import torch

    if not (t.is_floating_point() or t.is_complex()) or t.numel() == 0:
        return 0, 0
    # Fast path: a NaN or Inf anywhere makes the sum non-finite, so a finite sum proves a clean tensor
    # (a sum that overflows on huge finite values falls through to the exact count).
    if bool(torch.isfinite(t.sum())):
        return 0, 0
    finite = torch.isfinite(t)
    if bool(finite.all()):
        return 0, 0
    n_nan = int(torch.isnan(t).sum())
    return n_nan, int((~finite).sum()) - n_nan


def module_stats(state_dict: Mapping[str, Any]) -> list[ModuleStat]:
    """Tensors, elements and bytes per top-level module (``agent.<module>.…``; other keys by first part)."""
    stats: dict[str, ModuleStat] = {}
    for key, t in state_dict.items():
        rest = key[len(STATE_PREFIX) :] if key.startswith(STATE_PREFIX) else key
        top = rest.split(".", 1)[0]
        m = stats.setdefault(top, ModuleStat(top, 0, 0, 0))
        m.tensors += 1
        m.params += int(t.numel())
        m.bytes += int(t.numel()) * int(t.element_size())
    return list(stats.values())


def check_finite(ckpt: Mapping[str, Any], report: CheckpointReport, opt_names: Mapping[int, str]) -> None:
    """NaN/Inf in the weights and the optimizer state (named by parameter when the layout is known)."""
    bad: list[dict[str, Any]] = []
    for key, t in ckpt["state_dict"].items():
        n_nan, n_inf = _bad_counts(t)
        if n_nan or n_inf:
            bad.append(
                {"where": "state_dict", "key": key, "nan": n_nan, "inf": n_inf, "numel": int(t.numel())}
            )
    for i, o in enumerate(ckpt.get("optimizer_states") or []):
        state = o.get("state") if isinstance(o, Mapping) else None
        for pid, entry in (state or {}).items():
            for name, t in _tensors(entry, ""):
                n_nan, n_inf = _bad_counts(t)
                if n_nan or n_inf:
                    pname = opt_names.get(pid) if i == 0 else None
                    where = f"optimizer_states[{i}].state[{pid}]" + (f" ({pname})" if pname else "")
                    bad.append(
                        {"where": where, "key": name, "nan": n_nan, "inf": n_inf, "numel": int(t.numel())}
                    )
    report.nonfinite = bad
    if bad:
        first = bad[0]
        more = f" and {len(bad) - 1} more tensor(s)" if len(bad) > 1 else ""
        report.add(
            "finite",
            "fail",
            f"{first['key']} ({first['where']}) has {first['nan']} NaN and {first['inf']} Inf of "
            f"{first['numel']} values{more}",
            Failure.NONFINITE,
        )
    else:
        report.add("finite", "ok", "no NaN/Inf in weights or optimizer state")


# --------------------------------------------------------------------------------------------- agent
def check_against_agent(
    ckpt: Mapping[str, Any], report: CheckpointReport, expected_agent: str | None
) -> dict[int, str]:
    """Rebuild the agent from the embedded config and compare keys, shapes, frozen policy, optimizer layout.

    Returns {optimizer param index: parameter name} for naming optimizer-state problems.
    """
    meta = ckpt.get(PLANLAB_KEY)
    if not isinstance(meta, Mapping) or not isinstance(meta.get("agent_name"), str):
        report.add("agent", "skip", "no planlab metadata: the agent cannot be rebuilt")
        return {}
    name = meta["agent_name"]
    if expected_agent is not None and expected_agent != name:
        report.add("agent", "fail", f"holds agent {name!r}, expected {expected_agent!r}", Failure.MISMATCH)
    from planlab.agents.registry import build_agent

    try:
        agent = build_agent(name, config=dict(meta.get("agent_settings") or {}))
    except PlanlabError as exc:
        report.add("rebuild", "fail", f"cannot rebuild agent {name!r}: {exc}", Failure.REBUILD)
        return {}
    except Exception as exc:  # noqa: BLE001 - an agent constructor failing is a diagnosis, not a crash
        report.add(
            "rebuild",
            "fail",
            f"cannot rebuild agent {name!r} from its settings: {type(exc).__name__}: {str(exc)[:200]}",
            Failure.REBUILD,
        )
        return {}
    report.add("rebuild", "ok", f"agent {name!r} rebuilt from the embedded settings")
    recorded = dict(meta.get("external_state") or {})
    ckpt_sd = {k[len(STATE_PREFIX) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(STATE_PREFIX)}
    foreign = [k for k in ckpt["state_dict"] if not k.startswith(STATE_PREFIX)]
    _check_keys(name, ckpt_sd, foreign, agent.state_dict(), recorded, report)
    _check_frozen(agent, ckpt_sd, recorded, report)
    return _check_optimizer(ckpt, report, agent, meta)


def _under(key: str, prefixes: Any) -> bool:
    return any(key.startswith(p) for p in prefixes)


def _check_keys(
    name: str,
    ckpt_sd: Mapping[str, Any],
    foreign: list[str],
    agent_sd: Mapping[str, Any],
    recorded: Mapping[str, Any],
    report: CheckpointReport,
) -> None:
    """Missing, unexpected and mis-shaped keys (sub-modules recorded as external are not missing)."""
    missing = [k for k in agent_sd if k not in ckpt_sd and not _under(k, recorded)]
    unexpected = [k for k in ckpt_sd if k not in agent_sd] + foreign
    mismatched = [
        {"key": k, "checkpoint": list(ckpt_sd[k].shape), "agent": list(agent_sd[k].shape)}
        for k in ckpt_sd
        if k in agent_sd and tuple(ckpt_sd[k].shape) != tuple(agent_sd[k].shape)
    ]
    shaped = {m["key"] for m in mismatched}
    dtypes = [
        k for k in ckpt_sd if k in agent_sd and k not in shaped and ckpt_sd[k].dtype != agent_sd[k].dtype
    ]
    report.keys = {"missing": missing, "unexpected": unexpected, "mismatched": mismatched, "dtype": dtypes}
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        if mismatched:
            m0 = mismatched[0]
            parts.append(
                f"{len(mismatched)} mis-shaped (e.g. {m0['key']!r}: checkpoint {tuple(m0['checkpoint'])}, "
                f"agent {tuple(m0['agent'])})"
            )
        report.add(
            "keys", "fail", f"state_dict does not fit agent {name!r}: " + "; ".join(parts), Failure.MISMATCH
        )
    else:
        report.add("keys", "ok", f"all {len(ckpt_sd)} keys and shapes match agent {name!r}")
    if dtypes:
        report.add(
            "dtype", "warn", f"{len(dtypes)} tensor(s) differ in dtype from the agent (e.g. {dtypes[0]!r})"
        )


def _check_frozen(
    agent: Any, ckpt_sd: Mapping[str, Any], recorded: Mapping[str, Any], report: CheckpointReport
) -> None:
    """Frozen weights are either stored, or excluded on purpose and recorded by path and fingerprint
    (the agent's ``external_state`` policy; lesson C7: frozen encoders silently bloating checkpoints)."""
    frozen = {n for n, p in agent.named_parameters() if not p.requires_grad}
    for m in report.modules:
        params = [n for n, _ in agent.named_parameters() if n.split(".", 1)[0] == m.name]
        m.frozen = bool(params) and all(n in frozen for n in params)
    try:
        agent.check_external_state(recorded)
    except PlanlabError as exc:
        report.add("frozen", "fail", str(exc), Failure.MISMATCH)
        return
    declared = agent.external_state()
    undeclared = [p for p in declared if p not in recorded]
    stored_anyway = [p for p in recorded if any(k.startswith(p) for k in ckpt_sd)]
    if undeclared and not any(_under(k, undeclared) for k in ckpt_sd):
        report.add(
            "frozen",
            "fail",
            f"agent excludes {', '.join(undeclared)} from checkpoints but this one neither stores nor records them",
            Failure.MISMATCH,
        )
    elif stored_anyway:
        wasted = sum(
            int(v.numel()) * v.element_size() for k, v in ckpt_sd.items() if _under(k, stored_anyway)
        )
        report.add(
            "frozen",
            "warn",
            f"weights under {', '.join(stored_anyway)} are recorded as external yet stored too "
            f"({human_bytes(wasted)} wasted)",
        )
    elif recorded:
        sources = ", ".join(f"{p} (from {rec.get('path')})" for p, rec in recorded.items())
        report.add("frozen", "ok", "frozen weights excluded by the agent's policy: " + sources)
    elif frozen:
        stored = sum(1 for n in frozen if n in ckpt_sd)
        report.add(
            "frozen", "ok", f"{stored} of {len(frozen)} frozen parameter tensor(s) stored in the checkpoint"
        )
    else:
        report.add("frozen", "ok", "no frozen parameters")


def _check_optimizer(
    ckpt: Mapping[str, Any], report: CheckpointReport, agent: Any, meta: Mapping[str, Any]
) -> dict[int, str]:
    """The saved optimizer's groups and per-parameter state shapes against the agent's own optimizer."""
    opt_states = ckpt.get("optimizer_states")
    if not isinstance(opt_states, list) or not opt_states or not isinstance(opt_states[0], Mapping):
        return {}
    try:
        from planlab.training.config import train_config_from_dict

        cfg = train_config_from_dict(dict(meta["train_config"]))
        optimizer = agent.get_optimizers(cfg.optim, 1)["optimizer"]
    except Exception as exc:  # noqa: BLE001 - cannot compare; say so without failing the checkpoint
        report.add(
            "optimizer", "warn", f"optimizer layout not compared ({type(exc).__name__}: {str(exc)[:120]})"
        )
        return {}
    names = {id(p): n for n, p in agent.named_parameters()}
    expected = []
    for g in optimizer.param_groups:
        expected.append(
            (
                g.get("name"),
                [names.get(id(p), "?") for p in g["params"]],
                [tuple(p.shape) for p in g["params"]],
            )
        )
    saved = opt_states[0]
    groups = saved.get("param_groups") or []
    index_names: dict[int, str] = {}
    problems: list[str] = []
    if len(groups) != len(expected):
        problems.append(f"{len(groups)} parameter group(s) saved, the agent builds {len(expected)}")
    for g, (gname, pnames, shapes) in zip(groups, expected, strict=False):
        ids = list(g.get("params") or [])
        if g.get("name") is not None and gname is not None and g.get("name") != gname:
            problems.append(f"group {g.get('name')!r} where the agent has {gname!r}")
        if len(ids) != len(pnames):
            problems.append(f"group {gname!r} has {len(ids)} parameter(s) saved, the agent {len(pnames)}")
            continue
        for pid, pname, shape in zip(ids, pnames, shapes, strict=True):
            index_names[pid] = pname
            st = (saved.get("state") or {}).get(pid)
            if isinstance(st, Mapping):
                for skey, t in st.items():
                    if hasattr(t, "shape") and t.ndim > 0 and tuple(t.shape) != shape:
                        problems.append(
                            f"optimizer {skey} of {pname} has shape {tuple(t.shape)}, parameter {shape}"
                        )
                        break
    if problems:
        report.add(
            "optimizer",
            "fail",
            "optimizer state does not fit the agent: " + "; ".join(problems[:3]),
            Failure.MISMATCH,
        )
    else:
        n = sum(len(p) for _, p, _ in expected)
        report.add(
            "optimizer", "ok", f"{len(expected)} parameter group(s), {n} parameters, state shapes match"
        )
    return index_names


# --------------------------------------------------------------------------------------------- metric
def _metric(ckpt: Mapping[str, Any], index: Mapping[str, Any] | None, path: Path) -> dict[str, Any] | None:
    import torch

    if index and isinstance(index.get("top_k"), Mapping) and path.name in index["top_k"]:
        return {"name": index.get("monitor"), "value": float(index["top_k"][path.name])}
    for state in (ckpt.get("callbacks") or {}).values():
        if isinstance(state, Mapping) and "current_score" in state and "monitor" in state:
            score = state.get("current_score")
            if isinstance(score, torch.Tensor):
                score = float(score)
            if score is not None:
                return {"name": state.get("monitor"), "value": float(score)}
    return None


# --------------------------------------------------------------------------------------------- entry points
def validate_checkpoint(
    path: str | os.PathLike,
    expected_agent: str | None = None,
    rebuild: bool = True,
    index: Mapping[str, Any] | None = None,
) -> CheckpointReport:
    """Examine one checkpoint file; never raises for a bad file (the report says what is wrong)."""
    p = Path(path)
    report = CheckpointReport(p)
    if not p.is_file():
        report.add("exists", "fail", f"no such file: {p}", Failure.NOT_FOUND)
        return report
    st = p.stat()
    report.size, report.mtime = st.st_size, st.st_mtime
    container = check_archive(p, report)
    if container is None:
        return report
    ckpt = _load(p, container, report)
    if ckpt is None:
        return report
    report.add("safety", "ok", "loads with torch.load(weights_only=True): plain data only")
    if not check_structure(ckpt, p, report):
        return report
    report.modules = module_stats(ckpt["state_dict"])
    report.metric = _metric(ckpt, index, p)
    opt_names: dict[int, str] = {}
    if rebuild:
        opt_names = check_against_agent(ckpt, report, expected_agent)
    elif expected_agent is not None and report.agent_name != expected_agent:
        report.add(
            "agent",
            "fail",
            f"holds agent {report.agent_name!r}, expected {expected_agent!r}",
            Failure.MISMATCH,
        )
    check_finite(ckpt, report, opt_names)
    return report


def _step_key(report: CheckpointReport) -> tuple[int, int, str]:
    step = report.global_step if report.global_step is not None else -1
    return (0 if report.path.name != "last.ckpt" else 1, step, report.path.name)


def validate(
    target: str | os.PathLike, expected_agent: str | None = None, rebuild: bool = True
) -> ValidationReport:
    """Validate a checkpoint file, or every checkpoint of a run directory (or its ``checkpoints/``)."""
    t = Path(target)
    if t.is_file() or not t.exists():
        rep = ValidationReport(t, "file")
        rep.checkpoints.append(validate_checkpoint(t, expected_agent, rebuild))
        return rep
    ckdir = t / "checkpoints" if (t / "checkpoints").is_dir() else t
    rep = ValidationReport(t, "run_dir")
    files = sorted(ckdir.glob("*.ckpt"))
    if not files:
        rep.checks.append(Check("checkpoints", "fail", f"no *.ckpt in {ckdir}", Failure.NOT_FOUND))
        return rep
    index = None
    from planlab.agents.checkpoint_io import INDEX_FILE

    index_path = ckdir / INDEX_FILE
    if index_path.is_file():
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            rep.checks.append(
                Check("index", "fail", f"{index_path} is not valid JSON ({exc})", Failure.STRUCTURE)
            )
    rep.checkpoints = sorted(
        (validate_checkpoint(f, expected_agent, rebuild, index) for f in files), key=_step_key
    )
    if isinstance(index, Mapping):
        names = {f.name for f in files}
        gone = [n for n in [index.get("best"), *(index.get("top_k") or {})] if n and n not in names]
        if gone:
            rep.checks.append(
                Check(
                    "index",
                    "fail",
                    f"{INDEX_FILE} names {gone[0]}, which is not in {ckdir}",
                    Failure.NOT_FOUND,
                )
            )
        else:
            rep.checks.append(
                Check(
                    "index",
                    "ok",
                    f"best {index.get('best')} by {index.get('monitor')} = {index.get('best_score')}",
                )
            )
    if not (ckdir / "last.ckpt").is_file():
        rep.checks.append(Check("last", "warn", "no last.ckpt: the run cannot resume from its latest state"))
    return rep
