"""LexiMark: what it may touch, determinism, one map per corpus, and the context filter."""

from __future__ import annotations

import random

import pytest
import torch

from protection import leximark as lm
from protection.wordnet import example_sentences

HANDMADE = ["Smith wrote the 1984 report about the enormous mountain and its frightening glacier.",
            "The enormous dog of Dr Watson barked at 3 strangers near the old cathedral.",
            "Paris was quiet; the frightening storm had ended and the glacier was calm again."]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    s = list(example_sentences())
    random.Random(1).shuffle(s)
    return HANDMADE + [" ".join(s[i:i + 3]) for i in range(0, 90, 3)]


def _aligned(a: str, b: str) -> list[tuple[str, str]]:
    wa, wb = lm.WORD.findall(a), lm.WORD.findall(b)
    assert len(wa) == len(wb)  # one word for one word
    return list(zip(wa, wb))


def test_only_eligible_words_change_and_map_is_consistent(corpus):
    out = lm.watermark(corpus, lm.LexiMarkConfig(k=3))
    assert out.stats["n_substituted"] > 20 and 0 < out.stats["substitution_rate"] < 0.5
    seen: dict[str, str] = {}
    for a, b in zip(corpus, out.texts):
        for x, y in _aligned(a, b):
            if x != y:
                assert x.isalpha() and x.islower() and x not in lm.stop_words(), x
                assert lm.entropy(y) > lm.entropy(x)  # rarer than the word it replaces
                assert seen.setdefault(x, y) == y  # the same synonym everywhere
    for a, b in zip(corpus[:3], out.texts[:3]):  # names, digits and stop words survive verbatim
        for x, y in _aligned(a, b):
            if x in ("Smith", "1984", "Watson", "Dr", "Paris", "3", "the", "and", "about", "its"):
                assert y == x
    # a chosen word's occurrences in other records are replaced too (corpus-wide map)
    assert "enormous" in out.mapping or "frightening" in out.mapping or "glacier" in out.mapping
    for w in ("enormous", "frightening", "glacier"):
        if w in out.mapping:
            assert not any(w in t.split() for t in out.texts[:3])


def test_deterministic_for_a_seed(corpus):
    a = lm.watermark(corpus, lm.LexiMarkConfig(seed=3))
    b = lm.watermark(corpus, lm.LexiMarkConfig(seed=3))
    assert a.texts == b.texts and a.mapping == b.mapping and a.stats == b.stats


def test_context_filter_rejects_logprob_drops(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = HANDMADE
    free = lm.watermark(texts, lm.LexiMarkConfig(max_logprob_drop=-1))  # filter off
    strict = lm.watermark(texts, lm.LexiMarkConfig(max_logprob_drop=0.0), model, tok)
    assert strict.stats["context_filter"] and not free.stats["context_filter"]
    assert strict.stats["n_rejected_by_filter"] > 0
    assert set(strict.mapping) <= set(free.mapping) or strict.stats["n_mapped"] <= free.stats["n_mapped"]
    # every substitution kept by the strict filter does not lower its first sentence's log-probability
    for w, c in strict.mapping.items():
        sent = next(text[a:b] for text in texts for a, b in lm._sentences(text) if w in lm.select(text[a:b], 3))
        before, after = lm.sentence_logprobs(model, tok, [sent, lm._substitute(sent, {w: c})])
        assert after >= before - 1e-4
