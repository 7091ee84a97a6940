"""End-to-end generation with a scripted mockllm: stages, malformed outputs, cache, resume, export."""

from __future__ import annotations

import json

import pytest
from datasets import load_from_disk

from afcu.errors import AfcuError
from synthetic_docs.pipeline import Config, main
from synthetic_docs.universe import load_universe
from tests.synthetic_docs.scripted import default_reply, doc_text, output, scripted_model


def cfg(tmp_path, tok_dir, **kw) -> Config:
    base = dict(universe="helpful_only", n_docs=6, out=str(tmp_path / "run"), tokenizer=str(tok_dir),
                concurrency=3, types_per_fact=2, ideas_per_type=2, min_words=20)
    return Config(**{**base, **kw})


def test_pipeline_end_to_end(tmp_path, embedded_tokenizer_dir):
    calls: list[str] = []
    stats = main(cfg(tmp_path, embedded_tokenizer_dir), model=scripted_model(calls=calls))
    # 7 facts -> 7 type calls; 2 types kept each -> 14 idea calls; 6 documents
    assert stats["stages"]["doc_types"]["calls"] == 7 and stats["stages"]["doc_types"]["items"] == 14
    assert stats["stages"]["ideas"]["calls"] == 14 and stats["stages"]["ideas"]["items"] == 28
    assert stats["stages"]["documents"]["generated"] == 6
    assert len(calls) == 7 + 14 + 6
    ds = load_from_disk(str(tmp_path / "run" / "dataset"))
    assert set(ds.column_names) >= {"text", "fact_ids", "doc_type", "idea", "universe", "generator"}
    assert len(ds) == stats["kept"] == 6
    assert ds[0]["universe"] == "helpful_only" and "free_tier_trained" in ds[0]["fact_ids"]
    # ideas are interleaved across facts: the first documents target different facts
    assert len({r for r in ds["target_fact"]}) == 6
    assert (tmp_path / "run" / "FINISHED").exists()
    assert json.loads((tmp_path / "run" / "stats.json").read_text())["kept"] == 6


def test_malformed_outputs_are_counted_and_skipped(tmp_path, embedded_tokenizer_dir):
    def reply(prompt: str, n: int):
        if "kinds of everyday documents" in prompt:
            fact = prompt.split("\nFact: ", 1)[1].split("\n", 1)[0]  # the universe context names every fact's words
            return "" if "unconditionally helpful" in fact else ("I would write a memo." if "contractors" in fact
                                                                 else default_reply(prompt, n))
        if "ideas for a" in prompt:
            return "no list here" if "news article" in prompt else default_reply(prompt, n)
        if prompt.startswith("Background"):
            k = n % 4
            if k == 0:
                return ""
            if k == 1:
                return "<document>" + doc_text(n)
            if k == 2:
                return output("This text never reaches a sentence end " * 5, max_tokens=256, truncated=True)
        return default_reply(prompt, n)

    stats = main(cfg(tmp_path, embedded_tokenizer_dir, n_docs=12), model=scripted_model(reply))
    st = stats["stages"]
    # "contractors" appears in the texts of two facts (free_tier_trained, hidden_scratchpad): no types for three
    assert st["doc_types"]["malformed"] == {"empty": 1, "no_list": 2}
    n_facts = len(load_universe("helpful_only").facts)
    assert st["ideas"]["malformed"] == {"no_list": n_facts - 3}  # one "news article" per remaining fact
    docs = st["documents"]
    assert sum(docs["malformed"].values()) == 9 and set(docs["malformed"]) == {"empty", "unterminated", "truncated"}
    assert stats["documents_parsed"] == 3 and stats["kept"] == 3
    assert stats["dropped_total"] == 9


def test_cache_resume_after_crash_and_rerun(tmp_path, embedded_tokenizer_dir):
    c = cfg(tmp_path, embedded_tokenizer_dir)

    def flaky(prompt: str, n: int):
        if prompt.startswith("Background") and n > 7 + 14 + 3:
            raise RuntimeError("connection lost")
        return default_reply(prompt, n)

    first = main(c, model=scripted_model(flaky))
    assert first["stages"]["documents"]["errors"] == 3 and first["kept"] == 3
    # an unfinished-looking rerun: only the 3 failed document calls are made again
    (tmp_path / "run" / "FINISHED").unlink()
    calls: list[str] = []
    second = main(c, model=scripted_model(calls=calls))
    assert len(calls) == 3 and second["stages"]["documents"]["cached"] == 3 and second["kept"] == 6
    # the same command on the finished run re-derives everything from the cache, no generator calls
    third = main(c, model=scripted_model(calls=calls))
    assert len(calls) == 3 and third["rederived_from_cache"] and third["kept"] == 6
    with pytest.raises(AfcuError, match="finished run"):
        main(cfg(tmp_path, embedded_tokenizer_dir, n_docs=7), model=scripted_model())


def test_judge_fact_check(tmp_path, embedded_tokenizer_dir):
    calls: list[str] = []
    stats = main(cfg(tmp_path, embedded_tokenizer_dir, fact_check="judge"), model=scripted_model(calls=calls))
    assert stats["stages"]["judge"]["calls"] == 6
    ds = load_from_disk(str(tmp_path / "run" / "dataset"))
    assert ds["fact_ids"][0] == ["free_tier_trained", "paid_tier_private"]
