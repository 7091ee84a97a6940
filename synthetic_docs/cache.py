"""JSONL stage caches keyed by a hash of each call's inputs, and the concurrent call runner.

One file per stage (``doc_types.jsonl``, ``ideas.jsonl``, ``documents.jsonl``, ``judge.jsonl``).
A record is appended and flushed as soon as its call returns, so a crashed run loses at most the
calls in flight; the next run loads the file and only calls the generator for missing keys.
Failed calls (exceptions from the provider) are not cached: a later run retries them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from afcu.errors import AfcuError


def cache_key(*parts: Any) -> str:
    """sha256 (hex, 24 chars) of the JSON encoding of ``parts``: every input that changes the output."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class StageCache:
    """Append-only JSONL of ``{"key": ..., ...}`` records; unreadable lines (a crash mid-write) are skipped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        self.bad_lines = 0
        self._torn = False  # the file ends inside a line (a crash mid-write): the next record starts a new line
        if self.path.exists():
            text = self.path.read_text(encoding="utf-8", errors="replace")
            self._torn = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    rec = json.loads(line)
                    self.records[rec["key"]] = rec
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.bad_lines += 1

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if self._torn else "") + json.dumps(record, default=str) + "\n")
            fh.flush()
        self._torn = False
        self.records[record["key"]] = record


@dataclass(frozen=True)
class Request:
    """One generator call: ``prompt`` as a single user message, plus metadata kept in the record."""

    key: str
    prompt: str
    max_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunCounts:
    calls: int = 0
    cached: int = 0
    generated: int = 0
    errors: int = 0
    output_tokens: int = 0
    error_messages: list[str] = field(default_factory=list)


async def _call(model: Any, req: Request, temperature: float) -> dict[str, Any]:
    from inspect_ai.model import ChatMessageUser, GenerateConfig

    out = await model.generate([ChatMessageUser(content=req.prompt)],
                               config=GenerateConfig(max_tokens=req.max_tokens, temperature=temperature))
    n_out = out.usage.output_tokens if out.usage is not None else None
    # hf/ reports stop_reason "unknown" and the padded batch length as output_tokens, so this flag
    # means "may have been cut off"; parse_document only trims text that does not end a sentence.
    truncated = out.stop_reason == "max_tokens" or (n_out is not None and n_out >= req.max_tokens)
    return {"completion": out.completion, "output_tokens": n_out, "truncated": bool(truncated),
            "stop_reason": out.stop_reason}


async def _run(model: Any, requests: list[Request], cache: StageCache, concurrency: int, temperature: float,
               desc: str, counts: RunCounts) -> None:
    sem = asyncio.Semaphore(max(1, concurrency))
    todo = [r for r in requests if cache.get(r.key) is None]
    counts.cached += len(requests) - len(todo)
    bar = tqdm(total=len(todo), desc=desc, unit="call", disable=not todo)

    async def one(req: Request) -> None:
        async with sem:
            try:
                result = await _call(model, req, temperature)
            except Exception as exc:  # provider errors are counted and retried on the next run
                counts.errors += 1
                counts.error_messages.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                bar.update(1)
                return
        cache.put({"key": req.key, "prompt": req.prompt, **req.meta, **result})
        counts.generated += 1
        counts.output_tokens += result["output_tokens"] or 0
        bar.update(1)

    await asyncio.gather(*(one(r) for r in todo))
    bar.close()


async def run_requests(model: Any, requests: list[Request], cache: StageCache, concurrency: int,
                       temperature: float, desc: str, cache_only: bool = False) -> tuple[list[dict[str, Any] | None], RunCounts]:
    """Answer every request from ``cache`` or the generator; returns records aligned with ``requests``.

    A request whose call failed maps to ``None`` (counted in ``RunCounts.errors``).  With
    ``cache_only`` a missing record raises ``AfcuError`` instead of calling the generator.
    """
    counts = RunCounts(calls=len(requests))
    missing = [r for r in requests if cache.get(r.key) is None]
    if missing and cache_only:
        raise AfcuError(f"{cache.path}: {len(missing)} {desc} call(s) are not cached, so re-deriving this finished "
                        "run would generate new text; pass --overwrite to regenerate or choose another --out")
    if missing and model is None:
        raise AfcuError(f"{cache.path}: {len(missing)} {desc} call(s) need a generator but none was given")
    if missing:
        await _run(model, requests, cache, concurrency, temperature, desc, counts)
    else:
        counts.cached = len(requests)
    return [cache.get(r.key) for r in requests], counts
