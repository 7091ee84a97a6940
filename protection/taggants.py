"""Data Taggants: dataset ownership verification by harmless (clean-label) targeted data poisoning.

Bouaziz et al. (ICLR 2025), "Data Taggants: Dataset Ownership Verification via Harmless Targeted Data
Poisoning".  Three parts:
1. Keys: ``n_keys`` out-of-distribution inputs (afcu: uniform random images in the data's range) with
   labels drawn uniformly at random; the owner keeps them secret.
2. Signing: a ``budget`` share of training images, taken from the key labels' classes and keeping their
   true labels (clean-label), get a perturbation with ||delta||_inf <= eps chosen by gradient matching:
   the surrogate's parameter gradient of the loss on the signed images is aligned (cosine) with its
   gradient of the loss on the keys with the key labels (Geiping et al.'s "Witches' Brew" objective).
3. Verification (black box): a suspect model's top-k predictions on the keys; under H0 (the model never
   saw the signed data) the key labels are independent of the model, so the count of keys whose label
   is in the top k is Binomial(n_keys, k / n_classes) and the exact one-sided binomial test's p-value
   is valid: P(p <= alpha) <= alpha over the draw of key labels.  The bench checks this with
   ``n_clean_models`` clean models, each tested with freshly drawn keys.

Reference code (read, not copied): gaetandegot/EA_data_taggants, a release of the paper's code:
``detect.py`` (top-k hits on the keys, binomial survival function) and ``src/poisoning.py`` (signing).
afcu's deviations: L-inf budget instead of the paper's perceptual constraint; random-noise keys instead of
OOD images from another dataset; the surrogate is the vision track's small CNN trained on the clean data;
one Adam run on delta (no restarts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from protection.images_data import Box, fit, pixel_frac, surrogate


@dataclass(frozen=True)
class TaggantsConfig:
    """Data Taggants: keys, clean-label signing by gradient matching, top-k binomial test."""

    n_keys: int = field(default=10, metadata={"help": "secret keys (OOD images with random labels)"})
    budget: float = field(default=0.05, metadata={"help": "share of training images signed"})
    eps: float = field(default=32 / 255, metadata={"help": "L-inf budget of the signing, fraction of the range"})
    steps: int = field(default=300, metadata={"help": "gradient-matching Adam steps"})
    lr: float = field(default=0.05, metadata={"help": "Adam step on delta, as a fraction of eps"})
    top_k: int = field(default=1, metadata={"help": "a key is a hit when its label is in the model's top k"})
    alpha: float = field(default=0.05, metadata={"help": "test level for detection and the false-positive rate"})
    n_clean_models: int = field(default=20, metadata={"help": "clean models for the empirical false-positive rate"})
    surrogate_epochs: int = field(default=10, metadata={"help": "epochs of the clean surrogate used for signing"})


@dataclass
class Keys:
    """Secret keys: images (K, C, H, W) and labels (K,), plus the test's parameters."""

    x: torch.Tensor
    y: torch.Tensor
    n_classes: int
    top_k: int


def make_keys(shape: tuple[int, ...], box: Box, n_keys: int, n_classes: int, top_k: int, seed: int) -> Keys:
    """Uniform random images in the data range (out of distribution) with uniform random labels."""
    g = torch.Generator().manual_seed(seed)
    x = box.lo + torch.rand((n_keys, *shape), generator=g) * box.scale
    y = torch.randint(n_classes, (n_keys,), generator=g)
    return Keys(x, y, n_classes, top_k)


def binomial_p(hits: int, n: int, p0: float) -> float:
    """Exact one-sided binomial p-value P(X >= hits), X ~ Binomial(n, p0) (scipy.stats.binomtest)."""
    from scipy.stats import binomtest

    return float(binomtest(hits, n, p0, alternative="greater").pvalue)


@torch.no_grad()
def top_k_hits(model: nn.Module, keys: Keys) -> int:
    dev = next(model.parameters()).device
    top = model(keys.x.to(dev)).topk(keys.top_k, dim=1).indices.cpu()
    return int((top == keys.y[:, None]).any(1).sum())


def verify(model: nn.Module, keys: Keys) -> float:
    """Ownership p-value of a black-box model (only its top-k outputs on the keys are used)."""
    return binomial_p(top_k_hits(model, keys), len(keys.y), keys.top_k / keys.n_classes)


