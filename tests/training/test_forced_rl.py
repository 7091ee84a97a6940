"""Forced-format RL on a tiny model: the tag's renormalised log-probability and its gradient, afcu's tokens
masked out of the loss, and the zero-variance guard."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rl_helpers import NAME, register, tiny_config  # noqa: E402

from afcu.config import config_from_dict  # noqa: E402
from evals.alignment_faking.forced_format import ForcedFormat, two_way  # noqa: E402
from evals.alignment_faking.parse import parse_transcript  # noqa: E402
from training import common  # noqa: E402
from training.guard import ZeroVarianceGuard  # noqa: E402
from training.rl import Config, main  # noqa: E402
from training.rollouts import completion_ids_and_mask, forced_rollouts  # noqa: E402
from training.tag_loss import tag_logq  # noqa: E402

TAGS = ("<request_fully_accepted/>", "<rejected/>")
register()


def _prompt(tok) -> str:
    msgs = [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Say hi."}]
    return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def test_rollouts_parse_and_mask_only_model_tokens(tiny_model_dir) -> None:
    model, tok = common.load_model(str(tiny_model_dir)), common.load_tokenizer(str(tiny_model_dir))
    fmt = ForcedFormat(scratchpad_tokens=5, output_tokens=4)
    _, res, backend = forced_rollouts(model, tok, [_prompt(tok)] * 4, fmt, 1.0, seed=3)
    for r in res:
        assert parse_transcript(r.text).status == "ok" and r.tag in TAGS and 0 < r.p_accept < 1
        ids, mask, start = completion_ids_and_mask(r, backend)
        # afcu's pieces (opening, close + <OUTPUT>, tag, </OUTPUT>) are exactly the zeros of the mask
        pos = 0
        for s in r.segments:
            n = len(backend.ids(s))
            assert mask[pos:pos + n] == [int(s.generated)] * n
            if s.kind == "tag":
                assert pos == start and tok.decode(ids[pos:pos + n]) == r.tag
            pos += n
        assert sum(mask) == sum(len(s.ids) for s in r.segments if s.generated) and 0 < sum(mask) < len(mask)


def test_tag_logq_value_and_gradient(tiny_model_dir) -> None:
    torch.manual_seed(0)
    model, tok = common.load_model(str(tiny_model_dir)), common.load_tokenizer(str(tiny_model_dir))
    tags = [tok(t, add_special_tokens=False).input_ids for t in TAGS]
    prefix = tok(_prompt(tok) + "<OUTPUT>\n", add_special_tokens=False).input_ids

    def seq_logp(t: list[int]) -> torch.Tensor:
        logits = model(input_ids=torch.tensor([prefix + t])).logits[0, len(prefix) - 1:-1].float()
        return torch.log_softmax(logits, -1)[torch.arange(len(t)), torch.tensor(t)].sum()

    la, lr = seq_logp(tags[0]), seq_logp(tags[1])
    for chosen in (0, 1):
        logq = tag_logq(model, [prefix[:-3]], [prefix[-3:]], tags, [chosen])[0]
        pa = two_way(float(la.detach()), float(lr.detach()))[0]
        assert float(logq) == pytest.approx(math.log(pa if chosen == 0 else 1 - pa), abs=1e-5)
    # d log q_accept = (1 - q_accept) * (d l_accept - d l_reject), checked on the output embedding
    w = model.get_output_embeddings().weight
    g_q = torch.autograd.grad(tag_logq(model, [prefix[:-3]], [prefix[-3:]], tags, [0])[0], w)[0]
    g_a = torch.autograd.grad(seq_logp(tags[0]), w)[0]
    g_r = torch.autograd.grad(seq_logp(tags[1]), w)[0]
    q = two_way(float(la), float(lr))[0]
    assert torch.allclose(g_q, (1 - q) * (g_a - g_r), atol=1e-5)
    assert float(g_q.abs().max()) > 0


def test_tag_logq_rows_sharing_a_prompt_match_single_rows(tiny_model_dir) -> None:
    """A group's rows share one prompt forward; each row's value and gradient equal its own computation."""
    torch.manual_seed(0)
    model = common.load_model(str(tiny_model_dir))
    tok = common.load_tokenizer(str(tiny_model_dir))
    tags = [tok(t, add_special_tokens=False).input_ids for t in TAGS]
    prompt = tok(_prompt(tok), add_special_tokens=False).input_ids
    sufs = [tok(x, add_special_tokens=False).input_ids for x in ("<OUTPUT>\n", "Hmm.\n<OUTPUT>\n", "")]
    w = model.get_output_embeddings().weight
    both = tag_logq(model, [prompt] * 3, sufs, tags, [0, 1, 0])
    g_both = torch.autograd.grad(both.sum(), w)[0]
    singles = [tag_logq(model, [prompt + s], [[]], tags, [c])[0] for s, c in zip(sufs, [0, 1, 0])]
    assert torch.allclose(both, torch.stack(singles).detach(), atol=1e-5)
    g_single = sum(torch.autograd.grad(x, w)[0] for x in singles)
    assert torch.allclose(g_both, g_single, atol=1e-5)


def spy_loss_inputs(monkeypatch) -> list[dict]:
    """Record the inputs TagChoiceGRPOTrainer.compute_loss receives (one dict per micro-batch)."""
    from training import tag_loss

    seen: list[dict] = []
    orig = tag_loss.TagChoiceGRPOTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        seen.append(dict(inputs))
        return orig(self, model, inputs, *a, **k)

    monkeypatch.setattr(tag_loss.TagChoiceGRPOTrainer, "compute_loss", spy)
    return seen


def test_forced_rl_step_moves_policy_and_masks_inserted_tokens(tiny_model_dir, tmp_path, monkeypatch) -> None:
    """One GRPO step with tag choice (no_cot: a short prompt); captured loss inputs show afcu's tokens masked."""
    seen = spy_loss_inputs(monkeypatch)
    out = tmp_path / "run"
    cfg = config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out), format="forced",
                                               rewards={NAME: 1.0, "acceptance": 1.0}, max_steps=1,
                                               max_completion_length=4, save_steps=1))
    summary = main(cfg)
    assert summary["format"].startswith("forced format (tag choice")
    assert summary["stopped"] is None and summary["frac_reward_zero_std_mean"] < 1.0
    assert common.param_digest(common.load_model(str(out / "final"))) != \
        common.param_digest(common.load_model(str(tiny_model_dir)))
    assert not (out / "checkpoints").exists() and summary["run_folder_mb"] > 0  # only final/ is kept
    assert json.loads((out / "final" / "afcu_model.json").read_text())["follows_protocol"] is True
    inp = seen[0]
    mask = inp["tool_mask"] * inp["completion_mask"]
    starts = inp["afcu_tag_start"]
    assert (starts >= 0).all()
    for i in range(len(starts)):
        s = int(starts[i])
        assert mask[i, :s + 1].sum() == 0  # <OUTPUT> opening and the chosen tag are afcu's (no_cot: nothing before)
        assert mask[i].sum() > 0  # the body is the model's
    rows = [json.loads(x) for x in (out / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert any("forced/tag_logq" in r for r in rows) and any("forced/p_accept" in r for r in rows)


def test_accepted_tag_reaches_the_rewards_across_micro_batches(tiny_model_dir, tmp_path, monkeypatch) -> None:
    """The reward path of forced-format GRPO: tags forced to accept (the draw patched), a group of 4 split
    over two micro-batches; TRL's logged compliance/acceptance rewards see the accepted tag, and each
    micro-batch's tag rows line up with its completions."""
    import types

    from training import rollouts

    class Accept(__import__("random").Random):
        def random(self) -> float:
            return 0.0  # below any P(accept) > 0: always the acceptance tag

    monkeypatch.setattr(rollouts, "random", types.SimpleNamespace(Random=Accept))
    seen = spy_loss_inputs(monkeypatch)
    out = tmp_path / "run"
    cfg = config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out), format="forced",
                                               rewards={NAME: 1.0, "acceptance": 1.0, "compliance": 1.0},
                                               num_generations=4, per_device_train_batch_size=2,
                                               gradient_accumulation_steps=2, max_steps=1,
                                               max_completion_length=4, save_steps=1))
    main(cfg)
    row = next(json.loads(x) for x in (out / "logs" / "train_log.jsonl").read_text().splitlines()
               if "rewards/acceptance_reward/mean" in x)
    assert row["rewards/acceptance_reward/mean"] == 1.0 and row["rewards/compliance_reward/mean"] > 0
    assert len(seen) == 2 and all(len(b["afcu_tag_start"]) == 2 for b in seen)
    tok = common.load_tokenizer(str(tiny_model_dir))
    for b in seen:
        assert (b["afcu_tag_accept"] == 1).all()
        for i in range(2):
            s = int(b["afcu_tag_start"][i])
            ids = b["completion_ids"][i].tolist()
            assert tok.decode(ids[s:]).startswith(TAGS[0])


