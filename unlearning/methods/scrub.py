"""``scrub``: SCalable Remembering and Unlearning unBound (Kurmanji et al. 2023, sec. 3).

The teacher is the model before unlearning.  Max step (on S_f): maximise
KL(teacher || student), i.e. minimise -kl_weight * KL; only the KL term is
negated.  Min step (on the retain set): kl_weight * KL + ce_weight * CE.  The
first ``max_epochs`` of ``epochs`` epochs start with a max pass over S_f.
Reference: meghdadk/SCRUB ``thirdparty/repdistiller/helper/loops.py`` (``train_distill``:
``split == "maximize"`` uses the negated KL alone, ``"minimize"`` gamma * CE + alpha * KL).  corrective-unlearning-bench ``src/methods.py`` (class ``Scrub``)
negates the whole loss including CE in its max step; we follow the SCRUB authors.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.functional import cross_entropy, kl_div, log_softmax

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.loop import gradient_loop, rows


@dataclass(frozen=True)
class SCRUBConfig(MethodConfig):
    max_epochs: int = field(default=2, metadata={"help": "epochs that begin with a max step on S_f"})
    kl_weight: float = field(default=1.0, metadata={"help": "weight of the KL term"})
    ce_weight: float = field(default=1.0, metadata={"help": "weight of the retain cross-entropy"})
    temperature: float = field(default=4.0, metadata={"help": "distillation temperature"})


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, mean over rows (Hinton et al. 2015)."""
    t = temperature
    return kl_div(log_softmax(student / t, -1), log_softmax(teacher / t, -1), log_target=True,
                  reduction="batchmean") * t * t


def scrub_max_loss(student: torch.Tensor, teacher: torch.Tensor, config: SCRUBConfig) -> torch.Tensor:
    """Max-step loss on S_f: the negated, weighted KL term only."""
    return -config.kl_weight * distill_kl(student, teacher, config.temperature)


def scrub_min_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
                   config: SCRUBConfig) -> torch.Tensor:
    """Min-step loss on the retain set: kl_weight * KL + ce_weight * CE."""
    return (config.kl_weight * distill_kl(student, teacher, config.temperature)
            + config.ce_weight * cross_entropy(student, targets))


def _steps(forget: Split, retain: Split, config: SCRUBConfig):
    for epoch in range(config.epochs):
        passes = [("max", forget)] if epoch < config.max_epochs else []
        for kind, data in passes + [("min", retain)]:
            for batch in data.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
                yield kind, batch


@METHODS.register("scrub", config=SCRUBConfig)
def scrub(model: nn.Module, forget: Split, retain: Split, config: SCRUBConfig) -> nn.Module:
    """``epochs`` epochs; the first ``max_epochs`` begin with a max pass over S_f, each has a min pass."""
    task = task_of(forget, retain)
    teacher = copy.deepcopy(model).eval()

    def loss(item):
        kind, batch = item
        with torch.no_grad():
            t_logits = task.logits(teacher, batch)
        s_logits = task.logits(model, batch)
        if kind == "max":
            return scrub_max_loss(s_logits, t_logits, config), rows(batch)
        return scrub_min_loss(s_logits, t_logits, task.targets(task.to_device(batch)), config), rows(batch)

    return gradient_loop(task, model, config, _steps(forget, retain, config), loss)
