"""Label-fraction subsets: nested, seeded, hashed token lists for label-efficiency experiments.

For one subset seed, the sorted scene tokens are ranked by ``sha256("subset:<seed>:<token>")`` and the
subset of fraction ``f`` is the first ``max(1, round(f·N))`` tokens of that ranking — so the fractions of one
seed are nested (1 % ⊂ 5 % ⊂ … ⊂ 100 %) and different seeds draw different subsets. Each subset file records
the scene filter, the manifest hash of the split it came from and a sha256 over its content;
:func:`load_subset` refuses a file whose hash does not match (lessons_from_prior_work: never emulate a
fraction with ``limit_train_batches``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from planlab.atomic import atomic_write_text
from planlab.data.manifest import canonical_json, sha256_text
from planlab.data.splits import seeded_order
from planlab.errors import DataError
from planlab.scene import SceneFilter

SUBSET_FORMAT = "planlab-subset/1"
DEFAULT_FRACTIONS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


def subset_size(fraction: float, n: int) -> int:
    """``round(fraction·n)`` (half up), at least 1 when ``n > 0``; monotone in ``fraction``."""
    if not (0.0 < fraction <= 1.0):
        raise DataError(f"subset fraction {fraction} must be in (0, 1]")
    if n == 0:
        return 0
    return min(n, max(1, math.floor(fraction * n + 0.5)))


def _filter_dict(scene_filter: SceneFilter | None) -> dict[str, Any] | None:
    if scene_filter is None:
        return None
    d = asdict(scene_filter)
    d.pop("tokens", None)  # the token list is the subset itself
    return d


@dataclass(frozen=True)
class Subset:
    """One label-fraction subset: sorted tokens plus provenance and a content sha256."""

    split: str
    fraction: float
    seed: int
    tokens: list[str]
    num_available: int
    manifest_hash: str | None = None
    scene_filter: dict[str, Any] | None = None
    sha256: str = field(default="")

    def payload(self) -> dict[str, Any]:
        return {
            "format": SUBSET_FORMAT,
            "split": self.split,
            "fraction": self.fraction,
            "seed": self.seed,
            "num_tokens": len(self.tokens),
            "num_available": self.num_available,
            "manifest_hash": self.manifest_hash,
            "scene_filter": self.scene_filter,
            "tokens": self.tokens,
        }

    def content_hash(self) -> str:
        return sha256_text(canonical_json(self.payload()))

    @property
    def file_name(self) -> str:
        return f"{self.split}_frac{self.fraction:g}_seed{self.seed}.json"

    def write(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        atomic_write_text(p, json.dumps(dict(self.payload(), sha256=self.content_hash()), indent=1) + "\n")
        return p


def make_subsets(
    tokens: list[str],
    fractions: list[float] | tuple[float, ...] = DEFAULT_FRACTIONS,
    seed: int = 0,
    split: str = "train",
    manifest_hash: str | None = None,
    scene_filter: SceneFilter | None = None,
) -> list[Subset]:
    """Nested subsets of ``tokens`` for each fraction (one seeded ranking, prefixes of it)."""
    unique = sorted(set(tokens))
    if len(unique) != len(tokens):
        raise DataError(f"the token list of split {split} has duplicates")
    if not unique:
        raise DataError(f"split {split} has no scenes to draw subsets from")
    ranking = seeded_order(unique, seed, "subset")
    filt = _filter_dict(scene_filter)
    out = []
    for f in sorted({float(f) for f in fractions}):
        chosen = sorted(ranking[: subset_size(f, len(ranking))])
        s = Subset(split, f, int(seed), chosen, len(unique), manifest_hash, filt)
        out.append(Subset(split, f, int(seed), chosen, len(unique), manifest_hash, filt, s.content_hash()))
    return out


def load_subset(path: str | os.PathLike, expected_manifest_hash: str | None = None) -> Subset:
    """Read a subset file and verify its sha256 (and, if given, the manifest hash of its source split)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: subset file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{p}: not readable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SUBSET_FORMAT:
        raise DataError(f"{p}: not a planlab subset file")
    try:
        subset = Subset(
            split=str(data["split"]),
            fraction=float(data["fraction"]),
            seed=int(data["seed"]),
            tokens=[str(t) for t in data["tokens"]],
            num_available=int(data["num_available"]),
            manifest_hash=data.get("manifest_hash"),
            scene_filter=data.get("scene_filter"),
            sha256=str(data["sha256"]),
        )
        declared = int(data["num_tokens"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{p}: malformed subset file ({exc})") from None
    if subset.content_hash() != subset.sha256 or declared != len(subset.tokens):
        raise DataError(f"{p}: sha256 does not match the content (the subset file was edited or corrupted)")
    if expected_manifest_hash is not None and subset.manifest_hash != expected_manifest_hash:
        raise DataError(
            f"{p}: drawn from data with manifest {subset.manifest_hash}, not the expected {expected_manifest_hash}"
        )
    return subset


def scene_filter_of(subset: Subset) -> SceneFilter:
    """The SceneFilter that selects exactly this subset (its recorded filter + the token list)."""
    base = dict(subset.scene_filter or {})
    base["tokens"] = list(subset.tokens)
    try:
        return SceneFilter(**base)
    except TypeError as exc:
        raise DataError(f"subset {subset.file_name}: recorded scene filter is not valid ({exc})") from None


# ---------------------------------------------------------------------------------------------------------
# From a dataset on disk

SPLITS_FILE = "splits.json"  # default place of the by-log split file: <root>/splits.json


@dataclass(frozen=True)
class SplitSource:
    """The logs a named split stands for: a whole ``navsim_logs/<split>`` dir or a part of a split file."""

    name: str
    data_split: str
    log_names: list[str] | None  # None = every log of the data split


def resolve_split(root: Path, split: str, splits_file: str | os.PathLike | None = None) -> SplitSource:
    """``split`` as a directory under ``navsim_logs``, else as a part of the split file."""
    from planlab.data.layout import list_splits
    from planlab.data.splits import load_log_split

    if splits_file is None:
        if (root / "navsim_logs" / split).is_dir():
            return SplitSource(split, split, None)
        default = root / SPLITS_FILE
        if not default.is_file():
            raise DataError(
                f"{root}: split {split!r} is neither a directory under navsim_logs "
                f"({', '.join(list_splits(root)) or 'none'}) nor a part of {default} (not found)"
            )
        splits_file = default
    log_split = load_log_split(splits_file)
    return SplitSource(split, log_split.data_split, log_split.part(split))


def write_subsets(
    root: str | os.PathLike | None,
    split: str,
    fractions: list[float] | tuple[float, ...] = DEFAULT_FRACTIONS,
    seeds: list[int] | tuple[int, ...] = (0,),
    out_dir: str | os.PathLike | None = None,
    splits_file: str | os.PathLike | None = None,
    scene_filter: SceneFilter | None = None,
) -> list[tuple[Subset, Path]]:
    """Draw and write the subsets of every (seed, fraction) of one split; returns them with their paths.

    Default output directory: ``<root>/subsets/<split>/``.
    """
    from planlab.data.layout import dataset_root
    from planlab.data.loader import SceneLoader

    if not seeds:
        raise DataError("no subset seeds given")
    if not fractions:
        raise DataError("no subset fractions given")
    for f in fractions:
        subset_size(float(f), 1)  # validate before reading any log
    base = dataset_root(root)
    source = resolve_split(base, split, splits_file)
    filt = scene_filter if scene_filter is not None else SceneFilter(frame_interval=1)
    filt = SceneFilter(**dict(asdict(filt), log_names=source.log_names, tokens=None, max_scenes=None))
    loader = SceneLoader(base, source.data_split, filt, load_maps=False)
    manifest = loader.manifest()
    out = Path(out_dir) if out_dir is not None else base / "subsets" / split
    written = []
    for seed in seeds:
        for subset in make_subsets(loader.tokens, fractions, seed, split, manifest.hash, filt):
            written.append((subset, subset.write(out / subset.file_name)))
    return written
