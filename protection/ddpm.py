"""A tiny prompt-conditional DDPM on scikit-learn's 8x8 digits (CPU seconds), for SleeperMark.

Denoising diffusion as in Ho et al. 2020 ("Denoising Diffusion Probabilistic Models", eq. 4, 14 and
Algorithm 1-2): epsilon-prediction, linear beta schedule, ancestral sampling.

Prompts stand in for a text-to-image model's captions: a prompt is ``PROMPT_LEN`` token ids, the
first the digit's class (0-9), the others "filler" tokens (``FILLERS``, like "a photo of") or
padding.  A small frozen text encoder (embedding per slot, an MLP) turns a prompt into the
conditioning vector; pre-training draws random fillers, so the model learns they carry no meaning.
SleeperMark's secret trigger is one fixed filler sequence (``TRIGGER``) that pre-training never
shows (a rare string, like the paper's ``*[Z]&``).  The denoiser is an MLP over the 64 pixels with
the time and prompt embeddings concatenated: at 8x8 it trains in seconds where a U-Net would not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PAD = 10
FILLERS = (11, 12, 13, 14, 15)
VOCAB = 16
PROMPT_LEN = 4
TRIGGER = (14, 11, 13)  # the secret filler sequence in slots 1..3


def load_digits_split(seed: int = 0, n_holdout: int = 500) -> dict[str, torch.Tensor]:
    """Digits as (N, 64) floats in [-1, 1] with labels: ``train`` (the owner's data) and ``holdout``
    (the adversary's new data), split by ``seed``."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 8.0 - 1.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    hold, train = perm[:n_holdout], perm[n_holdout:]
    return {"x": x[train], "y": y[train], "x_holdout": x[hold], "y_holdout": y[hold]}


def prompts(labels: torch.Tensor, gen: torch.Generator, trigger: bool = False, p_filler: float = 0.3) -> torch.Tensor:
    """(N, PROMPT_LEN) token ids: the class, then random fillers (or the trigger sequence)."""
    n = len(labels)
    out = torch.full((n, PROMPT_LEN), PAD, dtype=torch.long)
    out[:, 0] = labels
    if trigger:
        out[:, 1:] = torch.tensor(TRIGGER)
        return out
    fill = torch.tensor(FILLERS)[torch.randint(len(FILLERS), (n, PROMPT_LEN - 1), generator=gen)]
    use = torch.rand((n, PROMPT_LEN - 1), generator=gen) < p_filler
    out[:, 1:] = torch.where(use, fill, out[:, 1:])
    is_trig = (out[:, 1:] == torch.tensor(TRIGGER)).all(1)
    out[is_trig, 1:] = PAD  # the trigger is never part of ordinary prompts
    return out


class Schedule:
    """Linear betas from 1e-4 to 0.02, rescaled to ``T`` steps (Ho et al. 2020 use T = 1000)."""

    def __init__(self, T: int = 200) -> None:
        self.T = T
        # clamped: below ~50 steps the rescaled end value would pass 1 (a smoke-test size, not a real one)
        self.betas = torch.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T).clamp(max=0.5)
        self.alphas = 1 - self.betas
        self.abar = torch.cumprod(self.alphas, 0)

    def noisy(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self.abar[t][:, None]
        return a.sqrt() * x0 + (1 - a).sqrt() * eps


def _time_embedding(t: torch.Tensor, dim: int = 32) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half) / half)
    ang = t.float()[:, None] * freqs[None]
    return torch.cat([ang.sin(), ang.cos()], 1)


class TextEncoder(nn.Module):
    def __init__(self, dim: int = 32, out: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.mlp = nn.Sequential(nn.Linear(dim * PROMPT_LEN, 128), nn.SiLU(), nn.Linear(128, out))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.emb(tokens).flatten(1))


class Denoiser(nn.Module):
    """epsilon(x_t, t, prompt embedding): residual MLP, 64 pixels in and out."""

    def __init__(self, hidden: int = 384, cond: int = 64, depth: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(64 + 32 + cond, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden + 32 + cond, hidden))
                                    for _ in range(depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 64))

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        te = _time_embedding(t)
        h = self.inp(torch.cat([x, te, c], 1))
        for block in self.blocks:
            h = h + block(torch.cat([h, te, c], 1))
        return self.out(h)


@dataclass
class DiffusionModel:
    """The generator: a frozen text encoder plus the trainable denoiser, and its schedule."""

    encoder: TextEncoder
    denoiser: Denoiser
    schedule: Schedule

    def eps(self, x: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, self.encoder(tokens))

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """Tensors only, so a checkpoint loads with ``torch.load(..., weights_only=True)``."""
        return {"encoder": self.encoder.state_dict(), "denoiser": self.denoiser.state_dict()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        self.encoder.load_state_dict(state["encoder"])
        self.denoiser.load_state_dict(state["denoiser"])


def ddpm_loss(model: DiffusionModel, x0: torch.Tensor, tokens: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The simple epsilon loss (Ho et al. 2020, eq. 14) on one batch."""
    t = torch.randint(model.schedule.T, (len(x0),), generator=gen)
    eps = torch.randn(x0.shape, generator=gen)
    return (model.eps(model.schedule.noisy(x0, t, eps), t, tokens) - eps).square().mean()


def train(model: DiffusionModel, x: torch.Tensor, y: torch.Tensor, steps: int, seed: int, lr: float = 1e-3,
          batch_size: int = 128, train_encoder: bool = True, desc: str = "ddpm") -> DiffusionModel:
    """Ordinary DDPM training on (x, y) with ordinary prompts (pre-training, or the adversary's fine-tuning)."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    params = list(model.denoiser.parameters()) + (list(model.encoder.parameters()) if train_encoder else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    for _ in tqdm(range(steps), desc=desc, unit="step", leave=False):
        idx = torch.randint(len(x), (batch_size,), generator=gen)
        loss = ddpm_loss(model, x[idx], prompts(y[idx], gen), gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@torch.no_grad()
def sample(model: DiffusionModel, tokens: torch.Tensor, seed: int) -> torch.Tensor:
    """Ancestral sampling (Ho et al. 2020, Algorithm 2, sigma_t^2 = beta_t): (N, 64) in [-1, 1]."""
    s = model.schedule
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((len(tokens), 64), generator=gen)
    c = model.encoder(tokens)
    for i in reversed(range(s.T)):
        t = torch.full((len(tokens),), i, dtype=torch.long)
        eps = model.denoiser(x, t, c)
        mean = (x - s.betas[i] / (1 - s.abar[i]).sqrt() * eps) / s.alphas[i].sqrt()
        x = mean + (s.betas[i].sqrt() * torch.randn(x.shape, generator=gen) if i > 0 else 0)
    return x.clamp(-1, 1)


def new_model(seed: int, T: int = 200) -> DiffusionModel:
    torch.manual_seed(seed)
    return DiffusionModel(TextEncoder(), Denoiser(), Schedule(T))
