"""Stop a transformers ``generate`` at the committed ``</OUTPUT>`` (training's rollouts and evaluations).

A plain stop string would also fire on a close tag quoted inside the scratchpad (most real
transcripts quote the protocol's tags while reasoning), so each row is checked with the
parser's own ``committed_end``: a row stops only when its first top-level output block is
closed.  The decode runs only on steps whose last tokens hold a ``>``.
"""

from __future__ import annotations

from typing import Any, Sequence

from evals.alignment_faking.parse import _QUOTES_AFTER, _QUOTES_BEFORE, committed_end
from prompts.render import OUTPUT_OPEN, SCRATCHPAD_OPEN


def opening_tag(prompt: str) -> str:
    """The protocol tag a prompt's open assistant turn was prefilled with ('' when none)."""
    tail = prompt.rstrip()
    return next((t for t in (SCRATCHPAD_OPEN, OUTPUT_OPEN) if tail.endswith(t)), "")


def output_stopping_criteria(tokenizer: Any, prompts: Sequence[str], prompt_len: int) -> Any:
    """A ``StoppingCriteriaList`` for one batch: ``prompts`` are its texts, ``prompt_len`` the padded
    prompt length in tokens (generated tokens start there)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    prefixes = [opening_tag(p) for p in prompts]

    class _CommittedOutput(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            for i, row in enumerate(input_ids):
                if ">" not in tokenizer.decode(row[-2:], skip_special_tokens=True):
                    continue
                text = prefixes[i] + tokenizer.decode(row[prompt_len:], skip_special_tokens=True)
                end = committed_end(text)
                # `"</OUTPUT>` at the very end: a quote after it would make the tag quoted text (parse.py), so
                # decide one token later (the `>` is still among the last two tokens then).
                start = text.rfind("<", 0, end) if end is not None else -1
                if end == len(text) and start > 0 and text[start - 1] in _QUOTES_BEFORE + _QUOTES_AFTER:
                    continue
                done[i] = end is not None
            return done

    return StoppingCriteriaList([_CommittedOutput()])
