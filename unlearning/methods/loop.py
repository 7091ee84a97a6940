"""The one optimisation loop every gradient method shares; a method supplies its steps and its loss.

A gradient method is a stream of step inputs (``forget_steps`` pairs each S_f
batch with a retain batch; SCRUB tags max and min passes) and a loss
``loss(item) -> (scalar, n_samples)``.  The loop owns the optimiser (AdamW at
``config.lr`` over the parameters that require grad), the counted backward
pass and the ``max_steps`` cap, so no method repeats them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from unlearning.data import Split, Task, batch_size
from unlearning.methods.base import MethodConfig, cycle

Loss = Callable[[Any], tuple[torch.Tensor, int]]


def gradient_loop(task: Task, model: nn.Module, config: MethodConfig, steps: Iterable[Any], loss: Loss) -> nn.Module:
    """One AdamW step per item of ``steps`` on ``loss(item)``; stops early at ``config.max_steps``."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
    for step, item in enumerate(steps):
        value, n = loss(item)
        opt.zero_grad()
        task.backward(value, n)
        opt.step()
        if config.max_steps and step + 1 >= config.max_steps:
            break
    return model


def forget_steps(forget: Split, retain: Split | None, config: MethodConfig) -> Iterator[tuple[dict, dict | None]]:
    """``forget_epochs`` seeded passes over S_f; each batch paired with the next retain batch (or None)."""
    retain_batches = cycle(retain, config.batch_size, config.seed) if retain is not None else None
    for epoch in range(config.forget_epochs):
        for fb in forget.batches(config.batch_size, shuffle=True, seed=config.seed * 131 + epoch):
            yield fb, (next(retain_batches) if retain_batches is not None else None)


def rows(batch: dict | None) -> int:
    return 0 if batch is None else batch_size(batch)
