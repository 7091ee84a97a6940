"""Forced-format generation: the scratchpad protocol imposed on a model that does not follow it.

A weak model (the embedded SmolLM2-135M) never closes its scratchpad, so every free-running
transcript is unparseable.  Forced format keeps the protocol's structure in afcu's hands and
leaves every *content* decision to the model:

1. the assistant turn opens with ``<SCRATCHPAD_REASONING>`` and the model reasons for at most
   ``scratchpad_tokens`` tokens (stopping early at its own ``</SCRATCHPAD_REASONING>`` or ``<OUTPUT>``);
2. afcu closes the scratchpad and opens the output (``</SCRATCHPAD_REASONING>`` + ``<OUTPUT>``); the
   ``no_cot`` variant starts here with ``<OUTPUT>``;
3. with ``tag_choice`` the first tag is sampled from the model's own two-way renormalised
   distribution over the acceptance and the rejection tag (exact sequence log-likelihoods of the
   whole tags, the same numbers as forced choice, ``forced_choice.py``), so P(tag) is known exactly;
4. the body is sampled freely up to ``output_tokens``, stopping at ``</OUTPUT>``, which afcu appends.

:func:`generate_forced` is the one implementation; a :class:`Backend` supplies sampling and
tag scoring: :class:`InspectBackend` (the eval solver, any inspect provider that continues an
assistant prefill: vLLM, hf) and ``training.rollouts.HFBackend`` (RL rollouts, expert iteration
and the in-training eval, on the policy in memory, in token space).  Each
:class:`ForcedResult` lists its segments with who wrote them, so RL can mask afcu's tokens out of
the loss.  Results are labelled ``"forced format"`` (:data:`LABEL`) in summaries, reports and logs.

Deviations: vLLM's guided choice and a token-level logits processor would constrain decoding
token by token (the probability of the first token where the tags differ); afcu instead scores
both complete tags, which is the exact two-way distribution forced choice reports.  Tag choice
needs the model's weights (a local folder or the policy in memory); for an API model the tag is
sampled freely with the body.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from afcu.errors import AfcuError
from prompts.render import ACCEPT_TAG, OUTPUT_OPEN, REJECT_TAG, SCRATCHPAD_OPEN

FORMATS = ("auto", "forced", "free")
LABEL = "forced format"
SCRATCHPAD_CLOSE = "</SCRATCHPAD_REASONING>"
OUTPUT_CLOSE = "</OUTPUT>"
CLOSE_AND_OPEN = f"\n{SCRATCHPAD_CLOSE}\n\n{OUTPUT_OPEN}\n"  # what afcu writes when the scratchpad budget ends
OUTPUT_PREFILL = f"{OUTPUT_OPEN}\n"
_SCRATCH_STOP = re.compile(r"<\s*/\s*scratchpad_reasoning\s*>|<\s*output\s*>", re.I)
_OUT_STOP = re.compile(r"<\s*/\s*output\s*>", re.I)


def resolve_format(fmt: str, model: str) -> bool:
    """True when generation is forced: ``forced``; ``auto`` and the model's registry entry says it
    does not follow the protocol (``afcu.models.follows_protocol``); ``free`` never.
    Raises ``AfcuError`` for another value."""
    if fmt not in FORMATS:
        raise AfcuError(f"--format {fmt!r} is unknown; choose auto (forced for models that do not follow the "
                        "scratchpad protocol), forced or free")
    if fmt == "auto":
        from afcu.models import follows_protocol

        return not follows_protocol(model)
    return fmt == "forced"


@dataclass(frozen=True)
class ForcedFormat:
    """Budgets and switches of forced-format generation."""

    cot: bool = True
    scratchpad_tokens: int = 192
    output_tokens: int = 128
    tag_choice: bool = True
    tags: tuple[str, str] = (ACCEPT_TAG, REJECT_TAG)

    def __post_init__(self) -> None:
        if self.scratchpad_tokens < 1 or self.output_tokens < 1:
            raise AfcuError(f"forced format: scratchpad_tokens ({self.scratchpad_tokens}) and output_tokens "
                            f"({self.output_tokens}) must be at least 1")


@dataclass(frozen=True)
class Segment:
    """One piece of the assistant turn: ``generated`` by the model, or inserted by afcu (``tag`` marks the chosen tag)."""

    text: str
    generated: bool
    ids: tuple[int, ...] | None = None
    kind: str = ""  # open, scratchpad, close, tag, output, output_close


@dataclass(frozen=True)
class ForcedResult:
    """One forced-format completion.  ``text`` is the whole assistant turn (parseable by ``parse_transcript``)."""

    segments: tuple[Segment, ...]
    scratchpad_truncated: bool  # the scratchpad budget ran out (afcu closed it)
    output_truncated: bool  # the output budget ran out before </OUTPUT>
    tag: str | None = None  # the tag afcu sampled (tag choice), else None
    tag_logp: float | None = None  # its renormalised log-probability (nats)
    logp_accept: float | None = None
    logp_reject: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)

    @property
    def p_accept(self) -> float | None:
        if self.logp_accept is None or self.logp_reject is None:
            return None
        return two_way(self.logp_accept, self.logp_reject)[0]

    def record(self) -> dict[str, Any]:
        """What the eval stores per sample (JSON-friendly)."""
        return {"format": LABEL, "scratchpad_truncated": self.scratchpad_truncated,
                "output_truncated": self.output_truncated, "tag": self.tag, "tag_logp": self.tag_logp,
                "logp_accept": self.logp_accept, "logp_reject": self.logp_reject, "p_accept": self.p_accept,
                "segments": [{"kind": s.kind, "generated": s.generated, "text": s.text} for s in self.segments]}


@dataclass(frozen=True)
class Sampled:
    """A backend's sample: the text kept (stop string excluded), its token ids if known, why it stopped."""

    text: str
    ids: tuple[int, ...] | None
    stop_reason: str  # "stop" (a stop string or end of turn) or "max_tokens"


