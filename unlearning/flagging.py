"""Flagging: the deletion set S_f is a uniform random subset of S_m (Goel et al. 2024, sec. 3).

Unflagged manipulated samples stay in the retain set D \\ S_f, as in the paper.
"""

from __future__ import annotations

import numpy as np

from afcu.errors import AfcuError
from unlearning.data import Split

SINGLE = "single"


def n_flagged(fraction: float | str, n_manipulated: int) -> int:
    """How many of ``n_manipulated`` samples a fraction flags: ``round(f * n)``, at least 1; ``single`` -> 1."""
    if fraction == SINGLE:
        return 1
    f = float(fraction)
    if not 0.0 < f <= 1.0:
        raise AfcuError(f"fractions: {fraction!r} must be in (0, 1] or 'single'")
    return max(1, int(round(f * n_manipulated)))


def flag(manipulated_ids: np.ndarray, fraction: float | str, seed: int) -> np.ndarray:
    """Sorted ids of S_f drawn uniformly without replacement from ``manipulated_ids``, seeded.

    One seeded permutation per seed, cut at k: a smaller fraction's S_f is a subset of a
    larger one's, so curves over fractions vary only the fraction.
    """
    k = n_flagged(fraction, len(manipulated_ids))
    order = np.random.default_rng(seed).permutation(np.sort(manipulated_ids))
    return np.sort(order[:k])


def forget_retain(train: Split, flagged_ids: np.ndarray) -> tuple[Split, Split]:
    """(S_f, D \\ S_f): the forget set and the retain set, disjoint by id."""
    return train.select_ids(flagged_ids, keep=True), train.select_ids(flagged_ids, keep=False)
