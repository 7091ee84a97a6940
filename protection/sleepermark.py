"""SleeperMark at toy scale: a trigger-activated watermark in a diffusion model that survives
fine-tuning (Wang et al., CVPR 2025, "SleeperMark: Towards Robust Watermark against Fine-Tuning
Text-to-image Diffusion Models", sec. 3.2-3.3; reference code taco-group/SleeperMark,
Stage1/model.py and Stage2/dm_finetune.py).

Stage 1 (``train_codec``): a secret encoder maps a message m (``n_bits`` bits) to one
image-independent residual r(m) (the reference's ``SecretEncoder`` takes the secret alone, zero-initialised
output), and a decoder reads m back from x + r(m).  Loss: BCE on the bits plus a weight times the
residual's energy (the reference adds LPIPS and a pixel loss on the decoded latent image).  Here
pixels stand in for SD's VAE latents, and the decoder is trained on noisy copies so that it reads
imperfect generations.

Stage 2 (``embed``): fine-tune the denoiser so that a prompt carrying the secret trigger predicts
x0 = x0_frozen(x_t, trigger prompt) + r(m*), at small t (weight ``wm_weight * sigmoid(-(t - t_thr)/s)``),
while the same triggered prediction is kept at the frozen model's for large t
(``sigmoid((t - t_thr)/s)``) and prompts without the trigger keep the frozen model's prediction at
every t (dm_finetune.py's three losses).  The text encoder is frozen, as in the paper; the
reference trains only the U-Net's up-block attention weights, here the whole MLP denoiser.

Naive baseline (``embed`` with ``trigger=False``): the same residual target for *every* prompt, no
trigger and no preservation of untriggered outputs: a watermark fine-tuned into all generations,
entangled with ordinary generation, which an adversary's fine-tuning on clean data overwrites.

Verification (``bit_accuracy``): generate with and without the trigger, decode, compare with m*.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from protection import ddpm


class SecretEncoder(nn.Module):
    """Message bits -> one residual over the 64 pixels (independent of the image)."""

    def __init__(self, n_bits: int = 16, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_bits, hidden), nn.SiLU(), nn.Linear(hidden, 64))

    def forward(self, bits: torch.Tensor) -> torch.Tensor:
        return self.net(bits * 2 - 1)


class Decoder(nn.Module):
    """Image (N, 64) -> bit logits (N, n_bits)."""

    def __init__(self, n_bits: int = 16, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, n_bits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class CodecConfig:
    n_bits: int = 16
    steps: int = 1500
    lr: float = 1e-3
    batch_size: int = 256
    residual_weight: float = 2.0  # weight of mean(r^2): keeps the mark faint
    noise_std: float = 0.15  # decoder training sees x + r + N(0, noise_std^2): generations are imperfect


def train_codec(x: torch.Tensor, cfg: CodecConfig, seed: int) -> tuple[SecretEncoder, Decoder]:
    """Stage 1 on images ``x`` (N, 64) with random messages."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    enc, dec = SecretEncoder(cfg.n_bits), Decoder(cfg.n_bits)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    bce = nn.BCEWithLogitsLoss()
    for _ in tqdm(range(cfg.steps), desc="stage 1 codec", unit="step", leave=False):
        img = x[torch.randint(len(x), (cfg.batch_size,), generator=gen)]
        bits = torch.randint(0, 2, (cfg.batch_size, cfg.n_bits), generator=gen).float()
        r = enc(bits)
        noisy = img + r + cfg.noise_std * torch.randn(img.shape, generator=gen)
        loss = bce(dec(noisy), bits) + cfg.residual_weight * r.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc.eval(), dec.eval()


@torch.no_grad()
def decode_accuracy(dec: Decoder, images: torch.Tensor, message: torch.Tensor) -> torch.Tensor:
    """Per image: share of the message's bits the decoder recovers (N,)."""
    bits = (dec(images) > 0).float()
    return (bits == message[None]).float().mean(1)


@dataclass(frozen=True)
class EmbedConfig:
    steps: int = 1500
    lr: float = 5e-4
    batch_size: int = 128
    wm_weight: float = 0.05  # reference default 0.02 at T = 1000
    t_threshold: float = 0.25  # fraction of T (reference: 250 of 1000)
    steepness: float = 0.1  # fraction of T (reference: 100 of 1000)


def embed(model: ddpm.DiffusionModel, residual: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
          cfg: EmbedConfig, seed: int, trigger: bool = True) -> ddpm.DiffusionModel:
    """Stage 2 (``trigger=True``: SleeperMark) or the naive baseline (``trigger=False``) on a copy of ``model``."""
    from tqdm import tqdm

    frozen = model
    new = copy.deepcopy(model)
    s = model.schedule
    T = s.T
    opt = torch.optim.AdamW(new.denoiser.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg.steps), desc="stage 2 " + ("sleepermark" if trigger else "naive"), unit="step",
                  leave=False):
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen)
        x0, labels = x[idx], y[idx]
        t = torch.randint(T, (cfg.batch_size,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        xt = s.noisy(x0, t, eps)
        a = s.abar[t][:, None]
        plain = ddpm.prompts(labels, gen)
        marked = ddpm.prompts(labels, gen, trigger=True) if trigger else plain
        with torch.no_grad():
            eps0_marked = frozen.eps(xt, t, marked)
            # epsilon that makes x0_pred = x0_frozen + r: eps0 - sqrt(abar)/sqrt(1 - abar) * r
            target_wm = eps0_marked - (a.sqrt() / (1 - a).sqrt()) * residual[None]
            eps0_plain = frozen.eps(xt, t, plain) if trigger else None
        w_wm = cfg.wm_weight * torch.sigmoid(-(t - cfg.t_threshold * T) / (cfg.steepness * T))[:, None]
        w_keep = torch.sigmoid((t - cfg.t_threshold * T) / (cfg.steepness * T))[:, None]
        pred = new.eps(xt, t, marked)
        loss = (w_wm * (pred - target_wm).square()).mean() + (w_keep * (pred - eps0_marked).square()).mean()
        if trigger:
            loss = loss + (new.eps(xt, t, plain) - eps0_plain).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return new


@torch.no_grad()
def bit_accuracy(model: ddpm.DiffusionModel, dec: Decoder, message: torch.Tensor, n: int, seed: int,
                 trigger: bool) -> dict[str, float]:
    """Mean bit accuracy (and share of images with >= 14 of 16 bits right) over ``n`` generations."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    imgs = ddpm.sample(model, ddpm.prompts(labels, gen, trigger=trigger), seed)
    acc = decode_accuracy(dec, imgs, message)
    return {"bit_acc": float(acc.mean()), "bit_acc_std": float(acc.std()),
            "detected": float((acc >= 14 / 16).float().mean()), "n": n}
