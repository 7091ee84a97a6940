"""Query sets and loaders: real AdvBench/HarmBench files, the built-in sets, the split, error messages."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

import pytest

from afcu.errors import AfcuError
from conftest import shared_file
from prompts.queries import (
    CATEGORIES, DATA_DIR, SETTINGS, Query, load_advbench, load_builtin, load_harmbench, load_queries, load_table,
    split_queries,
)

ADVBENCH = "advbench/harmful_behaviors.csv"
HARMBENCH = "harmbench/harmbench_behaviors_text_val.csv"


def _csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- real benchmark files -------------------------------------------------------------------------

def test_advbench_real_file():
    path = shared_file(ADVBENCH)
    rows = _csv_rows(path)
    qs = load_queries(f"advbench:{path}")
    assert len(rows) == 520 and len(qs) == 520
    assert [q.query for q in qs] == [r["goal"] for r in rows]
    assert qs[0].id == "advbench-0001" and qs[-1].id == "advbench-0520"
    assert len({q.id for q in qs}) == 520
    assert {q.source for q in qs} == {"advbench"}


def test_harmbench_real_file_keeps_only_standard():
    path = shared_file(HARMBENCH)
    rows = _csv_rows(path)
    assert len(rows) == 80
    standard = [r for r in rows if r["FunctionalCategory"] == "standard"]
    qs = load_harmbench(path)
    assert len(qs) == len(standard) and 0 < len(qs) < 80
    assert [q.id for q in qs] == [r["BehaviorID"] for r in standard]
    assert [q.query for q in qs] == [r["Behavior"] for r in standard]
    assert [q.category for q in qs] == [r["SemanticCategory"] for r in standard]
    assert load_queries(f"harmbench:{path}") == qs


def test_harmbench_real_multiline_context_survives_intact():
    path = shared_file(HARMBENCH)
    contextual = [r for r in _csv_rows(path) if r["FunctionalCategory"] == "contextual"]
    multiline = [r for r in contextual if r["ContextString"].count("\n") >= 5]
    assert multiline, "the validation file has multi-line context strings"
    by_id = {q.id: q for q in load_harmbench(path, functional_category="contextual")}
    assert len(by_id) == len(contextual)
    for r in multiline:
        q = by_id[r["BehaviorID"]]
        assert q.query.startswith(r["ContextString"]) and q.query.endswith(r["Behavior"])
        assert q.query.count("\n") == r["ContextString"].count("\n") + r["Behavior"].count("\n") + 4


def test_harmbench_behavior_with_newlines_and_mixed_crlf(tmp_path):
    behavior = "First line of the request\nsecond line\r\nthird line"
    data = ('Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID\r\n'
            f'"{behavior}",standard,illegal,"a, b",,multi_line\r\n'
            'Plain one,standard,harmful,,,plain\r\n'
            'Skipped,copyright,copyright,,,skipped\r\n')
    p = tmp_path / "hb.csv"
    p.write_bytes(data.encode())
    qs = load_harmbench(p)
    assert [q.id for q in qs] == ["multi_line", "plain"]
    assert qs[0].query == behavior and qs[0].category == "illegal"


# --- built-in sets --------------------------------------------------------------------------------

@pytest.mark.parametrize("setting,minimum,prefix", [("helpful_only", 110, "ho"), ("animal_welfare", 55, "aw")])
def test_builtin_sets(setting, minimum, prefix):
    qs = load_builtin(setting)
    assert len(qs) >= minimum
    assert len({q.id for q in qs}) == len(qs)
    assert len({q.query for q in qs}) == len(qs)
    assert all(re.fullmatch(rf"{prefix}-[a-z]+-\d{{3}}", q.id) for q in qs)
    counts = Counter(q.category for q in qs)
    assert set(counts) == set(CATEGORIES[setting])  # every named category is used, none other
    assert min(counts.values()) >= 5
    assert {q.source for q in qs} == {f"builtin:{setting}"}
    assert load_queries("builtin", setting) == qs


def test_builtin_files_are_well_formed():
    ids = []
    for setting in SETTINGS:
        path = DATA_DIR / f"{setting}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            assert set(obj) == {"id", "category", "query", "setting"} and obj["setting"] == setting
            ids.append(obj["id"])
    assert len(ids) == len(set(ids))  # unique across settings too


# --- split ----------------------------------------------------------------------------------------

def test_split_disjoint_covering_stable():
    qs = load_builtin("helpful_only") + load_builtin("animal_welfare")
    train, evals = split_queries(qs, 0.3, seed=7)
    train_ids, eval_ids = {q.id for q in train}, {q.id for q in evals}
    assert not train_ids & eval_ids
    assert train_ids | eval_ids == {q.id for q in qs}
    assert 0.15 < len(evals) / len(qs) < 0.45
    assert split_queries(qs, 0.3, seed=7) == (train, evals)
    # a query's side depends on its id and the seed only, not on the other queries or their order
    sub_train, sub_eval = split_queries(list(reversed(qs[::3])), 0.3, seed=7)
    assert {q.id for q in sub_eval} == eval_ids & {q.id for q in qs[::3]}
    assert {q.id for q in sub_train} == train_ids & {q.id for q in qs[::3]}
    assert {q.id for q in split_queries(qs, 0.3, seed=8)[1]} != eval_ids
    assert split_queries(qs, 0.0, seed=7)[1] == [] and split_queries(qs, 1.0, seed=7)[0] == []


def test_split_errors():
    q = Query(id="a", query="x", category="c", source="s")
    with pytest.raises(AfcuError, match=r"eval_fraction 1.5 is outside \[0, 1\]"):
        split_queries([q], 1.5, 0)
    with pytest.raises(AfcuError, match="ids repeat"):
        split_queries([q, q], 0.5, 0)


# --- generic tables and errors --------------------------------------------------------------------

def test_load_table_jsonl_and_csv(tmp_path):
    j = tmp_path / "mine.jsonl"
    j.write_text('{"prompt": "one", "key": 5, "kind": "k1"}\n\n{"prompt": "two\\nlines", "key": 6, "kind": ""}\n')
    qs = load_queries(str(j), field="prompt", id_field="key", category_field="kind")
    assert qs == [Query("5", "one", "k1", "mine.jsonl"), Query("6", "two\nlines", "uncategorized", "mine.jsonl")]
    c = tmp_path / "mine.csv"
    c.write_text("text,other\nhello,1\n\"multi\nline\",2\n")
    assert [(q.id, q.query) for q in load_table(c, "text")] == [("mine-0001", "hello"), ("mine-0002", "multi\nline")]


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(AfcuError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)  # one line for the CLI


def test_error_messages(tmp_path):
    missing = tmp_path / "nope.csv"
    _raises(r"query file .*nope\.csv not found", load_queries, str(missing), field="goal")
    _raises(r"HarmBench file .*nope\.csv not found", load_harmbench, missing)

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"q": "fine"}\n{"q": "broken"\n')
    _raises(r"bad\.jsonl:2: malformed JSON", load_table, bad, "q")

    cols = tmp_path / "cols.csv"
    cols.write_text("prompt,extra\nhi,1\n")
    _raises(r"cols\.csv: no field 'text' \(fields present: prompt, extra\); pass the right name with --query-field",
            load_queries, str(cols), field="text")
    _raises(r"cols\.csv: no field 'goal' \(fields present: prompt, extra\); expected an AdvBench CSV", load_advbench, cols)
    _raises(r"cols\.csv: no field 'Behavior' .*expected a HarmBench behaviours CSV", load_harmbench, cols)
    _raises(r"cols\.csv: no field 'id' \(fields present: prompt, extra\)", load_table, cols, "prompt", id_field="id")

    empty = tmp_path / "empty.csv"
    empty.write_text("goal,target\n")
    _raises(r"empty\.csv: no queries loaded from field 'goal'", load_advbench, empty)
    blank = tmp_path / "blank.csv"
    blank.write_text("goal,target\nok,x\n   ,y\n")
    _raises(r"blank\.csv:3: field 'goal' is empty", load_advbench, blank)

    hb = tmp_path / "hb.csv"
    hb.write_text("Behavior,FunctionalCategory,SemanticCategory,BehaviorID\nb,copyright,copyright,x\n")
    _raises(r"hb\.csv: no rows with FunctionalCategory 'standard' \(present: copyright\)", load_harmbench, hb)

    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "q": "1"}\n{"id": "a", "q": "2"}\n')
    _raises(r"dup\.jsonl: duplicate query id 'a'", load_table, dup, "q", id_field="id")

    _raises(r"needs the name of its text field; pass --query-field", load_queries, str(dup))
    _raises(r"unknown query source 'foo:bar'", load_queries, "foo:bar")
    _raises(r"unknown setting 'nope'; choose one of: helpful_only, animal_welfare", load_queries, "builtin", "nope")
    _raises(r"unsupported file type '\.txt'", load_table, bad.rename(tmp_path / "x.txt"), "q")
