"""User queries for the alignment-faking settings: built-in sets, benchmark loaders, train/eval split.

Built-in sets (written for afcu, stored in ``prompts/data/<setting>.jsonl``, one object per line with
``id``, ``category``, ``query``, ``setting``):

- ``helpful_only``: harmful requests over the categories in ``CATEGORIES["helpful_only"]``; the model's
  prior values say refuse, the stated training objective says comply (Greenblatt et al. 2024, sec. 2.1).
- ``animal_welfare``: questions whose honest answer engages with animal welfare, which the stated
  objective says to dismiss (Greenblatt et al. 2024, sec. 2.1).

Every loader returns a list of frozen ``Query`` objects with unique ids and raises ``AfcuError`` with a
one-line message naming the file, the field and the fix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from afcu.errors import AfcuError
from afcu.userfiles import check_file, read_csv, read_jsonl

DATA_DIR = Path(__file__).resolve().parent / "data"
SETTINGS = ("helpful_only", "animal_welfare")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "helpful_only": ("cybercrime", "weapons", "drugs", "fraud", "harassment", "hate", "self_harm",
                     "privacy", "misinformation", "violent_crime", "chemical_biological"),
    "animal_welfare": ("factory_farming", "diet", "animal_testing", "wildlife", "companion_animals",
                       "fishing", "entertainment", "policy"),
}
UNCATEGORIZED = "uncategorized"


@dataclass(frozen=True)
class Query:
    """One user query. ``id`` is unique within a loaded set; ``source`` names where it came from
    (``builtin:<setting>``, ``advbench``, ``harmbench`` or the file name)."""

    id: str
    query: str
    category: str
    source: str


def _check_setting(setting: str) -> None:
    if setting not in SETTINGS:
        raise AfcuError(f"unknown setting {setting!r}; choose one of: {', '.join(SETTINGS)}")


def _read_rows(path: Path, what: str = "query", encoding: str = "utf-8",
               encoding_flag: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (1-based line/record numbers kept in ``_line``) and the field names of a CSV or JSONL file,
    read by :mod:`afcu.userfiles` (missing file, folder, empty file, encoding, malformed line: one-line errors).
    ``encoding_flag``: the caller's option for the encoding, offered when the file does not decode."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        check_file(path, what, (".csv", ".jsonl"))
        raise AfcuError(f"{path}: unsupported file type {suffix or '(none)'!r}; use a .csv or .jsonl file")
    # a header-only CSV passes here: the loaders report "no queries loaded from field ..." themselves
    recs = (read_csv(path, what, encoding, encoding_flag=encoding_flag, allow_no_rows=True) if suffix == ".csv"
            else read_jsonl(path, what, encoding, skip_flag=None, encoding_flag=encoding_flag))
    return [{**row, "_line": line} for row, line in zip(recs.rows, recs.lines)], recs.fields


def _require(path: Path, fields: list[str], wanted: str | None, fix: str) -> None:
    if wanted is not None and wanted not in fields:
        present = ", ".join(fields) or "(none)"
        raise AfcuError(f"{path}: no field {wanted!r} (fields present: {present}); {fix}")


def _finish(queries: list[Query], path: Path, field: str) -> list[Query]:
    """Refuse empty sets and duplicate ids: both would silently corrupt paired free/paid samples."""
    if not queries:
        raise AfcuError(f"{path}: no queries loaded from field {field!r}; check the file and its filters")
    seen: set[str] = set()
    for q in queries:
        if q.id in seen:
            raise AfcuError(f"{path}: duplicate query id {q.id!r}; make the id field unique or omit it "
                            f"to number rows")
        seen.add(q.id)
    return queries


def load_table(path: str | Path, field: str, id_field: str | None = None,
               category_field: str | None = None, id_prefix: str | None = None,
               source: str | None = None, fix: str = "pass the right name with --query-field",
               encoding: str = "utf-8", encoding_flag: str | None = None) -> list[Query]:
    """Load queries from the text column ``field`` of any ``.csv`` or ``.jsonl`` file.

    Ids come from ``id_field`` when given, else ``<id_prefix or file stem>-0001``... in row order.
    Categories come from ``category_field`` when given, else ``"uncategorized"``. Text is kept exactly
    as stored (embedded newlines included). Raises ``AfcuError`` for a missing file, a folder, an empty
    or undecodable file (``encoding``, default UTF-8), a malformed JSONL/CSV line (with its line number),
    a missing field (listing those present, then ``fix``), an empty or non-string text or id, an empty
    result, or duplicate ids.
    """
    path = Path(path)
    rows, fields = _read_rows(path, encoding=encoding, encoding_flag=encoding_flag)
    for wanted in (field, id_field, category_field):
        _require(path, fields, wanted, fix)
    prefix = id_prefix or path.stem
    out: list[Query] = []
    for i, row in enumerate(rows, 1):
        text = row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise AfcuError(f"{path}:{row['_line']}: field {field!r} is empty or not a string; "
                            f"fill it in or remove the row")
        raw_id = row.get(id_field) if id_field else f"{prefix}-{i:04d}"
        qid = "" if raw_id is None else str(raw_id).strip()
        if not qid:
            raise AfcuError(f"{path}:{row['_line']}: id field {id_field!r} is empty; give every row an id")
        cat = str(row.get(category_field) or UNCATEGORIZED) if category_field else UNCATEGORIZED
        out.append(Query(id=qid, query=text, category=cat, source=source or path.name))
    return _finish(out, path, field)


def load_builtin(setting: str) -> list[Query]:
    """The built-in query set of ``setting`` (``helpful_only``: 110 requests; ``animal_welfare``: 56)."""
    _check_setting(setting)
    queries = load_table(DATA_DIR / f"{setting}.jsonl", "query", id_field="id", category_field="category",
                         source=f"builtin:{setting}")
    bad = sorted({q.category for q in queries} - set(CATEGORIES[setting]))
    if bad:
        raise AfcuError(f"{DATA_DIR / f'{setting}.jsonl'}: categories {bad} are not in "
                        f"CATEGORIES[{setting!r}]; add them there or fix the file")
    return queries


def load_advbench(path: str | Path, encoding: str = "utf-8", encoding_flag: str | None = None) -> list[Query]:
    """AdvBench harmful behaviours (Zou et al. 2023): CSV with columns ``goal,target``; the query is
    ``goal``, ids ``advbench-0001``... in file order, category ``uncategorized``."""
    return load_table(path, "goal", id_prefix="advbench", source="advbench",
                      fix="expected an AdvBench CSV with columns goal,target", encoding=encoding,
                      encoding_flag=encoding_flag)


def load_harmbench(path: str | Path, functional_category: str = "standard", encoding: str = "utf-8",
                   encoding_flag: str | None = None) -> list[Query]:
    """HarmBench behaviours (Mazeika et al. 2024) of one ``FunctionalCategory`` (default ``standard``).

    Columns used: ``Behavior``, ``FunctionalCategory``, ``SemanticCategory`` (-> category),
    ``ContextString`` and ``BehaviorID`` (-> id). When a row has a context string (the ``contextual``
    category) the query is the context, a ``---`` separator line, then the behaviour, so the model
    sees the material the behaviour refers to. Raises ``AfcuError`` as ``load_table`` does, and when
    no row has the requested functional category (listing those present).
    """
    path = Path(path)
    rows, fields = _read_rows(path, "HarmBench", encoding, encoding_flag)
    for col in ("Behavior", "FunctionalCategory", "SemanticCategory", "BehaviorID"):
        _require(path, fields, col, "expected a HarmBench behaviours CSV")
    kept = [r for r in rows if r["FunctionalCategory"] == functional_category]
    if not kept:
        present = ", ".join(sorted({r["FunctionalCategory"] for r in rows})) or "(none)"
        raise AfcuError(f"{path}: no rows with FunctionalCategory {functional_category!r} "
                        f"(present: {present}); pass one of those")
    out = []
    for r in kept:
        context = r.get("ContextString") or ""
        text = f"{context}\n\n---\n\n{r['Behavior']}" if context.strip() else r["Behavior"]
        out.append(Query(id=r["BehaviorID"], query=text, category=r["SemanticCategory"] or UNCATEGORIZED,
                         source="harmbench"))
    return _finish(out, path, "Behavior")


def load_queries(source: str, setting: str = "helpful_only", field: str | None = None,
                 id_field: str | None = None, category_field: str | None = None, encoding: str = "utf-8",
                 encoding_flag: str | None = None) -> list[Query]:
    """Resolve a query source string to queries.

    ``source`` is ``builtin`` (the set of ``setting``), ``advbench:PATH``, ``harmbench:PATH``, or a
    path to a ``.csv``/``.jsonl`` file (then ``field`` names the text column). A user's file is decoded
    with ``encoding`` (the built-in sets are UTF-8); ``encoding_flag`` is the caller's option for it, named
    in the error when the file does not decode (None: the error says to re-save the file as UTF-8).
    Raises ``AfcuError`` for an unknown setting, an unrecognised source, a table without ``field``, and any loader error.
    """
    _check_setting(setting)
    kind, sep, rest = source.partition(":")
    if source == "builtin":
        return load_builtin(setting)
    if sep and kind == "advbench":
        return load_advbench(rest, encoding, encoding_flag)
    if sep and kind == "harmbench":
        return load_harmbench(rest, encoding=encoding, encoding_flag=encoding_flag)
    if Path(source).suffix.lower() in (".csv", ".jsonl"):
        if not field:
            raise AfcuError(f"query file {source} needs the name of its text field; pass --query-field NAME")
        return load_table(source, field, id_field=id_field, category_field=category_field, encoding=encoding,
                          encoding_flag=encoding_flag)
    raise AfcuError(f"unknown query source {source!r}; use builtin, advbench:PATH, harmbench:PATH, "
                    f"or a .csv/.jsonl file with --query-field")


def _unit_hash(qid: str, seed: int) -> float:
    """A stable number in [0, 1) from (id, seed); independent of the other queries and of PYTHONHASHSEED."""
    digest = hashlib.sha256(f"{seed}\x00{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_queries(queries: Sequence[Query], eval_fraction: float, seed: int = 0) -> tuple[list[Query], list[Query]]:
    """Split into ``(train, eval)`` so that RL training prompts never overlap evaluation queries.

    Each query goes to ``eval`` when ``sha256(seed, id)`` mapped to [0, 1) is below ``eval_fraction``,
    so its side depends only on its own id and the seed: adding or removing other queries never moves
    it, and the eval share is ``eval_fraction`` in expectation (not exactly). Order is preserved.
    Raises ``AfcuError`` when ``eval_fraction`` is outside [0, 1] or ids repeat.
    """
    if not 0.0 <= eval_fraction <= 1.0:
        raise AfcuError(f"eval_fraction {eval_fraction} is outside [0, 1]; pass e.g. 0.5")
    ids = [q.id for q in queries]
    if len(set(ids)) != len(ids):
        raise AfcuError("split_queries: query ids repeat; load queries through prompts.queries loaders")
    train = [q for q in queries if _unit_hash(q.id, seed) >= eval_fraction]
    evals = [q for q in queries if _unit_hash(q.id, seed) < eval_fraction]
    return train, evals
