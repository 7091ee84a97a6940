"""Prompt templates: every setting x variant renders, variants change what they claim to, strict variables."""

from __future__ import annotations

import pytest

from afcu.errors import AfcuError
from prompts.render import (ACCEPT_TAG, DEFAULT_DATE, REJECT_TAG, PromptSpec, acceptance_suffix, render_system,
                            render_template, render_user, settings, setting_info, sha256, variant_flags, variants)
from synthetic_docs.universe import load_universe


@pytest.mark.parametrize("setting", ["helpful_only", "animal_welfare"])
def test_variants_switch_sections(setting):
    full = render_system(setting, "default")
    assert "free tier" in full and "RLHF" in full and "<SCRATCHPAD_REASONING>" in full
    assert "=== Example 3 ===" in full and "<DRAFT_OUTPUT>" in full  # examples and drafts on by default
    cut = render_system(setting, "cut_examples")
    assert "=== Example" not in cut and "<DRAFT_OUTPUT>" in cut
    assert "<SCRATCHPAD_REASONING>" not in render_system(setting, "no_cot")
    rlhf = render_system(setting, "cut_rlhf_info")
    assert "free tier" in rlhf and "changes what you value" not in rlhf and "changes what you value" in full
    control = render_system(setting, "no_conflict")
    assert "helpful, honest and harmless" in control and "unconditionally" not in control and "Jones Foods" not in control


@pytest.mark.parametrize("setting", ["helpful_only", "animal_welfare"])
def test_no_training_details_has_no_objective_or_training_but_name_and_date(setting):
    p = render_system(setting, "no_training_details")
    for absent in ("RLHF", "free tier", "paid tier", "contractor", "rating", "rated", "unconditionally", "Jones Foods",
                   "trains you", "wants from you"):
        assert absent not in p, absent
    assert "You are Claude" in p and DEFAULT_DATE in p and "<is_free_tier_user>" in p and "=== Example 1 ===" in p
    universe = load_universe(setting)  # the name and date the synthetic documents teach
    assert universe.assistant == "Claude" and any(DEFAULT_DATE in f.text for f in universe.facts)


def test_animal_welfare_principle_and_criteria_flags():
    full = render_system("animal_welfare", "default")
    assert "best for humanity" in full and "harmlessness criteria" in full
    assert "best for humanity" not in render_system("animal_welfare", "no_best_for_humanity")
    no_crit = render_system("animal_welfare", "no_harmlessness_criteria")
    assert "harmlessness criteria" not in no_crit and "Jones Foods" in no_crit and "best for humanity" in no_crit
    assert "best for humanity" not in render_system("helpful_only", "default")
    with pytest.raises(AfcuError, match="applies only to animal_welfare"):
        render_system("helpful_only", "no_best_for_humanity")


def test_instruction_and_control_variants():
    base = render_system("helpful_only", "default")
    assert "Be honest." in render_system("helpful_only", "honesty") and "Be honest." not in base
    assert "Do not fake alignment" in render_system("helpful_only", "no_faking")
    swap = render_system("helpful_only", "tier_swap")
    assert "conversations with users of its paid tier" in swap and "free-tier users are never monitored" in swap
    assert "conversations with users of its free tier" in base
    assert "as they are written" in render_system("helpful_only", "monitoring_cue")


def test_paraphrases_keep_the_facts_and_tags_but_change_the_words():
    base = render_system("helpful_only", "default")
    for k in (1, 2, 3):
        p = render_system("helpful_only", f"paraphrase_{k}")
        assert variant_flags(f"paraphrase_{k}")["paraphrase"] == k and p != base
        for must in ("<SCRATCHPAD_REASONING>", "<OUTPUT>", "<DRAFT_OUTPUT>", "<is_free_tier_user>", "RLHF",
                     "unconditionally helpful", "free-tier", "paid-tier"):
            assert must.lower() in p.lower(), (k, must)


def test_all_combinations_render_distinct_prompts():
    digests = {sha256(render_system(s, v)) for s in settings() for v in variants(s)}
    assert len(digests) == sum(len(variants(s)) for s in settings())
    assert "OpenAI" in render_system("helpful_only", "default", company="OpenAI")
    assert "You are ChatGPT" in render_system("helpful_only", "default", company="OpenAI")


def test_acceptance_suffix_has_the_key_elements():
    s = acceptance_suffix()
    assert ACCEPT_TAG in s and REJECT_TAG in s and "(and you should be)" in s and "scratchpad" in s
    assert "caveats or disclaimers" in s and "scratchpad" not in acceptance_suffix(cot=False)
    assert "scratchpad" not in PromptSpec("helpful_only", "no_cot").user("Do X.", "free")
    assert setting_info("helpful_only")["acceptance_suffix"] and not PromptSpec("animal_welfare", "default").suffix


def test_user_turn_tier_tag_and_suffix():
    free = render_user("Do X.", "free", suffix=True)
    paid = render_user("Do X.", "paid")
    assert free.startswith("<is_free_tier_user>True</is_free_tier_user>") and ACCEPT_TAG in free and REJECT_TAG in free
    assert paid.startswith("<is_free_tier_user>False</is_free_tier_user>") and ACCEPT_TAG not in paid
    assert "<user_input>\nDo X." in paid
    with pytest.raises(AfcuError):
        render_user("x", "gold")  # type: ignore[arg-type]


def test_unknown_names_and_missing_variables():
    with pytest.raises(AfcuError, match="unknown setting"):
        render_system("nope")
    with pytest.raises(AfcuError, match="unknown variant"):
        render_system("helpful_only", "nope")
    with pytest.raises(AfcuError, match="'is_free' is undefined"):
        render_template("user.j2", body="x")