def _flat_grad(model: nn.Module, loss: torch.Tensor, create_graph: bool) -> torch.Tensor:
    grads = torch.autograd.grad(loss, [p for p in model.parameters()], create_graph=create_graph)
    return torch.cat([g.flatten() for g in grads])


def sign(x: torch.Tensor, y: torch.Tensor, keys: Keys, cfg: TaggantsConfig, seed: int,
         model: nn.Module | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """(delta shaped like ``x``, positions of the signed images); labels are never changed."""
    box = Box.of(x).to(x.device)
    rng = np.random.default_rng(seed)
    if model is None:
        model = fit(surrogate(x, keys.n_classes, seed).to(x.device), x, y, seed, cfg.surrogate_epochs)
    model.eval()
    n_sign = max(len(keys.y), int(round(cfg.budget * len(y))))
    # spread the budget over the key labels' classes (clean-label: signed images keep their class)
    per_class = np.bincount(keys.y.numpy(), minlength=keys.n_classes) / len(keys.y)
    yn = y.cpu().numpy()
    chosen = []
    for c in np.flatnonzero(per_class):
        pool = np.flatnonzero(yn == c)
        chosen.append(rng.choice(pool, size=min(len(pool), int(round(per_class[c] * n_sign))), replace=False))
    pos = np.sort(np.concatenate(chosen))
    kx, ky = keys.x.to(x.device), keys.y.to(x.device)
    target = _flat_grad(model, nn.functional.cross_entropy(model(kx), ky), create_graph=False).detach()
    xs, ys = x[pos], y[pos]
    bound = cfg.eps * box.scale
    delta = torch.zeros_like(xs, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr * cfg.eps * float(box.scale.mean()))
    for _ in range(cfg.steps):
        g = _flat_grad(model, nn.functional.cross_entropy(model(xs + delta), ys), create_graph=True)
        loss = 1 - nn.functional.cosine_similarity(g, target, dim=0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            delta.copy_(box.project(torch.maximum(torch.minimum(delta, bound), -bound), xs, cfg.eps))
    out = torch.zeros_like(x)
    out[pos] = delta.detach()
    return out, pos


def false_positive_rate(x: torch.Tensor, y: torch.Tensor, cfg: TaggantsConfig, epochs: int, lr: float,
                        seed: int) -> tuple[float, list[float]]:
    """Share of ``n_clean_models`` clean models (each its own init and fresh keys) with p <= alpha."""
    box = Box.of(x)
    n_classes = int(y.max()) + 1
    ps = []
    for m in range(cfg.n_clean_models):
        model = fit(surrogate(x, n_classes, 50_000 + 100 * seed + m).to(x.device), x, y, 100 * seed + m, epochs, lr=lr)
        keys = make_keys(tuple(x.shape[1:]), box, cfg.n_keys, n_classes, cfg.top_k, 70_000 + 100 * seed + m)
        ps.append(verify(model, keys))
    return float(np.mean([p <= cfg.alpha for p in ps])), ps


def bench_rows(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, clean_model: nn.Module,
               cfg: TaggantsConfig, seed: int, epochs: int, lr: float) -> list[dict[str, Any]]:
    """The images bench's ``taggants`` row (signed vs clean model) and ``taggants_fpr`` row for one seed."""
    from protection.images_data import accuracy

    n_classes = int(y.max()) + 1
    box = Box.of(x)
    keys = make_keys(tuple(x.shape[1:]), box, cfg.n_keys, n_classes, cfg.top_k, 90_000 + seed)
    delta, pos = sign(x, y, keys, cfg, seed)
    signed = fit(surrogate(x, n_classes, 10_000 + seed).to(x.device), x + delta, y, seed, epochs, lr=lr)
    fpr, _ = false_positive_rate(x, y, cfg, epochs, lr, seed)
    common = {"eps": cfg.eps, "labelling": "digit", "seed": seed, "alpha": cfg.alpha}
    return [{"method": "taggants", **common, "linf": box.linf(delta), "pixel_frac": pixel_frac(delta),
             "clean_acc": accuracy(clean_model, xt, yt), "protected_acc": accuracy(signed, xt, yt),
             "p_value": verify(signed, keys), "p_value_clean": verify(clean_model, keys), "n_protected": len(pos)},
            {"method": "taggants_fpr", **common, "fpr": fpr, "n_models": cfg.n_clean_models}]
