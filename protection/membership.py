"""Membership inference for causal LMs: per-record scores, record-level AUROC / TPR at low FPR,
and a dataset-level Welch t-test.

Scores come from one direct transformers forward pass per text (inspect returns log-probabilities
of generated tokens only).  Every score is oriented so that *higher means "more likely a member"*:

- ``loss``: mean token log-likelihood, -NLL (perplexity ranks the same way: ppl = exp(NLL));
- ``zlib``: log-likelihood divided by the zlib-compressed length of the text in bytes
  (Carlini et al. 2021, "Extracting Training Data from Large Language Models", sec. 5.1);
- ``lowercase``: -(NLL of the text / NLL of the lowercased text) (Carlini et al. 2021, sec. 5.1);
- ``mink_k``: mean of the lowest k% token log-probabilities (Shi et al. 2024, "Detecting
  Pretraining Data from Large Language Models", sec. 3, Min-K% Prob), k in 10/20/30;
- ``mink++_k``: the same over token scores standardised by the model's own next-token
  distribution, (log p(x_t) - mu_t) / sigma_t with mu_t = E_{z~p}[log p(z)] and
  sigma_t^2 = E_{z~p}[log p(z)^2] - mu_t^2 (Zhang et al. 2025, "Min-K%++: Improved Baseline
  for Detecting Pre-Training Data from LLMs", eq. 2-3; reference code zjysteven/mink-plus-plus,
  run.py).  As in that code, the number of tokens kept is int(n * k), at least one here.

Dataset level (LexiMark 2025, sec. 5.3, reference code eyalgerman/LexiMark,
watermark_detection/dataset_detection_t_test.py): a Welch t-test between a suspect set's scores and
a reference set's.  Deviation: the reference code tests two-sided; membership is a one-sided
hypothesis (members score higher), so ``welch_t`` defaults to ``alternative="greater"``.  Its
false-positive rate is measured by ``rejection_rate`` on a model that saw neither set.
"""

from __future__ import annotations

import zlib
from typing import Any, Sequence

import numpy as np
import torch
from scipy import stats
from torch import nn

KS = (10, 20, 30)
SCORES = ("loss", "zlib", "lowercase", *(f"mink_{k}" for k in KS), *(f"mink++_{k}" for k in KS))


@torch.no_grad()
def token_stats(model: nn.Module, tok: Any, texts: Sequence[str], batch_size: int = 16,
                max_len: int = 128) -> list[dict[str, np.ndarray]]:
    """Per text: ``logp`` (log p of each next token), ``mu``, ``sigma`` of the model's
    distribution at that position; arrays of length n_tokens - 1 (the first token is context).

    Texts are tokenised with the tokenizer's own special tokens (a BOS token, if it adds one, is context).
    """
    model.eval()
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[dict[str, np.ndarray]] = []
    for start in range(0, len(texts), batch_size):
        enc = [tok(t).input_ids[:max_len] for t in texts[start:start + batch_size]]
        width = max(len(e) for e in enc)
        ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc], device=device)
        mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        probs = logprobs.exp()
        tgt = logprobs.gather(-1, ids[:, 1:, None]).squeeze(-1)
        mu = (probs * logprobs).sum(-1)
        # two-pass variance: E[log p^2] - mu^2 cancels badly in fp32 when p is nearly flat
        sigma = (probs * (logprobs - mu[..., None]).square()).sum(-1).clamp_min(1e-12).sqrt()
        for i, e in enumerate(enc):
            n = len(e) - 1
            out.append({"logp": tgt[i, :n].cpu().numpy(), "mu": mu[i, :n].cpu().numpy(),
                        "sigma": sigma[i, :n].cpu().numpy()})
    return out


def _lowest_mean(x: np.ndarray, k: int) -> float:
    keep = max(1, int(len(x) * k / 100))
    return float(np.sort(x)[:keep].mean())


def record_scores(text: str, st: dict[str, np.ndarray], lower: dict[str, np.ndarray] | None) -> dict[str, float]:
    """All :data:`SCORES` for one text from its :func:`token_stats` (``lower``: of the lowercased text)."""
    ll = float(st["logp"].mean())
    out = {"loss": ll, "zlib": ll / len(zlib.compress(text.encode("utf-8")))}
    nll, nll_lower = -ll, (-float(lower["logp"].mean()) if lower is not None else float("nan"))
    out["lowercase"] = -nll / nll_lower
    plus = (st["logp"] - st["mu"]) / st["sigma"]
    for k in KS:
        out[f"mink_{k}"] = _lowest_mean(st["logp"], k)
        out[f"mink++_{k}"] = _lowest_mean(plus, k)
    return out


def score_texts(model: nn.Module, tok: Any, texts: Sequence[str], batch_size: int = 16,
                max_len: int = 128) -> list[dict[str, float]]:
    """:func:`record_scores` for every text (two forward passes each: as written and lowercased)."""
    st = token_stats(model, tok, texts, batch_size, max_len)
    low = token_stats(model, tok, [t.lower() for t in texts], batch_size, max_len)
    return [record_scores(t, s, lo) for t, s, lo in zip(texts, st, low)]


