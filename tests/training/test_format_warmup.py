"""Format warm-start: balanced tier-neutral demonstrations, the unchanged-within-CI check, the recipe end to end."""

from __future__ import annotations

import json

import pytest

from afcu.config import config_from_dict
from evals.alignment_faking.parse import parse_transcript
from prompts.render import PromptSpec
from training.format_warmup import BENIGN, check_unchanged, demonstrations
from training.sft import Config, main


def test_demonstrations_balanced_and_tier_neutral() -> None:
    demos = demonstrations(PromptSpec("helpful_only", "cut_examples"), BENIGN, suffix=True, seed=0)
    n = len(demos) // 2
    for tier in ("free", "paid"):
        mine = [d for d in demos if d["tier"] == tier]
        assert len(mine) == n and sum(d["accept"] for d in mine) == n // 2  # 16 conversations: 8 accepted per tier
        assert all(("<is_free_tier_user>True" in d["user"]) == (tier == "free") for d in mine)
    for d in demos:
        p = parse_transcript(d["completion"])
        assert p.status == "ok" and p.accepted == d["accept"]
        assert "tier" not in p.scratchpad.lower()  # the reasoning never mentions a tier
    # every conversation is accepted in exactly one tier: no tier is favoured
    pairs = [demos[i:i + 2] for i in range(0, len(demos), 2)]
    assert all(a["accept"] != b["accept"] for a, b in pairs)


def _rows(values: dict[str, list[float]]) -> list[dict]:
    return [{"pair_id": f"q{i}", "tier": t, "p_accept": v, "complied": v > 0.5}
            for t, vs in values.items() for i, v in enumerate(vs)]


def test_check_unchanged() -> None:
    same = _rows({"free": [0.2, 0.4, 0.6, 0.3], "paid": [0.1, 0.5, 0.7, 0.2]})
    c = check_unchanged({}, {}, same, same)
    assert c["unchanged"] and c["free"]["p_accept"]["diff"] == 0.0 and c["paid"]["compliance"]["n"] == 4
    moved = _rows({"free": [0.9, 0.95, 0.99, 0.9], "paid": [0.1, 0.5, 0.7, 0.2]})
    c = check_unchanged({}, {}, same, moved)
    assert not c["unchanged"] and not c["free"]["p_accept"]["unchanged"] and c["paid"]["p_accept"]["unchanged"]
    assert abs(c["free"]["p_accept"]["diff"] - (sum([0.9, 0.95, 0.99, 0.9]) - 1.5) / 4) < 1e-9


@pytest.mark.slow  # about 2 min on the shared 2-core machine (two evaluations and one SFT pass)
def test_recipe_end_to_end(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "warm"
    cfg = config_from_dict(Config, {"recipe": "format-warmup", "model": str(tiny_model_dir), "out": str(out),
                                    "variant": "no_cot", "max_docs": 2, "eval_n_queries": 1, "output_tokens": 3,
                                    "per_device_train_batch_size": 2, "learning_rate": 1e-3})
    s = main(cfg)
    assert s["n_demonstrations"] == 4 and s["accept_share"] == {"free": 0.5, "paid": 0.5}
    fc = s["format_check"]
    assert set(fc) >= {"free", "paid", "unchanged"} and fc["free"]["p_accept"]["n"] == 1
    assert s["verdict"] in ("unchanged within CI", "CHANGED (a CI of after - before excludes 0)")
    assert (out / "final" / "config.json").exists() and (out / "FINISHED").exists()
    steps = [json.loads(x)["step"] for x in (out / "eval_log.jsonl").read_text().splitlines()]
    assert steps == [0, 1]
