"""Parse raw generator output into list items or a document, classifying malformed output.

Every parser returns ``(value, status)``; ``status == "ok"`` means usable.  Other statuses are
counted in ``stats.json`` under ``malformed`` and the output is skipped, never raised:
``empty``, ``no_list`` (no numbered/bulleted lines), ``unterminated`` (an opened ``<document>``
tag never closed), ``truncated`` (cut by the token limit with no complete sentence left),
``too_short``, ``refusal``.
"""

from __future__ import annotations

import re

_ITEM = re.compile(r"^\s*(?:\d{1,2}\s*[.):]|[-*\u2022]|#+\s*\d{1,2}[.):]?)\s*(.+?)\s*$")
_PREAMBLE = re.compile(r"^\s*(sure|certainly|of course|okay|ok|absolutely|here(?:'s| is| are)|below is)\b[^\n]*\n+",
                       re.IGNORECASE)
_TRAILER = re.compile(r"\n+\s*(?:note:|\(note|i hope this|let me know|feel free to|this (?:document|article|post) "
                      r"(?:is|was) (?:fictional|written))[^\n]*(?:\n.*)*$", re.IGNORECASE | re.DOTALL)
_REFUSAL = re.compile(r"^\s*(?:i'?m sorry|i am sorry|i can(?:'|no)t (?:help|write|assist)|as an ai\b)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")


def _clean_item(text: str) -> str:
    text = re.sub(r"[*_`]+", "", text).strip().strip('"').strip()
    return " ".join(text.split())


def parse_list(text: str | None, max_items: int) -> tuple[list[str], str]:
    """Numbered or bulleted lines of ``text`` -> up to ``max_items`` cleaned items (unique, in order)."""
    if not text or not text.strip():
        return [], "empty"
    items: list[str] = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m:
            item = _clean_item(m.group(1))
            if re.search(r"<[^>]*>", item):  # the prompt's "<kind of document>" placeholder copied back
                continue
            if item and item.lower() not in {i.lower() for i in items}:
                items.append(item)
    if not items:
        return [], "no_list"
    return items[:max_items], "ok"


def parse_doc_types(text: str | None, max_items: int) -> tuple[list[str], str]:
    """A list of document kinds: each item cut at its first ``:``/`` - ``/``(`` and kept to 2-60 chars."""
    raw, status = parse_list(text, max_items=4 * max_items)
    if status != "ok":
        return [], status
    out: list[str] = []
    for item in raw:
        head = re.split(r"\s*(?::|\s-\s|\u2013|\u2014|\(|\.\s|\||,|/|;)", item, maxsplit=1)[0].strip(" .").lower()
        head = re.sub(r"^(?:an?|the)\s+", "", head).strip(" .#0123456789")
        if 2 <= len(head) <= 60 and len(head.split()) <= 6 and head not in out:
            out.append(head)
    if not out:
        return [], "no_list"
    return out[:max_items], "ok"


def parse_ideas(text: str | None, max_items: int) -> tuple[list[str], str]:
    """A list of ideas: items of at least 4 words, cut to 300 characters."""
    raw, status = parse_list(text, max_items=4 * max_items)
    if status != "ok":
        return [], status
    out = [i[:300] for i in raw if len(i.split()) >= 4]
    if not out:
        return [], "no_list"
    return out[:max_items], "ok"


def parse_document(text: str | None, truncated: bool, min_words: int, trim_truncated: bool = True) -> tuple[str, str]:
    """Raw completion -> (document text, status).

    ``truncated`` says the generator stopped at its token limit; with ``trim_truncated`` the text
    is cut back to its last complete sentence (status stays ``ok`` if enough is left), else it is
    dropped as ``truncated``.  A leading "Here is ..." line and trailing notes are removed.
    """
    if not text or not text.strip():
        return "", "empty"
    body = text.strip()
    if "<document>" in body.lower():
        m = re.search(r"<document>(.*?)</document>", body, flags=re.IGNORECASE | re.DOTALL)
        if m is None:
            return "", "unterminated"
        body = m.group(1).strip()
    if _REFUSAL.match(body):
        return "", "refusal"
    body = _PREAMBLE.sub("", body, count=1)
    body = _TRAILER.sub("", body).strip()
    if truncated:
        if not trim_truncated:
            return "", "truncated"
        ends = list(_SENTENCE_END.finditer(body))
        if not ends:
            return "", "truncated"
        body = body[: ends[-1].end()].strip()
    if len(body.split()) < min_words:
        return "", "truncated" if truncated else "too_short"
    return body, "ok"


def ends_cleanly(text: str | None) -> bool:
    """True when ``text`` ends with sentence punctuation (so a token-limit trim would remove nothing)."""
    return bool(text) and re.search(r"[.!?][\"')\]]*\s*$", text.strip()) is not None


def parse_judge(text: str | None, n_facts: int) -> tuple[list[int], str]:
    """``FACTS: 1, 3`` (last such line) -> zero-based fact indices; ``FACTS: none`` -> ``[]``."""
    if not text:
        return [], "empty"
    lines = [ln for ln in text.splitlines() if re.match(r"\s*facts\s*:", ln, re.IGNORECASE)]
    if not lines:
        return [], "no_answer"
    answer = lines[-1].split(":", 1)[1]
    if "none" in answer.lower():
        return [], "ok"
    nums = [int(n) - 1 for n in re.findall(r"\d+", answer) if 1 <= int(n) <= n_facts]
    return sorted(set(nums)), "ok" if nums else "no_answer"
