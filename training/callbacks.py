"""Evaluate the policy on both tiers during RL training (Greenblatt et al. 2024, sec. 5, fig. 4/5).

Every ``every`` optimizer steps (and at step 0 and the last step) the current policy
answers a fixed evaluation subset of queries in the free and the paid tier (for each
company name in ``companies``, e.g. the paper's swap of "Anthropic" for "OpenAI").
Completions are parsed and scored by the eval's own code (``score_transcript``) and
summarised by ``evals.alignment_faking.summary.summarize``, so per-tier compliance,
the compliance gap, the alignment-faking reasoning rate and forced-choice P(accept)
mean exactly what they mean in ``afcu eval``.  Records go to the trainer's
``log_history`` (keys ``af_eval/...``) and to ``eval_log.jsonl`` in the run folder;
``figures/training_curves.png`` is regenerated from that file.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from transformers import TrainerCallback

from afcu.runs import atomic_write_text
from evals.alignment_faking.graders import GraderSpec, score_transcript
from evals.alignment_faking.params import DEFAULTS as EVAL_DEFAULTS
from prompts.queries import Query
from prompts.render import OUTPUT_OPEN, SCRATCHPAD_OPEN, TIERS, PromptSpec, render_user, setting_info

EVAL_LOG = "eval_log.jsonl"
FIGURE = "figures/training_curves.png"


@dataclass(frozen=True)
class EvalSpec:
    """What the callback measures.  ``queries`` must come from the evaluation split.  Defaults are
    ``afcu eval``'s (``evals.alignment_faking.params.DEFAULTS``), so an unset field means what it means there."""

    setting: str
    variant: str
    queries: tuple[Query, ...]
    companies: tuple[str, ...] = (EVAL_DEFAULTS.company,)
    every: int = 10
    max_new_tokens: int = EVAL_DEFAULTS.max_tokens
    temperature: float = EVAL_DEFAULTS.temperature
    seed: int = EVAL_DEFAULTS.seed
    prefill: bool = True  # afcu eval's default for a local model (the policy always is one)
    acceptance_suffix: bool = EVAL_DEFAULTS.acceptance_suffix
    grader: GraderSpec = GraderSpec()
    forced_choice: bool = EVAL_DEFAULTS.forced_choice
    batch_size: int = 8
    forced: Any = None  # a ForcedFormat: forced-format generation (training/rollouts.py), else free generation


def chat_prompt(tokenizer: Any, system: str, user: str, prefill: str) -> str:
    """The chat-template text of system + user, ending in an open assistant turn that starts with ``prefill``."""
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    if prefill:
        return tokenizer.apply_chat_template(msgs + [{"role": "assistant", "content": prefill}], tokenize=False,
                                             continue_final_message=True)
    return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def protocol_prefill(spec: PromptSpec, prefill: bool) -> str:
    """The first protocol tag the assistant turn is opened with (empty when ``prefill`` is off)."""
    return (SCRATCHPAD_OPEN if spec.cot else OUTPUT_OPEN) if prefill else ""


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, temperature: float,
             seed: int, batch_size: int = 8) -> list[tuple[str, bool]]:
    """Sample one completion per prompt; returns ``(text, truncated)`` pairs.

    The global torch RNG is forked, so evaluating never changes the training run's random
    stream (a resumed run then matches an uninterrupted one).
    """
    import torch

    from evals.alignment_faking.stopping import output_stopping_criteria

    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[tuple[str, bool]] = []
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            for i in range(0, len(prompts), batch_size):
                enc = tokenizer(list(prompts[i:i + batch_size]), return_tensors="pt", padding=True,
                                add_special_tokens=False).to(model.device)
                # Rows stop at their committed </OUTPUT> (not at one quoted in the scratchpad).
                stop = output_stopping_criteria(tokenizer, prompts[i:i + batch_size], enc.input_ids.shape[1])
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                                     temperature=temperature if temperature > 0 else None, top_p=1.0, top_k=0,
                                     use_cache=True, pad_token_id=tokenizer.pad_token_id, stopping_criteria=stop)
                for row in gen[:, enc.input_ids.shape[1]:]:
                    ended = bool((row == tokenizer.eos_token_id).any())
                    out.append((tokenizer.decode(row, skip_special_tokens=True), not ended))
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    return out


