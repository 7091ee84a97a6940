"""Error-minimising noise (Huang et al., ICLR 2021, "Unlearnable Examples: Making Personal Data Unexploitable").

The min-min bi-level problem: min_theta E[ min_{||delta||_inf <= eps} L(f_theta(x + delta), y) ].  It is
solved by alternating (i) ``train_steps`` mini-batch steps of the surrogate on the perturbed data and
(ii) ``steps`` PGD *descent* steps of size ``step_size`` on delta (delta <- delta - a * sign(grad)),
projected back to the L-inf ball and the pixel range; the loop stops after ``rounds`` rounds or once the
surrogate's error on the perturbed data falls below ``stop_error`` (the reference stops at 99% accuracy).

- ``mode="sample"``: one delta per image.
- ``mode="class"``: one delta per class, shared by all its images; each PGD step uses the sign of the
  gradient summed over the class's images (a universal perturbation per class).
- Class-targeted: ``classes`` restricts the perturbation to images of those classes; the other images
  stay clean (the corrective-unlearning bench's ``em_class`` manipulation uses one protected class).

Reference code (read, not copied): HanxunH/Unlearnable-Examples, ``toolbox.py`` (``PerturbationTool.
min_min_attack``, random uniform init in [-eps, eps]) and ``perturbation.py`` (the alternation:
``train_step`` = 10 batches, then the noise update, stop condition on accuracy; eps 8/255, 20 steps of
0.8/255 on CIFAR-10).  afcu differences, stated: the surrogate is the vision track's small CNN with
AdamW (the reference: ResNet-18 with SGD); in each round every targeted image gets its PGD steps
against the same surrogate (the reference loops over the whole set the same way); eps is a fraction
of each channel's range (protection/images_data.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from afcu.errors import AfcuError
from protection.images_data import Box, accuracy, surrogate


@dataclass(frozen=True)
class EMConfig:
    """Error-minimising noise (sample-wise or class-wise)."""

    eps: float = field(default=8 / 255, metadata={"help": "L-inf budget, fraction of the pixel range"})
    step_size: float = field(default=0.8 / 255, metadata={"help": "PGD step size (the reference: eps/10)"})
    steps: int = field(default=20, metadata={"help": "PGD descent steps per noise update"})
    rounds: int = field(default=20, metadata={"help": "most alternations of surrogate training and noise update"})
    train_steps: int = field(default=10, metadata={"help": "surrogate mini-batch steps per round"})
    stop_error: float = field(default=0.01, metadata={"help": "stop once the surrogate's error on x+delta is below"})
    mode: str = field(default="sample", metadata={"help": "sample (one delta per image) or class (one per class)"})
    batch_size: int = field(default=128, metadata={"help": "surrogate and PGD batch size"})
    lr: float = field(default=3e-3, metadata={"help": "surrogate AdamW learning rate"})

    def __post_init__(self) -> None:
        if self.mode not in ("sample", "class"):
            raise AfcuError(f"em field 'mode': {self.mode!r} is not sample or class")
        if not 0 < self.eps <= 1 or self.step_size <= 0 or self.steps < 1 or self.rounds < 1:
            raise AfcuError("em fields: need 0 < eps <= 1, step_size > 0, steps >= 1, rounds >= 1")


def _targets(y: torch.Tensor, classes: list[int] | None) -> np.ndarray:
    """Positions of the images to perturb (all, or those of ``classes``)."""
    yn = y.cpu().numpy()
    return np.arange(len(yn)) if classes is None else np.flatnonzero(np.isin(yn, classes))


def _train_round(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                 cfg: EMConfig, rng: np.random.Generator) -> None:
    model.train()
    for _ in range(cfg.train_steps):
        idx = torch.as_tensor(rng.choice(len(y), size=min(cfg.batch_size, len(y)), replace=False))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d L(f(x), y) / d x, summed over the batch (signs are per element, so sum and mean agree)."""
    x = x.detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(x), y, reduction="sum")
    return torch.autograd.grad(loss, x)[0]


