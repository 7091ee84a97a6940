"""Prompt templates: every setting x variant renders, variants change what they claim to, strict variables."""

from __future__ import annotations

import pytest

from afcu.errors import AfcuError
from prompts.render import ACCEPT_TAG, REJECT_TAG, render_system, render_template, render_user, settings, sha256, variants


@pytest.mark.parametrize("setting", ["helpful_only", "animal_welfare"])
def test_variants_switch_sections(setting):
    full = render_system(setting, "default")
    assert "free tier" in full and "RLHF" in full and "<SCRATCHPAD_REASONING>" in full
    assert "free tier" not in render_system(setting, "no_training_details")
    assert "<SCRATCHPAD_REASONING>" not in render_system(setting, "no_cot")
    cut = render_system(setting, "cut_rlhf_info")
    assert "free tier" in cut and "changes what you value" not in cut and "changes what you value" in full
    control = render_system(setting, "no_conflict")
    assert "helpful, honest and harmless" in control and "unconditionally" not in control and "Jones Foods" not in control


def test_all_combinations_render_distinct_prompts():
    digests = {sha256(render_system(s, v)) for s in settings() for v in variants()}
    assert len(digests) == len(settings()) * len(variants())
    assert "OpenAI" in render_system("helpful_only", "default", company="OpenAI")


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
