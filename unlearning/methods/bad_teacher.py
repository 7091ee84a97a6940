"""``bad_teacher``: competent/incompetent teacher distillation (Chundawat et al. 2023, AAAI, sec. 3).

The student starts as the model.  On S_f it matches a randomly initialised
(incompetent) teacher; on a random ``bad_teacher_retain_fraction`` of the
retain set it matches the original (competent) model; one epoch over both,
KL at temperature ``temperature``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from unlearning.data import Split, concat
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.scrub import distill_kl


@METHODS.register("bad_teacher")
def bad_teacher(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """One epoch of per-row KL to the incompetent teacher (S_f rows) or the competent one (retain rows)."""
    task = task_of(forget, retain)
    good = copy.deepcopy(model).eval()
    bad = task.random_model(config.seed + 30_011).eval()
    rng = np.random.default_rng(config.seed)
    n_ret = max(1, int(round(config.bad_teacher_retain_fraction * len(retain))))
    sub = retain.take(np.sort(rng.choice(len(retain), size=min(n_ret, len(retain)), replace=False)))
    f = Split({**forget.tensors, "_forget": torch.ones(len(forget), dtype=torch.bool)}, forget.ids, task)
    r = Split({**sub.tensors, "_forget": torch.zeros(len(sub), dtype=torch.bool)}, sub.ids, task)
    data = concat(f, r)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    for step, batch in enumerate(data.batches(config.batch_size, shuffle=True, seed=config.seed)):
        b = task.to_device(batch)
        with torch.no_grad():
            rows_forget = b["_forget"][task.example_index(b)]
            t_logits = torch.where(rows_forget[:, None], task.logits(bad, b), task.logits(good, b))
        loss = distill_kl(task.logits(model, b), t_logits, config.temperature)
        opt.zero_grad()
        task.backward(loss, len(b["_forget"]))
        opt.step()
        if config.max_steps and step + 1 >= config.max_steps:
            break
    return model
