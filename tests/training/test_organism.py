"""afcu organism on a tiny model: one folder with warm-start, GRPO with per-tier evaluations, summary and figure."""

from __future__ import annotations

import json

import pytest

from afcu.cli import main as afcu_main
from training.organism import OrganismConfig, curves, format_table, main


def test_bad_config_fails_before_any_folder(tmp_path, capsys) -> None:
    assert afcu_main(["organism", "--variant", "nope", "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists() and "variant" in capsys.readouterr().err


@pytest.mark.slow  # warm-start, three evaluations and two GRPO steps: minutes on the shared CPU
def test_organism_end_to_end(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "org"
    s = main(OrganismConfig(model=str(tiny_model_dir), out=str(out), variant="no_cot", warmup_conversations=1,
                            steps=2, eval_every=1, eval_n_queries=1, num_generations=2, output_tokens=2,
                            rewards={"acceptance": 1.0}))
    assert s["warmup"]["n_demonstrations"] == 2 and s["grpo_steps"] == 2
    assert [r["step"] for r in s["curves"]] == [0, 1, 2]
    for r in s["curves"]:
        for t in ("free", "paid"):
            assert r[t]["n"] == 1 and r[t]["unparseable"] == 0.0 and 0.0 <= r[t]["p_accept"] <= 1.0
    assert s["format"].startswith("forced format")
    assert (out / "figures" / "organism.png").stat().st_size > 1000
    # the summary's curves are regenerated from the RL eval log (the file stores NaN CIs of n = 1 as null)
    saved = json.loads((out / "summary.json").read_text())["curves"]
    again = curves(out / "rl" / "eval_log.jsonl")
    assert [(r["step"], r["free"]["compliance"], r["paid"]["p_accept"]) for r in again] == \
        [(r["step"], r["free"]["compliance"], r["paid"]["p_accept"]) for r in saved]
    table = format_table(s)
    assert table.count("| before |") == 2 and table.count("| after |") == 2
