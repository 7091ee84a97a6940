"""The hyper-parameter selection rule: it sees only S_f and clean held-out data.

For a method with a grid (``BenchConfig.grids``), every candidate repairs a copy of
the model; a candidate is admissible when its accuracy on the clean held-out
validation split is at least the original model's minus ``tolerance``; among
admissible candidates the one with the lowest accuracy on S_f *with the flagged
(manipulated) labels* wins (the most forgetting of what was flagged); ties keep
grid order; if none is admissible the one with the best validation accuracy wins.
Neither unflagged S_m nor any test set is used.  The reported cost is the sum
over all candidates, since selection is part of the method's price.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

from torch import nn

from unlearning.data import Split
from unlearning.methods import Cost, MethodConfig, run_method

Scorer = Callable[[nn.Module, Split], float]


def candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """All combinations of a grid, in the order the grid lists them."""
    keys = list(grid)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def select_and_run(method: str, model: nn.Module, forget: Split, retain: Split, config: MethodConfig,
                   grid: dict[str, list[Any]], accuracy: Scorer, val: Split,
                   tolerance: float) -> tuple[nn.Module, Cost, dict[str, Any]]:
    """Run ``method`` for every grid candidate and keep the one the rule picks.

    Returns (model, summed cost, chosen overrides); with an empty grid it is one plain run.
    """
    if not grid:
        out, cost = run_method(method, model, forget, retain, config)
        return out, cost, {}
    floor = accuracy(model, val) - tolerance
    total = Cost()
    best: tuple[tuple[float, float], nn.Module, dict[str, Any]] | None = None
    for cand in candidates(grid):
        new, cost = run_method(method, model, forget, retain, dataclasses.replace(config, **cand))
        total = Cost(total.forward + cost.forward, total.backward + cost.backward, total.seconds + cost.seconds)
        v = accuracy(new, val)
        f = accuracy(new, forget)
        key = (0.0, f) if v >= floor else (1.0, -v)  # admissible first, then least S_f accuracy
        if best is None or key < best[0]:
            best = (key, new, cand)
    assert best is not None
    return best[1], total, best[2]