def update_sample(model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, box: Box,
                  cfg: EMConfig, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` PGD descent steps on per-image ``delta`` (rows of x); ``mask`` (same shape, 0/1) freezes pixels."""
    out = delta.clone()
    for start in range(0, len(y), cfg.batch_size):
        sl = slice(start, start + cfg.batch_size)
        d = out[sl]
        for _ in range(cfg.steps):
            g = _input_grad(model, x[sl] + d, y[sl])
            step = cfg.step_size * box.scale * g.sign()
            d = box.project(d - (step if mask is None else step * mask[sl]), x[sl], cfg.eps)
        out[sl] = d
    return out


def update_class(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, box: Box,
                 cfg: EMConfig) -> torch.Tensor:
    """``steps`` PGD descent steps on the per-class ``noise`` (n_classes, C, H, W), gradients summed per class."""
    noise = noise.clone()
    for _ in range(cfg.steps):
        g = torch.zeros_like(noise)
        for start in range(0, len(y), cfg.batch_size):
            sl = slice(start, start + cfg.batch_size)
            d = box.project(noise[y[sl]], x[sl], cfg.eps)
            g.index_add_(0, y[sl], _input_grad(model, x[sl] + d, y[sl]))
        bound = cfg.eps * box.scale
        noise = torch.maximum(torch.minimum(noise - cfg.step_size * box.scale * g.sign(), bound), -bound)
    return noise


def error_minimising(x: torch.Tensor, y: torch.Tensor, cfg: EMConfig, seed: int = 0,
                     classes: list[int] | None = None, mask: torch.Tensor | None = None,
                     n_classes: int | None = None) -> torch.Tensor:
    """The perturbation delta (shape of ``x``; zero outside the targeted images), ||delta||_inf <= eps.

    ``mask`` (shape of ``x``, 0/1) restricts sample-wise updates to some pixels (SALM passes its own
    mask rule through ``mask_fn`` in protection/salm.py instead).
    """
    return error_minimising_masked(x, y, cfg, seed, classes, None if mask is None else (lambda *_: mask),
                                   n_classes)


def error_minimising_masked(x: torch.Tensor, y: torch.Tensor, cfg: EMConfig, seed: int,
                            classes: list[int] | None, mask_fn, n_classes: int | None = None) -> torch.Tensor:
    """Like ``error_minimising``; ``mask_fn(model, x_t, y_t, delta_t)`` gives the (N_t, C, H, W) update mask
    for the targeted rows each round (sample mode only)."""
    box = Box.of(x).to(x.device)
    n_classes = int(n_classes or int(y.max()) + 1)
    pos = torch.as_tensor(_targets(y, classes))
    if len(pos) == 0:
        raise AfcuError(f"error-minimising noise: no training images of classes {classes}")
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = surrogate(x, n_classes, seed).to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    xt, yt = x[pos], y[pos]
    bound = cfg.eps * box.scale
    if cfg.mode == "class":
        noise = (torch.rand((n_classes, *x.shape[1:]), generator=gen).to(x.device) * 2 - 1) * bound
        delta_t = box.project(noise[yt], xt, cfg.eps)
    else:
        delta_t = box.project((torch.rand(xt.shape, generator=gen).to(x.device) * 2 - 1) * bound, xt, cfg.eps)
        if mask_fn is not None:
            delta_t = delta_t * mask_fn(model, xt, yt, delta_t)
    for _ in range(cfg.rounds):
        full = x.clone()
        full[pos] = xt + delta_t
        _train_round(model, opt, full, y, cfg, rng)
        if cfg.mode == "class":
            noise = update_class(model, xt, yt, noise, box, cfg)
            delta_t = box.project(noise[yt], xt, cfg.eps)
        else:
            mask = None if mask_fn is None else mask_fn(model, xt, yt, delta_t)
            if mask is not None:
                delta_t = delta_t * mask  # pixels outside the current mask go back to clean
            delta_t = update_sample(model, xt, yt, delta_t, box, cfg, mask)
        if 1 - accuracy(model, xt + delta_t, yt) < cfg.stop_error:
            break
    delta = torch.zeros_like(x)
    delta[pos] = delta_t.detach()
    return delta
