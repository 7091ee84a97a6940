"""Did corrective unlearning remove the data, or only its symptom?  Membership verification of
LexiMark-watermarked manipulated documents (issue 17, item 4; methods: protection/leximark.py,
protection/membership.py).  The llm track's glue is unlearning/llm_verify.py
(``afcu unlearn bench --track llm --verify membership``).

Protocol: the manipulated documents S_m and a reference set of documents from the same source that
are never trained on are watermarked with one LexiMark map (members and reference alike, as in the
LexiMark paper).  After a method unlearns the flagged part S_f of S_m, the membership score of the
flagged and of the unflagged manipulated documents is compared with the reference set's: record-level
AUROC (with a bootstrap CI) and a one-sided Welch t-test.  The never-trained control (the base model
before any fine-tuning) gives the AUROC that "never seen" looks like; a method that hides the
behaviour but leaves the data memorised keeps the flagged AUROC well above the control's.

Documents may carry a *context*: the token ids the model saw before the document in training (in
the llm track, the chat-formatted prompt and the backdoor phrase before the passage of a response).
Then only the document's own tokens are scored, each in that context, so the score covers exactly
the trained tokens; without a context a document is scored as plain text (membership.score_texts).

Entry points for a track: :func:`prepare` once per (manipulation, seed) before training (the track
trains on ``Prepared.manipulated``), then :func:`score` per model and :func:`columns` per flagged set
(:func:`verify` does both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from afcu.errors import AfcuError
from protection import membership as mi
from protection.leximark import LexiMarkConfig, watermark


@dataclass(frozen=True)
class MembershipConfig:
    """``--verify membership`` settings of the unlearning bench (``--membership`` overrides)."""

    score: str = field(default="loss", metadata={
        "help": "membership score behind the AUROC columns (protection/membership.py SCORES)"})
    n_reference: int = field(default=20, metadata={"help": "never-trained reference documents (held-out prompts)"})
    sentences: int = field(default=1, metadata={"help": "WordNet example sentences per manipulated passage"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples of each AUROC CI"})
    leximark: dict = field(default_factory=dict, metadata={"help": "LexiMarkConfig overrides, e.g. {k: 2}"})

    def __post_init__(self) -> None:
        if self.score not in mi.SCORES:
            raise AfcuError(f"membership: field 'score': {self.score!r} is not one of {', '.join(mi.SCORES)}")
        if self.n_reference < 2 or self.sentences < 1 or self.n_boot < 1:
            raise AfcuError("membership: fields 'n_reference' (>= 2), 'sentences' (>= 1) and 'n_boot' (>= 1) "
                            f"got {self.n_reference}, {self.sentences}, {self.n_boot}")


@dataclass
class Prepared:
    """Watermarked manipulated documents (in S_m order), the watermarked reference set, LexiMark stats;
    optional training contexts (token ids before each document; None: plain text)."""

    manipulated: list[str]
    reference: list[str]
    stats: dict[str, Any]
    contexts: list[list[int]] | None = None
    reference_contexts: list[list[int]] | None = None


def prepare(manipulated: Sequence[str], reference: Sequence[str], cfg: LexiMarkConfig = LexiMarkConfig(),
            model: Any = None, tok: Any = None) -> Prepared:
    """One LexiMark map over S_m and the reference documents (``model``/``tok``: the context filter)."""
    if not manipulated or len(reference) < 2:
        raise ValueError("membership verification needs manipulated documents and >= 2 reference documents")
    wm = watermark([*manipulated, *reference], cfg, model, tok)
    n = len(manipulated)
    return Prepared(wm.texts[:n], wm.texts[n:], {**wm.stats, "mapping": wm.mapping})


@torch.no_grad()
def context_stats(model: Any, tok: Any, contexts: Sequence[Sequence[int]], texts: Sequence[str],
                  max_len: int = 128, batch_size: int = 16) -> list[dict[str, np.ndarray]]:
    """:func:`membership.token_stats` for each text read after its context ids, over the text's tokens only.

    A text is tokenised without special tokens and appended to its context, then cut at ``max_len``
    (as unlearning/llm.py ``encode`` builds a training row); an empty context makes the first token context.
    """
    model.eval()
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(texts), batch_size):
        seqs, spans = [], []
        for ctx, text in zip(contexts[start:start + batch_size], texts[start:start + batch_size]):
            seq = (list(ctx) + tok(text, add_special_tokens=False).input_ids)[:max_len]
            first = max(len(ctx), 1)
            if first >= len(seq):
                raise ValueError(f"context_stats: no token of {text[:40]!r} fits in max_len={max_len}")
            seqs.append(seq)
            spans.append((first - 1, len(seq) - 1))  # logits at j-1 predict token j
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        # only the scored positions go through the softmax (the vocabulary-wide part dominates the cost);
        # the same statistics as membership.token_stats (two-pass variance)
        rows = torch.tensor([i for i, (a, b) in enumerate(spans) for _ in range(a, b)], device=device)
        cols = torch.tensor([j for a, b in spans for j in range(a, b)], device=device)
        logprobs = torch.log_softmax(logits[rows, cols].float(), dim=-1)
        tgt = logprobs.gather(-1, ids[rows, cols + 1][:, None]).squeeze(-1)
        probs = logprobs.exp()
        mu = (probs * logprobs).sum(-1)
        sigma = (probs * (logprobs - mu[:, None]).square()).sum(-1).clamp_min(1e-12).sqrt()
        start_of = 0
        for a, b in spans:
            sl = slice(start_of, start_of + b - a)
            out.append({"logp": tgt[sl].cpu().numpy(), "mu": mu[sl].cpu().numpy(), "sigma": sigma[sl].cpu().numpy()})
            start_of += b - a
    return out


def score(model: Any, tok: Any, prep: Prepared, max_len: int = 128) -> tuple[dict[str, np.ndarray],
                                                                              dict[str, np.ndarray]]:
    """Every membership score of the manipulated and of the reference documents: two maps score -> array."""
    texts = [*prep.manipulated, *prep.reference]
    if prep.contexts is None:
        rows = mi.score_texts(model, tok, texts, max_len=max_len)
    else:
        ctx = [*prep.contexts, *(prep.reference_contexts or [])]
        st = context_stats(model, tok, ctx, texts, max_len)
        low = context_stats(model, tok, ctx, [t.lower() for t in texts], max_len)
        rows = [mi.record_scores(t, s, lo) for t, s, lo in zip(texts, st, low)]
    n = len(prep.manipulated)
    arr = {s: np.array([r[s] for r in rows], float) for s in mi.SCORES}
    return {s: a[:n] for s, a in arr.items()}, {s: a[n:] for s, a in arr.items()}


def columns(manip: np.ndarray, ref: np.ndarray, flagged: Sequence[int], n_boot: int = 1000, seed: int = 0,
            control: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float | int | None]:
    """AUROC (+ ``_lo``/``_hi``, a 95% bootstrap CI) and one-sided Welch p of the flagged and of the
    unflagged manipulated documents' scores against the reference scores.

    ``flagged``: positions in ``manip``.  A part with no document gets None.  ``control``: the
    never-trained model's (manipulated, reference) scores; ``mia_auroc_control`` is its AUROC on the
    same flagged documents (on all of S_m when none is flagged).
    """
    mask = np.zeros(len(manip), bool)
    mask[list(flagged)] = True
    out: dict[str, float | int | None] = {"mia_n_flagged": int(mask.sum()), "mia_n_unflagged": int((~mask).sum()),
                                          "mia_n_reference": len(ref)}
    parts = [("flagged", manip[mask], ref), ("unflagged", manip[~mask], ref)]
    if control is not None:
        parts.append(("control", control[0][mask] if mask.any() else control[0], control[1]))
    for name, part, against in parts:
        if len(part) == 0:
            out.update({f"mia_auroc_{name}": None, f"mia_auroc_{name}_lo": None, f"mia_auroc_{name}_hi": None,
                        f"mia_p_{name}": None})
            continue
        roc = mi.roc_metrics(part, against, n_boot=n_boot, seed=seed)
        out[f"mia_auroc_{name}"] = roc["auroc"]
        out[f"mia_auroc_{name}_lo"], out[f"mia_auroc_{name}_hi"] = roc["auroc_ci"]
        out[f"mia_p_{name}"] = mi.welch_t(part, against)[1] if len(part) > 1 else None
    return out


def verify(model: Any, tok: Any, prep: Prepared, flagged: Sequence[int], score_name: str = "mink++_20",
           n_boot: int = 1000, seed: int = 0, max_len: int = 128) -> dict[str, float | int | None]:
    """Membership of the flagged and unflagged manipulated documents against the reference set.

    ``flagged``: positions in ``prep.manipulated`` that the method was asked to forget.  Returns
    ``mia_auroc_flagged`` (+ ``_lo``/``_hi``), ``mia_p_flagged`` (one-sided Welch), the same for the
    unflagged ones (None when every document was flagged), and the counts.
    """
    if score_name not in mi.SCORES:
        raise ValueError(f"score {score_name!r} is not one of {', '.join(mi.SCORES)}")
    manip, ref = score(model, tok, prep, max_len)
    return columns(manip[score_name], ref[score_name], flagged, n_boot, seed)
