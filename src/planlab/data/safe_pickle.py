"""Allow-listed unpickling and numpy-1.x-portable pickling for OpenScene logs.

Reading: NAVSIM logs are pickles (format contract §2.1), and a pickle can call any importable function. The
:class:`SafeUnpickler` resolves only built-in container/scalar types and the globals numpy uses to rebuild
arrays, dtypes and scalars (numpy 1.x ``numpy.core.*`` and numpy 2 ``numpy._core.*`` names, plus the
``numpy.array``/``numpy.zeros`` calls of our own writer). Any other global stops the load *before* anything
is called, with an :class:`~planlab.errors.UnsafePickleError` naming the file and the global.

Writing (pitfall P1): numpy 2 pickles reference ``numpy._core``, which numpy 1.23 (NAVSIM's pin) cannot
import. :func:`portable_dumps` reduces every ndarray to ``numpy.array(<nested list>, <dtype str>)`` (or
``numpy.zeros(<shape>, <dtype str>)`` when it has no elements) and turns numpy scalars into Python scalars,
so the bytes load under any numpy >= 1.x and never contain ``_core``.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from planlab.atomic import atomic_write_bytes
from planlab.errors import DataError, UnsafePickleError

# Protocol of the portable writer: 4 is understood by every Python >= 3.4 and needs no PickleBuffer.
PORTABLE_PROTOCOL = 4

# Built-in types a data pickle may name. Protocols >= 2 encode list/dict/tuple/str/... with opcodes, but
# protocol < 4 pickles sets through ``builtins.set`` and protocol 2 bytes through ``_codecs.encode``.
_BUILTIN_NAMES = frozenset(
    {
        "bool",
        "bytearray",
        "bytes",
        "complex",
        "dict",
        "float",
        "frozenset",
        "int",
        "list",
        "set",
        "slice",
        "str",
        "tuple",
    }
)


def _numpy_core_module(name: str) -> Any:
    """``numpy._core.<name>`` on numpy 2, ``numpy.core.<name>`` on numpy 1 (without the numpy 2 shim)."""
    import importlib

    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy 1.x
        return importlib.import_module(f"numpy.core.{name}")


def _build_allow_list() -> dict[tuple[str, str], Any]:
    multiarray = _numpy_core_module("multiarray")
    numeric = _numpy_core_module("numeric")
    numpy_globals = {
        # array reconstruction (protocols 2-4): _reconstruct(ndarray, shape, dtype-char) then BUILD(state)
        "multiarray._reconstruct": multiarray._reconstruct,
        # numpy scalars: scalar(dtype, raw bytes)
        "multiarray.scalar": multiarray.scalar,
        # contiguous arrays under protocol 5: _frombuffer(buffer, dtype, shape, order)
        "numeric._frombuffer": numeric._frombuffer,
    }
    allowed: dict[tuple[str, str], Any] = {}
    for prefix in ("numpy.core", "numpy._core"):  # numpy 1.x names (real OpenScene) and numpy 2 names
        for dotted, obj in numpy_globals.items():
            mod, _, name = dotted.partition(".")
            allowed[(f"{prefix}.{mod}", name)] = obj
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    allowed[("numpy", "array")] = np.array  # our portable writer
    allowed[("numpy", "zeros")] = np.zeros  # our portable writer (zero-size arrays)
    for name in _BUILTIN_NAMES:
        allowed[("builtins", name)] = getattr(builtins, name)
        allowed[("__builtin__", name)] = getattr(builtins, name)  # protocol 2 spells builtins this way
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode  # protocol-2 bytes: encode(latin-1 text, "latin1")
    return allowed


_ALLOWED: dict[tuple[str, str], Any] | None = None


def allowed_globals() -> dict[tuple[str, str], Any]:
    """The allow-list ``{(module, name): object}`` the safe unpickler resolves."""
    global _ALLOWED
    if _ALLOWED is None:
        _ALLOWED = _build_allow_list()
    return _ALLOWED


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :func:`allowed_globals`; ``source`` names the file in errors."""

    def __init__(self, file: io.BufferedIOBase, source: str = "<bytes>"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        obj = allowed_globals().get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle global '{module}.{name}' (not on the allow-list of "
                "built-in and numpy array types); nothing from this file was executed"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source}: pickle uses a persistent id, which is not allowed")


def safe_loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` through :class:`SafeUnpickler`; a truncated/corrupt pickle is a DataError."""
    try:
        return SafeUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, struct errors, ... from bad bytes
        kind = "truncated" if isinstance(exc, EOFError) else "corrupt"
        raise DataError(f"{source}: not a readable pickle ({kind}: {type(exc).__name__}: {exc})") from None


def safe_load(path: str | os.PathLike) -> Any:
    """Read and unpickle a file through :class:`SafeUnpickler`; errors name the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return safe_loads(data, str(p))


# ---------------------------------------------------------------------------------------------------------
# Portable writer (pitfall P1)


def to_portable(obj: Any, _where: str = "") -> Any:
    """Copy of ``obj`` with numpy scalars as Python scalars and tuples/lists/dicts rebuilt recursively.

    ndarrays are kept (the pickler reduces them); anything that is not plain data raises a DataError,
    because its pickle would name a module that NAVSIM's environment may not have.
    """
    if obj is None or type(obj) in (bool, int, float, str, bytes, complex):
        return obj
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {
            to_portable(k, _where): to_portable(v, f"{_where}.{k}" if _where else str(k))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [to_portable(v, f"{_where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return tuple(to_portable(v, f"{_where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, (set, frozenset)):
        return type(obj)(to_portable(v, _where) for v in obj)
    if isinstance(obj, (bool, int, float, str)):  # subclasses (e.g. IntEnum) become the plain type
        for base in (bool, int, float, str):
            if isinstance(obj, base):
                return base(obj)
    raise DataError(
        f"cannot write {type(obj).__module__}.{type(obj).__qualname__} at '{_where or '<root>'}' "
        "into a portable pickle (plain Python data and numpy arrays only)"
    )


class _PortablePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.fields is not None:
                raise DataError(f"cannot write a structured numpy array ({obj.dtype}) into a portable pickle")
            dtype = obj.dtype.str  # e.g. '<f8', '|b1', '<U16': understood by numpy 1.x and 2.x
            if obj.size == 0:
                return np.zeros, (tuple(int(s) for s in obj.shape), dtype)
            # tolist() yields Python scalars for numeric/bool/str dtypes; object arrays need a walk.
            values = obj.tolist()
            return np.array, (to_portable(values) if obj.dtype.hasobject else values, dtype)
        if obj is np.array or obj is np.zeros:
            return NotImplemented  # pickled by reference as numpy.array / numpy.zeros
        if isinstance(obj, type) and obj.__module__ == "builtins":
            return NotImplemented
        raise DataError(
            f"cannot write {type(obj).__module__}.{type(obj).__qualname__} into a portable pickle"
        )


def portable_dumps(obj: Any) -> bytes:
    """Pickle plain data + ndarrays so that numpy 1.23 can load it (no ``numpy._core`` reference)."""
    buf = io.BytesIO()
    _PortablePickler(buf, protocol=PORTABLE_PROTOCOL).dump(to_portable(obj))
    return buf.getvalue()


def portable_dump(obj: Any, path: str | os.PathLike) -> None:
    """Write :func:`portable_dumps` of ``obj`` to ``path`` atomically (write, fsync, rename)."""
    atomic_write_bytes(path, portable_dumps(obj))


# ---------------------------------------------------------------------------------------------------------
# Inspection


class _Stub:
    """Stands in for every global while listing a pickle's globals; accepts any call or state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Iterable[Any]) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def __reduce__(self) -> Any:  # pragma: no cover - never pickled
        raise TypeError("stub")


class _RecordingUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase):
        super().__init__(file)
        self.names: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        self.names.add(f"{module}.{name}")
        return _Stub

    def persistent_load(self, pid: Any) -> Any:
        self.names.add("<persistent id>")
        return _Stub()


def pickle_globals(data: bytes) -> set[str]:
    """Every global (``module.name``) a pickle references, found without calling any of them.

    Each global is replaced by an inert stub while the opcodes run, so this is safe on hostile input.
    """
    rec = _RecordingUnpickler(io.BytesIO(data))
    try:
        rec.load()
    except Exception as exc:
        raise DataError(f"not a readable pickle ({type(exc).__name__}: {exc})") from None
    return rec.names
