"""Selective Synaptic Dampening and its variants (ssd, lfssd, assd).

Foster et al. (2024), "Fast Machine Unlearning Without Retraining Through
Selective Synaptic Dampening", sec. 3: importance []_D and []_Df are the
diagonal Fisher estimates (mean squared gradient of the loss) on the full
training data D and on the forget set S_f.  Parameters with
[]_Df > alpha * []_D are multiplied by beta = min(lambda * []_D / []_Df, 1);
all others are untouched, so no weight's magnitude ever grows.

The estimate averages squared gradients of *mini-batch mean* losses, so it
depends on the batch size (a larger batch averages more per-sample gradients
before squaring, which shrinks the estimate); D and S_f use the same
``importance_batch_size`` so the ratio is comparable.

LFSSD (Foster et al. 2024, "Loss-Free Machine Unlearning") replaces the loss by
the l2 norm of the model output, so no labels are needed.  ASSD (Schoepf et al.
2024, "Parameter-tuning-free data entry error unlearning with adaptive selective
synaptic dampening") sets alpha to a percentile of the ratio []_Df / []_D.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from unlearning.data import Split, Task, concat
from unlearning.methods.base import METHODS, MethodConfig, task_of

Importance = dict[str, torch.Tensor]


def _objective(task: Task, model: nn.Module, batch: dict, label_free: bool) -> torch.Tensor:
    if label_free:
        # LFSSD: sensitivity of the output's l2 norm (mean over supervised rows).
        return task.logits(model, batch).norm(p=2, dim=-1).mean()
    return task.loss(model, batch)


def importance(model: nn.Module, data: Split, batch_size: int, label_free: bool = False) -> Importance:
    """Mean over mini-batches of the squared gradient, per parameter (same shapes as the parameters).

    Under ``torch.distributed`` (torchrun / accelerate launch, any backend) batch i goes to
    rank ``i % world_size`` and the sums are all-reduced, so the result equals a
    one-process run up to float summation order.
    """
    task = data.task
    assert task is not None, "importance needs a Split with a task"
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    n_batches = 0
    model.eval()  # dropout/batch-norm statistics must not move while measuring
    for i, batch in enumerate(data.batches(batch_size)):
        n_batches += 1
        if i % world != rank:
            continue
        model.zero_grad(set_to_none=True)
        task.backward(_objective(task, model, batch, label_free), len(next(iter(batch.values()))))
        for n, p in params.items():
            if p.grad is not None:
                acc[n] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    if world > 1:
        for t in acc.values():
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {n: t / max(n_batches, 1) for n, t in acc.items()}


def ssd_importances(model: nn.Module, forget: Split, retain: Split, config: MethodConfig,
                    label_free: bool = False) -> tuple[Importance, Importance]:
    """(reference importance on D = S_f + retain, forget importance on S_f), as in Foster et al. sec. 3.

    The reference uses the *full* training data, not the retain set (a known bug
    in the corrective-unlearning reference code).
    """
    full = concat(forget, retain)
    ref = importance(model, full, config.importance_batch_size, label_free)
    fgt = importance(model, forget, config.importance_batch_size, label_free)
    return ref, fgt


@torch.no_grad()
def dampen(model: nn.Module, ref: Importance, fgt: Importance, alpha: float, lam: float) -> int:
    """Apply SSD in place; returns the number of parameters dampened.

    Selected: fgt > alpha * ref.  Factor: min(lam * ref / fgt, 1) (never above 1).
    """
    n_sel = 0
    for n, p in model.named_parameters():
        if n not in ref:
            continue
        sel = fgt[n] > alpha * ref[n]
        beta = torch.clamp(lam * ref[n] / fgt[n].clamp_min(torch.finfo(fgt[n].dtype).tiny), max=1.0)
        p[sel] = p[sel] * beta[sel]
        n_sel += int(sel.sum())
    return n_sel


def ratio_percentile(ref: Importance, fgt: Importance, q: float) -> float:
    """The q-th percentile of fgt / ref over parameters with ref > 0 (ASSD's alpha)."""
    ratios = torch.cat([(fgt[n][ref[n] > 0] / ref[n][ref[n] > 0]).flatten() for n in ref])
    if ratios.numel() == 0:
        return float("inf")
    # torch.quantile is limited to 16M elements; a sort-based percentile has no limit.
    srt = ratios.float().sort().values
    return float(srt[min(len(srt) - 1, int(round(q / 100.0 * (len(srt) - 1))))])


@METHODS.register("ssd")
def ssd(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """SSD with selection weighting ``config.alpha`` and dampening constant ``config.lam``."""
    task_of(forget, retain)
    ref, fgt = ssd_importances(model, forget, retain, config)
    dampen(model, ref, fgt, config.alpha, config.lam)
    return model


@METHODS.register("lfssd")
def lfssd(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """Label-free SSD: importance of the output l2 norm instead of the loss."""
    task_of(forget, retain)
    ref, fgt = ssd_importances(model, forget, retain, config, label_free=True)
    dampen(model, ref, fgt, config.alpha, config.lam)
    return model


@METHODS.register("assd")
def assd(model: nn.Module, forget: Split, retain: Split, config: MethodConfig) -> nn.Module:
    """Adaptive SSD: alpha = ``assd_percentile``-th percentile of the importance ratio, lambda = ``lam``."""
    task_of(forget, retain)
    ref, fgt = ssd_importances(model, forget, retain, config)
    dampen(model, ref, fgt, ratio_percentile(ref, fgt, config.assd_percentile), config.lam)
    return model
