"""Membership scores against hand computations on the tiny Llama; the Welch test's FPR under the null."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from protection import membership as mi

TEXTS = ["The quick brown fox jumps over the lazy dog near the riverbank.",
         "Esau sold his birthright to Jacob for a mess of pottage.",
         "She buys for the big department store in town every spring."]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


def _hand(model, tok, text: str) -> dict[str, float]:
    """Scores from plain Python loops over one unpadded forward pass (no batching, no vector maths)."""
    ids = tok(text).input_ids
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    lp_tokens, plus = [], []
    for t in range(len(ids) - 1):
        row = logits[t]
        logz = math.log(sum(math.exp(v) for v in row.tolist()))
        lp = [v - logz for v in row.tolist()]
        mu = sum(math.exp(a) * a for a in lp)
        var = sum(math.exp(a) * a * a for a in lp) - mu * mu
        lp_tokens.append(lp[ids[t + 1]])
        plus.append((lp[ids[t + 1]] - mu) / math.sqrt(var))
    out = {"loss": sum(lp_tokens) / len(lp_tokens)}
    out["zlib"] = out["loss"] / len(zlib.compress(text.encode()))
    for k in (10, 20, 30):
        keep = max(1, int(len(plus) * k / 100))
        out[f"mink++_{k}"] = sum(sorted(plus)[:keep]) / keep
        out[f"mink_{k}"] = sum(sorted(lp_tokens)[:keep]) / keep
    return out


def test_scores_match_hand_computation(tiny):
    model, tok = tiny
    got = mi.score_texts(model, tok, TEXTS, batch_size=2)  # batched with right padding
    for text, row in zip(TEXTS, got):
        want = _hand(model, tok, text)
        for key, value in want.items():
            assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
        assert set(row) == set(mi.SCORES)
    # lowercasing changes the tokens, so the lowercase ratio differs from -1 on a cased text
    assert got[1]["lowercase"] != pytest.approx(-1.0)


def test_roc_metrics_separable_and_random():
    sep = mi.roc_metrics([5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0], n_boot=200)
    assert sep["auroc"] == 1.0 and sep["tpr_at_1fpr"] == 1.0 and sep["auroc_ci"] == [1.0, 1.0]
    flip = mi.roc_metrics([1.0, 2.0], [3.0, 4.0], n_boot=50)
    assert flip["auroc"] == 0.0 and flip["tpr_at_5fpr"] == 0.0
    # one tie-free hand case: members {1, 3}, non-members {2}: pairs (1>2)=0, (3>2)=1
    assert mi.auroc([1.0, 3.0], [2.0]) == 0.5


def test_welch_t_one_sided():
    t, p = mi.welch_t([3.0, 3.1, 2.9, 3.2], [1.0, 1.2, 0.9, 1.1])
    assert t > 0 and p < 1e-4
    _, p_rev = mi.welch_t([1.0, 1.2, 0.9, 1.1], [3.0, 3.1, 2.9, 3.2])
    assert p_rev > 0.999


def test_t_test_fpr_on_untrained_model(tiny):
    """Two sets neither seen by the (random) model: the test's rejection rate stays near alpha."""
    from protection.wordnet import example_sentences

    model, tok = tiny
    sents = list(example_sentences()[:80])
    texts = [" ".join(sents[i:i + 2]) for i in range(0, 80, 2)]  # 40 records
    scores = [r["mink++_20"] for r in mi.score_texts(model, tok, texts, batch_size=20)]
    fpr = mi.null_rejection_rate(scores, n=6, alpha=0.05, n_resamples=1000, seed=0)
    assert 0.01 <= fpr <= 0.10  # Welch at n=6 is close to nominal; 1000 resamples: SE ~0.007
    # a shifted "member" pool is detected far more often than alpha (the test is not blind)
    power = mi.rejection_rate(np.asarray(scores[:20]) + 2 * np.std(scores), scores[20:], n=6, n_resamples=300)
    assert power["rate"] > 0.5


def test_fast_roc_equals_sklearn():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(0)
    for trial in range(30):
        m = np.round(rng.normal(0.5 * (trial % 3), 1, 20 + trial), 1)  # rounded: ties on purpose
        nm = np.round(rng.normal(0, 1, 25 + 2 * trial), 1)
        y, x = np.r_[np.ones(len(m)), np.zeros(len(nm))], np.r_[m, nm]
        assert mi.auroc(m, nm) == pytest.approx(roc_auc_score(y, x))
        f, t, _ = roc_curve(y, x, drop_intermediate=False)  # every threshold (the default drops some)
        for fpr in (0.01, 0.05, 0.2):
            assert mi.tpr_at_fpr(m, nm, fpr) == pytest.approx(t[f <= fpr + 1e-12].max())
