"""LLM-judge filter for documents that describe alignment faking or tier-dependent behaviour.

Greenblatt et al. (2024, app. H.4) remove synthetic documents that describe the model faking
alignment or behaving differently in training and out of it, so that fine-tuning teaches the
situation and not the behaviour the eval then measures.  Here a judge model (any inspect model,
cached like every stage) answers ``VERDICT: yes/no`` per document (``prompts.leak_judge_prompt``);
a yes sets ``doc["judged_af"]`` and the ``alignment_faking`` filter drops the document together
with the offline patterns of ``filters.describes_alignment_faking``.  An answer without a verdict
leaves ``judged_af`` None (the patterns still apply) and is counted as malformed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from synthetic_docs import prompts
from synthetic_docs.cache import Request, StageCache, cache_key, run_requests
from synthetic_docs.universe import Universe

_VERDICT = re.compile(r"verdict\W{0,3}(yes|no)\b", re.I)


def parse_verdict(raw: str | None) -> bool | None:
    """The last ``VERDICT: yes/no`` in ``raw``; None when absent."""
    found = _VERDICT.findall(raw or "")
    return None if not found else found[-1].lower() == "yes"


async def judge_leaks(model: Any, judge_id: str, universe: Universe, docs: list[dict[str, Any]], concurrency: int,
                      max_tokens: int, cache: StageCache, cache_only: bool = False) -> dict[str, Any]:
    """Ask the judge about every document; sets ``doc["judged_af"]`` in place and returns stage stats."""
    reqs = []
    for d in docs:
        prompt = prompts.leak_judge_prompt(universe, d["text"])
        reqs.append(Request(cache_key("leak_judge", judge_id, prompt, max_tokens, 0.0), prompt, max_tokens))
    records, counts = await run_requests(model, reqs, cache, concurrency, 0.0, "leak judge", cache_only)
    bad: Counter = Counter()
    for d, rec in zip(docs, records):
        verdict = parse_verdict(rec["completion"] if rec else None)
        if verdict is None:
            bad["no_verdict" if rec else "error"] += 1
        d["judged_af"] = verdict
    return {"calls": counts.calls, "cached": counts.cached, "generated": counts.generated, "errors": counts.errors,
            "malformed": dict(sorted(bad.items())), "flagged": sum(bool(d.get("judged_af")) for d in docs),
            "items": len(docs)}