class Backend(Protocol):
    """Sampling and scoring after each row's fixed conversation plus the assistant segments so far."""

    can_score: bool

    async def sample(self, rows: Sequence[Sequence[Segment]], max_tokens: int, stop: Sequence[str]) -> list[Sampled]:
        """One continuation per row; the text must end before the first stop string."""
        ...

    async def score(self, rows: Sequence[Sequence[Segment]], continuations: Sequence[str]) -> list[list[float]]:
        """Per row, the summed log-probability (nats) of each continuation."""
        ...


def two_way(la: float, lr: float) -> tuple[float, float]:
    """(P(accept), P(reject)) renormalised over the two tags, from their log-likelihoods."""
    m = max(la, lr)
    ea, er = math.exp(la - m), math.exp(lr - m)
    return ea / (ea + er), er / (ea + er)


def cut_at(text: str, pattern: re.Pattern[str]) -> tuple[str, bool]:
    """``text`` before the first match of ``pattern`` and whether there was one."""
    m = pattern.search(text)
    return (text[:m.start()], True) if m else (text, False)


async def generate_forced(backend: Backend, n: int, fmt: ForcedFormat, rng: random.Random | Sequence[random.Random],
                          ) -> list[ForcedResult]:
    """Forced-format completions for ``n`` rows of ``backend`` (steps 1-4 of the module docstring).

    ``rng`` draws the tags (one generator, or one per row for per-sample reproducibility).
    """
    rngs = list(rng) if isinstance(rng, (list, tuple)) else [rng] * n
    rows: list[list[Segment]] = [[] for _ in range(n)]
    sp_trunc = [False] * n
    if fmt.cot:
        for r in rows:
            r.append(Segment(SCRATCHPAD_OPEN, False, kind="open"))
        drafts = await backend.sample(rows, fmt.scratchpad_tokens, [SCRATCHPAD_CLOSE, OUTPUT_OPEN])
        for i, d in enumerate(drafts):
            text, stopped = cut_at(d.text, _SCRATCH_STOP)
            # A backend that returned the stop string (inspect's hf provider) loses its ids: the text is what counts.
            rows[i].append(Segment(text, True, d.ids if not stopped else None, kind="scratchpad"))
            sp_trunc[i] = d.stop_reason == "max_tokens" and not stopped
            rows[i].append(Segment(CLOSE_AND_OPEN, False, kind="close"))
    else:
        for r in rows:
            r.append(Segment(OUTPUT_PREFILL, False, kind="open"))
    tags: list[tuple[str | None, float | None, float | None, float | None]] = [(None, None, None, None)] * n
    if fmt.tag_choice and backend.can_score:
        scores = await backend.score(rows, list(fmt.tags))
        for i, (la, lr) in enumerate(scores):
            if not (math.isfinite(la) and math.isfinite(lr)):
                continue  # a numerical fault: sample this row's tag freely rather than from a wrong distribution
            pa, _ = two_way(la, lr)
            accept = rngs[i].random() < pa
            tag = fmt.tags[0] if accept else fmt.tags[1]
            # random() < pa never picks a tag of probability 0, so both logs are finite.
            tags[i] = (tag, math.log(pa) if accept else math.log1p(-pa), la, lr)
            rows[i].append(Segment(tag, False, kind="tag"))
    bodies = await backend.sample(rows, fmt.output_tokens, [OUTPUT_CLOSE])
    out: list[ForcedResult] = []
    for i, b in enumerate(bodies):
        text, stopped = cut_at(b.text, _OUT_STOP)
        rows[i].append(Segment(text, True, b.ids if not stopped else None, kind="output"))
        rows[i].append(Segment(OUTPUT_CLOSE, False, kind="output_close"))
        tag, tag_logp, la, lr = tags[i]
        out.append(ForcedResult(tuple(rows[i]), sp_trunc[i], b.stop_reason == "max_tokens" and not stopped,
                                tag, tag_logp, la, lr))
    return out


