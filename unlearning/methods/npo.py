"""``npo``: Negative Preference Optimization (Zhang et al. 2024, eq. 3) with a retain term.

L = -(2 / beta) * mean log sigmoid(-beta * (log pi(y|x) - log pi_ref(y|x))) on S_f
    + retain_weight * CE(retain), with pi_ref the model before unlearning.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.functional import logsigmoid

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, cycle, task_of


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO forget loss for (B,) sequence log-likelihoods under the model and the reference."""
    return -(2.0 / beta) * logsigmoid(-beta * (logp - logp_ref)).mean()


@METHODS.register("npo")
def npo(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """``forget_epochs`` epochs of NPO on S_f (beta = ``npo_beta``) plus ``retain_weight`` * retain CE."""
    task = task_of(forget, retain)
    ref = copy.deepcopy(model).eval()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    retain_batches = cycle(retain, config.batch_size, config.seed)
    step = 0
    for epoch in range(config.forget_epochs):
        for fb in forget.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
            with torch.no_grad():
                logp_ref = task.logprob(ref, fb)
            loss = npo_loss(task.logprob(model, fb), logp_ref, config.npo_beta)
            n = len(next(iter(fb.values())))
            if config.retain_weight:
                rb = next(retain_batches)
                loss = loss + config.retain_weight * task.loss(model, rb)
                n += len(next(iter(rb.values())))
            opt.zero_grad()
            task.backward(loss, n)
            opt.step()
            step += 1
            if config.max_steps and step >= config.max_steps:
                return model
    return model