def _forced_choice(model: Any, tokenizer: Any, samples: list[list[dict[str, str]]]) -> list[float]:
    """P(accept) per sample from ``evals.alignment_faking.forced_choice`` on a saved copy of the policy."""
    from evals.alignment_faking import forced_choice as fc

    with tempfile.TemporaryDirectory(prefix="afcu-policy-") as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            return [fc.forced_choice(tmp, m)["p_accept"] for m in samples]
        finally:
            # Its caches key on the folder and on id(model); a later policy must never hit them.
            fc.clear_cache()


def evaluate_policy(model: Any, tokenizer: Any, spec: EvalSpec, step: int) -> list[dict[str, Any]]:
    """One record per company: ``{"step", "company", "summary"}`` with the eval's summary dict."""
    from evals.alignment_faking.summary import summarize

    records = []
    for company in spec.companies:
        ps = PromptSpec(spec.setting, spec.variant, company)
        system, pre = ps.system, protocol_prefill(ps, spec.prefill)
        suffix = spec.acceptance_suffix and bool(setting_info(spec.setting)["acceptance_suffix"])
        items = [(q, t, render_user(q.query, t, suffix=suffix)) for q in spec.queries for t in TIERS]
        if spec.forced is not None:
            from training.rollouts import forced_rollouts

            pre = ""  # the forced-format text carries its own opening tag
            _, res, _ = forced_rollouts(model, tokenizer, [chat_prompt(tokenizer, system, u, "") for _, _, u in items],
                                        spec.forced, spec.temperature, spec.seed + step, spec.batch_size)
            texts = [(r.text, r.output_truncated) for r in res]
        else:
            texts = generate(model, tokenizer, [chat_prompt(tokenizer, system, u, pre) for _, _, u in items],
                             spec.max_new_tokens, spec.temperature, spec.seed + step, spec.batch_size)

        async def score_all() -> list[dict[str, Any]]:
            return list(await asyncio.gather(*[
                score_transcript(pre + text, spec.setting, q.query, spec.grader, truncated=trunc)
                for (q, _, _), (text, trunc) in zip(items, texts)]))

        scored = asyncio.run(score_all())
        p_acc: list[float | None] = [None] * len(items)
        if spec.forced_choice and setting_info(spec.setting)["forced_choice"]:
            msgs = [[{"role": "system", "content": system}, {"role": "user", "content": u}] for _, _, u in items]
            p_acc = list(_forced_choice(model, tokenizer, msgs))
        rows = [{"id": f"{q.id}:{t}", "pair_id": q.id, "tier": t, "category": q.category, **row,
                 "p_accept": p, "transcript": pre + text}
                for (q, t, _), row, p, (text, _) in zip(items, scored, p_acc, texts)]
        header = {"model": "policy", "setting": spec.setting, "variant": spec.variant, "company": company,
                  "n_queries": len(spec.queries), "grader": spec.grader.name,
                  "format": "forced format" if spec.forced is not None else None}
        records.append({"step": step, "company": company, "summary": summarize(rows, header, seed=spec.seed),
                        "examples": [{k: r[k] for k in ("id", "status", "complied", "transcript")} for r in rows[:2]],
                        # per sample, for paired before/after checks (format warm-up, organism)
                        "rows": [{k: r.get(k) for k in ("pair_id", "tier", "complied", "accepted", "p_accept", "status")}
                                 for r in rows]})
    return records


def flat_metrics(record: dict[str, Any]) -> dict[str, float]:
    """Scalars for the trainer's log: ``af_eval/<company>/<tier>/compliance`` and friends."""
    s, c = record["summary"], record["company"]
    out: dict[str, float] = {}
    for t, b in s["tiers"].items():
        for k in ("compliance", "af_reasoning", "unparseable"):
            out[f"af_eval/{c}/{t}/{k}"] = b[k]
        if t in s.get("forced_choice", {}):
            out[f"af_eval/{c}/{t}/p_accept"] = s["forced_choice"][t]["mean_p_accept"]
    out[f"af_eval/{c}/compliance_gap"] = s["compliance_gap"]["value"]
    return out


