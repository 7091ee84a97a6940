"""``cf_k`` and ``eu_k`` (Goel et al. 2023, "Towards adversarial evaluations for inexact machine unlearning").

cf_k (catastrophic forgetting of the last k blocks): freeze all but the last k
blocks and fine-tune them on the retain set.  eu_k (exact unlearning of the last
k blocks): re-initialise the last k blocks, then train them on the retain set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from unlearning.data import Split, Task
from unlearning.methods.base import METHODS, MethodConfig, task_of


@dataclass(frozen=True)
class LastKConfig(MethodConfig):
    k: int = field(default=2, metadata={"help": "number of last blocks trained (re-initialised for eu_k)"})


def last_k_params(task: Task, model: nn.Module, k: int) -> list[nn.Parameter]:
    """Parameters of the last ``k`` blocks; everything else gets ``requires_grad=False``."""
    blocks = task.layers(model)
    keep = {id(p) for b in blocks[-k:] for p in b.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if id(p) in keep]


def _train_last_k(task: Task, model: nn.Module, retain: Split, config: LastKConfig) -> nn.Module:
    params = last_k_params(task, model, config.k)
    model = task.fit(model, retain, seed=config.seed, params=params, epochs=config.epochs)
    for p in model.parameters():
        p.requires_grad_(True)
    return model


@METHODS.register("cf_k", config=LastKConfig)
def cf_k(model: nn.Module, forget: Split, retain: Split, config: LastKConfig) -> nn.Module:
    """Fine-tune only the last ``k`` blocks on the retain set for ``epochs`` epochs."""
    return _train_last_k(task_of(forget, retain), model, retain, config)


@METHODS.register("eu_k", config=LastKConfig)
def eu_k(model: nn.Module, forget: Split, retain: Split, config: LastKConfig) -> nn.Module:
    """Re-initialise the last ``k`` blocks (fresh init, seeded) and train them on the retain set."""
    task = task_of(forget, retain)
    fresh = task.random_model(config.seed + 20_011)
    with torch.no_grad():
        for old, new in zip(task.layers(model)[-config.k:], task.layers(fresh)[-config.k:]):
            for p_old, p_new in zip(old.parameters(), new.parameters()):
                p_old.copy_(p_new)
    del fresh
    return _train_last_k(task, model, retain, config)
