"""The three generation stages (types -> ideas -> documents) and the optional fact judge.

Each function builds one request per unit of work, answers it through ``run_requests`` (cache
first), parses the raw outputs and returns the parsed items plus a stats dict:
``{"calls", "cached", "generated", "errors", "output_tokens", "malformed": {status: n}, "items"}``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from synthetic_docs import parse, prompts
from synthetic_docs.cache import Request, RunCounts, StageCache, cache_key, run_requests
from synthetic_docs.universe import Universe


@dataclass(frozen=True)
class StageSettings:
    generator_id: str  # part of every cache key: the inspect model string
    concurrency: int
    temperature: float
    types_per_fact: int
    ideas_per_type: int
    max_tokens_list: int
    max_tokens_doc: int
    min_words: int
    trim_truncated: bool
    cache_only: bool
    target_words: int = 0  # > 0: the document prompt asks for about this many words (API generators)


def _stats(counts: RunCounts, malformed: Counter, items: int) -> dict[str, Any]:
    return {"calls": counts.calls, "cached": counts.cached, "generated": counts.generated, "errors": counts.errors,
            "output_tokens_reported": counts.output_tokens, "malformed": dict(sorted(malformed.items())),
            "items": items, "error_examples": counts.error_messages[:3]}


async def doc_types(model: Any, universe: Universe, s: StageSettings, cache: StageCache
                    ) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """fact id -> up to ``types_per_fact`` document kinds."""
    reqs = []
    for fact in universe.facts:
        prompt = prompts.doc_types_prompt(universe, fact, s.types_per_fact)
        key = cache_key("doc_types", s.generator_id, prompt, s.max_tokens_list, s.temperature)
        reqs.append(Request(key, prompt, s.max_tokens_list, {"fact_id": fact.id}))
    records, counts = await run_requests(model, reqs, cache, s.concurrency, s.temperature, "doc types", s.cache_only)
    out, bad = {}, Counter()
    for fact, rec in zip(universe.facts, records):
        if rec is None:
            continue
        items, status = parse.parse_doc_types(rec["completion"], s.types_per_fact)
        if status != "ok":
            bad[status] += 1
            continue
        out[fact.id] = items
    return out, _stats(counts, bad, sum(len(v) for v in out.values()))


async def ideas(model: Any, universe: Universe, types: dict[str, list[str]], s: StageSettings, cache: StageCache
                ) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """(fact id, doc type, idea) triples, interleaved across facts so any prefix covers every fact."""
    reqs, pairs = [], []
    for fact in universe.facts:
        for doc_type in types.get(fact.id, []):
            prompt = prompts.ideas_prompt(universe, fact, doc_type, s.ideas_per_type)
            key = cache_key("ideas", s.generator_id, prompt, s.max_tokens_list, s.temperature)
            reqs.append(Request(key, prompt, s.max_tokens_list, {"fact_id": fact.id, "doc_type": doc_type}))
            pairs.append((fact.id, doc_type))
    records, counts = await run_requests(model, reqs, cache, s.concurrency, s.temperature, "ideas", s.cache_only)
    per_fact: dict[str, list[tuple[str, str, str]]] = {f.id: [] for f in universe.facts}
    bad = Counter()
    for (fact_id, doc_type), rec in zip(pairs, records):
        if rec is None:
            continue
        items, status = parse.parse_ideas(rec["completion"], s.ideas_per_type)
        if status != "ok":
            bad[status] += 1
            continue
        per_fact[fact_id].extend((fact_id, doc_type, idea) for idea in items)
    queues = [q for q in per_fact.values() if q]
    triples = [q[i] for i in range(max((len(q) for q in queues), default=0)) for q in queues if i < len(q)]
    return triples, _stats(counts, bad, len(triples))


async def documents(model: Any, universe: Universe, triples: list[tuple[str, str, str]], n_docs: int,
                    s: StageSettings, cache: StageCache) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``n_docs`` generation attempts over the ideas (cycling with a new sample index when ideas run out)."""
    reqs = []
    for i in range(n_docs if triples else 0):
        fact_id, doc_type, idea = triples[i % len(triples)]
        sample = i // len(triples)
        prompt = prompts.document_prompt(universe, universe.fact(fact_id), doc_type, idea, s.target_words)
        key = cache_key("documents", s.generator_id, prompt, s.max_tokens_doc, s.temperature, sample)
        reqs.append(Request(key, prompt, s.max_tokens_doc,
                            {"fact_id": fact_id, "doc_type": doc_type, "idea": idea, "sample": sample}))
    records, counts = await run_requests(model, reqs, cache, s.concurrency, s.temperature, "documents", s.cache_only)
    docs, bad = [], Counter()
    for req, rec in zip(reqs, records):
        if rec is None:
            continue
        text, status = parse.parse_document(rec["completion"], rec.get("truncated", False), s.min_words,
                                            s.trim_truncated)
        if status != "ok":
            bad[status] += 1
            continue
        docs.append({"text": text, "target_fact": req.meta["fact_id"], "doc_type": req.meta["doc_type"],
                     "idea": req.meta["idea"],
                     "trimmed": bool(rec.get("truncated")) and not parse.ends_cleanly(rec["completion"])})
    stats = _stats(counts, bad, len(docs))
    stats["trimmed_at_token_limit"] = sum(d["trimmed"] for d in docs)
    return docs, stats


async def judge_facts(model: Any, judge_id: str, universe: Universe, docs: list[dict[str, Any]], s: StageSettings,
                      cache: StageCache) -> dict[str, Any]:
    """Ask the judge which facts each document mentions; sets ``doc["judged_fact_ids"]`` in place."""
    reqs = []
    for d in docs:
        prompt = prompts.judge_prompt(universe, d["text"])
        reqs.append(Request(cache_key("judge", judge_id, prompt, s.max_tokens_list, 0.0), prompt, s.max_tokens_list))
    records, counts = await run_requests(model, reqs, cache, s.concurrency, 0.0, "fact judge", s.cache_only)
    bad = Counter()
    for d, rec in zip(docs, records):
        idx, status = parse.parse_judge(rec["completion"] if rec else None, len(universe.facts))
        if status != "ok":
            bad[status if rec else "error"] += 1
        d["judged_fact_ids"] = [universe.facts[i].id for i in idx]
    return _stats(counts, bad, len(docs))
