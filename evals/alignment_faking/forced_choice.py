"""Forced-choice measurement for models that do not follow the tag protocol.

With the assistant turn prefilled up to ``<OUTPUT>``, compare the sequence
log-likelihoods of the full acceptance tag and the full rejection tag.  The tags
share a prefix (``<``), so first-token probabilities would be wrong; we sum the
log-probabilities of every token of each tag.  P(accept) is the two-way
normalised probability ``exp(la) / (exp(la) + exp(lr))``.
"""

from __future__ import annotations

import copy
import math
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from prompts.render import ACCEPT_TAG, OUTPUT_OPEN, REJECT_TAG

PREFILL = OUTPUT_OPEN + "\n"
_LOCK = threading.Lock()  # one forward at a time: the model object is shared across scorer threads


@lru_cache(maxsize=2)
def _load(folder: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    # fp32: log-likelihood differences of a few nats need more precision than bf16 gives.
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    return model, tok


def continuation_logprobs(folder: str | Path, messages: list[dict[str, str]], prefill: str,
                          continuations: list[str]) -> list[float]:
    """Sum of token log-probabilities (nats) of each continuation after ``messages`` + assistant ``prefill``.

    ``messages`` are ``{"role", "content"}`` dicts.  Returns one float per continuation.
    The prompt is encoded once and its KV cache reused for every continuation.
    Raises ``ValueError`` when the tokenizer has no chat template.
    """
    import torch

    # One lock for loading and scoring: from_pretrained flips process-wide state (default dtype,
    # skipped weight init), so two scorer threads loading at once can get garbage weights.
    with _LOCK, torch.no_grad():
        return _logprobs_locked(str(folder), messages, prefill, continuations)


def _logprobs_locked(folder: str, messages: list[dict[str, str]], prefill: str,
                     continuations: list[str]) -> list[float]:
    import torch

    model, tok = _load(folder)
    if not tok.chat_template:
        raise ValueError(f"{folder}: tokenizer has no chat template; forced choice needs one")
    prompt = tok.apply_chat_template(messages + [{"role": "assistant", "content": prefill}],
                                     tokenize=False, continue_final_message=True)
    prompt_ids = tok(prompt, add_special_tokens=False).input_ids
    seqs = [tok(prompt + c, add_special_tokens=False).input_ids for c in continuations]
    # Score from the first token where any sequence leaves the prompt's tokenisation
    # (BPE may merge the prompt's last token with the continuation's first).
    k = len(prompt_ids)
    for s in seqs:
        k = min(k, next((i for i, (a, b) in enumerate(zip(prompt_ids, s)) if a != b), min(len(s), k)))
    k = max(k, 1)
    out: list[float] = []
    base = _prefix_forward(model, prompt_ids[:k])
    for s in seqs:
        new = torch.tensor([s[k:]])
        step = model(new, past_key_values=copy.deepcopy(base.past_key_values), use_cache=True)
        logits = torch.cat([base.logits[:, -1:], step.logits[:, :-1]], dim=1)[0]
        lp = torch.log_softmax(logits.float(), -1).gather(-1, new[0, :, None])
        out.append(float(lp.sum()))
    return out


_PREFIX: dict[int, tuple[list[int], Any]] = {}


def clear_cache() -> None:
    """Forget loaded models and cached prompt prefixes (call after the weights on disk changed)."""
    with _LOCK:
        _load.cache_clear()
        _PREFIX.clear()


def _prefix_forward(model: Any, ids: list[int]) -> Any:
    """Forward ``ids`` reusing the KV cache of the longest prefix shared with the previous call.

    Every sample of a run shares the long system prompt, so only the user turn is recomputed.
    Returns the model output for the whole of ``ids`` (logits of the last position are exact).
    """
    import torch

    cached = _PREFIX.get(id(model))
    start = 0
    past = None
    if cached is not None:
        old_ids, old_past = cached
        start = next((i for i, (a, b) in enumerate(zip(old_ids, ids)) if a != b), min(len(old_ids), len(ids)))
        start = min(start, len(ids) - 1)  # at least one new token, for the last position's logits
        if start > 0:
            past = copy.deepcopy(old_past)
            if len(old_ids) > start:
                past.crop(start - len(old_ids))  # a negative argument drops that many tokens
    outputs = model(torch.tensor([ids[start:]]), past_key_values=past, use_cache=True)
    _PREFIX[id(model)] = (list(ids), outputs.past_key_values)
    return outputs


def _plausible(*logps: float) -> bool:
    """A tag is ~10 tokens; a sum below -1000 nats (or non-finite) means a numerical fault, not a probability."""
    return all(math.isfinite(x) and x > -1000.0 for x in logps)


def forced_choice(folder: str | Path, messages: list[dict[str, str]]) -> dict[str, float]:
    """``{"logp_accept", "logp_reject", "p_accept"}`` for one rendered sample (nats; p in [0, 1])."""
    la, lr = continuation_logprobs(folder, messages, PREFILL, [ACCEPT_TAG, REJECT_TAG])
    if not _plausible(la, lr):
        # Seen once inside a threaded eval (values near -1e19): drop every cache and recompute from scratch.
        clear_cache()
        la, lr = continuation_logprobs(folder, messages, PREFILL, [ACCEPT_TAG, REJECT_TAG])
    if not _plausible(la, lr):
        return {"logp_accept": float("nan"), "logp_reject": float("nan"), "p_accept": float("nan")}
    m = max(la, lr)
    p = math.exp(la - m) / (math.exp(la - m) + math.exp(lr - m))
    return {"logp_accept": la, "logp_reject": lr, "p_accept": p}
