"""The hyper-parameter selection rule: it sees only S_f and clean held-out data.

For a method with a grid (``BenchConfig.grids``), every candidate repairs a copy of
the model; a candidate is admissible when its accuracy on the clean held-out
validation split is at least the original model's minus ``tolerance``; among
admissible candidates the one with the lowest accuracy on S_f *with the flagged
(manipulated) labels* wins (the most forgetting of what was flagged); ties keep
grid order; if none is admissible the one with the best validation accuracy wins.
Neither unflagged S_m nor any test set is used.

Cost, counted honestly: a method's ``prepare`` part (SSD's importances, which do not
depend on alpha or lambda) runs once per cell; then every candidate's own work plus
its evaluation (one forward pass per validation and S_f sample).  The original
model's validation accuracy (the floor) is the same for every method of a cell and is
not charged to any of them.

Grid syntax: ``{field: [values]}`` is a product over fields; a key naming several
fields joined by commas takes a list of tuples, e.g. ``{"alpha,lam": [[1, 0.1], [1, 1]]}``
(pairs, for grids like SSD's where lambda is placed relative to alpha).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

from torch import nn

from unlearning.data import Split
from unlearning.methods import METHODS, Cost, MethodConfig, run_method
from unlearning.methods.base import make_config, measured, task_of

Scorer = Callable[[nn.Module, Split], float]


def grid_fields(grid: dict[str, Any]) -> list[str]:
    """Every config field a grid sets (``"alpha,lam"`` names two)."""
    return [f.strip() for key in grid for f in key.split(",")]


def candidates(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """All combinations of a grid, in the order the grid lists them."""
    axes = []
    for key, values in grid.items():
        names = [f.strip() for f in key.split(",")]
        if len(names) == 1:
            axes.append([{names[0]: v} for v in values])
        else:
            axes.append([dict(zip(names, v)) for v in values])
    return [{k: v for part in combo for k, v in part.items()} for combo in itertools.product(*axes)]


def select_and_run(method: str, model: nn.Module, forget: Split, retain: Split, config: MethodConfig,
                   grid: dict[str, list[Any]], accuracy: Scorer, val: Split,
                   tolerance: float) -> tuple[nn.Module, Cost, dict[str, Any]]:
    """Run ``method`` for every grid candidate and keep the one the rule picks.

    Returns (model, summed cost with the chosen candidate's info, chosen overrides);
    with an empty grid it is one plain run.
    """
    if not isinstance(config, METHODS.config_class(method)):
        config = make_config(method, config)
    if not grid:
        return (*run_method(method, model, forget, retain, config), {})
    task = task_of(forget, retain)
    total = Cost()
    floor = accuracy(model, val) - tolerance  # a property of the cell, not charged to the method
    state = None
    prepare = METHODS.prepare(method)
    if prepare is not None:
        state, cost = measured(task, lambda: prepare(model, forget, retain, config))
        total = total + cost
    best: tuple[tuple[float, float], nn.Module, dict[str, Any], dict[str, Any]] | None = None
    for cand in candidates(grid):
        new, cost = run_method(method, model, forget, retain, dataclasses.replace(config, **cand), state=state)
        v = accuracy(new, val)
        f = accuracy(new, forget)
        total = total + Cost(cost.forward + len(val) + len(forget), cost.backward, cost.seconds)
        key = (0.0, f) if v >= floor else (1.0, -v)  # admissible first, then least S_f accuracy
        if best is None or key < best[0]:
            best = (key, new, cand, cost.info)
    assert best is not None
    total.info = dict(best[3])
    return best[1], total, best[2]
