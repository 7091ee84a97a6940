"""Unlearnable Clusters (Zhang et al., CVPR 2023, "Unlearnable Clusters: Towards Label-agnostic Unlearnable
Examples").

Label-agnostic: the protector does not know how the attacker will label the data.  UC groups the images
by K-means on a surrogate's features and gives every cluster one perturbation that disrupts the
clusters' uniformity: cluster k's perturbation pushes its members' features toward the centre of
cluster k+1 (mod K), so any labelling that follows the visual clusters is confounded.

Reference code (read, not copied): jiamingzhang94/Unlearnable-Clusters, ``preprocess.py`` (K-means on
the surrogate's embeddings, ``num_clusters``) and ``main.py --stage 1`` (cluster-wise perturbations).
afcu's deviations, stated: the surrogate is the vision track's small CNN trained on the protector's own
digit labels, since CLIP is not available offline (the paper uses CLIP/ImageNet encoders; its claims
need CLIP-scale surrogates, see protection/README.md); each cluster's perturbation is optimised
directly by signed-gradient steps on the feature distance (the reference trains one generator per
cluster that maps fixed noise to the perturbation); the budget is L-inf ``eps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from protection.images_data import Box, features, fit, surrogate


@dataclass(frozen=True)
class UCConfig:
    """Unlearnable Clusters: K-means on surrogate features, one perturbation per cluster."""

    eps: float = field(default=8 / 255, metadata={"help": "L-inf budget, fraction of the pixel range"})
    n_clusters: int = field(default=10, metadata={"help": "K of K-means"})
    steps: int = field(default=300, metadata={"help": "signed-gradient steps per cluster perturbation"})
    step_size: float = field(default=0.1, metadata={"help": "step as a fraction of eps"})
    surrogate_epochs: int = field(default=10, metadata={"help": "epochs of surrogate training on digit labels"})
    batch_size: int = field(default=512, metadata={"help": "batch size of the feature-distance steps"})


def clusters(feats: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(cluster id per image, centres (k, d)) from scikit-learn K-means."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(feats)
    return km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32)


def unlearnable_clusters(x: torch.Tensor, y: torch.Tensor, cfg: UCConfig, seed: int = 0,
                         classes: list[int] | None = None) -> torch.Tensor:
    """Cluster-wise perturbation delta (shape of ``x``); ``classes`` restricts it to images of those classes.

    ``y`` trains the surrogate only (the protector's labelling); clusters come from features, not labels.
    """
    box = Box.of(x).to(x.device)
    model = fit(surrogate(x, int(y.max()) + 1, seed).to(x.device), x, y, seed, cfg.surrogate_epochs)
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        feats = torch.cat([features(model, x[i:i + 1024]) for i in range(0, len(x), 1024)]).cpu().numpy()
    assign, centres = clusters(feats, cfg.n_clusters, seed)
    centres_t = torch.as_tensor(centres, device=x.device)
    target = torch.as_tensor((assign + 1) % cfg.n_clusters, device=x.device)
    gen = torch.Generator().manual_seed(seed)
    bound = cfg.eps * box.scale
    noise = ((torch.rand((cfg.n_clusters, *x.shape[1:]), generator=gen) * 2 - 1).to(x.device)) * bound
    assign_t = torch.as_tensor(assign, device=x.device)
    rng = np.random.default_rng(seed)
    for _ in range(cfg.steps):
        idx = torch.as_tensor(rng.choice(len(x), size=min(cfg.batch_size, len(x)), replace=False), device=x.device)
        n = noise.clone().requires_grad_(True)
        base = n[assign_t[idx]]
        # straight-through: the forward pass sees the range-clipped noise, the gradient reaches the cluster's noise
        d = base + (box.project(base, x[idx], cfg.eps) - base).detach()
        loss = ((features(model, x[idx] + d) - centres_t[target[idx]]) ** 2).sum()
        (g,) = torch.autograd.grad(loss, n)
        noise = torch.maximum(torch.minimum(noise - cfg.step_size * bound * g.sign(), bound), -bound)
    delta = box.project(noise[assign_t], x, cfg.eps)
    if classes is not None:
        delta[~torch.isin(y, torch.as_tensor(classes, device=y.device))] = 0
    return delta.detach()
