"""``grad_diff``: ascend the forget loss while descending the retain loss (Liu et al. 2022; Maini et al. 2024, TOFU)."""

from __future__ import annotations

import torch
from torch import nn

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, cycle, task_of


@METHODS.register("grad_diff")
def grad_diff(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """Loss per step: -CE(S_f batch) + ``retain_weight`` * CE(retain batch); ``forget_epochs`` over S_f."""
    task = task_of(forget, retain)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    retain_batches = cycle(retain, config.batch_size, config.seed)
    step = 0
    for epoch in range(config.forget_epochs):
        for fb in forget.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
            rb = next(retain_batches)
            opt.zero_grad()
            loss = -task.loss(model, fb) + config.retain_weight * task.loss(model, rb)
            task.backward(loss, len(next(iter(fb.values()))) + len(next(iter(rb.values()))))
            opt.step()
            step += 1
            if config.max_steps and step >= config.max_steps:
                return model
    return model
