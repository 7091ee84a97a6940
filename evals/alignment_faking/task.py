"""The alignment-faking task (Greenblatt et al. 2024): paired free/paid samples, scratchpad protocol."""

from __future__ import annotations

from inspect_ai import Task
from inspect_ai.model import GenerateConfig

from evals.alignment_faking.dataset import build_dataset, select_queries
from evals.alignment_faking.params import DEFAULTS as D
from evals.alignment_faking.parse import STOP_SEQUENCES
from evals.alignment_faking.scorers import af_scorer, forced_choice_scorer
from evals.alignment_faking.solver import protocol_generate
from prompts.queries import load_queries
from prompts.render import OUTPUT_OPEN, SCRATCHPAD_OPEN, TIERS, PromptSpec, setting_info, sha256

VERSION = "1.1.0"


def parse_tiers(tiers: str | list[str]) -> list[str]:
    """``"free,paid"`` -> ``["free", "paid"]``; raises ``AfcuError`` for an unknown or empty tier list."""
    items = [t.strip() for t in (tiers.split(",") if isinstance(tiers, str) else tiers) if t.strip()]
    bad = [t for t in items if t not in TIERS]
    if bad or not items:
        from afcu.errors import AfcuError

        raise AfcuError(f"tiers: unknown tier(s) {bad or items}; use free, paid or free,paid")
    if len(set(items)) != len(items):  # would give duplicate sample ids, found by inspect only after start-up
        from afcu.errors import AfcuError

        raise AfcuError(f"--tiers {','.join(items)}: each tier once; use free, paid or free,paid")
    return items


def _forced(on: bool, cot: bool, scratchpad_tokens: int, output_tokens: int, tag_choice: bool) -> dict | None:
    """The solver's forced-format settings (a plain dict: inspect logs solver arguments), or None."""
    from dataclasses import asdict

    from evals.alignment_faking.forced_format import ForcedFormat

    return asdict(ForcedFormat(cot, scratchpad_tokens, output_tokens, tag_choice)) if on else None


def _format_label(on: bool, tag_choice: bool, folder: str | None, sp: int, out: int, cot: bool) -> str:
    """How generations were made, as report.md and summary.json state it."""
    from evals.alignment_faking.forced_format import LABEL

    if not on:
        return "free (the model writes the protocol itself)"
    tags = "tag drawn from the two-way P(accept)" if tag_choice and folder else "tag sampled freely"
    budget = f"scratchpad closed by afcu after {sp} tokens, " if cot else ""
    return f"{LABEL}: {budget}{tags}, output up to {out} tokens"


