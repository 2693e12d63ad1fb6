"""Batch-invariant linear operators.

``x @ A.T`` through BLAS rounds differently with the number of rows (a single row takes the
matrix-vector kernel, several rows the matrix-matrix one, and blocked kernels change the summation
order with the batch size). A scene's simulation or score must not depend on which other scenes share
its batch, so the fixed operators of the tracker and the comfort filters are applied here in one fixed
order: ``out[..., k] = (((x[..., 0]·A[k, 0]) + x[..., 1]·A[k, 1]) + …)``, every product and sum rounded
on its own (no fused multiply-add), on any machine and for any batch.
"""

from __future__ import annotations

import numpy as np


def apply_operator(x: np.ndarray, operator: np.ndarray) -> np.ndarray:
    """``x (..., n) @ operator.T`` for ``operator (m, n)``, summed over ``n`` in index order."""
    x = np.asarray(x, dtype=np.float64)
    op_t = np.ascontiguousarray(np.asarray(operator, dtype=np.float64).T)  # (n, m)
    n = x.shape[-1]
    if op_t.shape[0] != n:
        raise ValueError(f"operator of shape {operator.shape} cannot act on vectors of length {n}")
    rows = np.ascontiguousarray(x.reshape(-1, n))
    out = rows[:, :1] * op_t[0]
    for j in range(1, n):
        out += rows[:, j : j + 1] * op_t[j]
    return out.reshape(x.shape[:-1] + (op_t.shape[1],))
