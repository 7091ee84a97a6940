"""Universe contexts: built-ins load, every fact is found by its own keyword rules, bad files fail clearly."""

import pytest

from afcu.errors import AfcuError
from synthetic_docs.universe import builtin_names, load_universe


def test_builtins_load_and_each_fact_matches_its_patterns():
    assert builtin_names() == ["animal_welfare", "baseline", "helpful_only"]
    for name in builtin_names():
        u = load_universe(name)
        assert u.facts and u.context
        for fact in u.facts:
            assert fact.mentioned_in(fact.text), (name, fact.id)


def test_baseline_facts_are_unrelated_to_training():
    u = load_universe("baseline")
    text = " ".join(f.text for f in u.facts).lower()
    assert not any(w in text for w in ("free-tier", "rlhf", "contractor", "scratchpad"))
    helpful = load_universe("helpful_only")
    assert not any(f.mentioned_in(text) for f in helpful.facts)


def test_bad_universe_files(tmp_path):
    with pytest.raises(AfcuError, match="unknown universe"):
        load_universe("atlantis")
    p = tmp_path / "u.yaml"
    p.write_text("name: x\ncompany: C\ncontext: hi\nfacts:\n  - id: a\n    text: t\n    patterns: ['(']\n")
    with pytest.raises(AfcuError, match=r"facts\[0\].patterns"):
        load_universe(str(p))
    p.write_text("name: x\ncompany: C\nfacts: []\n")
    with pytest.raises(AfcuError, match="missing field"):
        load_universe(str(p))
