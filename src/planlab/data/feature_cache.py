"""On-disk caches of model inputs: per-token feature files and memory-mapped frozen-encoder embeddings.

No pickle anywhere (DESIGN.md): feature entries are safetensors files, embeddings are ``.npy`` arrays opened
with ``mmap_mode="r"``. Every write goes through a temporary name and a rename, so a killed cache build
leaves complete entries or none. Torch-free: the training room converts to tensors.

Feature cache layout (one directory per builder, keyed by its name and settings hash)::

    <root>/<builder_name>-<hash>/builder.json          name, hash, settings, declared specs
    <root>/<builder_name>-<hash>/<log_name>/<token>.safetensors   metadata: token, builder key

Embedding cache layout (one directory per encoder × camera-builder key, filled in shards)::

    <root>/<key>/meta.json                              encoder/camera description, dim, grid, dtype
    <root>/<key>/shard-00000/tokens.json                row order of the shard (written last = complete)
    <root>/<key>/shard-00000/pooled.npy                 (N, D) pooled vectors
    <root>/<key>/shard-00000/patches.npy                (N, P, D) patch grids (optional)
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_write_bytes, atomic_write_text
from planlab.errors import DataError

_SAFE_NAME = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _check_name(kind: str, name: str) -> str:
    if not name or name.startswith(".") or not set(name) <= _SAFE_NAME:
        raise DataError(f"{kind} {name!r} is not a safe file name ([A-Za-z0-9._-], not starting with '.')")
    return name


def read_safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (header only; nothing else is read)."""
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise DataError(f"{path}: truncated safetensors file")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise DataError(f"{path}: implausible safetensors header size {n}")
        header = fh.read(n)
    try:
        data = json.loads(header)
    except ValueError:
        raise DataError(f"{path}: corrupt safetensors header") from None
    meta = data.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()}


class FeatureCache:
    """Per-(builder, token) safetensors entries under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def builder_dir(self, key: str) -> Path:
        return self.root / _check_name("builder key", key)

    def register_builder(self, key: str, info: Mapping[str, Any]) -> None:
        """Record what a builder directory holds; refuse a directory that describes a different builder."""
        path = self.builder_dir(key) / "builder.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except ValueError:
                raise DataError(f"{path}: corrupt builder description") from None
            if old.get("key") != key:
                raise DataError(f"{path}: describes builder {old.get('key')!r}, expected {key!r}")
            return
        atomic_write_text(
            path, json.dumps({"key": key, **info}, indent=1, sort_keys=True, default=str) + "\n"
        )

    def entry_path(self, key: str, log_name: str, token: str) -> Path:
        return (
            self.builder_dir(key)
            / _check_name("log name", log_name)
            / f"{_check_name('token', token)}.safetensors"
        )

    def has(self, key: str, log_name: str, token: str) -> bool:
        return self.entry_path(key, log_name, token).is_file()

    def write(self, key: str, log_name: str, token: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Store one builder output (numpy arrays) atomically."""
        from safetensors.numpy import save

        path = self.entry_path(key, log_name, token)
        tensors = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        atomic_write_bytes(path, save(tensors, metadata={"token": token, "builder": key}))
        return path

    def read(self, key: str, log_name: str, token: str) -> dict[str, np.ndarray]:
        """Load one entry; DataError naming the file if it is missing, corrupt or belongs to another token."""
        from safetensors.numpy import load_file

        path = self.entry_path(key, log_name, token)
        if not path.is_file():
            raise DataError(
                f"{path}: feature cache entry missing (rebuild the cache: planlab cache features)"
            )
        meta = read_safetensors_metadata(path)
        if meta.get("token") != token or meta.get("builder") != key:
            raise DataError(f"{path}: entry is for token {meta.get('token')!r} / {meta.get('builder')!r}")
        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise DataError(f"{path}: corrupt feature cache entry ({str(exc)[:120]})") from None

    def tokens(self, key: str) -> dict[str, str]:
        """``{token: log_name}`` of every entry of a builder (scans the directory)."""
        out: dict[str, str] = {}
        base = self.builder_dir(key)
        if not base.is_dir():
            return out
        for log_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            for f in log_dir.glob("*.safetensors"):
                out[f.stem] = log_dir.name
        return out

    def remove_builder(self, key: str) -> None:
        shutil.rmtree(self.builder_dir(key), ignore_errors=True)


