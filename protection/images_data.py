"""Shared pieces of the images protections: the pixel box, the surrogate CNN, attacker labellings.

All methods work on the unlearning vision track's tensors (``unlearning.vision``:
digits as (N, 1, 8, 8) in [0, 1]; ``unlearning.cifar``: (N, 3, 32, 32) normalised
per channel) and its small CNN, so protections and the corrective-unlearning bench
share one model.  A budget ``eps`` is a fraction of each channel's value range
(8/255 on CIFAR-10 means the usual 8 grey levels of 255 whatever the normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from afcu.errors import AfcuError
from unlearning.vision import SmallCNN

# attacker labellings: the protector crafts with the digit labels; the attacker may train on others
LABELLINGS = ("digit", "parity", "gt4")


@dataclass(frozen=True)
class Box:
    """Per-channel value range of the images (shape (1, C, 1, 1) tensors)."""

    lo: torch.Tensor
    hi: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor) -> "Box":
        lo = x.amin(dim=(0, 2, 3), keepdim=True).cpu()
        hi = x.amax(dim=(0, 2, 3), keepdim=True).cpu()
        return cls(lo, torch.maximum(hi, lo + 1e-6))

    @property
    def scale(self) -> torch.Tensor:
        return self.hi - self.lo

    def to(self, device: torch.device | str) -> "Box":
        return Box(self.lo.to(device), self.hi.to(device))

    def project(self, delta: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
        """``delta`` clipped to the L-inf ball of radius ``eps`` (in range units) and so that x+delta stays in range."""
        bound = eps * self.scale.to(delta.device)
        delta = torch.maximum(torch.minimum(delta, bound), -bound)
        return torch.minimum(torch.maximum(x + delta, self.lo.to(x.device)), self.hi.to(x.device)) - x

    def linf(self, delta: torch.Tensor) -> float:
        """Largest |delta| in range units (comparable to eps)."""
        return float((delta.abs() / self.scale.to(delta.device)).max()) if delta.numel() else 0.0


def pixel_frac(delta: torch.Tensor, tol: float = 1e-7) -> float:
    """Share of pixel positions (any channel) that the perturbation changes, over all images given."""
    if delta.numel() == 0:
        return 0.0
    return float((delta.abs() > tol).any(dim=1).float().mean())


def surrogate(x: torch.Tensor, n_classes: int, seed: int, width: int = 16) -> nn.Module:
    """A fresh small CNN (the vision track's architecture) for images shaped like ``x``."""
    torch.manual_seed(seed)
    return SmallCNN(in_channels=x.shape[1], n_classes=n_classes, side=x.shape[-1], width=width)


def features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate (64-d) features of the small CNN: everything but the last linear layer."""
    return model.fc1(model.conv2(model.conv1(x)))  # type: ignore[operator]


def relabel(y: torch.Tensor, labelling: str) -> torch.Tensor:
    """Attacker labels: ``digit`` (as given), ``parity`` (y mod 2) or ``gt4`` (y > 4)."""
    if labelling == "digit":
        return y.clone()
    if labelling == "parity":
        return y % 2
    if labelling == "gt4":
        return (y > 4).long()
    raise AfcuError(f"labelling {labelling!r} is not one of {', '.join(LABELLINGS)}")


def n_classes_of(labelling: str, n_digit_classes: int) -> int:
    return n_digit_classes if labelling == "digit" else 2


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int, lr: float = 3e-3,
        batch_size: int = 64, weight_decay: float = 5e-4) -> nn.Module:
    """Plain AdamW training on (x, y) (the vision track's recipe); returns the model in eval mode."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    dev = next(model.parameters()).device
    for epoch in range(epochs):
        order = torch.as_tensor(np.random.default_rng(seed * 1000 + epoch).permutation(len(y)))
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx].to(dev)), y[idx].to(dev)).backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy in [0, 1] (nan for no samples)."""
    if len(y) == 0:
        return float("nan")
    model.eval()
    dev = next(model.parameters()).device
    hits = sum(int((model(x[i:i + batch_size].to(dev)).argmax(-1).cpu() == y[i:i + batch_size]).sum())
               for i in range(0, len(y), batch_size))
    return hits / len(y)
