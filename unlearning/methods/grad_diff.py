"""``grad_diff``: ascend the forget loss while descending the retain loss (Liu et al. 2022; Maini et al. 2024, TOFU).

Reference: open-unlearning's GradDiff trainer (``src/trainer/unlearn/grad_diff.py``): loss =
gamma * (-forget NLL) + alpha * retain NLL; here gamma = 1 and alpha = ``retain_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.loop import forget_steps, gradient_loop, rows


@dataclass(frozen=True)
class GradDiffConfig(MethodConfig):
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain cross-entropy"})


@METHODS.register("grad_diff", config=GradDiffConfig)
def grad_diff(model: nn.Module, forget: Split, retain: Split, config: GradDiffConfig) -> nn.Module:
    """Loss per step: -CE(S_f batch) + ``retain_weight`` * CE(retain batch); ``forget_epochs`` over S_f."""
    task = task_of(forget, retain)

    def loss(item):
        fb, rb = item
        return -task.loss(model, fb) + config.retain_weight * task.loss(model, rb), rows(fb) + rows(rb)

    return gradient_loop(task, model, config, forget_steps(forget, retain, config), loss)