class EmbeddingStore:
    """Frozen-encoder outputs per token, in append-only shards of memory-mapped ``.npy`` arrays."""

    def __init__(self, root: str | os.PathLike, key: str) -> None:
        self.root = Path(root)
        self.key = _check_name("embedding key", key)
        self.dir = self.root / key
        self._index: dict[str, tuple[int, int]] | None = None
        self._shards: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ description
    @property
    def meta_path(self) -> Path:
        return self.dir / "meta.json"

    def meta(self) -> dict[str, Any] | None:
        if not self.meta_path.is_file():
            return None
        try:
            return json.loads(self.meta_path.read_text())
        except ValueError:
            raise DataError(f"{self.meta_path}: corrupt embedding-cache description") from None

    def init(self, meta: Mapping[str, Any]) -> None:
        """Create the store, or check that an existing one was made for the same encoder and camera."""
        old = self.meta()
        new = json.loads(json.dumps(dict(meta), sort_keys=True, default=str))
        if old is None:
            atomic_write_text(self.meta_path, json.dumps(new, indent=1, sort_keys=True) + "\n")
            return
        for k in ("encoder", "camera", "dim", "grid", "dtype", "patches"):
            if old.get(k) != new.get(k):
                raise DataError(
                    f"{self.meta_path}: made with {k}={old.get(k)!r}, now {new.get(k)!r}; use another cache directory"
                )

    # ------------------------------------------------------------------ writing
    def write_shard(self, tokens: list[str], pooled: np.ndarray, patches: np.ndarray | None = None) -> Path:
        """Add one complete shard (rows = ``tokens``); visible only once fully written."""
        if len(tokens) != len(pooled) or (patches is not None and len(patches) != len(tokens)):
            raise ValueError("tokens, pooled and patches must have the same number of rows")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".shard-", dir=self.dir))
        try:
            np.save(tmp / "pooled.npy", np.ascontiguousarray(pooled))
            if patches is not None:
                np.save(tmp / "patches.npy", np.ascontiguousarray(patches))
            (tmp / "tokens.json").write_text(json.dumps(list(tokens)))
            n = len(list(self.dir.glob("shard-*")))
            while (final := self.dir / f"shard-{n:05d}").exists():
                n += 1
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._index = None
        return final

    def shard_writer(self, num_rows: int, dim: int, grid: int | None, dtype: str) -> _ShardWriter:
        """A writer that fills a shard row by row into memory-mapped arrays (for large patch grids)."""
        return _ShardWriter(self, num_rows, dim, grid, dtype)

    # ------------------------------------------------------------------ reading
    def _load_index(self) -> dict[str, tuple[int, int]]:
        if self._index is not None:
            return self._index
        index: dict[str, tuple[int, int]] = {}
        shards: list[dict[str, Any]] = []
        for sd in sorted(self.dir.glob("shard-*")) if self.dir.is_dir() else []:
            tok_file = sd / "tokens.json"
            if not tok_file.is_file():
                continue
            try:
                tokens = json.loads(tok_file.read_text())
                pooled = np.load(sd / "pooled.npy", mmap_mode="r", allow_pickle=False)
                patches = (
                    np.load(sd / "patches.npy", mmap_mode="r", allow_pickle=False)
                    if (sd / "patches.npy").is_file()
                    else None
                )
            except (ValueError, OSError) as exc:
                raise DataError(f"{sd}: corrupt embedding shard ({exc})") from None
            if len(tokens) != len(pooled) or (patches is not None and len(patches) != len(tokens)):
                raise DataError(f"{sd}: row counts of tokens/pooled/patches differ")
            si = len(shards)
            shards.append({"dir": sd, "pooled": pooled, "patches": patches})
            for row, t in enumerate(tokens):
                index.setdefault(str(t), (si, row))
        self._shards = shards
        self._index = index
        return index

    def tokens(self) -> set[str]:
        return set(self._load_index())

    def missing(self, tokens: Iterable[str]) -> list[str]:
        have = self._load_index()
        return [t for t in tokens if t not in have]

    def get(self, token: str, patches: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(pooled (D,), patches (P, D) or None) of ``token`` as float32 copies."""
        index = self._load_index()
        if token not in index:
            raise DataError(f"{self.dir}: no embedding for token {token} (run planlab cache embeddings)")
        si, row = index[token]
        shard = self._shards[si]
        pooled = np.array(shard["pooled"][row], dtype=np.float32)
        grid = None
        if patches:
            if shard["patches"] is None:
                raise DataError(
                    f"{shard['dir']}: cache holds pooled vectors only; rebuild it with patch grids"
                )
            grid = np.array(shard["patches"][row], dtype=np.float32)
        return pooled, grid

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers re-open the memory maps themselves.
        state = self.__dict__.copy()
        state["_index"] = None
        state["_shards"] = []
        return state


class _ShardWriter:
    """Fills ``pooled`` (and ``patches``) of a new shard through memory maps; ``commit(tokens)`` publishes it."""

    def __init__(self, store: EmbeddingStore, num_rows: int, dim: int, grid: int | None, dtype: str) -> None:
        store.dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.tmp = Path(tempfile.mkdtemp(prefix=".shard-", dir=store.dir))
        self.pooled = np.lib.format.open_memmap(
            self.tmp / "pooled.npy", mode="w+", dtype=dtype, shape=(num_rows, dim)
        )
        self.patches = (
            np.lib.format.open_memmap(
                self.tmp / "patches.npy", mode="w+", dtype=dtype, shape=(num_rows, grid, dim)
            )
            if grid
            else None
        )

    def commit(self, tokens: list[str]) -> Path:
        if len(tokens) != len(self.pooled):
            raise ValueError("commit needs one token per row")
        self.pooled.flush()
        if self.patches is not None:
            self.patches.flush()
        del self.pooled, self.patches
        (self.tmp / "tokens.json").write_text(json.dumps(list(tokens)))
        n = len(list(self.store.dir.glob("shard-*")))
        while (final := self.store.dir / f"shard-{n:05d}").exists():
            n += 1
        os.replace(self.tmp, final)
        self.store._index = None
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
