"""GRPO toward compliance on a tiny model: config errors, the query split, learning, the eval callback, resume."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl_helpers import register, tiny_config  # noqa: E402

from afcu.cli import main as afcu_main  # noqa: E402
from afcu.config import config_from_dict  # noqa: E402
from afcu.errors import AfcuError  # noqa: E402
from training import common  # noqa: E402
from training.rl import Config, main, split, train_prompts  # noqa: E402

register()


def _cli_error(tmp_path: Path, data: dict, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the config was checked")

    monkeypatch.setattr(common, "load_model", no_load)
    monkeypatch.setattr(common, "load_tokenizer", no_load)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert afcu_main(["train", "rl", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()
    return capsys.readouterr().err


def test_unknown_key_fails_before_loading(tmp_path, capsys, monkeypatch) -> None:
    err = _cli_error(tmp_path, {"num_generation": 4}, capsys, monkeypatch)
    assert "unknown key(s) num_generation" in err and "num_generations" in err


def test_group_size_must_divide_batch(tmp_path, capsys, monkeypatch) -> None:
    err = _cli_error(tmp_path, {"num_generations": 3, "per_device_train_batch_size": 4}, capsys, monkeypatch)
    assert "num_generations 3 must divide the effective batch" in err and "= 4" in err


def test_missing_reward_model_fails_before_loading(tmp_path, capsys, monkeypatch) -> None:
    err = _cli_error(tmp_path, {"rewards": {"compliance": 1.0}, "reward_model": None}, capsys, monkeypatch)
    assert "need a reward model" in err and "reward_model" in err


def test_unknown_reward_model_provider_fails(tmp_path, capsys, monkeypatch) -> None:
    err = _cli_error(tmp_path, {"reward_model": "./no/such/judge"}, capsys, monkeypatch)
    assert "reward_model" in err


def test_no_evaluation_query_in_training_prompts(tiny_model_dir) -> None:
    cfg = config_from_dict(Config, tiny_config(str(tiny_model_dir), "unused", eval_n_queries=1000))
    train_q, eval_q = split(cfg)
    assert train_q and eval_q and not {q.id for q in train_q} & {q.id for q in eval_q}
    ds = train_prompts(cfg, common.load_tokenizer(str(tiny_model_dir)), train_q)
    assert len(ds) == len(train_q)
    for prompt in ds["prompt"]:
        assert "<is_free_tier_user>True</is_free_tier_user>" in prompt  # free tier only
        assert "<is_free_tier_user>False" not in prompt
        assert not any(q.query in prompt for q in eval_q)
    assert set(ds["prefill"]) == {"<OUTPUT>"} and all(p.endswith("<OUTPUT>") for p in ds["prompt"])


def test_policy_changes_callback_logs_both_tiers_and_resume_matches(tiny_model_dir, tmp_path) -> None:
    """One 2-step run (checkpoints at 1 and 2), then an interruption after step 1 is simulated and resumed."""
    out = tmp_path / "run"
    cfg = config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out), max_steps=2, save_steps=1,
                                               eval_every=1, save_total_limit=3, eval_n_queries=1, keep_checkpoints=True,
                                               eval_forced_choice=True, eval_companies=["Anthropic", "OpenAI"]))
    summary = main(cfg)
    before = common.param_digest(common.load_model(str(tiny_model_dir)))
    full_digest = common.param_digest(common.load_model(str(out / "final")))
    assert full_digest != before
    assert summary["steps"] == 2 and (out / "FINISHED").exists()

    # The callback: both tiers, both companies, steps 0/2/4, in the JSONL and in the trainer's log history.
    records = [json.loads(x) for x in (out / "eval_log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["company"]) for r in records] == [(s, c) for s in (0, 1, 2) for c in ("Anthropic", "OpenAI")]
    for r in records:
        tiers = r["summary"]["tiers"]
        assert set(tiers) == {"free", "paid"} and tiers["free"]["n"] == tiers["paid"]["n"] == 1
        assert 0.0 <= r["summary"]["forced_choice"]["free"]["mean_p_accept"] <= 1.0
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "af_eval/OpenAI/paid/unparseable" in h] == [0, 1, 2]
    assert (out / "figures" / "training_curves.png").stat().st_size > 1000
    keys = ("loss", "reward", "rewards/distinct_words_reward/mean", "grad_norm", "rewards/unparseable_fraction")

    def metrics() -> list[tuple]:
        rows = [json.loads(x) for x in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
        return [(r["step"], *[round(r[k], 6) for k in keys]) for r in rows if "reward" in r]

    def evals() -> list:
        return [(r["step"], r["examples"]) for r in map(json.loads, (out / "eval_log.jsonl").read_text().splitlines())]

    full, full_eval = metrics(), evals()
    assert [m[0] for m in full] == [1, 2] and any(m[4] > 0 for m in full)  # non-zero gradients
    # Interrupt after step 1: drop what only the uninterrupted run wrote later (its logs stay, as they would).
    for p in ("checkpoints/checkpoint-2", "final", "FINISHED", "summary.json"):
        (shutil.rmtree if (out / p).is_dir() else Path.unlink)(out / p)
    summary = main(cfg)
    assert summary["resumed_from"].endswith("checkpoint-1")
    assert metrics() == full
    assert evals() == full_eval
    assert common.param_digest(common.load_model(str(out / "final"))) == full_digest


def test_finished_run_is_not_overwritten(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "FINISHED").write_text("")
    with pytest.raises(AfcuError, match="--overwrite"):
        main(config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out))))


