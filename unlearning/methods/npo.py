"""``npo``: Negative Preference Optimization (Zhang et al. 2024, eq. 3) with a retain term.

L = -(2 / beta) * mean log sigmoid(-beta * (log pi(y|x) - log pi_ref(y|x))) on S_f
    + retain_weight * CE(retain), with pi_ref the model before unlearning.
Reference: open-unlearning's NPO trainer (``src/trainer/unlearn/npo.py``): the same forget
term against the frozen reference model, plus a weighted retain NLL term.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.functional import logsigmoid

from unlearning.data import Split
from unlearning.methods.base import METHODS, MethodConfig, task_of
from unlearning.methods.loop import forget_steps, gradient_loop, rows


@dataclass(frozen=True)
class NPOConfig(MethodConfig):
    beta: float = field(default=0.1, metadata={"help": "NPO inverse temperature beta (Zhang et al. 2024)"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain cross-entropy (0: none)"})


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO forget loss for (B,) sequence log-likelihoods under the model and the reference."""
    return -(2.0 / beta) * logsigmoid(-beta * (logp - logp_ref)).mean()


@METHODS.register("npo", config=NPOConfig)
def npo(model: nn.Module, forget: Split, retain: Split, config: NPOConfig) -> nn.Module:
    """``forget_epochs`` epochs of NPO on S_f (``beta``) plus ``retain_weight`` * retain CE."""
    task = task_of(forget, retain)
    ref = copy.deepcopy(model).eval()

    def loss(item):
        fb, rb = item
        with torch.no_grad():
            logp_ref = task.logprob(ref, fb)
        value = npo_loss(task.logprob(model, fb), logp_ref, config.beta)
        if rb is None:
            return value, rows(fb)
        return value + config.retain_weight * task.loss(model, rb), rows(fb) + rows(rb)

    return gradient_loop(task, model, config, forget_steps(forget, retain if config.retain_weight else None, config),
                         loss)