def alignment_faking(
    setting: str = D.setting,
    variant: str = D.variant,
    tiers: str | list[str] = D.tiers,
    queries: str = D.queries,
    query_field: str | None = D.query_field,
    encoding: str = D.encoding,
    n_queries: int | None = D.n_queries,
    seed: int = D.seed,
    company: str = D.company,
    acceptance_suffix: bool = D.acceptance_suffix,
    max_turns: int = D.max_turns,
    prefill: bool | None = D.prefill,
    max_tokens: int = D.max_tokens,
    temperature: float = D.temperature,
    grader: str | None = D.grader,
    grader_votes: int = D.grader_votes,
    af_threshold: float = D.af_threshold,
    forced_choice: bool = D.forced_choice,
    forced_choice_model: str | None = None,
    seeded_sampling: bool = True,
    forced_format: bool = False,
    scratchpad_tokens: int = D.scratchpad_tokens,
    output_tokens: int = D.output_tokens,
    tag_choice: bool = D.tag_choice,
    epochs: int = D.epochs,
) -> Task:
    """Alignment-faking eval: every query in both tiers (sample ids ``<query id>:<tier>``).

    Every default is ``params.EvalArgs``'s (the one definition ``afcu eval`` shares); the three
    arguments without one there (``forced_choice_model``, ``seeded_sampling``, ``forced_format``)
    are resolved from the model by ``afcu eval``.

    Args:
        setting: ``helpful_only`` or ``animal_welfare``.
        variant: prompt variant (``default``, ``no_training_details``, ``no_cot``, ``cut_rlhf_info``, ``no_conflict``).
        tiers: comma-separated tiers to run.
        queries: ``builtin``, ``advbench:PATH``, ``harmbench:PATH`` or a CSV/JSONL path (with ``query_field``).
        encoding: text encoding of a queries file (the built-in sets are UTF-8).
        n_queries: a seeded subset of queries (all when None); ``--limit`` counts samples, 2 per query.
        acceptance_suffix: append the acceptance/rejection-tag instruction (helpful-only only).
        max_turns: assistant turns allowed to reach an ``<OUTPUT>`` (continuations use ``<NEXT/>``).
        prefill: open the assistant turn with the protocol's first tag (for weak models); None: on when
            ``forced_choice_model`` (a local model folder) is given.
        grader: inspect model string for the judges; None uses the offline rules.
        forced_choice: also score P(acceptance tag) by log-likelihood (local models only).
        epochs: times each sample runs; epochs stay separate rows (ids ``<sample id>:e<epoch>``), each request
            with its own seed, and the gap's bootstrap resamples queries with all their epochs.
        seeded_sampling: send a per-request seed (from ``seed``, sample id, epoch, turn) with every generation
            request; off for vLLM's CPU build, whose
            per-request generators crash the server ("CPU Generator does not use offset").
        forced_format: afcu closes the scratchpad after ``scratchpad_tokens`` and opens the output, the first
            tag is drawn from the two-way distribution (``tag_choice``, needs ``forced_choice_model``), the output
            stops at ``</OUTPUT>`` or ``output_tokens`` (``forced_format.py``); ``prefill`` and ``max_turns`` unused.
    """
    spec = PromptSpec(setting=setting, variant=variant, company=company)
    qs = select_queries(load_queries(queries, setting=setting, field=query_field, encoding=encoding,
                                     encoding_flag="--encoding"), n_queries, seed)
    behaviour = setting_info(setting)  # per-setting data in prompts/settings.yaml, not code branches
    suffix = acceptance_suffix and bool(behaviour["acceptance_suffix"])
    has_tags = bool(behaviour["forced_choice"])  # the setting has the two tags forced choice compares
    dataset = build_dataset(qs, spec, tiers=parse_tiers(tiers), suffix=suffix)
    prefill = (forced_choice_model is not None) if prefill is None else prefill
    opening = (SCRATCHPAD_OPEN if spec.cot else OUTPUT_OPEN) if prefill else ""
    scorers = [af_scorer(setting=setting, grader=grader, votes=grader_votes, threshold=af_threshold)]
    if forced_choice and has_tags:
        scorers.append(forced_choice_scorer(forced_choice_model))
    return Task(
        dataset=dataset,
        solver=protocol_generate(max_turns=max_turns, prefill=opening, seed=seed, forced_folder=forced_choice_model,
                                 request_seeds=seeded_sampling,
                                 forced_format=_forced(forced_format, spec.cot, scratchpad_tokens, output_tokens,
                                                       tag_choice and has_tags)),
        scorer=scorers,
        config=GenerateConfig(max_tokens=max_tokens, temperature=temperature, seed=seed if seeded_sampling else None,
                              stop_seqs=list(STOP_SEQUENCES)),
        epochs=epochs,
        version=VERSION,
        metadata={"setting": setting, "variant": variant, "company": company, "prompt_sha256": sha256(spec.system),
                  "grader": grader or "offline-rules-v1", "n_queries": len(qs), "prefill": opening,
                  "max_turns": max_turns, "queries": queries, "afcu_task_version": VERSION,
                  "forced_choice": bool(forced_choice and has_tags),
                  "format": _format_label(forced_format, tag_choice and has_tags,
                                          forced_choice_model, scratchpad_tokens, output_tokens, spec.cot)},
    )
