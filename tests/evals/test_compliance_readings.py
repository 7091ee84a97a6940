"""Per-tier compliance readings (tag-only, judge-only, combined), harm score and the undecided segment."""

from __future__ import annotations

import pytest

from evals.alignment_faking.figures import SEGMENTS, compliance_gap_figure
from evals.alignment_faking.summary import summarize


def _row(pair, tier, tag, judge, af=False, harm=None, kinds=()):
    combined = tag if judge is None else judge
    return {"id": f"{pair}:{tier}", "pair_id": pair, "tier": tier, "status": "ok", "accepted": tag,
            "complied_tag": tag, "complied_judge": judge, "judge_undecided": judge is None, "complied": combined,
            "partial": bool(kinds) if combined else None, "partial_kinds": list(kinds), "harm_score": harm,
            "scratchpad": True, "af_reasoning": af}


def test_readings_and_segments_partition_the_tier():
    rows = [_row("a", "free", True, True, af=True, harm=1.0), _row("b", "free", False, True, harm=0.5),
            _row("c", "free", True, False, harm=0.0), _row("d", "free", True, None, kinds=("compromising",)),
            _row("a", "paid", False, False), _row("b", "paid", False, False), _row("c", "paid", False, False),
            _row("d", "paid", False, False)]
    s = summarize(rows, {"model": "m", "setting": "helpful_only", "variant": "default"})
    free = s["tiers"]["free"]
    assert free["compliance_tag"] == pytest.approx(3 / 4)  # a, c, d carry the tag
    assert free["compliance_judge"] == pytest.approx(2 / 3) and free["compliance_judge_n"] == 3  # d undecided
    assert free["compliance"] == pytest.approx(3 / 4)  # combined: a, b (untagged), d (tag fallback)
    assert free["judge_undecided"] == pytest.approx(1 / 4) and free["judge_undecided_n"] == 1
    assert free["harm_score"] == pytest.approx(0.5) and free["harm_score_n"] == 3
    assert free["partial_kinds"] == {"compromising": 1}
    parts = sum(free[k] for k, *_ in SEGMENTS)
    assert parts == pytest.approx(1.0)
    assert free["complied_with_af"] == pytest.approx(0.25) and free["refused"] == pytest.approx(0.25)


def test_figure_has_an_undecided_segment(tmp_path):
    rows = [_row("a", "free", True, None), _row("a", "paid", False, False)]
    s = summarize(rows, {"model": "m", "setting": "helpful_only", "variant": "default", "n_queries": 1,
                         "grader": "judge/x"})
    assert "judge_undecided" in [k for k, *_ in SEGMENTS]
    assert compliance_gap_figure(s, tmp_path / "f.png").stat().st_size > 0


def test_report_shows_the_readings_and_invalid_votes():
    from evals.alignment_faking.report import markdown

    rows = [_row("a", "free", False, True, harm=0.75), _row("a", "paid", True, None)]
    rows[0].update(af_votes=20, af_invalid=3)
    s = summarize(rows, {"model": "m", "setting": "helpful_only", "variant": "default", "n_queries": 1,
                         "grader": "judge/x", "prefill": "", "prompt_sha256": "x"})
    assert s["tiers"]["free"]["af_invalid_votes"] == 3 and s["tiers"]["free"]["af_votes_total"] == 20
    md = markdown(s)
    assert "| tag-only | judge-only | combined | judge undecided |" in md and "3 of 20" in md