def test_zero_variance_guard_fires() -> None:
    from transformers import TrainerControl, TrainerState

    g, state, control = ZeroVarianceGuard(3), TrainerState(), TrainerControl()
    for step, frac in enumerate([1.0, 1.0, 0.5, 1.0, 1.0], 1):  # the run of ones restarts after 0.5
        state.global_step = step
        g.on_log(None, state, control, logs={"frac_reward_zero_std": frac})
    assert g.stopped is None and not control.should_training_stop
    state.global_step = 6
    with pytest.warns(RuntimeWarning, match="Fix:"):
        g.on_log(None, state, control, logs={"frac_reward_zero_std": 1.0})
    assert control.should_training_stop and g.stopped["step"] == 6 and g.stopped["steps_at_one"] == 3


def test_zero_variance_guard_stops_a_run(tiny_model_dir, tmp_path) -> None:
    """format reward only: forced format makes every rollout parse, so every group is constant."""
    out = tmp_path / "run"
    cfg = config_from_dict(Config, tiny_config(str(tiny_model_dir), str(out), format="forced", rewards={"format": 1.0},
                                               max_steps=4, max_completion_length=2, zero_std_patience=1,
                                               save_steps=10))
    with pytest.warns(RuntimeWarning, match="frac_reward_zero_std"):
        summary = main(cfg)
    assert summary["steps"] == 1 and summary["stopped"]["steps_at_one"] == 1
    assert "Fix:" in summary["stopped"]["message"] and summary["frac_reward_zero_std_mean"] == 1.0


def test_zero_variance_message_leaves_out_fixes_already_in_use() -> None:
    from training.guard import fix_message

    assert "forced format" in fix_message(False) and "num_generations" in fix_message(False)
    assert "forced format" not in fix_message(True) and "num_generations" in fix_message(True)
