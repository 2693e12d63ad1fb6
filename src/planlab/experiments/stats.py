"""Statistics for comparing runs: bootstrap confidence intervals and a paired per-scene bootstrap test.

Deterministic (fixed generator seed) so that a report regenerated from the same runs shows the same
numbers. Percentile bootstrap (lessons §6 item 12: CIs over seeds and scenes, paired tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0


@dataclass
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); NaN for n < 2
    ci_low: float
    ci_high: float


def bootstrap_ci(
    values: list[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Summary:
    """Mean, std and the percentile-bootstrap CI of the mean; NaN values are dropped first.

    With one value the CI collapses to that value; with none everything is NaN.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = int(x.size)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else math.nan
    if n == 1:
        return Summary(1, mean, std, mean, mean)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    means = x[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Summary(n, mean, std, float(lo), float(hi))


@dataclass
class PairedTest:
    n: int  # scenes scored by both
    mean_a: float
    mean_b: float
    diff: float  # mean(a - b)
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, bootstrap under H0 (the centred differences)
    only_a: int  # scenes scored by A only (excluded)
    only_b: int


def paired_bootstrap(
    a: dict[str, float],
    b: dict[str, float],
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> PairedTest:
    """Paired bootstrap over the scenes both runs scored: CI of mean(A − B) and a two-sided p-value.

    The p-value resamples the centred differences (the null of equal means) and counts how often the
    resampled |mean| reaches the observed |mean| (+1 smoothing, so it is never exactly 0).
    """
    common = sorted(set(a) & set(b))
    only_a, only_b = len(set(a) - set(b)), len(set(b) - set(a))
    if not common:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, only_a, only_b)
    xa = np.array([a[t] for t in common], dtype=float)
    xb = np.array([b[t] for t in common], dtype=float)
    d = xa - xb
    n = d.size
    obs = float(d.mean())
    if n == 1:
        return PairedTest(1, float(xa.mean()), float(xb.mean()), obs, obs, obs, 1.0, only_a, only_b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    boot = d[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    centred = d - obs
    null = centred[idx].mean(axis=1)
    p = (1.0 + float(np.sum(np.abs(null) >= abs(obs) - 1e-15))) / (resamples + 1.0)
    return PairedTest(
        n, float(xa.mean()), float(xb.mean()), obs, float(lo), float(hi), min(1.0, p), only_a, only_b
    )
