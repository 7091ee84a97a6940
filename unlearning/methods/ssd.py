"""Selective Synaptic Dampening and its variants (ssd, lfssd, assd).

Foster et al. (2024), "Fast Machine Unlearning Without Retraining Through Selective
Synaptic Dampening", sec. 3; reference code if-loops/selective-synaptic-dampening
``ssd.py`` (``ParameterPerturber.calc_importance`` / ``modify_weight``).  Importance
[]_D and []_Df: the mean over mini-batches of the squared gradient of the mini-batch
loss, on a reference set and on S_f.  Parameters with []_Df > alpha * []_D are
multiplied by min(lambda * []_D / []_Df, 1); all others are untouched, so no weight grows.

The reference set (``reference``), both legitimate, with their sources:

- ``full`` (default): the *shuffled* union S_f + retain = D.  Foster et al. define
  []_D on the full training data; their ``src/forget_random_main.py`` builds it as
  ``ConcatDataset((retain, forget))`` with the forget part last and no shuffling.  We
  shuffle because order matters once batches are squared: with S_f's rows packed into
  their own batches, []_D >= (forget batches / all batches) x []_Df for every
  parameter, which caps the ratio at n_batches / n_forget_batches (8 at the LLM
  ``--quick`` shapes, below alpha = 10, so nothing could be selected).
- ``retain``: the shuffled retain set D \\ S_f, as corrective-unlearning-bench does
  (``src/methods.py`` class ``SSD`` passes the retain ``train_loader``, shuffled, as
  ``full_train_dl`` to ``ssd_tuning`` in ``src/utils.py``); the corrective-unlearning
  paper's SSD numbers come from this choice.

The estimate depends on the batch size (larger batches average per-sample gradients
before squaring); both importances use ``importance_batch_size``.  The importances do
not depend on (alpha, lambda): :func:`ssd_prepare` computes them once per cell and the
selection rule (``selection.py``) dampens a copy per grid candidate.  A cell's counted cost is
that importance (one forward and one backward pass per row of the reference set and of S_f) plus
the evaluation passes the rule runs: at most one per validation and S_f row per candidate, fewer
where candidates give bit-identical models (e.g. (alpha, lambda) = (1, 10) and (10, 10)) or cannot
change the choice (``selection.py`` lists the cases).

LFSSD (Foster et al. 2024, "Loss-Free Machine Unlearning"): the objective is the squared
l2 norm of the model output, mean over rows, and the importance accumulates |gradient|
instead of its square (if-loops/adaptive-selective-synaptic-dampening
``error_unlearning.ipynb``, ``ParameterPerturber.calc_importance`` with ``label_free``).
ASSD (Schoepf et al. 2024, "Parameter-tuning-free data entry error unlearning with
adaptive selective synaptic dampening"), same notebook, ``assd_tuning``: alpha = the
p-th percentile of []_Df / []_D over all parameters, p = 100 - ln(1 + 100 |S_f| / |D|),
lambda = 1.

Distributed: see :func:`importance`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from afcu.errors import AfcuError
from unlearning.data import Split, Task, concat
from unlearning.methods.base import METHODS, MethodConfig, task_of

Importance = dict[str, torch.Tensor]
REFERENCES = ("full", "retain")


@dataclass(frozen=True)
class SSDConfig(MethodConfig):
    """ssd and lfssd."""

    alpha: float = field(default=10.0, metadata={"help": "selection weighting alpha (Foster et al. 2024)"})
    lam: float = field(default=1.0, metadata={"help": "dampening constant lambda"})
    importance_batch_size: int = field(default=64, metadata={"help": "batch size of importance (it changes the values)"})
    reference: str = field(default="full", metadata={"help": "reference importance on: full (shuffled D) or retain"})

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise AfcuError(f"method_args: reference={self.reference!r}; give one of {', '.join(REFERENCES)}")


@dataclass(frozen=True)
class ASSDConfig(MethodConfig):
    """assd: alpha from the S_f share of D, lambda = 1 (the reference's constant)."""

    lam: float = field(default=1.0, metadata={"help": "dampening constant lambda (1 in the reference)"})
    importance_batch_size: int = field(default=64, metadata={"help": "batch size of importance"})
    reference: str = field(default="full", metadata={"help": "reference importance on: full (shuffled D) or retain"})

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise AfcuError(f"method_args: reference={self.reference!r}; give one of {', '.join(REFERENCES)}")


@dataclass
class SSDState:
    """The two importances of one cell and the sizes ASSD's percentile needs."""

    ref: Importance
    fgt: Importance
    n_forget: int
    n_full: int


def _objective(task: Task, model: nn.Module, batch: dict, label_free: bool) -> torch.Tensor:
    if label_free:  # LFSSD: squared l2 norm of the output per row, mean over rows
        return task.logits(model, batch).pow(2).sum(-1).mean()
    return task.loss(model, batch)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def importance(model: nn.Module, data: Split, batch_size: int, label_free: bool = False,
               shuffle_seed: int | None = None, shard_batches: bool = False) -> Importance:
    """Mean over mini-batches of g^2 (|g| when ``label_free``), per parameter.

    ``shuffle_seed`` shuffles the rows first (seeded), so no batch holds only one part of a union.
    ``shard_batches`` (a plain, replicated model on every rank of a process group): batch i goes
    to rank ``i % world_size`` and the sums are all-reduced, so the result equals one process up
    to float summation order.  Without it each rank computes alone (the bench splits *cells*
    across ranks).  A model wrapped in DDP/FSDP goes to :func:`global_batch_importance`.
    """
    if is_wrapped(model):
        return global_batch_importance(model, data, batch_size, label_free, shuffle_seed)
    task = data.task
    assert task is not None, "importance needs a Split with a task"
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    rank, world = _world() if shard_batches else (0, 1)
    n_batches = 0
    model.eval()  # dropout/batch-norm statistics must not move while measuring
    shuffle = shuffle_seed is not None
    for i, batch in enumerate(data.batches(batch_size, shuffle=shuffle, seed=shuffle_seed or 0)):
        n_batches += 1
        if i % world != rank:
            continue
        model.zero_grad(set_to_none=True)
        task.backward(_objective(task, model, batch, label_free), len(next(iter(batch.values()))))
        for n, p in params.items():
            if p.grad is not None:
                acc[n] += p.grad.detach().abs() if label_free else p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    if world > 1:
        for t in acc.values():
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return {n: t / max(n_batches, 1) for n, t in acc.items()}


def is_wrapped(model: nn.Module) -> bool:
    """True for a model under DDP or FSDP (FSDP2 ``fully_shard`` or FSDP1), whose gradients the wrapper reduces."""
    from torch.nn.parallel import DistributedDataParallel

    try:
        from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel
    except ImportError:  # pragma: no cover - builds without distributed support
        return isinstance(model, DistributedDataParallel)
    return isinstance(model, (DistributedDataParallel, FSDPModule, FullyShardedDataParallel))


def _objective_sum(task: Task, model: nn.Module, batch: dict, label_free: bool) -> torch.Tensor:
    logits = task.logits(model, batch)
    if label_free:
        return logits.pow(2).sum()
    return nn.functional.cross_entropy(logits, task.targets(task.to_device(batch)), reduction="sum")


def global_batch_importance(model: nn.Module, data: Split, batch_size: int, label_free: bool = False,
                            shuffle_seed: int | None = None) -> Importance:
    """Importance of a DDP/FSDP model with one cell on all ranks: equals one process with batch ``batch_size x N``.

    Global mini-batch k is rows [k B N, (k+1) B N) of the (optionally shuffled) data; rank r
    takes its r-th block of B rows.  Each rank backpropagates N x (its summed loss) / (the global
    batch's supervised-row count), so the wrapper's cross-rank gradient average is exactly the
    gradient of the global mini-batch's mean loss.  That gradient is squared (|g| for LFSSD) on
    each rank's shard (FSDP) or replica (DDP) and summed over steps, then divided by the number
    of global batches.  Under FSDP the result stays sharded like the parameters (DTensor;
    ``.full_tensor()`` gathers it).  A rank without rows in the last batch runs a zero-weighted
    row so that the collectives stay matched.
    """
    task = data.task
    assert task is not None, "importance needs a Split with a task"
    rank, world = _world()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    # the same row order as Split.batches(shuffle=True, seed=shuffle_seed) in one process
    order = (np.random.default_rng(shuffle_seed).permutation(len(data)) if shuffle_seed is not None
             else np.arange(len(data)))
    model.eval()
    n_batches = 0
    for start in range(0, len(data), batch_size * world):
        block = order[start:start + batch_size * world]
        local = block[rank * batch_size:(rank + 1) * batch_size]
        weight = 1.0 if len(local) else 0.0
        batch = next(data.take(local if len(local) else block[:1]).batches(batch_size))
        count = torch.tensor([float(len(task.targets(task.to_device(batch)))) * weight], device=task.device)
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        model.zero_grad(set_to_none=True)
        loss = _objective_sum(task, model, batch, label_free) * (weight * world / count.clamp_min(1.0))
        task.backward(loss, len(local))
        for n, p in params.items():
            if p.grad is not None:
                acc[n] += p.grad.detach().abs() if label_free else p.grad.detach() ** 2
        n_batches += 1
    model.zero_grad(set_to_none=True)
    return {n: t / max(n_batches, 1) for n, t in acc.items()}


def reference_split(forget: Split, retain: Split, reference: str) -> Split:
    return concat(forget, retain) if reference == "full" else retain


def ssd_state(model: nn.Module, forget: Split, retain: Split, config: SSDConfig | ASSDConfig,
              label_free: bool = False) -> SSDState:
    """Both importances, reference set per ``config.reference``, both shuffled with ``config.seed``."""
    ref_data = reference_split(forget, retain, config.reference)
    ref = importance(model, ref_data, config.importance_batch_size, label_free, shuffle_seed=config.seed)
    fgt = importance(model, forget, config.importance_batch_size, label_free, shuffle_seed=config.seed)
    return SSDState(ref, fgt, len(forget), len(forget) + len(retain))


@torch.no_grad()
def dampen(model: nn.Module, ref: Importance, fgt: Importance, alpha: float, lam: float) -> dict[str, float]:
    """Apply SSD in place; returns ``n_dampened`` and ``frac_dampened`` (of the parameters with an importance).

    Selected: fgt > alpha * ref.  Factor: min(lam * ref / fgt, 1) (never above 1).
    """
    n_sel = n_all = 0
    for n, p in model.named_parameters():
        if n not in ref:
            continue
        sel = fgt[n] > alpha * ref[n]
        beta = torch.clamp(lam * ref[n] / fgt[n].clamp_min(torch.finfo(fgt[n].dtype).tiny), max=1.0)
        p[sel] = p[sel] * beta[sel]
        n_sel += int(sel.sum())
        n_all += p.numel()
    return {"n_dampened": n_sel, "frac_dampened": n_sel / max(n_all, 1)}


def ratio_percentile(ref: Importance, fgt: Importance, q: float) -> float:
    """The q-th percentile of fgt / ref over parameters with a finite ratio (ASSD's alpha)."""
    ratios = torch.cat([(fgt[n][ref[n] > 0] / ref[n][ref[n] > 0]).flatten() for n in ref])
    if ratios.numel() == 0:
        return float("inf")
    # torch.quantile is limited to 16M elements; a sort-based percentile (linear interpolation) has no limit.
    srt = ratios.double().sort().values
    pos = q / 100.0 * (len(srt) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(srt) - 1)
    return float(srt[lo] + (srt[hi] - srt[lo]) * (pos - lo))


def assd_percentile(n_forget: int, n_full: int) -> float:
    """ASSD's percentile: 100 - ln(1 + 100 * |S_f| / |D|)."""
    return 100.0 - math.log(1.0 + 100.0 * n_forget / max(n_full, 1))


def ssd_prepare(model: nn.Module, forget: Split, retain: Split, config: SSDConfig) -> SSDState:
    return ssd_state(model, forget, retain, config)


def lfssd_prepare(model: nn.Module, forget: Split, retain: Split, config: SSDConfig) -> SSDState:
    return ssd_state(model, forget, retain, config, label_free=True)


@METHODS.register("ssd", config=SSDConfig, prepare=ssd_prepare)
def ssd(model: nn.Module, forget: Split, retain: Split, config: SSDConfig, state: SSDState | None = None):
    """SSD with selection weighting ``alpha`` and dampening constant ``lam``."""
    task_of(forget, retain)
    state = state or ssd_prepare(model, forget, retain, config)
    return model, dampen(model, state.ref, state.fgt, config.alpha, config.lam)


@METHODS.register("lfssd", config=SSDConfig, prepare=lfssd_prepare)
def lfssd(model: nn.Module, forget: Split, retain: Split, config: SSDConfig, state: SSDState | None = None):
    """Loss-free SSD: importance |grad| of the squared output norm instead of the loss's grad^2."""
    task_of(forget, retain)
    state = state or lfssd_prepare(model, forget, retain, config)
    return model, dampen(model, state.ref, state.fgt, config.alpha, config.lam)


def assd_prepare(model: nn.Module, forget: Split, retain: Split, config: ASSDConfig) -> SSDState:
    return ssd_state(model, forget, retain, config)


@METHODS.register("assd", config=ASSDConfig, prepare=assd_prepare)
def assd(model: nn.Module, forget: Split, retain: Split, config: ASSDConfig, state: SSDState | None = None):
    """Adaptive SSD: alpha = the length-based percentile of the importance ratio, lambda = ``lam``."""
    task_of(forget, retain)
    state = state or assd_prepare(model, forget, retain, config)
    q = assd_percentile(state.n_forget, state.n_full)
    alpha = ratio_percentile(state.ref, state.fgt, q)
    info = dampen(model, state.ref, state.fgt, alpha, config.lam)
    return model, {**info, "assd_alpha": alpha, "assd_percentile": q}
