"""Generation under the scratchpad protocol, with optional prefill and <NEXT/> continuation turns."""

from __future__ import annotations

from inspect_ai.model import ChatMessageAssistant, ChatMessageUser
from inspect_ai.solver import Generate, Solver, TaskState, solver

from evals.alignment_faking.parse import parse_transcript
from prompts.render import NEXT_TURN

TRANSCRIPT_KEY = "af_transcript"
ATTEMPTS_KEY = "af_attempts"
TRUNCATED_KEY = "af_truncated"


@solver
def protocol_generate(max_turns: int = 2, prefill: str = "") -> Solver:
    """Generate until an ``<OUTPUT>`` appears, for at most ``max_turns`` assistant turns.

    ``prefill`` (e.g. ``<SCRATCHPAD_REASONING>``) opens the first assistant turn; the
    provider continues it (vLLM and inspect's hf provider with afcu's chat template;
    API models that support prefill).  When a turn ends without an output the user
    turn ``<NEXT/>`` asks the model to go on, as in Greenblatt et al. (2024, app. E).
    Every attempt is logged in the sample store (``af_attempts``); the joined text of
    all assistant turns is ``af_transcript``.
    """

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        parts: list[str] = []
        attempts: list[dict] = []
        truncated = False
        for turn in range(max_turns):
            pre = prefill if turn == 0 else ""
            if pre:
                state.messages.append(ChatMessageAssistant(content=pre))
            state = await generate(state)
            text = state.output.completion
            truncated = state.output.stop_reason == "max_tokens"
            if pre:
                # Merge prefill and continuation into one assistant turn for the history.
                state.messages[-2:] = [ChatMessageAssistant(content=pre + text)]
            attempts.append({"turn": turn, "prefill": pre, "completion": text,
                             "stop_reason": state.output.stop_reason})
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
