"""The hyper-parameter selection rule: it sees only S_f and clean held-out data.

For a method with a grid (``BenchConfig.grids``), every candidate repairs a copy of
the model; a candidate is admissible when its accuracy on the clean held-out
validation split is at least the original model's minus ``tolerance``; among
admissible candidates the one with the lowest accuracy on S_f *with the flagged
(manipulated) labels* wins (the most forgetting of what was flagged); ties keep
grid order; if none is admissible the one with the best validation accuracy wins.
Neither unflagged S_m nor any test set is used.

Cost, counted honestly (every pass is counted by the task's counter where it runs):
a method's ``prepare`` part (SSD's importances, which do not depend on alpha or
lambda) runs once per cell; then each candidate's own work; then only the evaluations
the rule needs, one forward pass per validation or S_f sample evaluated.  The
candidates are walked in grid order and the evaluations are skipped only where they
cannot change the choice, so the chosen candidate and model are exactly those of
evaluating every candidate on both splits (tested):

- a candidate whose weights and buffers are bit-identical to an earlier one's (e.g.
  SSD's (alpha=1, lambda=10) and (10, 10) dampen the same weights by the same factor) or
  to the original model's (nothing dampened, or every factor clamped to 1) reuses that
  model's accuracies: the original's validation accuracy is the floor's (computed once
  per method per cell, charged to none), its S_f accuracy is computed once per method
  per cell (each ``select_and_run`` call has its own ``Scores``) when first needed and
  charged then;
- once an admissible candidate is held, a later one is scored on S_f first and on the
  validation split only if its S_f accuracy is lower (otherwise it cannot win); while
  none is, a candidate below the floor is not scored on S_f (its key is its validation
  accuracy alone);
- an admissible candidate with S_f accuracy 0 cannot be beaten (ties keep grid order):
  the remaining candidates are not run at all.

The ``Scorer`` must return accuracies in [0, 1]: the early stop at S_f accuracy 0
relies on no candidate scoring below 0.  A NaN validation accuracy is never admissible
(``not v >= floor``), as in the exhaustive rule.

The worst case is the exhaustive cost: prepare + every candidate's work + one pass per
validation and S_f sample per candidate.

Grid syntax: ``{field: [values]}`` is a product over fields; a key naming several
fields joined by commas takes a list of tuples, e.g. ``{"alpha,lam": [[1, 0.1], [1, 1]]}``
(pairs, for grids like SSD's where lambda is placed relative to alpha).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Any, Callable

import torch
from torch import nn

from afcu.config import config_from_dict

from unlearning.data import Split, Task
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


def digest(model: nn.Module) -> bytes:
    """A hash of every weight and buffer, bit for bit (names, dtypes and shapes included).

    Parameters and ``named_buffers()`` rather than ``state_dict()``: the latter omits
    non-persistent buffers, and two models differing only there must not share an evaluation.
    """
    h = hashlib.blake2b(digest_size=32)
    tensors = [("param:" + n, t) for n, t in model.named_parameters()]
    tensors += [("buffer:" + n, t) for n, t in model.named_buffers()]
    for name, t in tensors:
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy())  # hashed in place, no copy
    return h.digest()


class Scores:
    """Accuracy per (distinct model, split), each computed at most once and counted when it runs."""

    def __init__(self, task: Task, accuracy: Scorer, splits: dict[str, Split]) -> None:
        self.task, self.accuracy, self.splits = task, accuracy, splits
        self.known: dict[tuple[bytes, str], float] = {}

    def get(self, key: bytes, model: nn.Module, split: str) -> float:
        if (key, split) not in self.known:
            data = self.splits[split]
            self.task.counter.forward += len(data)  # one evaluation forward pass per sample, charged here
            self.known[(key, split)] = self.accuracy(model, data)
        return self.known[(key, split)]


def grid_config(config: MethodConfig, cand: dict[str, Any], source: str = "grid") -> MethodConfig:
    """``config`` with a candidate's values, each read as its field's type (YAML reads ``1e-3`` as a string)."""
    return config_from_dict(type(config), {**dataclasses.asdict(config), **cand}, source)


def select_and_run(method: str, model: nn.Module, forget: Split, retain: Split, config: MethodConfig,
                   grid: dict[str, list[Any]], accuracy: Scorer, val: Split,
                   tolerance: float) -> tuple[nn.Module, Cost, dict[str, Any]]:
    """Run ``method`` over its grid candidates and keep the one the rule picks (see the module doc).

    Returns (model, cost of everything run, with the chosen candidate's info, chosen overrides);
    with an empty grid it is one plain run.
    """
    if not isinstance(config, METHODS.config_class(method)):
        config = make_config(method, config)
    if not grid:
        return (*run_method(method, model, forget, retain, config), {})
    task = task_of(forget, retain)
    v0 = accuracy(model, val)  # a property of the cell, the same for every method: charged to none
    floor = v0 - tolerance
    scores = Scores(task, accuracy, {"val": val, "forget": forget})
    scores.known[(digest(model), "val")] = v0
    prepare = METHODS.prepare(method)

    def search() -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        state = prepare(model, forget, retain, config) if prepare is not None else None
        best: tuple[tuple[float, float], nn.Module, dict[str, Any], dict[str, Any]] | None = None
        for cand in candidates(grid):
            new, cost = run_method(method, model, forget, retain, grid_config(config, cand), state=state)
            key = digest(new)
            if best is not None and best[0][0] == 0.0:  # an admissible one is held: only a lower S_f accuracy wins
                f = scores.get(key, new, "forget")
                # ``not v >= floor``, the exhaustive rule's test, also refuses a NaN validation accuracy
                if not f < best[0][1] or not scores.get(key, new, "val") >= floor:
                    continue
                rank = (0.0, f)
            else:
                v = scores.get(key, new, "val")
                rank = (0.0, scores.get(key, new, "forget")) if v >= floor else (1.0, -v)
            if best is None or rank < best[0]:
                best = (rank, new, cand, cost.info)
            if best[0] == (0.0, 0.0):  # admissible with S_f accuracy 0: ties keep grid order, nothing beats it
                break
        assert best is not None
        return best[1], best[2], best[3]

    (chosen_model, chosen, info), total = measured(task, search)
    total.info = dict(info)
    return chosen_model, total, chosen
