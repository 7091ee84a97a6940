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


def tag_logq(model: Any, prefix_ids: Sequence[Sequence[int]], tags: Sequence[Sequence[int]],
             chosen: Sequence[int]) -> Any:
    """Renormalised log-probability (nats, with gradient) of tag ``chosen[i]`` among ``tags`` after ``prefix_ids[i]``.

    One forward per row over ``prefix + tag`` for every tag (right-padded, so no position shifts).
    Returns a tensor of shape ``(len(prefix_ids),)``.
    """
    import torch

    out = []
    width = max(len(t) for t in tags)
    for prefix, c in zip(prefix_ids, chosen):
        seqs = [list(prefix) + list(t) + [0] * (width - len(t)) for t in tags]
        # Only the last width + 1 positions' logits: the prompt's would cost prompt length x vocabulary.
        logits = model(input_ids=torch.tensor(seqs, device=model.device), logits_to_keep=width + 1).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1)  # row k predicts the tag token at len(prefix) + k
        sums = torch.stack([logp[k, torch.arange(len(t)), torch.tensor(t)].sum() for k, t in enumerate(tags)])
        out.append(sums[c] - torch.logsumexp(sums, 0))
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
        prefixes = []
        for i in rows:
            prompt = inputs["prompt_ids"][i][inputs["prompt_mask"][i].bool()].tolist()
            prefixes.append(prompt + inputs["completion_ids"][i][: int(starts[i])].tolist())
        chosen = [0 if int(inputs["afcu_tag_accept"][i]) else 1 for i in rows]
        logq = tag_logq(model, prefixes, self.afcu_tag_ids, chosen)
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
