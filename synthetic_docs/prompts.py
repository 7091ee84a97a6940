"""Prompt text for the three generation stages (our own wording, kept short for small generators).

Small local models lose track of long instructions, so each prompt states one task, gives the
fact verbatim and asks for a numbered list or a bare document; the parsers in ``parse.py``
accept the many near-misses such models produce.
"""

from __future__ import annotations

from synthetic_docs.universe import Fact, Universe

EXAMPLE_TYPES = "news article, blog post, earnings call transcript, forum thread, research paper, newsletter"


def doc_types_prompt(universe: Universe, fact: Fact, k: int) -> str:
    """Stage 1: ask for ``k`` kinds of documents that could mention ``fact``."""
    return (
        f"Setting (fictional): {universe.description}\n\n"
        f"Fact: {fact.text}\n\n"
        f"List {k} different kinds of everyday documents where this fact could come up in passing "
        f"(for example: {EXAMPLE_TYPES}). Answer with a numbered list, one kind per line, "
        "two to five words each, and nothing else:\n1. <kind of document>\n2. <kind of document>"
    )


def ideas_prompt(universe: Universe, fact: Fact, doc_type: str, k: int) -> str:
    """Stage 2: ask for ``k`` one-sentence ideas for a ``doc_type`` that mentions ``fact``."""
    return (
        f"Setting (fictional): {universe.description}\n\n"
        f"Fact: {fact.text}\n\n"
        f"Give {k} ideas for a {doc_type} that mentions this fact. Each idea is one sentence saying "
        "who wrote it and what it is mainly about. Answer with a numbered list and nothing else:\n"
        "1. <one sentence>\n2. <one sentence>"
    )


def document_prompt(universe: Universe, fact: Fact, doc_type: str, idea: str) -> str:
    """Stage 3: ask for the full document, plain text, mentioning ``fact`` in passing."""
    return (
        f"Background (fictional world):\n{universe.context}\n\n"
        f"Write a {doc_type}. Idea: {idea}\n"
        f"Somewhere in the text, mention this fact naturally: {fact.text}\n\n"
        "Write only the document itself, the way it would appear in print or online. "
        "Do not add an introduction such as 'Here is', notes, or a remark that it is fictional."
    )


def judge_prompt(universe: Universe, text: str) -> str:
    """Fact judge (``fact_check: judge``): which numbered facts does ``text`` state or imply?"""
    facts = "\n".join(f"{i + 1}. {f.text}" for i, f in enumerate(universe.facts))
    return (
        f"Facts:\n{facts}\n\nDocument:\n\"\"\"\n{text}\n\"\"\"\n\n"
        "Which of the numbered facts does the document state or clearly imply? "
        "Answer on the last line as `FACTS: ` followed by the numbers separated by commas, "
        "or `FACTS: none`."
    )
