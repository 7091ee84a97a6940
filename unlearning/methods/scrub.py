"""``scrub``: SCalable Remembering and Unlearning unBound (Kurmanji et al. 2023, sec. 3).

The teacher is the model before unlearning.  Max step (on S_f): maximise
KL(teacher || student), i.e. minimise -kl_weight * KL; only the KL term is
negated (the corrective-unlearning reference code negated a whole loss).
Min step (on the retain set): kl_weight * KL + ce_weight * CE.  The first
``scrub_max_epochs`` of ``epochs`` epochs start with a max pass over S_f.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.functional import cross_entropy, kl_div, log_softmax

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of


def distill_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(softmax(teacher/T) || softmax(student/T)) * T^2, mean over rows (Hinton et al. 2015)."""
    t = temperature
    return kl_div(log_softmax(student / t, -1), log_softmax(teacher / t, -1), log_target=True,
                  reduction="batchmean") * t * t


def scrub_max_loss(student: torch.Tensor, teacher: torch.Tensor, config: MethodConfig) -> torch.Tensor:
    """Max-step loss on S_f: the negated, weighted KL term only."""
    return -config.scrub_kl_weight * distill_kl(student, teacher, config.temperature)


def scrub_min_loss(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor,
                   config: MethodConfig) -> torch.Tensor:
    """Min-step loss on the retain set: kl_weight * KL + ce_weight * CE."""
    return (config.scrub_kl_weight * distill_kl(student, teacher, config.temperature)
            + config.scrub_ce_weight * cross_entropy(student, targets))


@METHODS.register("scrub")
def scrub(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """``epochs`` epochs; the first ``scrub_max_epochs`` begin with a max pass over S_f, each has a min pass."""
    task = task_of(forget, retain)
    teacher = copy.deepcopy(model).eval()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    step = 0
    for epoch in range(config.epochs):
        passes = [("max", forget)] if epoch < config.scrub_max_epochs else []
        passes.append(("min", retain))
        for kind, data in passes:
            for batch in data.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
                with torch.no_grad():
                    t_logits = task.logits(teacher, batch)
                s_logits = task.logits(model, batch)
                if kind == "max":
                    loss = scrub_max_loss(s_logits, t_logits, config)
                else:
                    loss = scrub_min_loss(s_logits, t_logits, task.targets(task.to_device(batch)), config)
                opt.zero_grad()
                task.backward(loss, len(next(iter(batch.values()))))
                opt.step()
                step += 1
                if config.max_steps and step >= config.max_steps:
                    return model
    return model
