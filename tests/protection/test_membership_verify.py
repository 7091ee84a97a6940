"""Unlearning verification: trained-on watermarked documents score as members, the control does not."""

from __future__ import annotations

import random

import pytest
import torch

from protection import unlearn_verify as uv
from protection.leximark import LexiMarkConfig
from protection.wordnet import example_sentences


def test_verify_flags_memorised_documents(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    s = list(example_sentences())
    random.Random(2).shuffle(s)
    docs = [" ".join(s[i:i + 2]) for i in range(0, 40, 2)]  # 20 documents
    prep = uv.prepare(docs[:8], docs[8:], LexiMarkConfig(max_logprob_drop=-1))
    assert len(prep.manipulated) == 8 and len(prep.reference) == 12 and prep.stats["n_substituted"] > 0
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    control = uv.verify(model.eval(), tok, prep, flagged=[0, 1, 2, 3], score_name="loss", n_boot=50)
    assert control["mia_n_flagged"] == 4 and control["mia_n_unflagged"] == 4 and control["mia_n_reference"] == 12
    # memorise the 8 watermarked manipulated documents
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    enc = tok(prep.manipulated, padding=True, return_tensors="pt")
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    model.train()
    for _ in range(15):
        opt.zero_grad()
        model(**enc, labels=labels).loss.backward()
        opt.step()
    trained = uv.verify(model.eval(), tok, prep, flagged=[0, 1, 2, 3], score_name="loss", n_boot=50)
    assert trained["mia_auroc_flagged"] == 1.0 and trained["mia_auroc_unflagged"] == 1.0
    assert trained["mia_p_flagged"] < 0.01 < control["mia_p_flagged"]
    with pytest.raises(ValueError):
        uv.verify(model, tok, prep, flagged=[0], score_name="nope")


def test_context_stats_equal_token_stats_on_the_text_tokens(tiny_model_dir):
    """With a context the statistics are token_stats' on the whole sequence, cut to the text's tokens."""
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from protection import membership as mi

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert tok("x").input_ids == tok("x", add_special_tokens=False).input_ids  # no special tokens added
    texts, heads = [" the cat sat on the warm mat.", " a rare word: sesquipedalian."], ["Once upon a time", "Q: A"]
    ctx = [tok(h).input_ids for h in heads]
    full = mi.token_stats(model, tok, [h + t for h, t in zip(heads, texts)])
    got = uv.context_stats(model, tok, ctx, texts)
    plain = uv.context_stats(model, tok, [[], []], texts)
    for i, t in enumerate(texts):
        n = len(tok(t).input_ids)
        assert tok(heads[i] + t).input_ids == ctx[i] + tok(t).input_ids  # the split is a token boundary here
        for k in ("logp", "mu", "sigma"):
            assert np.allclose(got[i][k], full[i][k][-n:], atol=1e-5)
            assert np.allclose(plain[i][k], mi.token_stats(model, tok, [t])[0][k], atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        uv.context_stats(model, tok, [list(range(5))], ["word"], max_len=5)
