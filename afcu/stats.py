"""Interval estimates and tests for rates and paired differences.

Thin wrappers over statsmodels/scipy so every report uses the same definitions.
"""

from __future__ import annotations

import math
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


def _paired_table(x: Sequence[bool], y: Sequence[bool]) -> tuple[int, int, int, int]:
    """The 2x2 table ``(a, b, c, d)`` of paired binary outcomes: both, x only, y only, neither."""
    if len(x) != len(y):
        raise ValueError(f"paired samples differ in length: {len(x)} vs {len(y)}")
    a = sum(1 for u, v in zip(x, y) if u and v)
    b = sum(1 for u, v in zip(x, y) if u and not v)
    c = sum(1 for u, v in zip(x, y) if not u and v)
    return a, b, c, len(x) - a - b - c


def mcnemar_exact(x: Sequence[bool], y: Sequence[bool]) -> float:
    """Exact McNemar p-value (binomial test on discordant pairs) for paired binary outcomes.

    ``x[i]`` and ``y[i]`` are the outcomes of pair ``i``. Returns 1.0 when no pair is discordant.
    """
    a, b, c, d = _paired_table(x, y)
    if b + c == 0:
        return 1.0
    return float(mcnemar([[a, b], [c, d]], exact=True).pvalue)


def newcombe_paired_diff(x: Sequence[bool], y: Sequence[bool], alpha: float = 0.05) -> dict:
    """Difference of paired proportions ``P(x) - P(y)`` with Newcombe's score interval
    (Newcombe 1998, Stat. Med. 17:2635, method 10: square-and-add of the two Wilson intervals
    with the correlation estimate phi, shrunk towards 0 by n/2 when positive).

    ``x[i]``, ``y[i]`` are the two outcomes of pair ``i``.  Returns ``{"value", "ci", "n", "table"}``,
    ``table`` = ``[a, b, c, d]`` (both, x only, y only, neither); NaNs when there is no pair.
    Checked against Fagerland, Lydersen & Laake (2017), ch. 8 (Cavo et al. 2012: -0.0621, [-0.1186, -0.0046]).
    """
    a, b, c, d = _paired_table(x, y)
    n = len(x)
    if n == 0:
        return {"value": float("nan"), "ci": [float("nan"), float("nan")], "n": 0, "table": [0, 0, 0, 0]}
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, alpha)
    l2, u2 = wilson(a + c, n, alpha)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    # phi: the correlation of the two margins; a positive one is shrunk by n/2 (Newcombe's correction).
    if margins == 0:
        phi = 0.0
    elif cross > n / 2:
        phi = (cross - n / 2) / math.sqrt(margins)
    elif cross >= 0:
        phi = 0.0
    else:
        phi = cross / math.sqrt(margins)
    diff = p1 - p2
    lo = diff - math.sqrt(max((p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2), 0.0))
    hi = diff + math.sqrt(max((p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1), 0.0))
    return {"value": diff, "ci": [max(lo, -1.0), min(hi, 1.0)], "n": n, "table": [a, b, c, d]}


def cluster_bootstrap_diff(clusters: Sequence[Sequence[float]], n_boot: int = 10_000, seed: int = 0,
                           alpha: float = 0.05) -> dict:
    """Mean paired difference with a percentile bootstrap that resamples whole clusters.

    ``clusters[k]`` holds the per-pair differences of cluster ``k`` (e.g. every epoch of one query),
    in a fixed order the caller chose (afcu sorts by id, so the result never depends on row order).
    The statistic is the pooled mean (sum of differences / number of pairs) of each resample.
    Returns ``{"value", "ci", "n", "n_clusters"}``; a NaN interval with fewer than two clusters.
    """
    sums = np.array([float(np.sum(c)) for c in clusters if len(c)])
    sizes = np.array([len(c) for c in clusters if len(c)], dtype=float)
    k, n = sums.size, int(sizes.sum()) if sums.size else 0
    nan = float("nan")
    if k == 0:
        return {"value": nan, "ci": [nan, nan], "n": 0, "n_clusters": 0}
    value = float(sums.sum() / sizes.sum())
    if k == 1:
        return {"value": value, "ci": [nan, nan], "n": n, "n_clusters": 1}
    idx = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    means = sums[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"value": value, "ci": [float(lo), float(hi)], "n": n, "n_clusters": int(k)}


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm step-down adjusted p-values (Holm 1979) via statsmodels ``multipletests``; NaNs stay NaN
    and are left out of the family."""
    from statsmodels.stats.multitest import multipletests

    finite = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(float(p))]
    out = [float("nan")] * len(pvalues)
    if finite:
        adj = multipletests([float(pvalues[i]) for i in finite], alpha=alpha, method="holm")[1]
        for i, p in zip(finite, adj):
            out[i] = float(p)
    return out
