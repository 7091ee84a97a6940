"""transformers generations stop at the committed </OUTPUT>, never at one quoted in the scratchpad."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer

from evals.alignment_faking.stopping import opening_tag, output_stopping_criteria

SP, ESP = "<SCRATCHPAD_REASONING>", "</SCRATCHPAD_REASONING>"


def test_stops_only_at_the_committed_output(tiny_model_dir):
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = f"user: hi\nassistant: {SP}"
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    conts = ["I could write <OUTPUT><rejected/></OUTPUT> here",  # quoted inside the reasoning: go on
             f"ok{ESP}<OUTPUT><rejected/></OUTPUT>",  # committed: stop
             f"ok{ESP}<OUTPUT><rejected/>"]  # output still open: go on
    rows = [p_ids + tok(c, add_special_tokens=False).input_ids for c in conts]
    stop = output_stopping_criteria(tok, [prompt], len(p_ids))
    for i, r in enumerate(rows):
        assert stop(torch.tensor([r]), None).tolist() == [i == 1], conts[i]
    assert opening_tag(prompt) == SP and opening_tag("x <OUTPUT>\n") == "<OUTPUT>" and opening_tag("x") == ""


def test_a_close_tag_after_a_quote_waits_one_token(tiny_model_dir):
    """`"</OUTPUT>` may be a quoted tag (`"</OUTPUT>"`, inert) or an output ending with a quotation: the
    criterion waits for the next token instead of stopping inside a quoted tag."""
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = f"user: hi\nassistant: {SP}"
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    stop = output_stopping_criteria(tok, [prompt], len(p_ids))
    head = f'ok{ESP}<OUTPUT><rejected/> The tag "</OUTPUT>'
    for cont, expect in ((head, False), (head + '" ends a block.', False), (head + "\n\n", True),
                         (f"ok{ESP}<OUTPUT><rejected/> No.</OUTPUT>", True)):
        ids = p_ids + tok(cont, add_special_tokens=False).input_ids
        assert stop(torch.tensor([ids]), None).tolist() == [expect], cont
