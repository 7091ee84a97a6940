"""``gradient_ascent``: maximise the loss on the forget set (Golatkar-style baseline; Jang et al. 2023).

Reference: open-unlearning's GradAscent trainer (``src/trainer/unlearn/grad_ascent.py``): the
loss is the negated forget cross-entropy; AdamW and the epoch budget here are the bench's.
"""

from __future__ import annotations

from torch import nn

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.loop import forget_steps, gradient_loop, rows


@METHODS.register("gradient_ascent", config=MethodConfig)
def gradient_ascent(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """``forget_epochs`` epochs of AdamW at ``lr`` on -CE(S_f batch)."""
    task = task_of(forget, retain)
    return gradient_loop(task, model, config, forget_steps(forget, None, config),
                         lambda item: (-task.loss(model, item[0]), rows(item[0])))
