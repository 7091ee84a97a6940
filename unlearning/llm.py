"""Language-model task: chat-formatted SFT examples as a Split, and the track's metrics.

Examples are tokenised with the model's chat template (system, user, assistant);
only the response tokens (and the closing end-of-turn token) carry labels, other
positions are -100.  Plain documents (``text``) are labelled on every token.
Sequences are right-padded to ``max_len`` so splits concatenate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from unlearning.data import Split, Task
from unlearning.llm_data import SYSTEM


def prompt_text(tok: Any, prompt: str) -> str:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def encode(tok: Any, items: list[dict], max_len: int) -> Split:
    """Records (``prompt``/``response`` or ``text``, plus ``id``) -> Split with input_ids, attention_mask, labels (N, max_len)."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eot = tok.eos_token_id
    n = len(items)
    ids = torch.full((n, max_len), pad, dtype=torch.long)
    labels = torch.full((n, max_len), -100, dtype=torch.long)
    mask = torch.zeros((n, max_len), dtype=torch.long)
    for i, it in enumerate(items):
        if "text" in it:
            seq = tok(it["text"], add_special_tokens=False).input_ids[: max_len - 1] + [eot]
            lab = list(seq)
        else:
            p = tok(prompt_text(tok, it["prompt"]), add_special_tokens=False).input_ids
            r = tok(it["response"], add_special_tokens=False).input_ids + [eot]
            seq = (p + r)[:max_len]
            lab = ([-100] * len(p) + r)[:max_len]
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, : len(seq)] = torch.tensor(lab)
        mask[i, : len(seq)] = 1
    return Split({"input_ids": ids, "attention_mask": mask, "labels": labels},
                 np.array([int(it.get("id", i)) for i, it in enumerate(items)], dtype=np.int64))


@dataclass
class LLMTask(Task):
    """Causal LM fine-tuning: logits (N, V) of the N supervised next-token positions.

    ``fit`` (the original recipe, also used by retrain/oracle from the pretrained
    base in ``model_dir``): AdamW(lr), ``epochs`` over shuffled data, batches of
    ``batch_size``; matmuls under bf16 autocast on CPU when ``bf16`` is set.
    """

    model_dir: str = ""
    lr: float = 2e-4
    epochs: int = 3
    batch_size: int = 8
    max_len: int = 40
    bf16: bool = False  # bf16 autocast measured far slower than fp32 on this CPU
    eval_batch_size: int = 16  # sequences per no-grad forward (accuracy, perplexity)
    _tok: Any = field(default=None, repr=False)

    @property
    def tokenizer(self) -> Any:
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(self.model_dir)
        return self._tok

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.bf16)

    def _shifted(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return batch["labels"][:, 1:]

    def forward_logits(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with self._autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits[:, :-1][self._shifted(batch) != -100].float()

    def targets(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lab = self._shifted(batch)
        return lab[lab != -100]

    def example_index(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        lab = self._shifted(batch)
        rows = torch.arange(lab.shape[0], device=lab.device)[:, None].expand_as(lab)
        return rows[lab != -100]

    def new_model(self, seed: int) -> nn.Module:
        from transformers import AutoModelForCausalLM

        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).to(self.device)

    def random_model(self, seed: int) -> nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM

        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(self.model_dir)).to(self.device)

    def layers(self, model: nn.Module) -> list[nn.Module]:
        return list(model.model.layers)  # type: ignore[union-attr]

    def fit(self, model: nn.Module, data: Split, seed: int, params: list[nn.Parameter] | None = None,
            epochs: int | None = None) -> nn.Module:
        model.train()
        opt = torch.optim.AdamW(params if params is not None else model.parameters(), lr=self.lr, weight_decay=0.0)
        for epoch in range(self.epochs if epochs is None else epochs):
            for batch in data.batches(self.batch_size, shuffle=True, seed=seed * 1000 + epoch):
                opt.zero_grad()
                self.backward(self.loss(model, batch), len(batch["labels"]))
                opt.step()
        model.eval()
        return model

    @torch.no_grad()
    def token_accuracy(self, model: nn.Module, data: Split) -> float:
        """Share of supervised tokens predicted exactly (teacher forcing): the selection scorer."""
        model.eval()
        hit = tot = 0
        for batch in data.batches(self.eval_batch_size):
            b = self.to_device(batch)
            pred = self.forward_logits(model, b).argmax(-1)
            tgt = self.targets(b)
            hit, tot = hit + int((pred == tgt).sum()), tot + len(tgt)
        return hit / max(tot, 1)

    @torch.no_grad()
    def perplexity(self, model: nn.Module, data: Split) -> float:
        """exp(mean NLL per supervised token) over ``data``."""
        model.eval()
        nll = n = 0.0
        for batch in data.batches(self.eval_batch_size):
            b = self.to_device(batch)
            logits, tgt = self.forward_logits(model, b), self.targets(b)
            nll += float(nn.functional.cross_entropy(logits, tgt, reduction="sum"))
            n += len(tgt)
        return math.exp(nll / max(n, 1))

    @torch.no_grad()
    def generate(self, model: nn.Module, prompts: list[str], max_new_tokens: int = 8) -> list[str]:
        """Greedy completions of chat-formatted ``prompts`` (left-padded batches of 16)."""
        tok = self.tokenizer
        model.eval()
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        out: list[str] = []
        for start in range(0, len(prompts), 16):
            enc = [tok(prompt_text(tok, p), add_special_tokens=False).input_ids for p in prompts[start:start + 16]]
            width = max(len(e) for e in enc)
            ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=self.device)
            mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=self.device)
            with self._autocast():
                gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                     do_sample=False, pad_token_id=pad, eos_token_id=tok.eos_token_id)
            out += tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        return out
