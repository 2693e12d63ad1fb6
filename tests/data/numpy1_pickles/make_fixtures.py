"""Writes the numpy-1.x pickles of this folder; run it with a numpy 1.x interpreter (they were made with
numpy 1.23.5, NAVSIM's pin, Python 3.11): ``python make_fixtures.py``. Content mirrors real OpenScene frames:
numpy arrays of several dtypes, numpy scalars, a numpy str array, lists of tuples."""

import pickle

import numpy as np

assert np.__version__.startswith("1."), np.__version__


def frames():
    out = []
    for i in range(2):
        out.append(
            {
                "token": f"{0xA0 + i:016x}",
                "timestamp": 1630000000000000 + 500000 * i,
                "ego2global_translation": np.array([664000.5 + i, 3997000.25, 0.0]),
                "ego2global_rotation": np.array([np.cos(0.2), 0.0, 0.0, np.sin(0.2)]),
                "ego_dynamic_state": [np.float64(10.5), 0.0, np.float32(0.25), 0.0],
                "driving_command": np.array([0, 1, 0, 0], dtype=np.int64),
                "traffic_lights": [(np.int64(44001), np.bool_(i == 0))],
                "gt_boxes": np.arange(14, dtype=np.float32).reshape(2, 7) + i,
                "gt_names": np.array(["vehicle", "pedestrian"]),
                "empty": np.zeros((0, 7)),
                "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
            }
        )
    return out


for protocol in (2, 4, 5):
    with open(f"numpy1_protocol{protocol}.pkl", "wb") as fh:
        pickle.dump(frames(), fh, protocol=protocol)
