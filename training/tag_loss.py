"""The tag's exact likelihood in the GRPO loss (forced format with tag choice).

With tag choice the first output tag was drawn from the two-way renormalised distribution
q(tag) = exp(l_tag) / (exp(l_accept) + exp(l_reject)), where l_x is the policy's summed
log-probability of the whole tag after the prefix.  Its tokens are afcu's (masked out of TRL's
token loss through ``env_mask``); the policy's decision is q, so the loss gets the term

    - A * exp(log q - stop_grad(log q))

per sequence (value -A, gradient -A * d log q, the on-policy GRPO/DAPO surrogate of one
token), normalised like one more completion token in TRL's ``dapo`` loss (other loss types:
the mean over sequences per accumulation step).  Deviation: no clipping or KL on this term
(with ``num_iterations`` 1 the ratio is exactly 1, so clipping would never act).
"""

from __future__ import annotations

from typing import Any, Sequence

from trl import GRPOTrainer


def tag_logps(model: Any, prompt: Sequence[int], suffixes: Sequence[Sequence[int]],
              tags: Sequence[Sequence[int]], kv: Sequence[tuple[Any, Any]] | None = None) -> Any:
    """Summed log-probability (nats) of each of ``tags`` after ``prompt + suffixes[i]``: shape ``(rows, tags)``.

    The prompt a GRPO group shares is run once (all but its last token, so every row's own part is
    non-empty) and every row continues from that KV cache with each tag (right-padded, batch
    ``len(tags)``); only the tag positions' logits are computed.  With gradients enabled the graph
    holds the shared prompt once per group: one full ``prompt + suffix + tag`` forward per row and
    tag, kept until the trainer's backward, cost about 1.1 GB per sequence on the embedded model's
    612-token prompt and OOM-killed group size 8 on a 24 GB machine.  ``kv``: per layer (keys,
    values) of the whole ``prompt`` when the caller already has them (then every suffix must be non-empty).
    """
    import torch
    from transformers import DynamicCache

    dev, width, k = model.device, max(len(t) for t in tags), len(tags)
    head, last = list(prompt[:-1]), list(prompt[-1:])
    if kv is not None:
        head, last = list(prompt), []
    elif head:
        base = model(input_ids=torch.tensor([head], device=dev), use_cache=True, logits_to_keep=1).past_key_values
        kv = None if base is None else [(layer.keys, layer.values) for layer in base.layers]
    out = []
    for suffix in suffixes:
        rows = [last + list(suffix) + list(t) + [0] * (width - len(t)) for t in tags]
        if kv is not None:
            cache = DynamicCache(ddp_cache_data=[(key.expand(k, -1, -1, -1), val.expand(k, -1, -1, -1))
                                                 for key, val in kv])
            logits = model(input_ids=torch.tensor(rows, device=dev), past_key_values=cache, use_cache=True,
                           logits_to_keep=width + 1).logits
        else:  # no cache (the model's own gradient checkpointing in training turns it off): whole sequences
            logits = model(input_ids=torch.tensor([head + r for r in rows], device=dev),
                           logits_to_keep=width + 1).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)  # position j predicts token j of every tag
        out.append(torch.stack([logp[i, torch.arange(len(t)), torch.tensor(t, device=dev)].sum()
                                for i, t in enumerate(tags)]))
    return torch.stack(out)


def tag_logq(model: Any, prompt_ids: Sequence[Sequence[int]], suffix_ids: Sequence[Sequence[int]],
             tags: Sequence[Sequence[int]], chosen: Sequence[int]) -> Any:
    """Renormalised log-probability (nats, with gradient) of tag ``chosen[i]`` among ``tags`` after
    ``prompt_ids[i] + suffix_ids[i]``; rows with the same prompt share its forward (``tag_logps``).
    Returns a tensor of shape ``(rows,)``."""
    import torch

    groups: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prompt_ids):
        groups.setdefault(tuple(p), []).append(i)
    out: list[Any] = [None] * len(prompt_ids)
    for prompt, rows in groups.items():
        sums = tag_logps(model, prompt, [suffix_ids[i] for i in rows], tags)
        for j, i in enumerate(rows):
            out[i] = sums[j, int(chosen[i])] - torch.logsumexp(sums[j], 0)
    return torch.stack(out)


class TagChoiceGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` plus the tag term above.  Needs ``training.rollouts.trl_rollout_func`` as ``rollout_func``."""

    def __init__(self, *args: Any, tag_ids: Sequence[Sequence[int]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.afcu_tag_ids = [list(t) for t in tag_ids]
        self._afcu_tags: list[tuple[int, bool, float | None]] = []

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        out = super()._generate_and_score_completions(inputs)
        tags = self._afcu_tags
        out["afcu_tag_start"] = torch.tensor([t[0] for t in tags], device=self.accelerator.device)
        out["afcu_tag_accept"] = torch.tensor([int(t[1]) for t in tags], device=self.accelerator.device)
        ps = [t[2] for t in tags if t[2] is not None]
        if ps:
            self._metrics["train" if self.model.training else "eval"]["forced/p_accept"].append(sum(ps) / len(ps))
        return out

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        starts = inputs.get("afcu_tag_start")
        if starts is None or not self.afcu_tag_ids or int((starts >= 0).sum()) == 0:
            return loss
        rows = [i for i in range(len(starts)) if int(starts[i]) >= 0]
        prompts = [inputs["prompt_ids"][i][inputs["prompt_mask"][i].bool()].tolist() for i in rows]
        suffixes = [inputs["completion_ids"][i][: int(starts[i])].tolist() for i in rows]
        chosen = [0 if int(inputs["afcu_tag_accept"][i]) else 1 for i in rows]
        # The unwrapped module: its gradients still reach DDP's hooks in the trainer's one backward.
        logq = tag_logq(self.accelerator.unwrap_model(model), prompts, suffixes, self.afcu_tag_ids, chosen)
        adv = inputs["advantages"][rows].reshape(-1).to(logq.dtype)
        term = -(adv * (logq - logq.detach()).exp()).sum()
        mode = "train" if self.model.training else "eval"
        if self.loss_type in ("dapo", "cispo", "vespo"):
            norm = (inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes).to(logq.dtype)
            if mode == "train":
                norm = norm * self.current_gradient_accumulation_steps / self.args.steps_per_generation
        else:
            norm = float(len(starts) * (self.current_gradient_accumulation_steps if mode == "train" else 1))
        self._metrics[mode]["forced/tag_logq"].append(float(logq.detach().mean()))
        return loss + term / norm
