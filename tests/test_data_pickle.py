"""Allow-listed unpickling and the numpy-1.x-portable writer (format contract pitfall P1)."""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import subprocess
from pathlib import Path

import numpy as np
import pytest

from planlab.data.safe_pickle import pickle_globals, portable_dump, portable_dumps, safe_load, safe_loads
from planlab.errors import DataError, UnsafePickleError

PORTABLE_GLOBALS = {"numpy.array", "numpy.zeros", "numpy.dtype"}


def _sample() -> dict:
    return {
        "token": np.str_("0123456789abcdef"),
        "timestamp": np.int64(1_630_000_000_500_000),
        "ego2global_translation": np.array([664000.25, 3997000.5, 1.0]),
        "ego2global_rotation": np.array([0.9, 0.0, 0.0, 0.43588989], dtype=np.float64),
        "driving_command": np.array([0, 1, 0, 0], dtype=np.int64),
        "speed": np.float32(3.25),
        "flag": np.bool_(True),
        "boxes32": np.arange(14, dtype=np.float32).reshape(2, 7) / 3,
        "empty_boxes": np.zeros((0, 7)),
        "names": np.array(["vehicle", "pedestrian"]),
        "mask": np.array([True, False]),
        "nested": [(1, True), (2, False)],
        "nothing": None,
    }


def _is_builtin(name: str) -> bool:
    return name.startswith("builtins.")


def test_portable_pickle_has_no_core_and_only_portable_globals():
    data = portable_dumps([_sample(), _sample()])
    assert b"_core" not in data
    names = pickle_globals(data)
    assert names, "arrays must be reduced to numpy.array/numpy.zeros calls"
    assert all(n in PORTABLE_GLOBALS or _is_builtin(n) for n in names), names
    proto = next(pickletools.genops(data))
    assert proto[0].name == "PROTO" and proto[1] <= 5


def test_portable_pickle_round_trips_values_and_dtypes():
    original = _sample()
    back = safe_loads(portable_dumps([original]))[0]
    for key in (
        "ego2global_translation",
        "ego2global_rotation",
        "driving_command",
        "boxes32",
        "names",
        "mask",
    ):
        assert isinstance(back[key], np.ndarray)
        assert back[key].dtype == original[key].dtype, key
        np.testing.assert_array_equal(back[key], original[key])
    assert back["empty_boxes"].shape == (0, 7)
    # numpy scalars become Python scalars (nothing numpy-version specific in the bytes)
    assert type(back["token"]) is str and type(back["timestamp"]) is int
    assert type(back["speed"]) is float and back["speed"] == 3.25 and type(back["flag"]) is bool
    assert back["nested"] == [(1, True), (2, False)] and back["nothing"] is None


def test_portable_writer_refuses_non_data_objects(tmp_path):
    with pytest.raises(DataError, match="portable pickle"):
        portable_dumps({"path": tmp_path})
    target = tmp_path / "log.pkl"
    target.write_bytes(b"good")
    with pytest.raises(DataError):
        portable_dump({"x": object()}, target)
    assert target.read_bytes() == b"good"  # the good file is untouched


def _numpy1_style(data: bytes) -> bytes:
    """Re-emit a pickle with numpy 1.x module names (``numpy.core.*``), as numpy 1.x itself writes them.

    FRAME opcodes are dropped (they are optional size hints and would no longer match).
    """
    ops = list(pickletools.genops(data))
    out = bytearray()
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        raw = data[pos:end]
        if op.name == "FRAME":
            continue
        if op.name == "SHORT_BINUNICODE" and "numpy._core" in arg:
            text = arg.replace("numpy._core", "numpy.core").encode()
            raw = b"\x8c" + bytes([len(text)]) + text
        elif op.name == "GLOBAL" and "numpy._core" in arg:
            raw = raw.replace(b"numpy._core", b"numpy.core")
        out += raw
    return bytes(out)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_unpickler_loads_numpy1_style_pickles(protocol):
    frames = [
        {
            "token": "0123456789abcdef",
            "gt_boxes": np.arange(21, dtype=np.float64).reshape(3, 7),
            "gt_names": np.array(["vehicle", "barrier", "pedestrian"]),
            "ego_dynamic_state": [np.float64(1.5), np.float64(0.0), np.float32(0.25), np.float32(0.0)],
            "driving_command": np.array([0, 0, 1, 0]),
            "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            "objects": np.array(["a", 1], dtype=object),
        }
    ]
    data = _numpy1_style(pickle.dumps(frames, protocol=protocol))
    names = pickle_globals(data)
    assert not any("_core" in n for n in names)
    assert any(n.startswith("numpy.core.") for n in names), names  # really the numpy 1.x spelling
    back = safe_loads(data, "real.pkl")
    np.testing.assert_array_equal(back[0]["gt_boxes"], frames[0]["gt_boxes"])
    np.testing.assert_array_equal(back[0]["fortran"], frames[0]["fortran"])
    assert list(back[0]["gt_names"]) == ["vehicle", "barrier", "pedestrian"]
    assert back[0]["ego_dynamic_state"][2] == np.float32(0.25)
    assert list(back[0]["objects"]) == ["a", 1]


