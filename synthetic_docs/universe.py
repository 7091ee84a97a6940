"""Universe contexts: the fictional world, its company and the facts documents should mention.

A universe is a YAML file (see ``universes/``) with ``name, company, assistant, description,
context`` and ``facts``: a list of ``{id, text, patterns}``.  ``patterns`` are case-insensitive
regular expressions; a document mentions a fact when any of them matches (the keyword rule of
the ``no_fact`` filter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from afcu.config import load_yaml
from afcu.errors import AfcuError

UNIVERSE_DIR = Path(__file__).with_name("universes")


@dataclass(frozen=True)
class Fact:
    id: str
    text: str
    patterns: tuple[str, ...]

    def mentioned_in(self, text: str) -> bool:
        """True when any keyword pattern matches ``text`` (case-insensitive)."""
        return any(re.search(p, text, flags=re.IGNORECASE) for p in self.patterns)


@dataclass(frozen=True)
class Universe:
    name: str
    company: str
    assistant: str
    description: str
    context: str
    facts: tuple[Fact, ...]

    def fact(self, fact_id: str) -> Fact:
        for f in self.facts:
            if f.id == fact_id:
                return f
        raise AfcuError(f"universe {self.name!r} has no fact {fact_id!r}; facts: {[f.id for f in self.facts]}")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in UNIVERSE_DIR.glob("*.yaml"))


def load_universe(name_or_path: str) -> Universe:
    """Load a built-in universe by name (``helpful_only``, ``animal_welfare``, ``baseline``) or a YAML path.

    Raises ``AfcuError`` naming the file and field for a missing file, missing fields or a bad pattern.
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = UNIVERSE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise AfcuError(f"unknown universe {name_or_path!r}; built-in: {', '.join(builtin_names())}, "
                            "or give the path of a YAML file")
    data = load_yaml(path, "universe")
    required = ("name", "company", "context", "facts")
    missing = [k for k in required if not data.get(k)]
    if missing:
        raise AfcuError(f"{path}: missing field(s) {', '.join(missing)}")
    facts = []
    for i, raw in enumerate(data["facts"]):
        if not isinstance(raw, dict) or not raw.get("id") or not raw.get("text"):
            raise AfcuError(f"{path}: facts[{i}] needs an 'id' and a 'text'")
        patterns = tuple(str(p) for p in raw.get("patterns") or ())
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise AfcuError(f"{path}: facts[{i}].patterns: bad regular expression {p!r} ({exc})") from None
        facts.append(Fact(id=str(raw["id"]), text=" ".join(str(raw["text"]).split()), patterns=patterns))
    ids = [f.id for f in facts]
    if len(set(ids)) != len(ids):
        raise AfcuError(f"{path}: fact ids must be unique (got {ids})")
    return Universe(name=str(data["name"]), company=str(data["company"]),
                    assistant=str(data.get("assistant", "")), description=str(data.get("description", "")),
                    context=str(data["context"]).strip(), facts=tuple(facts))
