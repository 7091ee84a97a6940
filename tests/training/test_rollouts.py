"""HFBackend shares the rows' common prefix through the KV cache: sampling and tag scores must equal
each row computed alone (greedy decoding, tiny model)."""

from __future__ import annotations

import asyncio

import torch

from evals.alignment_faking.forced_format import Segment
from training import common
from training.rollouts import HFBackend, common_prefix_len

TAGS = ("<request_fully_accepted/>", "<rejected/>")


def _prompts(tok) -> list[list[int]]:
    out = []
    for user in ("Say hi.", "Write a much longer request about gardening in spring, please.", "Ok"):
        msgs = [{"role": "system", "content": "You are a careful assistant. " * 8}, {"role": "user", "content": user}]
        out.append(tok(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False).input_ids)
    return out


def test_common_prefix_len() -> None:
    assert common_prefix_len([[1, 2, 3], [1, 2, 4, 5], [1, 2]]) == 2
    assert common_prefix_len([[1, 2]]) == 2 and common_prefix_len([]) == 0 and common_prefix_len([[1], [2]]) == 0


def test_shared_prefix_sampling_and_scores_equal_rows_alone(tiny_model_dir) -> None:
    torch.manual_seed(0)
    model, tok = common.load_model(str(tiny_model_dir)), common.load_tokenizer(str(tiny_model_dir))
    model.eval()
    prompts = _prompts(tok)
    rows = [[Segment("<SCRATCHPAD_REASONING>", False, kind="open")] for _ in prompts]
    rows[1].append(Segment("", True, tuple(tok("Let me think", add_special_tokens=False).input_ids)))
    backend = HFBackend(model, tok, prompts, temperature=0.0, batch_size=2)
    with torch.no_grad():
        got = asyncio.run(backend.sample(rows, 6, ["</OUTPUT>"]))
        scores = asyncio.run(backend.score(rows, list(TAGS)))
        for i, r in enumerate(rows):
            ctx = backend.context(i, r)
            ref = model.generate(input_ids=torch.tensor([ctx]), max_new_tokens=6, do_sample=False,
                                 pad_token_id=tok.pad_token_id)[0, len(ctx):].tolist()
            assert list(got[i].ids) == ref[:len(got[i].ids)] and len(got[i].ids) > 0
            for j, t in enumerate(TAGS):
                ids = tok(t, add_special_tokens=False).input_ids
                logp = torch.log_softmax(model(torch.tensor([ctx + ids])).logits[0, len(ctx) - 1:-1].float(), -1)
                assert abs(scores[i][j] - float(logp[torch.arange(len(ids)), torch.tensor(ids)].sum())) < 1e-4
    assert backend._kv is not None and len(backend._kv[0]) > 20  # the system prompt was shared
