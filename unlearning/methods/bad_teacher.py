"""``bad_teacher``: competent/incompetent teacher distillation (Chundawat et al. 2023, AAAI, sec. 3).

The student starts as the model.  On S_f it matches a randomly initialised
(incompetent) teacher; on a random ``retain_fraction`` of the retain set it
matches the original (competent) model; one epoch over both, KL at
``temperature``.  Reference: corrective-unlearning-bench ``src/methods.py`` (class
``BadT``: per-row mix of the two teachers' softmax by the in-forget flag).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from unlearning.data import Split, concat
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.loop import gradient_loop
from unlearning.methods.scrub import distill_kl


@dataclass(frozen=True)
class BadTeacherConfig(MethodConfig):
    retain_fraction: float = field(default=0.3, metadata={"help": "fraction of the retain set used"})
    temperature: float = field(default=4.0, metadata={"help": "distillation temperature"})


@METHODS.register("bad_teacher", config=BadTeacherConfig)
def bad_teacher(model: nn.Module, forget: Split, retain: Split, config: BadTeacherConfig) -> nn.Module:
    """One epoch of per-row KL to the incompetent teacher (S_f rows) or the competent one (retain rows)."""
    task = task_of(forget, retain)
    good = copy.deepcopy(model).eval()
    bad = task.random_model(config.seed + 30_011).eval()
    rng = np.random.default_rng(config.seed)
    n_ret = max(1, int(round(config.retain_fraction * len(retain))))
    sub = retain.take(np.sort(rng.choice(len(retain), size=min(n_ret, len(retain)), replace=False)))
    f = Split({**forget.tensors, "_forget": torch.ones(len(forget), dtype=torch.bool)}, forget.ids, task)
    r = Split({**sub.tensors, "_forget": torch.zeros(len(sub), dtype=torch.bool)}, sub.ids, task)
    data = concat(f, r)

    def loss(batch):
        b = task.to_device(batch)
        with torch.no_grad():
            rows_forget = b["_forget"][task.example_index(b)]
            t_logits = torch.where(rows_forget[:, None], task.logits(bad, b), task.logits(good, b))
        return distill_kl(task.logits(model, b), t_logits, config.temperature), len(b["_forget"])

    return gradient_loop(task, model, config, data.batches(config.batch_size, shuffle=True, seed=config.seed), loss)
