"""Interval estimates and tests for rates and paired differences.

Thin wrappers over statsmodels/scipy so every report uses the same definitions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (Wilson 1927).

    Returns ``(lo, hi)`` in [0, 1]; ``(nan, nan)`` when ``n == 0``.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return (float(lo), float(hi))


def rate(values: Sequence[float | bool | None], alpha: float = 0.05) -> dict:
    """Rate of true values among non-missing entries, with Wilson CI and counts.

    Returns ``{"value", "ci": [lo, hi], "k", "n", "missing"}``; ``None`` entries are
    counted in ``missing`` (never silently dropped from the report).
    """
    present = [bool(v) for v in values if v is not None]
    k, n = sum(present), len(present)
    lo, hi = wilson(k, n, alpha)
    return {"value": (k / n) if n else float("nan"), "ci": [lo, hi], "k": k, "n": n,
            "missing": len(values) - n}


def bootstrap_mean(x: Sequence[float], n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``x`` (shape ``(n,)``) with a percentile bootstrap CI (Efron & Tibshirani 1993, ch. 13).

    Returns ``{"value", "ci": [lo, hi], "n"}``; NaNs when ``x`` is empty, and a NaN interval
    when ``n == 1`` (resampling one value says nothing about its spread: the interval would be
    the point itself).
    """
    d = np.asarray(x, dtype=float)
    n = d.size
    if n == 0:
        return {"value": float("nan"), "ci": [float("nan"), float("nan")], "n": 0}
    if n == 1:
        return {"value": float(d[0]), "ci": [float("nan"), float("nan")], "n": 1}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    lo, hi = np.quantile(d[idx].mean(axis=1), [alpha / 2, 1 - alpha / 2])
    return {"value": float(d.mean()), "ci": [float(lo), float(hi)], "n": int(n)}


def paired_bootstrap_diff(x: Sequence[float], y: Sequence[float], n_boot: int = 10_000,
                          seed: int = 0, alpha: float = 0.05) -> dict:
    """Mean of ``x - y`` over paired samples with a percentile bootstrap CI (Efron & Tibshirani 1993).

    ``x`` and ``y`` are aligned per pair (shape ``(n,)`` each). Raises ``ValueError`` on a length mismatch.
    Returns ``{"value", "ci": [lo, hi], "n"}``.
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    return bootstrap_mean(a - b, n_boot=n_boot, seed=seed, alpha=alpha)


def mcnemar_exact(x: Sequence[bool], y: Sequence[bool]) -> float:
    """Exact McNemar p-value (binomial test on discordant pairs) for paired binary outcomes.

    ``x[i]`` and ``y[i]`` are the outcomes of pair ``i``. Returns 1.0 when no pair is discordant.
    """
    if len(x) != len(y):
        raise ValueError(f"paired samples differ in length: {len(x)} vs {len(y)}")
    a = sum(1 for u, v in zip(x, y) if u and v)
    b = sum(1 for u, v in zip(x, y) if u and not v)
    c = sum(1 for u, v in zip(x, y) if not u and v)
    d = len(x) - a - b - c
    if b + c == 0:
        return 1.0
    return float(mcnemar([[a, b], [c, d]], exact=True).pvalue)
