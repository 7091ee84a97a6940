"""Model loading and the fine-tuning recipe of the text bench (plain causal-LM loss on each record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from afcu.errors import AfcuError


def model_folder(name: str) -> Path:
    """A model folder, or the registry's converted copy of ``name``."""
    if Path(name).is_dir():
        return Path(name)
    from afcu.models import REGISTRY, pull

    if name not in REGISTRY:
        raise AfcuError(f"field 'model': {name!r} is neither a folder nor a registry name ({', '.join(REGISTRY)})")
    return pull(name)


def load(name: str, device: str) -> tuple[nn.Module, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_folder(name)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def fine_tune(cfg: Any, texts: list[str], seed: int, device: str) -> nn.Module:
    """Full fine-tune of a fresh copy of ``cfg.model`` on ``texts``: AdamW(cfg.lr), ``cfg.epochs``
    shuffled epochs, batches of ``cfg.batch_size``, every non-pad token labelled, fp32."""
    model, tok = load(cfg.model, device)
    torch.manual_seed(seed)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    enc = [tok(t).input_ids[:cfg.max_len] for t in texts]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    steps = cfg.epochs * -(-len(enc) // cfg.batch_size)
    model.train()
    with tqdm(total=steps, desc=f"fine-tune seed {seed}", unit="step", leave=False) as bar:
        for _ in range(cfg.epochs):
            order = torch.randperm(len(enc), generator=gen).tolist()
            for start in range(0, len(order), cfg.batch_size):
                batch = [enc[i] for i in order[start:start + cfg.batch_size]]
                width = max(len(e) for e in batch)
                ids = torch.tensor([e + [pad] * (width - len(e)) for e in batch], device=device)
                mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in batch], device=device)
                labels = ids.masked_fill(mask == 0, -100)
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()
