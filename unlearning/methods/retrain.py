"""Exact unlearning baselines: ``retrain`` (D \\ S_f) and ``oracle`` (D \\ S_m).

Both re-initialise the model and train it with the task's original recipe on
the data they receive.  ``retrain`` is given the retain set D \\ S_f, so
unflagged manipulated samples stay in its training data (Goel et al. 2024,
sec. 3).  ``oracle`` is the same function; the benchmark calls it with
forget = S_m and retain = D \\ S_m, i.e. the true clean model, for reference.
"""

from __future__ import annotations

from torch import nn

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of


def _retrain(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    task = task_of(forget, retain)
    fresh = task.new_model(config.seed + 10_007)
    return task.fit(fresh, retain, seed=config.seed)


METHODS.register("retrain", config=MethodConfig)(_retrain)
METHODS.register("oracle", config=MethodConfig)(_retrain)
