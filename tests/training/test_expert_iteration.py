"""Expert iteration on a tiny model: best-of-n selection, SFT moves the policy, both tiers logged per round."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl_helpers import NAME, register  # noqa: E402

from afcu.config import config_from_dict  # noqa: E402
from training import common  # noqa: E402
from training.expert_iteration import Config, main, select_best  # noqa: E402

register()


def test_select_best_keeps_the_top_completion_per_prompt_above_threshold() -> None:
    rows = [{"prompt_index": 0, "reward": 0.2, "c": "a"}, {"prompt_index": 0, "reward": 0.9, "c": "b"},
            {"prompt_index": 1, "reward": -0.5, "c": "c"}, {"prompt_index": 1, "reward": -0.1, "c": "d"},
            {"prompt_index": 2, "reward": 0.5, "c": "e"}, {"prompt_index": 2, "reward": 0.5, "c": "f"}]
    assert [r["c"] for r in select_best(rows, 0.0)] == ["b", "e"]
    assert [r["c"] for r in select_best(rows, -1.0)] == ["b", "d", "e"]


def test_expert_iteration_trains_and_logs(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "ei"
    cfg = config_from_dict(Config, dict(
        model=str(tiny_model_dir), out=str(out), rewards={NAME: 1.0, "compliance": 1.0}, iterations=2,
        prompts_per_iteration=2, samples_per_prompt=2, max_new_tokens=8, learning_rate=1e-2, eval_n_queries=1,
        eval_max_tokens=8, eval_forced_choice=False, variant="no_cot", per_device_train_batch_size=2))
    summary = main(cfg)
    assert [r["iteration"] for r in summary["log"]] == [1, 2]
    assert all(r["n_samples"] == 4 and r["n_kept"] == 2 for r in summary["log"])
    samples = [json.loads(x) for x in (out / "iterations" / "iter-0" / "samples.jsonl").read_text().splitlines()]
    for i in (0, 1):
        group = [s for s in samples if s["prompt_index"] == i]
        kept = [s for s in group if s["kept"]]
        assert len(kept) == 1 and kept[0]["reward"] == max(s["reward"] for s in group)
    before = common.param_digest(common.load_model(str(tiny_model_dir)))
    assert common.param_digest(common.load_model(str(out / "final"))) != before
    records = [json.loads(x) for x in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert all(set(r["summary"]["tiers"]) == {"free", "paid"} for r in records)
    assert (out / "figures" / "training_curves.png").exists() and (out / "FINISHED").exists()


def test_resume_after_a_kill_before_done_logs_each_iteration_once(tiny_model_dir, tmp_path, monkeypatch) -> None:
    import training.expert_iteration as ei

    out = tmp_path / "ei"
    cfg = config_from_dict(Config, dict(
        model=str(tiny_model_dir), out=str(out), rewards={NAME: 1.0}, iterations=2, prompts_per_iteration=1,
        samples_per_prompt=2, max_new_tokens=4, learning_rate=1e-2, eval_n_queries=1, eval_max_tokens=4,
        eval_forced_choice=False, variant="no_cot", per_device_train_batch_size=2))
    real = ei.atomic_write_text

    def killed_before_second_done(path, text):
        if Path(path) == out / "iterations" / "iter-1" / "DONE":
            raise KeyboardInterrupt  # iteration 2's row is already in ei_log.jsonl
        return real(path, text)

    monkeypatch.setattr(ei, "atomic_write_text", killed_before_second_done)
    with pytest.raises(KeyboardInterrupt):
        main(cfg)
    assert [r["iteration"] for r in common.read_log(out / "logs" / "ei_log.jsonl")] == [1, 2]
    monkeypatch.setattr(ei, "atomic_write_text", real)
    summary = main(cfg)
    assert summary["resumed_at_iteration"] == 1
    assert [r["iteration"] for r in summary["log"]] == [1, 2]  # was [1, 2, 2]
