"""SALM: error-minimising noise restricted to a sparse mask of significant pixels.

Sun et al. (2024), "Medical Unlearnable Examples: Securing Medical Data from Unauthorized Training via
Sparsity-Aware Local Masking" (arXiv 2403.10573): instead of perturbing the whole image, only the
significant local pixel regions are perturbed, which shrinks the search space and suits sparse (medical)
images.  The optimisation is the min-min of error-minimising noise (protection/error_minimising.py).

Mask rule, afcu's reading (the abstract and summaries state "selectively perturbs significant pixel
regions" chosen from gradients; afcu could not read a reference implementation, so the details are
choices): a pixel position's significance is |d loss / d x| of the current surrogate summed over channels;
each round, each image's mask keeps its ``sparsity`` share of most significant positions (all channels of
a kept position), pixels that drop out of the mask return to clean, and PGD updates only the masked
pixels.  So at most ``sparsity`` of each image's pixel positions differ from the original, always.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from afcu.errors import AfcuError
from protection.error_minimising import EMConfig, error_minimising_masked


@dataclass(frozen=True)
class SALMConfig:
    """SALM: sparse error-minimising noise."""

    eps: float = field(default=8 / 255, metadata={"help": "L-inf budget, fraction of the pixel range"})
    sparsity: float = field(default=0.1, metadata={"help": "largest share of each image's pixel positions perturbed"})
    step_size: float = field(default=0.8 / 255, metadata={"help": "PGD step size"})
    steps: int = field(default=20, metadata={"help": "PGD descent steps per noise update"})
    rounds: int = field(default=20, metadata={"help": "most rounds of surrogate training and noise update"})
    train_steps: int = field(default=10, metadata={"help": "surrogate mini-batch steps per round"})
    stop_error: float = field(default=0.01, metadata={"help": "stop once the surrogate's error on x+delta is below"})
    batch_size: int = field(default=128, metadata={"help": "batch size"})
    lr: float = field(default=3e-3, metadata={"help": "surrogate AdamW learning rate"})

    def __post_init__(self) -> None:
        if not 0 < self.sparsity <= 1:
            raise AfcuError(f"salm field 'sparsity': {self.sparsity} must be in (0, 1]")


def significance_mask(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
                      sparsity: float, batch_size: int = 512) -> torch.Tensor:
    """0/1 mask shaped like ``x``: per image, the ``floor(sparsity * H * W)`` positions of largest |grad|."""
    masks = []
    hw = x.shape[-1] * x.shape[-2]
    k = max(1, math.floor(sparsity * hw))
    for start in range(0, len(y), batch_size):
        sl = slice(start, start + batch_size)
        xi = (x[sl] + delta[sl]).detach().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xi), y[sl], reduction="sum")
        sig = torch.autograd.grad(loss, xi)[0].abs().sum(1).flatten(1)  # (B, H*W)
        keep = torch.zeros_like(sig)
        keep.scatter_(1, sig.topk(k, dim=1).indices, 1.0)
        masks.append(keep.view(-1, 1, *x.shape[-2:]).expand(-1, x.shape[1], -1, -1))
    return torch.cat(masks)


def salm(x: torch.Tensor, y: torch.Tensor, cfg: SALMConfig, seed: int = 0,
         classes: list[int] | None = None) -> torch.Tensor:
    """Sparse error-minimising perturbation (shape of ``x``): ||delta||_inf <= eps, changed share <= sparsity."""
    em = EMConfig(eps=cfg.eps, step_size=cfg.step_size, steps=cfg.steps, rounds=cfg.rounds,
                  train_steps=cfg.train_steps, stop_error=cfg.stop_error, mode="sample", batch_size=cfg.batch_size,
                  lr=cfg.lr)

    def mask_fn(model: nn.Module, xt: torch.Tensor, yt: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        return significance_mask(model, xt, yt, dt, cfg.sparsity, cfg.batch_size)

    return error_minimising_masked(x, y, em, seed, classes, mask_fn)
