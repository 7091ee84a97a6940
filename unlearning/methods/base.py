"""The method interface: ``method(model, forget, retain, config) -> model``.

``forget`` is the deletion set S_f and ``retain`` is D \\ S_f, both
:class:`~unlearning.data.Split` objects carrying the same ``task``.  A method
may modify ``model`` in place (the runner hands it a copy).  Forward/backward
passes are counted by the task's counter; :func:`run_method` adds wall time.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from afcu.registry import Registry
from unlearning.data import Split, Task

Method = Callable[[nn.Module, Split, Split, "MethodConfig"], nn.Module]
METHODS: Registry[Method] = Registry("unlearning method")


@dataclass(frozen=True)
class MethodConfig:
    """Hyper-parameters of every method (each reads its own fields).

    Defaults are the original papers' where one exists; the benchmark never tunes
    them toward a result (see unlearning/README.md for the selection rule).
    """

    seed: int = 0
    lr: float = field(default=1e-3, metadata={"help": "learning rate of gradient-based unlearning"})
    batch_size: int = field(default=64, metadata={"help": "mini-batch size of gradient-based unlearning"})
    epochs: int = field(default=5, metadata={"help": "epochs over the retain set (cf_k, eu_k, scrub)"})
    forget_epochs: int = field(default=5, metadata={"help": "epochs over S_f (gradient_ascent, grad_diff, npo)"})
    k: int = field(default=2, metadata={"help": "cf_k / eu_k: number of last blocks trained"})
    alpha: float = field(default=10.0, metadata={"help": "SSD selection weighting alpha (Foster et al. 2024)"})
    lam: float = field(default=1.0, metadata={"help": "SSD dampening constant lambda"})
    importance_batch_size: int = field(default=64, metadata={"help": "SSD: batch size of importance (it changes the values)"})
    assd_percentile: float = field(default=99.0, metadata={"help": "ASSD: alpha = this percentile of forget/reference importance"})
    retain_weight: float = field(default=1.0, metadata={"help": "grad_diff / npo: weight of the retain loss"})
    npo_beta: float = field(default=0.1, metadata={"help": "NPO inverse temperature beta (Zhang et al. 2024)"})
    scrub_max_epochs: int = field(default=2, metadata={"help": "SCRUB: epochs that begin with a max step on S_f"})
    scrub_kl_weight: float = field(default=1.0, metadata={"help": "SCRUB: weight of the KL term"})
    scrub_ce_weight: float = field(default=1.0, metadata={"help": "SCRUB: weight of the retain cross-entropy"})
    temperature: float = field(default=4.0, metadata={"help": "SCRUB / bad teacher: distillation temperature"})
    bad_teacher_retain_fraction: float = field(default=0.3, metadata={"help": "bad teacher: fraction of retain set used"})
    max_steps: int = field(default=0, metadata={"help": "if > 0, stop gradient-based methods after this many steps"})


@dataclass
class Cost:
    """Compute of one method call: sample-level forward and backward passes and wall seconds."""

    forward: int = 0
    backward: int = 0
    seconds: float = 0.0

    @property
    def passes(self) -> int:
        return self.forward + self.backward


def task_of(forget: Split, retain: Split) -> Task:
    task = forget.task or retain.task
    if task is None:
        raise ValueError("forget/retain splits carry no task; build them with a Task attached")
    return task


def run_method(name: str, model: nn.Module, forget: Split, retain: Split,
               config: MethodConfig) -> tuple[nn.Module, Cost]:
    """Run method ``name`` on a deep copy of ``model``; returns (new model, cost)."""
    task = task_of(forget, retain)
    fn = METHODS.get(name)
    f0, b0 = task.counter.forward, task.counter.backward
    start = time.perf_counter()
    out = fn(copy.deepcopy(model), forget, retain, config)
    out.eval()
    return out, Cost(task.counter.forward - f0, task.counter.backward - b0, time.perf_counter() - start)


def cycle(split: Split, batch_size: int, seed: int):
    """Endless seeded mini-batches of ``split`` (reshuffled each pass)."""
    epoch = 0
    while True:
        yield from split.batches(batch_size, shuffle=True, seed=seed * 7919 + epoch)
        epoch += 1
