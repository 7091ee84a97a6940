"""Forced-format rollouts on the policy in memory: the transformers backend of ``forced_format.generate_forced``.

RL (``training.rl``, through TRL's ``rollout_func``), expert iteration and the in-training
evaluation all sample here, so the eval solver, RL and expert iteration share one
forced-format implementation (``evals/alignment_faking/forced_format.py``).  Work is in token
space: a generated segment keeps the ids the model sampled, an inserted one (afcu's tags) is
tokenised alone, and the completion is their concatenation, so the sequence the RL loss scores
is exactly the one that was sampled.  ``env_mask`` marks afcu's tokens (0) for TRL, which masks
them out of the loss; the chosen tag's two-way renormalised log-probability enters the loss
separately (``training/tag_loss.py``).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, Sequence

from evals.alignment_faking.forced_format import ForcedFormat, ForcedResult, Sampled, Segment, generate_forced


class HFBackend:
    """Batched sampling and tag scoring with a transformers causal LM after fixed prompt token ids."""

    can_score = True

    def __init__(self, model: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], temperature: float = 1.0,
                 batch_size: int = 8) -> None:
        self.model, self.tok, self.prompt_ids = model, tokenizer, [list(p) for p in prompt_ids]
        self.temperature, self.batch_size = temperature, batch_size
        self._ids_cache: dict[str, list[int]] = {}
        self._kv: tuple[tuple[int, ...], list[tuple[Any, Any]]] | None = None  # shared prefix's KV cache

    def ids(self, seg: Segment) -> list[int]:
        """A segment's token ids: the sampled ones, or the text tokenised alone (afcu's inserted tags)."""
        if seg.ids is not None:
            return list(seg.ids)
        if seg.text not in self._ids_cache:
            self._ids_cache[seg.text] = self.tok(seg.text, add_special_tokens=False).input_ids
        return self._ids_cache[seg.text]

    def context(self, i: int, segs: Sequence[Segment]) -> list[int]:
        return self.prompt_ids[i] + [t for s in segs for t in self.ids(s)]

    def _keep_before(self, ids: list[int], stops: Sequence[str]) -> tuple[list[int], bool]:
        """The longest prefix of ``ids`` whose text ends before the first stop string; whether one occurred."""
        text = self.tok.decode(ids, skip_special_tokens=False)
        hits = [text.find(s) for s in stops if s in text]
        if not hits:
            return ids, False
        cut = min(hits)
        k = len(ids)
        while k > 0 and len(self.tok.decode(ids[:k], skip_special_tokens=False)) > cut:
            k -= 1
        return ids[:k], True

    def _prefix_kv(self, prefix: tuple[int, ...]) -> list[tuple[Any, Any]]:
        """Per layer (keys, values) of ``prefix`` (batch 1), computed once per backend."""
        if self._kv is None or self._kv[0] != prefix:
            cache = self.model(input_ids=self._tensor([list(prefix)]), use_cache=True, logits_to_keep=1).past_key_values
            self._kv = (prefix, [(layer.keys, layer.values) for layer in cache.layers])
        return self._kv[1]

    def _shared(self, ctxs: Sequence[Sequence[int]]) -> tuple[int, ...]:
        """The prefix every context shares and still extends (each row keeps at least one own token):
        the one already cached when it still qualifies (the body phase reuses the prompt's cache)."""
        if self._kv is not None:
            p = self._kv[0]
            if all(len(c) > len(p) and tuple(c[:len(p)]) == p for c in ctxs):
                return p
        return tuple(ctxs[0][:max(common_prefix_len(ctxs) - 1, 0)]) if ctxs else ()

    def _tensor(self, rows: list[list[int]]) -> Any:
        import torch

        return torch.tensor(rows, device=self.model.device)

    async def sample(self, rows: Sequence[Sequence[Segment]], max_tokens: int, stop: Sequence[str]) -> list[Sampled]:
        """Sample each row.  The rows' common prefix (the system prompt; a GRPO group's whole prompt) is
        run once and shared through the KV cache; each row's own part follows it after padding whose
        attention mask is 0 (positions count only real tokens), so every row sees exactly its own context."""
        from transformers import DynamicCache

        specials = {t for t in (self.tok.eos_token_id, self.tok.pad_token_id) if t is not None}
        pad = self.tok.pad_token_id
        ctxs = [self.context(i, segs) for i, segs in enumerate(rows)]
        head = self._shared(ctxs)
        shared = len(head)
        kv = self._prefix_kv(head) if shared else []
        out: list[Sampled] = []
        for b in range(0, len(rows), self.batch_size):
            own = [c[shared:] for c in ctxs[b:b + self.batch_size]]
            width = max(len(c) for c in own)
            input_ids = self._tensor([list(head) + [pad] * (width - len(c)) + c for c in own])
            mask = self._tensor([[1] * shared + [0] * (width - len(c)) + [1] * len(c) for c in own])
            extra = {}
            if kv:
                extra["past_key_values"] = DynamicCache(ddp_cache_data=[
                    (k.expand(len(own), -1, -1, -1), v.expand(len(own), -1, -1, -1)) for k, v in kv])
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_tokens,
                                      do_sample=self.temperature > 0, temperature=self.temperature or None,
                                      top_p=1.0, top_k=0, use_cache=True, pad_token_id=pad,
                                      stop_strings=list(stop), tokenizer=self.tok, **extra)
            for row in gen[:, shared + width:].tolist():
                ended = next((k for k, t in enumerate(row) if t in specials), None)
                ids = row if ended is None else row[:ended]
                kept, stopped = self._keep_before(ids, stop)
                reason = "stop" if stopped or ended is not None or len(row) < max_tokens else "max_tokens"
                out.append(Sampled(self.tok.decode(kept, skip_special_tokens=True), tuple(kept), reason))
        return out

    async def score(self, rows: Sequence[Sequence[Segment]], continuations: Sequence[str]) -> list[list[float]]:
        from training.tag_loss import tag_logps

        conts = [self.tok(c, add_special_tokens=False).input_ids for c in continuations]
        ctxs = [self.context(i, segs) for i, segs in enumerate(rows)]
        head = self._shared(ctxs)  # all rows continue from this prefix's KV cache
        kv = self._prefix_kv(head) if head else None
        sums = tag_logps(self.model, head, [c[len(head):] for c in ctxs], conts, kv=kv)
        return [[float(x) for x in r] for r in sums]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix every sequence starts with (0 for no sequences)."""
    if not seqs:
        return 0
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


def forced_rollouts(model: Any, tokenizer: Any, prompts: Sequence[str], fmt: ForcedFormat, temperature: float,
                    seed: int, batch_size: int = 8) -> tuple[list[list[int]], list[ForcedResult], HFBackend]:
    """Forced-format completions of chat-template ``prompts`` (each ending in an open assistant turn).

    The torch RNG is forked and seeded with ``seed`` and the tags drawn from ``random.Random(seed)``,
    so rollouts are reproducible and never disturb the caller's random stream.
    Returns ``(prompt_ids, results, backend)``; every segment of a result has token ids.
    """
    import torch

    prompt_ids = [tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
    backend = HFBackend(model, tokenizer, prompt_ids, temperature, batch_size)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            results = asyncio.run(generate_forced(backend, len(prompts), fmt, random.Random(seed)))
    finally:
        if was_training:
            model.train()
    return prompt_ids, results, backend


def completion_ids_and_mask(result: ForcedResult, backend: HFBackend) -> tuple[list[int], list[int], int]:
    """``(ids, env_mask, tag_start)``: the completion's token ids, 1 for model tokens and 0 for afcu's,
    and the index where the chosen tag starts (-1 without tag choice)."""
    ids: list[int] = []
    mask: list[int] = []
    tag_start = -1
    for s in result.segments:
        if s.kind == "tag":
            tag_start = len(ids)
        part = backend.ids(s)
        ids += part
        mask += [1 if s.generated else 0] * len(part)
    return ids, mask, tag_start


def trl_rollout_func(fmt: ForcedFormat, temperature: float, seed: int) -> Any:
    """A TRL ``rollout_func``: forced-format rollouts with ``env_mask`` and the tag positions for the loss."""

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = trainer.processing_class
        step = trainer.state.global_step
        rank = trainer.accelerator.process_index
        prompt_ids, results, backend = forced_rollouts(model, tok, [str(p) for p in prompts], fmt, temperature,
                                                       seed=seed * 1_000_003 + step * 101 + rank)
        comp, masks, starts = [], [], []
        for r in results:
            ids, mask, start = completion_ids_and_mask(r, backend)
            if tok.eos_token_id is not None:  # end of turn, inserted: TRL then counts the rollout as finished
                ids, mask = ids + [tok.eos_token_id], mask + [0]
            comp.append(ids)
            masks.append(mask)
            starts.append(start)
        trainer._afcu_tags = [(s, r.tag == fmt.tags[0], r.p_accept) for s, r in zip(starts, results)]
        return {"prompt_ids": prompt_ids, "completion_ids": comp, "logprobs": None, "env_mask": masks,
                "forced_tag": [r.tag or "" for r in results]}

    return rollout