def test_safe_unpickler_loads_numpy2_pickles():
    frames = [{"a": np.linspace(0, 1, 5, dtype=np.float32), "s": np.float64(2.5)}]
    for protocol in (2, 4, 5):
        back = safe_loads(pickle.dumps(frames, protocol=protocol))
        np.testing.assert_array_equal(back[0]["a"], frames[0]["a"])
        assert back[0]["s"] == 2.5


class _Payload:
    """Pickles as a call of ``func(*args)``: what a malicious log would contain."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    return {
        "system": pickle.dumps([{"token": "x"}, _Payload(os.system, (cmd,))]),
        "eval": pickle.dumps(_Payload(eval, (f"open({str(marker)!r}, 'w').write('pwned')",))),
        "Popen": pickle.dumps(
            {"frames": [_Payload(subprocess.Popen, (["touch", str(marker)],))]}, protocol=2
        ),
        "getattr": pickle.dumps(_Payload(getattr, (_Payload(__import__, ("os",)), "system"))),
    }


@pytest.mark.parametrize("kind", ["system", "eval", "Popen", "getattr"])
def test_safe_unpickler_refuses_code_without_running_it(tmp_path, kind):
    marker = tmp_path / "executed"
    data = _payloads(marker)[kind]
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message and kind in message and "\n" not in message
    assert not marker.exists(), "the payload ran"
    # listing the globals of a hostile pickle is itself safe
    assert any(kind in n for n in pickle_globals(data))
    assert not marker.exists()
    # control: the plain unpickler really would have run it (so the test can fail)
    if kind == "system":
        pickle.loads(data)
        assert marker.exists()


def test_refuses_disallowed_name_in_allowed_module(tmp_path):
    data = pickle.dumps(_Payload(np.load, ("x.npy",)))
    with pytest.raises(UnsafePickleError, match="numpy.load"):
        safe_loads(data, "f.pkl")


def test_truncated_and_garbage_pickles_are_data_errors(tmp_path):
    good = portable_dumps([{"token": "a", "v": np.arange(100.0)}])
    path = tmp_path / "cut.pkl"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="cut.pkl") as info:
        safe_load(path)
    assert not isinstance(info.value, UnsafePickleError)
    with pytest.raises(DataError, match="junk"):
        safe_loads(b"\x80\x04this is not a pickle", "junk")
    with pytest.raises(DataError, match="not found"):
        safe_load(tmp_path / "missing.pkl")


NUMPY1_DIR = Path(__file__).parent / "data" / "numpy1_pickles"


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_genuine_numpy1_pickles_load(protocol):
    """Pickles written by numpy 1.23.5 itself (see make_fixtures.py in that folder)."""
    path = NUMPY1_DIR / f"numpy1_protocol{protocol}.pkl"
    assert any(n.startswith("numpy.core.") for n in pickle_globals(path.read_bytes()))
    frames = safe_load(path)
    assert [f["token"] for f in frames] == ["00000000000000a0", "00000000000000a1"]
    f = frames[1]
    np.testing.assert_array_equal(f["ego2global_translation"], [664001.5, 3997000.25, 0.0])
    # (written with numpy 1.23's cos/sin, which may differ from ours in the last bit)
    np.testing.assert_allclose(f["ego2global_rotation"], [np.cos(0.2), 0.0, 0.0, np.sin(0.2)], rtol=1e-15)
    assert f["gt_boxes"].dtype == np.float32
    np.testing.assert_array_equal(f["gt_boxes"], np.arange(14, dtype=np.float32).reshape(2, 7) + 1)
    assert list(f["gt_names"]) == ["vehicle", "pedestrian"] and f["empty"].shape == (0, 7)
    assert f["ego_dynamic_state"][0] == 10.5 and f["ego_dynamic_state"][2] == np.float32(0.25)
    assert f["traffic_lights"] == [(44001, False)] and f["driving_command"].dtype == np.int64
    np.testing.assert_array_equal(f["fortran"], np.arange(6.0).reshape(2, 3))


@pytest.mark.skipif(
    not os.environ.get("PLANLAB_NUMPY1_PYTHON"), reason="set PLANLAB_NUMPY1_PYTHON to a numpy 1.x python"
)
def test_portable_pickle_loads_under_numpy1(tmp_path):
    """The real P1 check: a numpy 1.x interpreter unpickles what the portable writer wrote."""
    path = tmp_path / "log.pkl"
    portable_dump([_sample()], path)
    code = (
        "import pickle, sys, json, numpy; f = pickle.load(open(sys.argv[1], 'rb'))[0]; "
        "print(json.dumps([numpy.__version__, str(f['boxes32'].dtype), f['boxes32'].tolist(), list(f['names']), "
        "list(f['empty_boxes'].shape), f['speed']]))"
    )
    out = subprocess.run(
        [os.environ["PLANLAB_NUMPY1_PYTHON"], "-c", code, str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    version, dtype, boxes, names, empty_shape, speed = json.loads(out.stdout)
    assert version.startswith("1.") and dtype == "float32" and empty_shape == [0, 7] and speed == 3.25
    np.testing.assert_array_equal(np.array(boxes, dtype=np.float32), _sample()["boxes32"])
    assert names == ["vehicle", "pedestrian"]