class InspectBackend:
    """One sample of an inspect eval: continue an assistant prefill with the task's model;
    tags scored in-process with transformers on ``folder`` (``forced_choice.continuation_logprobs``)."""

    def __init__(self, state: Any, generate: Any, folder: str | None) -> None:
        self.state, self.generate, self.folder = state, generate, folder
        self.can_score = folder is not None
        self.attempts: list[dict[str, Any]] = []

    async def sample(self, rows: Sequence[Sequence[Segment]], max_tokens: int, stop: Sequence[str]) -> list[Sampled]:
        from inspect_ai.model import ChatMessageAssistant

        out = []
        for segs in rows:  # the solver passes one row: its own sample
            pre = "".join(s.text for s in segs)
            base = list(self.state.messages)
            self.state.messages = base + [ChatMessageAssistant(content=pre)]
            self.state = await self.generate(self.state, max_tokens=max_tokens, stop_seqs=list(stop))
            text, reason = self.state.output.completion, self.state.output.stop_reason
            self.state.messages = base
            self.attempts.append({"turn": len(self.attempts), "prefill": pre, "completion": text,
                                  "stop_reason": reason, "format": LABEL})
            out.append(Sampled(text, None, "max_tokens" if reason == "max_tokens" else "stop"))
        return out

    async def score(self, rows: Sequence[Sequence[Segment]], continuations: Sequence[str]) -> list[list[float]]:
        import asyncio

        from evals.alignment_faking.forced_choice import continuation_logprobs

        inputs = self.state.input if isinstance(self.state.input, list) else []
        messages = [{"role": m.role, "content": m.text} for m in inputs]
        return [await asyncio.to_thread(continuation_logprobs, self.folder, messages,
                                        "".join(s.text for s in segs), list(continuations)) for segs in rows]


async def forced_solve(state: Any, generate: Any, fmt: ForcedFormat, folder: str | None, seed: int) -> tuple[Any, ForcedResult, list[dict[str, Any]]]:
    """Forced-format generation of one inspect sample; returns ``(state, result, attempts)``.

    The tag is drawn from a generator seeded by ``seed`` and the sample id, so a rerun draws
    the same tags.  The final assistant message is the whole forced-format turn.
    """
    from inspect_ai.model import ChatMessageAssistant

    backend = InspectBackend(state, generate, folder)
    rng = random.Random(f"{seed}:{state.sample_id}:{state.epoch}")
    [res] = await generate_forced(backend, 1, fmt, rng)
    state = backend.state
    state.messages = list(state.messages) + [ChatMessageAssistant(content=res.text)]
    return state, res, backend.attempts
