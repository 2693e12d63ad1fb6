"""Cluster profiles: where and how an experiment's jobs run (partition, account, GPUs, memory, setup lines).

A profile is a packaged YAML under ``planlab/configs/clusters/<name>.yaml`` (or any YAML path). It is
trusted configuration written by whoever administers the environment: its ``setup`` lines are shell code
placed verbatim before ``srun`` (module loads, conda activation, container set-up). Everything that comes
from an experiment (ids, paths, descriptions, overrides) is quoted when rendered, never trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from planlab.config import build_config, check_choice
from planlab.errors import ConfigError
from planlab.experiments.ids import check_id

CLUSTERS_DIR = Path(__file__).resolve().parents[1] / "configs" / "clusters"

# Values that land in ``#SBATCH`` option lines: sbatch has its own parser there, so restrict them to
# characters that need no quoting at all (names, numbers, gres strings, memory sizes).
_SBATCH_WORD = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:+,=/-]*\Z")
_MEM_RE = re.compile(r"\A(\d+(?:\.\d+)?)([KMGT]?)B?\Z", re.IGNORECASE)
_TIME_RE = re.compile(r"\A(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?\Z")


def mem_to_mb(text: str, key: str = "mem") -> float:
    """Parse a SLURM memory size (``8G``, ``64000M``, ``500``; bare numbers are MB) into MB."""
    m = _MEM_RE.match(str(text).strip())
    if not m:
        raise ConfigError(f"{key}={text!r} is not a memory size like 8G or 64000M")
    value, unit = float(m.group(1)), m.group(2).upper()
    return value * {"": 1.0, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}[unit]


def time_to_seconds(text: str, key: str = "time") -> int:
    """Parse a SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM[:SS]``) into seconds."""
    s = str(text).strip()
    m = _TIME_RE.match(s)
    if not m:
        raise ConfigError(f"{key}={text!r} is not a SLURM time like 01:30:00 or 2-00:00:00")
    days, a, b, c = m.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        h, mi, se = int(a), int(b or 0), int(c or 0)
        return int(days) * 86400 + h * 3600 + mi * 60 + se
    if c is not None:  # HH:MM:SS
        return int(a) * 3600 + int(b) * 60 + int(c)
    if b is not None:  # MM:SS
        return int(a) * 60 + int(b)
    return int(a) * 60  # MM


def seconds_to_time(seconds: float) -> str:
    """Seconds as a SLURM ``D-HH:MM:SS`` / ``HH:MM:SS`` string (rounded up to whole seconds)."""
    total = int(-(-seconds // 1))
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    mi, se = divmod(rem, 60)
    return f"{d}-{h:02d}:{mi:02d}:{se:02d}" if d else f"{h:02d}:{mi:02d}:{se:02d}"


@dataclass
class JobResources:
    """Resources of one job kind (training or evaluation)."""

    nodes: int = 1
    gpus_per_node: int = 0  # 0: CPU job
    # Processes per node when gpus_per_node == 0 (CPU DDP with gloo); with GPUs it is always gpus_per_node.
    cpu_tasks_per_node: int = 1
    cpus_per_task: int = 2
    mem: str = "8G"  # per node (sbatch --mem)
    time: str = "01:00:00"


@dataclass
class ClusterProfile:
    """One place to run jobs: a SLURM partition (with account/qos/GPUs/setup) or this machine (local)."""

    name: str = "local"
    description: str = ""
    launcher: str = "slurm"  # slurm | local
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpu_type: str | None = None  # --gres=gpu:<type>:<n>; None: --gres=gpu:<n>
    constraint: str | None = None
    # Extra sbatch options, each a full option such as "--exclusive" or "--comment=preemption=yes".
    sbatch_extra: list[str] = field(default_factory=list)
    # Shell lines run before srun (module load, conda activate, apptainer set-up). Trusted, not quoted.
    setup: list[str] = field(default_factory=list)
    # Prefix for every srun'd command, e.g. ["apptainer", "exec", "--nv", "/images/planlab.sif"] (each word quoted).
    container: list[str] = field(default_factory=list)
    # Interpreter that runs planlab on the compute nodes; None: the interpreter running `planlab exp`.
    python: str | None = None
    # Environment exported to every job (e.g. OPENSCENE_DATA_ROOT on the cluster's filesystem). Values quoted.
    env: dict[str, str] = field(default_factory=dict)
    # Host RAM one DataLoader worker needs [GB] and the fixed RAM of the training process itself [GB]
    # (lessons M1: 8 workers/GPU × 16 GPUs exhausted 256 GB/node before the first batch).
    worker_mem_gb: float = 3.0
    process_mem_gb: float = 4.0
    # Seconds before the time limit at which SLURM sends SIGUSR1 (Lightning saves and requeues).
    signal_grace_s: int = 120
    requeue: bool = True
    train: JobResources = field(default_factory=JobResources)
    eval: JobResources = field(default_factory=lambda: JobResources(time="00:30:00"))
    merge: JobResources = field(
        default_factory=lambda: JobResources(cpus_per_task=1, mem="2G", time="00:10:00")
    )

    def validate(self) -> None:
        check_id(self.name, "cluster profile name")
        check_choice("launcher", self.launcher, ("slurm", "local"))
        for key in ("partition", "account", "qos", "gpu_type", "constraint"):
            value = getattr(self, key)
            if value is not None and not _SBATCH_WORD.match(str(value)):
                raise ConfigError(
                    f"cluster profile {self.name!r}: {key}={value!r} has characters sbatch cannot take"
                )
        for opt in self.sbatch_extra:
            name, _, value = opt.partition("=")
            if not re.match(r"\A--[a-z][a-z0-9-]*\Z", name) or "\n" in value or "\r" in value:
                raise ConfigError(
                    f"cluster profile {self.name!r}: sbatch_extra entry {opt!r} must look like --name[=value]"
                )
        for key in self.env:
            if not re.match(r"\A[A-Za-z_][A-Za-z0-9_]*\Z", key):
                raise ConfigError(
                    f"cluster profile {self.name!r}: env name {key!r} is not a shell variable name"
                )
        if self.worker_mem_gb <= 0 or self.process_mem_gb < 0:
            raise ConfigError(
                f"cluster profile {self.name!r}: worker_mem_gb must be > 0 and process_mem_gb >= 0"
            )
        if self.signal_grace_s < 0:
            raise ConfigError(f"cluster profile {self.name!r}: signal_grace_s must be >= 0")
        for kind in ("train", "eval", "merge"):
            res: JobResources = getattr(self, kind)
            where = f"cluster profile {self.name!r}: {kind}"
            if res.nodes < 1 or res.gpus_per_node < 0 or res.cpu_tasks_per_node < 1 or res.cpus_per_task < 1:
                raise ConfigError(
                    f"{where}: nodes, cpu_tasks_per_node, cpus_per_task must be >= 1 and gpus_per_node >= 0"
                )
            mem_to_mb(res.mem, f"{kind}.mem")
            time_to_seconds(res.time, f"{kind}.time")
        if self.eval.nodes != 1 or self.merge.nodes != 1:
            raise ConfigError(
                f"cluster profile {self.name!r}: evaluation and merge jobs run on one node (nodes: 1)"
            )


def tasks_per_node(res: JobResources) -> int:
    """One task per GPU (Lightning's SLURM integration, lessons S4); CPU jobs use cpu_tasks_per_node."""
    return res.gpus_per_node if res.gpus_per_node > 0 else res.cpu_tasks_per_node


def list_profiles() -> list[str]:
    """Names of the packaged cluster profiles."""
    return sorted(p.stem for p in CLUSTERS_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> ClusterProfile:
    """A packaged profile by name, or a profile YAML by path; errors list the packaged names."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"cluster profile file not found: {path}")
    else:
        check_id(str(name_or_path), "cluster profile name")
        path = CLUSTERS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown cluster profile {str(name_or_path)!r}; packaged: {', '.join(list_profiles())}"
            )
    try:
        return build_config(ClusterProfile, path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
