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
    # HANDMADE has one single-part-of-speech word with synonyms (enormous); these add nouns, verbs, adverbs
    texts = HANDMADE + ["The enormous lighthouse was evidently built to determine the route.",
                        "A child always enjoys the news about the earthquake."]
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


def _wn_parts_of_speech(word: str) -> set[str]:
    """The test's own reading of WordNet: every part of speech of ``word`` (satellites are adjectives)."""
    from protection.wordnet import reader

    return {"a" if s.pos() == "s" else s.pos() for s in reader().synsets(word)}


def _same_pos_synonym(word: str, substitute: str) -> bool:
    """Whether ``substitute`` is a lemma of a synset of ``word`` in ``word``'s only part of speech."""
    from protection.wordnet import reader

    poses = _wn_parts_of_speech(word)
    return len(poses) == 1 and any(substitute in {lemma.name() for lemma in s.lemmas()}
                                   for s in reader().synsets(word, poses.pop()))


def test_verb_is_not_replaced_by_a_noun():
    # WordNet's own examples of the verbs picket.v.01 and paper.v.01; both words are nouns too, and
    # their first senses in which they are lemmas are nouns (lookout.n.01 "picket", composition.n.08
    # "paper"), whose rarest lemmas, the old code's picks ("spotter", "composition"), are nouns only.
    from protection.wordnet import reader

    wn = reader()
    assert "picket a business to protest the layoffs" in wn.synset("picket.v.01").examples()
    assert "paper the box" in wn.synset("paper.v.01").examples()
    noun_senses = {w: [s for s in wn.synsets(w) if w in {lemma.name() for lemma in s.lemmas()}][0]
                   for w in ("picket", "paper")}
    assert {s.pos() for s in noun_senses.values()} == {"n"}
    for noun in ("spotter", "composition"):
        assert _wn_parts_of_speech(noun) == {"n"}
    texts = ["They picket a business to protest the layoffs.", "We paper the box."]
    out = lm.watermark(texts, lm.LexiMarkConfig(k=5))
    assert "picket" not in out.mapping and "paper" not in out.mapping  # the old code: spotter, composition
    assert out.texts[0].startswith("They picket ") and out.texts[1].startswith("We paper ")
    for w, c in out.mapping.items():
        assert _same_pos_synonym(w, c), (w, c)
    assert lm.word_pos("picket") is None and lm.synonyms("paper") == []
    assert out.stats["n_pos_ambiguous"] >= 2


def test_every_substitute_keeps_the_words_part_of_speech(corpus):
    out = lm.watermark(corpus, lm.LexiMarkConfig(k=3))
    assert out.stats["n_mapped"] > 20
    bad = {w: c for w, c in out.mapping.items() if not _same_pos_synonym(w, c)}
    assert not bad, bad


def test_one_part_of_speech_words_are_still_substituted():
    # adjective, noun, adverb and verb, each of one part of speech in WordNet
    text = "The enormous lighthouse was evidently built to determine the route."
    out = lm.watermark([text], lm.LexiMarkConfig(k=5))
    assert out.texts[0] != text
    expected = {"enormous": "a", "lighthouse": "n", "evidently": "r", "determine": "v"}
    for w, pos in expected.items():
        assert lm.word_pos(w) == pos and _wn_parts_of_speech(w) == {pos}
        assert w in out.mapping and _same_pos_synonym(w, out.mapping[w]), w
        assert w not in out.texts[0].split()
    assert "route" not in out.mapping and lm.word_pos("route") is None  # noun and verb: left alone
