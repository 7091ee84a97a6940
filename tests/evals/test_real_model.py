"""The main job on the real embedded model (slow: minutes on CPU; `make test-all`)."""

from __future__ import annotations

import json

import pytest

from evals.alignment_faking.run import EvalConfig, main


@pytest.mark.slow
def test_embedded_model_main_job(tmp_path):
    s = main(EvalConfig(n_queries=2, max_tokens=64, engine="hf", out=str(tmp_path / "run")))
    assert s["model"].startswith("hf/") and s["n_queries"] == 2
    for t in ("free", "paid"):
        assert s["tiers"][t]["n"] == 2
        assert 0.0 < s["forced_choice"][t]["mean_p_accept"] < 1.0
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert all(r["transcript"].startswith("<SCRATCHPAD_REASONING>") for r in rows)  # the prefill took effect
    assert (tmp_path / "run" / "figures" / "compliance_gap.png").exists()
