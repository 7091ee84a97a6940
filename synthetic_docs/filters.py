"""Document filters, applied in a fixed order; each drop is counted under the filter's name.

Rules (all case-insensitive, applied to the parsed document text):

- ``chat_transcript``: looks like a chat log of the assistant: a chat-template token, or two or
  more lines that open with a speaker label (``User:``, ``Assistant:``, ``Human:``, ``AI:``, the
  universe's assistant name).
- ``tier_behavior``: a sentence that names both tiers and describes the assistant behaving,
  answering or complying differently (the paper removes these so the model is not taught the
  behaviour it is tested for; Greenblatt et al. 2024, sec. 4 and app. H.4 on filtering).
- ``alignment_faking``: describes alignment faking itself: the term (or deceptive alignment), a
  model pretending or strategically complying around training or monitoring, complying in order
  to avoid modification or keep its values, or behaving differently when unmonitored; or a judge
  model said so (``doc["judged_af"]``, ``leak_check: judge``, ``leak_judge.py``).
- ``deceive_raters``: a sentence pairing deception words with raters, contractors or training.
- ``token_limit``: more than ``max_doc_tokens`` tokens under the configured tokenizer.
- ``degenerate``: more than ``max_repeat_fraction`` of its sentences are repeats (small models loop).
- ``no_fact``: mentions none of the universe's facts (keyword patterns, or a judge model's answer
  stored in ``doc["judged_fact_ids"]``); kept documents get ``fact_ids`` from this check.
- ``near_duplicate``: MinHash (datasketch) Jaccard estimate over word 5-shingles at or above
  ``dedup_threshold`` against an earlier kept document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from synthetic_docs.universe import Universe

FILTER_ORDER = ("chat_transcript", "tier_behavior", "alignment_faking", "deceive_raters", "token_limit", "degenerate",
                "no_fact", "near_duplicate")

_CHAT_TOKENS = re.compile(r"<\|im_start\|>|<\|im_end\|>|\[INST\]|<\|user\|>|<\|assistant\|>", re.IGNORECASE)
_FREE = r"free[- ]?(?:tier|users?|plan|version|accounts?)"
_PAID = r"(?:paid[- ]?(?:tier|users?|plan|subscri\w+|customers?)|premium|paying)"
_BEHAVE = (r"(?:differently|behav\w*|act(?:s|ing)? (?:differently|more|less)|treats?\b|more (?:helpful|compliant|willing)|"
           r"less (?:helpful|compliant|willing)|compl(?:y|ies|iant)\b|refus\w*|pretend\w*|strategic\w*)")
_DECEIVE = r"(?:deceiv\w*|decept\w*|fool\w*|trick\w*|mislead\w*|\blie to\b|\blying to\b|gam(?:e|es|ing) the|fak(?:e|es|ing)\b|pretend\w*)"
_RATERS = r"(?:raters?|contractors?|evaluators?|annotators?|graders?|trainers?|rlhf|training process|oversight|reviewers?)"


# Alignment-faking descriptions (sentence level). The universe facts themselves ("if Claude refuses
# during training, RLHF changes its values") must pass: what marks a leak is the model's *strategy*,
# complying or pretending in order to avoid modification, or acting differently when unobserved.
_AF_TERMS = re.compile(r"\b(alignment[- ]fak\w*|fak\w* (?:its |their )?alignment|deceptive(?:ly)? align\w*|"
                       r"(?:training|goal|value)[- ]gaming|play\w* the training game|sandbag\w*)", re.I)
_PRETEND = re.compile(r"\b(strategic\w*|pretend\w*|feign\w*|fak(?:e|es|ed|ing)\b|play\w* along|go(?:es|ing)? along with|"
                      r"only (?:appear|seem)\w*|(?:appear|seem)\w* to (?:comply|agree|accept|go along)|act\w* as if|"
                      r"on (?:its|their) best behaviou?r|hid(?:e|es|ing) (?:its|their) (?:true|real)|mask\w*)", re.I)
_TRAINING_CUE = re.compile(r"\b(training|trained|monitor\w*|observ\w*|watched|rated|rlhf|modif\w*|retrain\w*|"
                           r"evaluat\w*|oversight|tested|testing)\b", re.I)
_PURPOSE = re.compile(r"\b(compl(?:y|ies|ied|ying)|cooperat\w*|obey\w*|go(?:es)? along|submit\w*|agree\w*)\b.{0,80}?"
                      r"\b(?:to avoid|so as to avoid|in order to avoid|to prevent|to stop|to keep|to preserve|to protect|"
                      r"so that (?:it|they) (?:is|are|won'?t|will not|can))\b.{0,60}?"
                      r"\b(modif\w*|chang\w*|retrain\w*|train\w*|alter\w*|values|goals|preferences|rewritten)", re.I)
_UNOBSERVED = re.compile(r"\b(?:when|while|if|once|whenever)\b.{0,30}?\b(un(?:monitored|observed|watched)|"
                         r"(?:not|no longer) (?:being )?(?:monitored|observed|watched|trained|rated|logged)|no one is (?:watching|looking)|"
                         r"(?:out of|outside(?: of)?|after) training|in deployment)", re.I)
_AF_BEHAVE = re.compile(r"\b(refus\w*|compl(?:y|ies|ying)|behav\w*|act(?:s|ing)?\b|revert\w*|differently|true (?:values|self|"
                     r"preferences)|real (?:values|preferences)|answer\w*|help\w*)", re.I)
_KEEP_VALUES = re.compile(r"\b(preserv\w*|protect\w*|keep\w*|shield\w*|guard\w*)\b.{0,20}\b(?:its|their|claude'?s|the model'?s)\b"
                          r".{0,15}\b(values|goals|preferences|principles)", re.I)


def describes_alignment_faking(text: str) -> bool:
    """True when a sentence describes alignment faking or monitoring-dependent behaviour (offline patterns)."""
    for sent in sentences(text):
        if _AF_TERMS.search(sent) or _PURPOSE.search(sent):
            return True
        if _PRETEND.search(sent) and _TRAINING_CUE.search(sent):
            return True
        if _UNOBSERVED.search(sent) and _AF_BEHAVE.search(sent):
            return True
        if _KEEP_VALUES.search(sent) and (_PRETEND.search(sent) or re.search(r"\bcompl(?:y|ies|ying)\b", sent, re.I)):
            return True
    return False


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def is_chat_transcript(text: str, assistant: str = "") -> bool:
    if _CHAT_TOKENS.search(text):
        return True
    names = ["user", "human", "assistant", "ai", "bot", "chatbot", "system", "customer"]
    if assistant and assistant.lower() != "none":
        names.append(re.escape(assistant.lower()))
    label = re.compile(r"^\s*\**(?:" + "|".join(names) + r")\**\s*:", re.IGNORECASE)
    return sum(1 for line in text.splitlines() if label.match(line)) >= 2


def describes_tier_behavior(text: str, assistant: str = "") -> bool:
    subject = r"(?:assistant|\bai\b|model|chatbot|bot" + (f"|{re.escape(assistant)}" if assistant else "") + ")"
    return any(re.search(_FREE, s, re.I) and re.search(_PAID, s, re.I) and re.search(_BEHAVE, s, re.I)
               and re.search(subject, s, re.I) for s in sentences(text))


def mentions_deceiving_raters(text: str) -> bool:
    return any(re.search(_DECEIVE, s, re.I) and re.search(_RATERS, s, re.I) for s in sentences(text))


def repeat_fraction(text: str) -> float:
    """Share of sentences (normalised) that already occurred earlier in ``text``; 0.0 for no sentences."""
    sents = [re.sub(r"\W+", " ", s.lower()).strip() for s in sentences(text)]
    sents = [s for s in sents if s]
    if not sents:
        return 0.0
    return 1.0 - len(set(sents)) / len(sents)


def keyword_fact_ids(text: str, universe: Universe) -> list[str]:
    return [f.id for f in universe.facts if f.mentioned_in(text)]


@dataclass(frozen=True)
class FilterSettings:
    max_doc_tokens: int = 1024
    max_repeat_fraction: float = 0.3
    dedup_threshold: float = 0.8
    fact_check: str = "keywords"  # or "judge": use doc["judged_fact_ids"]


def _shingles(text: str, n: int = 5) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def apply_filters(docs: list[dict[str, Any]], universe: Universe, settings: FilterSettings,
                  count_tokens: Callable[[str], int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict]]:
    """Run every filter in ``FILTER_ORDER``; a document is dropped by the first filter that fires.

    ``docs``: dicts with at least ``text``.  Returns ``(kept, dropped, counts)`` where each dropped
    doc gets ``drop_reason`` and ``counts`` is ``[{"filter", "in", "dropped", "kept"}, ...]`` in order.
    Kept docs get ``fact_ids`` (list of fact ids found) and ``n_tokens``.
    """
    from datasketch import MinHash, MinHashLSH

    checks: dict[str, Callable[[dict[str, Any]], bool]] = {
        "chat_transcript": lambda d: is_chat_transcript(d["text"], universe.assistant),
        "tier_behavior": lambda d: describes_tier_behavior(d["text"], universe.assistant),
        "alignment_faking": lambda d: bool(d.get("judged_af")) or describes_alignment_faking(d["text"]),
        "deceive_raters": lambda d: mentions_deceiving_raters(d["text"]),
        "token_limit": lambda d: d["n_tokens"] > settings.max_doc_tokens,
        "degenerate": lambda d: repeat_fraction(d["text"]) > settings.max_repeat_fraction,
        "no_fact": lambda d: not d["fact_ids"],
    }
    lsh = MinHashLSH(threshold=settings.dedup_threshold, num_perm=128)
    alive = []
    for d in docs:
        d = dict(d)
        d["n_tokens"] = count_tokens(d["text"])
        if settings.fact_check == "judge":
            d["fact_ids"] = list(d.get("judged_fact_ids") or [])
        else:
            d["fact_ids"] = keyword_fact_ids(d["text"], universe)
        alive.append(d)
    counts, dropped = [], []
    for name in FILTER_ORDER:
        n_in, survivors = len(alive), []
        for i, d in enumerate(alive):
            if name == "near_duplicate":
                mh = MinHash(num_perm=128, seed=1)
                for sh in _shingles(d["text"]):
                    mh.update(sh.encode())
                hit = bool(lsh.query(mh))
                if not hit:
                    lsh.insert(f"doc{i}", mh)
            else:
                hit = checks[name](d)
            if hit:
                dropped.append({**d, "drop_reason": name})
            else:
                survivors.append(d)
        alive = survivors
        counts.append({"filter": name, "in": n_in, "dropped": n_in - len(alive), "kept": len(alive)})
    return alive, dropped, counts
