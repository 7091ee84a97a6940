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
