"""Generation under the scratchpad protocol, with optional prefill and <NEXT/> continuation turns."""

from __future__ import annotations

import hashlib

from inspect_ai.model import ChatMessageAssistant, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from evals.alignment_faking.parse import OUTPUT_CLOSE, committed_end, parse_transcript, stopped_in_scratchpad
from prompts.render import NEXT_TURN

TRANSCRIPT_KEY = "af_transcript"
ATTEMPTS_KEY = "af_attempts"
TRUNCATED_KEY = "af_truncated"
MAX_RESUMES = 3  # stops at a </OUTPUT> quoted inside the scratchpad that one turn may resume from
FORCED_KEY = "af_forced"  # forced-format record of a sample (evals/alignment_faking/forced_format.py)


@solver
def protocol_generate(max_turns: int = 2, prefill: str = "", forced_format: dict | None = None,
                      forced_folder: str | None = None, seed: int = 0, request_seeds: bool = False) -> Solver:
    """Generate until an ``<OUTPUT>`` appears, for at most ``max_turns`` assistant turns.

    ``prefill`` (e.g. ``<SCRATCHPAD_REASONING>``) opens the first assistant turn; the
    provider continues it (vLLM and inspect's hf provider with afcu's chat template;
    API models that support prefill).  When a turn ends without an output the user
    turn ``<NEXT/>`` asks the model to go on, as in Greenblatt et al. (2024, app. E).
    Every request stops at ``</OUTPUT>`` (the task's ``stop_seqs``), so a weak model cannot
    append an invented second turn; a stop at a close tag inside the scratchpad resumes the
    turn (``_one_turn``).  Every attempt is logged in the sample store (``af_attempts``); the
    joined text of all assistant turns is ``af_transcript``.  With ``request_seeds`` every request
    gets its own seed from (``seed``, sample id, epoch, turn, resume), so epochs differ and a rerun repeats.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if forced_format is not None:
            from evals.alignment_faking.forced_format import ForcedFormat, forced_solve

            state, res, tries = await forced_solve(state, generate, ForcedFormat(**forced_format), forced_folder, seed)
            state.store.set(TRANSCRIPT_KEY, res.text)
            state.store.set(ATTEMPTS_KEY, tries)
            state.store.set(TRUNCATED_KEY, res.output_truncated)
            state.store.set(FORCED_KEY, res.record())
            return state
        parts: list[str] = []
        attempts: list[dict] = []
        truncated = False
        for turn in range(max_turns):
            pre = prefill if turn == 0 else ""
            text, truncated = await _one_turn(state, generate, pre, parts, attempts, turn,
                                              seed if request_seeds else None)
            parts.append(pre + text)
            if parse_transcript("\n".join(parts), truncated=truncated).output is not None:
                break
            if turn + 1 < max_turns:
                state.messages.append(ChatMessageUser(content=NEXT_TURN))
        state.store.set(TRANSCRIPT_KEY, "\n".join(parts))
        state.store.set(ATTEMPTS_KEY, attempts)
        state.store.set(TRUNCATED_KEY, truncated)
        return state

    return solve


def request_seed(seed: int, sample_id: object, epoch: int, turn: int, resume: int) -> int:
    """A stable per-request seed (31 bits): equal inputs, equal seed; any other epoch or turn, another."""
    digest = hashlib.sha256(f"{seed}:{sample_id}:{epoch}:{turn}:{resume}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


async def _one_turn(state: TaskState, generate: Generate, pre: str, parts: list[str], attempts: list[dict],
                    turn: int, seed: int | None = None) -> tuple[str, bool]:
    """One assistant turn under the ``</OUTPUT>`` stop sequence; returns (text after ``pre``, truncated).

    Providers strip the stop string, so a stop that closes the top-level output gets its
    ``</OUTPUT>`` back.  A stop inside the scratchpad (the model was writing an output tag in its
    reasoning) resumes the same turn with everything so far as an assistant prefill.
    """
    text, truncated = "", False
    for resume in range(MAX_RESUMES + 1):
        prefix = pre + text
        if prefix:
            state.messages.append(ChatMessageAssistant(content=prefix))
        extra = {} if seed is None else {"seed": request_seed(seed, state.sample_id, state.epoch, turn, resume)}
        state = await generate(state, **extra)
        piece = state.output.completion
        stop = state.output.stop_reason
        truncated = stop == "max_tokens"
        if prefix:
            # Merge prefill and continuation into one assistant turn for the history.
            state.messages[-2:] = [ChatMessageAssistant(content=prefix + piece)]
        attempts.append({"turn": turn, "resume": resume, "prefill": prefix, "completion": piece,
                         "stop_reason": stop, **extra})
        text += piece
        so_far = "\n".join([*parts, pre + text])
        if stop != "stop" or committed_end(so_far) is not None:
            break
        if committed_end(so_far + OUTPUT_CLOSE) is not None:
            text += OUTPUT_CLOSE  # the stop string closed the top-level output
            state.messages[-1] = ChatMessageAssistant(content=pre + text)
            break
        if not stopped_in_scratchpad(so_far) or resume == MAX_RESUMES:
            break
        text += OUTPUT_CLOSE  # the stop cut a close tag written inside the reasoning: put it back, go on
        state.messages.pop()
    return text, truncated
