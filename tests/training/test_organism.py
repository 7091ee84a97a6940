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


@pytest.mark.parametrize("argv, words", [
    (["--trainer", "ei", "--learning-rate", "-1"], ["learning_rate", "positive", "--learning-rate"]),
    (["--trainer", "ei", "--ei-prompts", "0"], ["ei_prompts", "at least 1", "--ei-prompts"]),
    (["--trainer", "ei", "--eval-n-queries", "0"], ["eval_n_queries", "--eval-n-queries"]),
    (["--num-generations", "1"], ["organism:", "num_generations", "at least 2"]),  # GRPO's own check, one line
    (["--warmup-learning-rate", "0"], ["warmup_learning_rate", "positive"]),
])
def test_bad_numbers_fail_before_any_folder(tmp_path, capsys, argv, words) -> None:
    assert afcu_main(["organism", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "o").exists() and all(w in err for w in words), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_unknown_trainer_fails_before_any_folder(tmp_path, capsys) -> None:
    assert afcu_main(["organism", "--trainer", "ppo", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "o").exists() and "trainer" in err and "grpo or ei" in err


def test_ei_stage_config_follows_the_organism() -> None:
    from pathlib import Path

    from training.organism import _ei_cfg

    cfg = OrganismConfig(trainer="ei", steps=3, ei_prompts=5, num_generations=4, learning_rate=3e-5,
                         scratchpad_tokens=16, output_tokens=12, eval_n_queries=6, seed=7)
    ei = _ei_cfg(cfg, Path("o"), "o/warmup/final")
    assert (ei.model, ei.out, ei.iterations, ei.prompts_per_iteration, ei.samples_per_prompt) == \
        ("o/warmup/final", str(Path("o") / "ei"), 3, 5, 4)
    assert (ei.learning_rate, ei.scratchpad_tokens, ei.max_new_tokens, ei.eval_n_queries, ei.seed) == \
        (3e-5, 16, 12, 6, 7)
    assert ei.format == "forced" and ei.tag_choice and ei.min_reward == 0.0 and ei.rewards == {"compliance": 1.0}


def test_organism_ei_end_to_end(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "org"
    s = main(OrganismConfig(model=str(tiny_model_dir), out=str(out), variant="no_cot", warmup_conversations=1,
                            trainer="ei", steps=1, ei_prompts=2, eval_n_queries=1, num_generations=2,
                            output_tokens=2, rewards={"acceptance": 1.0}))
    assert s["trainer"] == "ei" and [r["step"] for r in s["curves"]] == [0, 1]
    assert len(s["ei_rounds"]) == 1 and s["ei_rounds"][0]["n_samples"] == 4
    assert (out / "ei" / "iterations" / "iter-0" / "kept.jsonl").is_file()
    assert s["final"] == str(out / "ei" / "final") and not (out / "rl").exists()
    again = curves(out / "ei" / "eval_log.jsonl")
    assert [r["step"] for r in again] == [0, 1]