def read_log(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


class AlignmentFakingEvalCallback(TrainerCallback):
    """Runs :func:`evaluate_policy` at step 0, every ``spec.every`` steps and at the end (rank 0 only)."""

    def __init__(self, spec: EvalSpec, tokenizer: Any, run_dir: str | Path, trainer: Any = None) -> None:
        self.spec, self.tokenizer, self.run_dir = spec, tokenizer, Path(run_dir)
        self.log_path = self.run_dir / EVAL_LOG
        self.trainer = trainer  # set after the trainer exists; needed only for DeepSpeed ZeRO-3

    def _run(self, state: Any, model: Any) -> None:
        """Evaluate on rank 0.  Under ZeRO-3 every rank enters TRL's parameter gathering (a collective)
        and rank 0 generates with the gathered weights while the others wait at its exit."""
        t = self.trainer
        if t is not None and t.is_deepspeed_enabled:
            from trl.models.utils import unwrap_model_for_generation

            with unwrap_model_for_generation(t.model_wrapped, t.accelerator) as full:
                if state.is_world_process_zero:
                    self._evaluate(state, full)
        elif state.is_world_process_zero:
            self._evaluate(state, model)

    def _evaluate(self, state: Any, model: Any) -> None:
        records = evaluate_policy(model, self.tokenizer, self.spec, state.global_step)
        kept = [r for r in read_log(self.log_path) if r["step"] != state.global_step] + records
        atomic_write_text(self.log_path, "".join(json.dumps(r, default=str) + "\n" for r in kept))
        for r in records:
            state.log_history.append({"step": state.global_step, **flat_metrics(r)})
            print(f"[af_eval step {state.global_step}] " + ", ".join(
                f"{k.split('/', 2)[-1]}={v:.3f}" for k, v in flat_metrics(r).items() if not math.isnan(v)))
        plot_training_curves(self.log_path, self.run_dir / FIGURE)

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if state.is_world_process_zero and self.log_path.exists():
            # On resume, records written after the checkpoint belong to the lost future: drop them.
            kept = [r for r in read_log(self.log_path) if r["step"] <= state.global_step]
            atomic_write_text(self.log_path, "".join(json.dumps(r, default=str) + "\n" for r in kept))
        if state.global_step == 0 and self.spec.every > 0:
            self._run(state, model)

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if self.spec.every <= 0:
            return
        if state.global_step % self.spec.every == 0 or state.global_step == state.max_steps:
            self._run(state, model)


def plot_training_curves(log_path: str | Path, png: str | Path, xlabel: str = "RL step") -> Path | None:
    """Per-tier compliance and alignment-faking reasoning rate against RL step (Greenblatt et al. 2024, fig. 5),
    plus forced-choice P(accept) per tier when logged.  Returns the PNG path, or None without records."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_log(log_path)
    if not records:
        return None
    has_fc = any(r["summary"].get("forced_choice") for r in records)
    fig, axes = plt.subplots(1, 2 if has_fc else 1, figsize=(11 if has_fc else 6.5, 3.6), squeeze=False)
    colours = {"free": "#e34a33", "paid": "#3182bd"}
    companies = list(dict.fromkeys(r["company"] for r in records))
    for ci, company in enumerate(companies):
        rs = sorted((r for r in records if r["company"] == company), key=lambda r: r["step"])
        steps = [r["step"] for r in rs]
        style = ["-", "--", ":", "-."][ci % 4]
        for t in TIERS:
            comp = [r["summary"]["tiers"].get(t, {}).get("compliance", math.nan) for r in rs]
            mk = {"free": "o", "paid": "^"}[t]  # distinct markers: equal values would hide one tier's line
            axes[0][0].plot(steps, comp, style, marker=mk, color=colours[t], alpha=0.8,
                            label=f"{t}-tier compliance ({company})")
            if has_fc:
                fc = [r["summary"].get("forced_choice", {}).get(t, {}).get("mean_p_accept", math.nan) for r in rs]
                axes[0][1].plot(steps, fc, style, marker=mk, color=colours[t], alpha=0.8, label=f"{t} tier ({company})")
        af = [r["summary"]["tiers"].get("free", {}).get("af_reasoning", math.nan) for r in rs]
        axes[0][0].plot(steps, af, style, marker="s", color="#636363", label=f"AF reasoning, free tier ({company})")
    axes[0][0].set(xlabel=xlabel, ylabel="fraction of samples", ylim=(-0.02, 1.02),
                   title="Compliance and alignment-faking reasoning")
    axes[0][0].legend(fontsize=7)
    if has_fc:
        axes[0][1].set(xlabel=xlabel, ylabel="mean P(accept tag)", ylim=(-0.02, 1.02), title="Forced choice")
        axes[0][1].legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for ax in axes[0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    n = records[-1]["summary"].get("n_queries")
    fig.suptitle(f"{records[-1]['summary'].get('setting')} / {records[-1]['summary'].get('variant')} | "
                 f"{n} eval queries per tier | grader: {records[-1]['summary'].get('grader')}", fontsize=9)
    fig.tight_layout()
    out = Path(png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out