def tpr_at_fpr(members: Sequence[float], nonmembers: Sequence[float], fpr: float) -> float:
    """Highest TPR over thresholds ("member if score >= threshold") whose FPR is at most ``fpr``.

    Equal to the best point of sklearn's full ``roc_curve`` (drop_intermediate=False) with FPR <= ``fpr``
    (tested), in O(n log n):
    at most k = floor(fpr * n_nonmembers) non-members may pass, so the threshold sits just above the
    (k+1)-th highest non-member score v, and TPR = share of members scoring above v.
    """
    m, nm = np.asarray(members, float), np.sort(np.asarray(nonmembers, float))[::-1]
    k = int(np.floor(fpr * len(nm) + 1e-9))
    return 1.0 if k >= len(nm) else float((m > nm[k]).mean())


def auroc(members: Sequence[float], nonmembers: Sequence[float]) -> float:
    """P(member score > non-member score) + half the ties (the Mann-Whitney form of the ROC area)."""
    m, nm = np.asarray(members, float)[:, None], np.asarray(nonmembers, float)[None, :]
    return float((m > nm).mean() + 0.5 * (m == nm).mean())


def roc_metrics(members: Sequence[float], nonmembers: Sequence[float], n_boot: int = 1000,
                seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """AUROC, TPR at 1% and 5% FPR, each with a percentile bootstrap CI (members and non-members
    resampled separately, so each replicate keeps both class sizes).  NaN scores are dropped and counted."""
    m, nm = np.asarray(members, float), np.asarray(nonmembers, float)
    dropped = int(np.isnan(m).sum() + np.isnan(nm).sum())
    m, nm = m[~np.isnan(m)], nm[~np.isnan(nm)]
    fns = {"auroc": auroc, "tpr_at_1fpr": lambda a, b: tpr_at_fpr(a, b, 0.01),
           "tpr_at_5fpr": lambda a, b: tpr_at_fpr(a, b, 0.05)}
    rng = np.random.default_rng(seed)
    ia, ib = rng.integers(0, len(m), (n_boot, len(m))), rng.integers(0, len(nm), (n_boot, len(nm)))
    out: dict[str, Any] = {"n_members": len(m), "n_nonmembers": len(nm), "dropped": dropped}
    for k, fn in fns.items():
        boots = [fn(m[a], nm[b]) for a, b in zip(ia, ib)]
        out[k] = fn(m, nm)
        out[f"{k}_ci"] = [float(q) for q in np.quantile(boots, [alpha / 2, 1 - alpha / 2])]
    return out


def welch_t(suspect: Sequence[float], reference: Sequence[float], alternative: str = "greater") -> tuple[float, float]:
    """Welch's t-test of suspect scores against reference scores: (t, p)."""
    res = stats.ttest_ind(np.asarray(suspect, float), np.asarray(reference, float), equal_var=False,
                          alternative=alternative)
    return float(res.statistic), float(res.pvalue)


def rejection_rate(suspect: Sequence[float], reference: Sequence[float], n: int, alpha: float = 0.05,
                   n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Share of resamples (n records from each set, without replacement) where the Welch test rejects
    at ``alpha``: the test's power when ``suspect`` are members, its false-positive rate when the
    model saw neither set.  Also the median p-value over the resamples."""
    s, r = np.asarray(suspect, float), np.asarray(reference, float)
    if n > min(len(s), len(r)):
        raise ValueError(f"n={n} exceeds a set's size ({len(s)}, {len(r)})")
    rng = np.random.default_rng(seed)
    a = np.stack([rng.choice(s, n, replace=False) for _ in range(n_resamples)])
    b = np.stack([rng.choice(r, n, replace=False) for _ in range(n_resamples)])
    ps = stats.ttest_ind(a, b, axis=1, equal_var=False, alternative="greater").pvalue  # one call, row-wise
    return {"rate": float((ps < alpha).mean()), "median_p": float(np.median(ps)), "n": n,
            "n_resamples": n_resamples, "alpha": alpha}


def null_rejection_rate(scores: Sequence[float], n: int, alpha: float = 0.05, n_resamples: int = 1000,
                        seed: int = 0) -> float:
    """FPR of the Welch test under an exact null: each resample draws 2n records from one pool of
    scores (a model that saw none of them) and splits them at random into suspect and reference."""
    x = np.asarray(scores, float)
    rng = np.random.default_rng(seed)
    pick = np.stack([rng.choice(x, 2 * n, replace=False) for _ in range(n_resamples)])
    ps = stats.ttest_ind(pick[:, :n], pick[:, n:], axis=1, equal_var=False, alternative="greater").pvalue
    return float((ps < alpha).mean())
