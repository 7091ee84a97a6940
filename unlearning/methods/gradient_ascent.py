"""``gradient_ascent``: maximise the loss on the forget set (Golatkar-style baseline; Jang et al. 2023)."""

from __future__ import annotations

import torch
from torch import nn

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of


@METHODS.register("gradient_ascent")
def gradient_ascent(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """``forget_epochs`` epochs of SGD on -CE(S_f) with AdamW at ``lr`` (optionally capped by ``max_steps``)."""
    task = task_of(forget, retain)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    step = 0
    for epoch in range(config.forget_epochs):
        for batch in forget.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
            opt.zero_grad()
            task.backward(-task.loss(model, batch), len(next(iter(batch.values()))))
            opt.step()
            step += 1
            if config.max_steps and step >= config.max_steps:
                return model
    return model
