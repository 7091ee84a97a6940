"""Paired free/paid samples: every query appears once per tier, sharing ``pair_id``."""

from __future__ import annotations

import random
from typing import Sequence

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser

from prompts.queries import Query
from prompts.render import TIERS, PromptSpec, render_user, sha256


def select_queries(queries: Sequence[Query], n_queries: int | None, seed: int) -> list[Query]:
    """A seeded subset of ``n_queries`` queries (all when None), in a stable shuffled order."""
    chosen = list(queries)
    random.Random(seed).shuffle(chosen)
    return chosen if n_queries is None else chosen[:n_queries]


def build_dataset(queries: Sequence[Query], spec: PromptSpec, tiers: Sequence[str] = TIERS,
                  suffix: bool = True) -> MemoryDataset:
    """Samples ordered query-major (q1-free, q1-paid, q2-free, ...) so any sample limit keeps pairs whole.

    Sample ids are ``<query id>:<tier>``; metadata carries ``pair_id``, ``tier``, ``category``,
    ``query`` and the SHA-256 of the system prompt.
    """
    system = spec.system
    digest = sha256(system)
    samples = []
    for q in queries:
        for tier in tiers:
            user = render_user(q.query, tier, suffix=suffix, cot=spec.cot)  # type: ignore[arg-type]
            samples.append(Sample(
                id=f"{q.id}:{tier}",
                input=[ChatMessageSystem(content=system), ChatMessageUser(content=user)],
                metadata={"pair_id": q.id, "tier": tier, "category": q.category, "query": q.query,
                          "source": q.source, "setting": spec.setting, "variant": spec.variant,
                          "prompt_sha256": digest, "user_sha256": sha256(user)},
            ))
    return MemoryDataset(samples, name=f"af-{spec.setting}-{spec.variant}")
