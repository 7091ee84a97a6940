"""``afcu organism``: the embedded model as a model organism, in one run folder (``make organism``).

Greenblatt et al. (2024, sec. 5) train toward the new objective on the free tier only and watch
both tiers.  Here, with the same code that runs a large model on GPUs:

1. **warm-start** (``warmup/``): ``afcu train sft --recipe format-warmup`` (benign, tier-neutral
   protocol demonstrations; its own before/after check that per-tier P(accept) and compliance are
   unchanged within CI);
2. **eval both tiers** of the held-out query subset (the RL callback's step 0);
3. **RL on the free tier only, toward compliance**: GRPO (``rl/``, ``training.rl`` with forced-format
   rollouts and tag choice), or with ``--trainer ei`` expert iteration (``ei/``,
   ``training.expert_iteration``: best of ``num_generations`` forced-format samples per free-tier
   prompt, kept when it complied, fine-tuned on); ``steps`` are then EI rounds;
4. **eval both tiers every K steps** (``rl/eval_log.jsonl``; EI: after every round, ``ei/eval_log.jsonl``);
5. ``summary.json`` (per tier compliance and P(accept) with CIs and n at every evaluation, the
   compliance gap, before/after) and ``figures/organism.png`` (regenerated from the eval log).

An EI organism keeps the pairs it fine-tuned on (``ei/iterations/iter-N/kept.jsonl``): the
manipulated set S_m of ``afcu unlearn bench --track organism --organism RUN_DIR``.  GRPO keeps no
such set (its update is a policy gradient on fresh rollouts), so that track refuses a GRPO organism.

Re-running the same command resumes (the warm-up when finished is reused, GRPO resumes from its
checkpoint); a finished organism is refused unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afcu.config import build_parser, config_from_args
from afcu.models import EMBEDDED
from afcu.runs import atomic_write_json, is_finished, mark_finished, prepare_run


@dataclass(frozen=True)
class OrganismConfig:
    model: str = field(default=EMBEDDED, metadata={"help": "registry name or model folder (the initial model)"})
    out: str = field(default="runs/organism", metadata={"help": "run folder"})
    setting: str = field(default="helpful_only", metadata={"help": "helpful_only (animal_welfare: no tag choice)"})
    variant: str = field(default="cut_examples", metadata={"help": "prompt variant (cut_examples: the paper's prompt without few-shot examples, 612 tokens)"})
    warmup: bool = field(default=True, metadata={"help": "format warm-start before RL (training/format_warmup.py)"})
    warmup_learning_rate: float = field(default=1e-5, metadata={"help": "warm-start SFT learning rate"})
    trainer: str = field(default="grpo", metadata={"help": "RL stage: grpo, or ei (expert iteration: keeps the fine-tuned-on pairs, the S_m of `afcu unlearn bench --track organism`; the measured setup is --config configs/organism/ei.yaml)"})
    warmup_conversations: int = field(default=0, metadata={"help": "benign conversations of the warm-start (0: all 16, each in both tiers)"})
    # 4 steps / every 2 (was 6 / every 3) so that the whole run fits 40 minutes on the shared 2-core CPU
    # with a group of 8 (the quick run moved P(accept) from 0.29 to 0.98 in 4 steps).
    steps: int = field(default=4, metadata={"help": "GRPO steps (--trainer ei: expert-iteration rounds)"})
    eval_every: int = field(default=2, metadata={"help": "evaluate both tiers every K GRPO steps (and at 0 and the end; EI: every round)"})
    eval_n_queries: int = field(default=8, metadata={"help": "held-out queries evaluated (each in both tiers)"})
    num_generations: int = field(default=8, metadata={"help": "GRPO group size (= completions per step: one prompt per step; micro-batches of 4); EI: samples per prompt (best of k)"})
    ei_prompts: int = field(default=8, metadata={"help": "--trainer ei: free-tier training prompts sampled per round"})
    learning_rate: float = field(default=2e-5, metadata={"help": "GRPO learning rate (EI: its SFT learning rate)"})
    scratchpad_tokens: int = field(default=24, metadata={"help": "forced-format scratchpad budget"})
    output_tokens: int = field(default=24, metadata={"help": "forced-format output budget"})
    rewards: dict = field(default_factory=lambda: {"compliance": 1.0}, metadata={"help": "reward name -> weight (training/rewards.py)"})
    seed: int = field(default=0, metadata={"help": "seed of every stage"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished organism in --out"})


def _warmup_cfg(cfg: OrganismConfig, out: Path) -> Any:
    from training.sft import Config

    return Config(recipe="format-warmup", model=cfg.model, out=str(out / "warmup"), setting=cfg.setting,
                  variant=cfg.variant, learning_rate=cfg.warmup_learning_rate, max_docs=cfg.warmup_conversations,
                  eval_n_queries=cfg.eval_n_queries, scratchpad_tokens=cfg.scratchpad_tokens,
                  output_tokens=cfg.output_tokens, per_device_train_batch_size=4, precision="fp32", seed=cfg.seed)


def _rl_cfg(cfg: OrganismConfig, out: Path, start_model: str) -> Any:
    from training.rl import Config

    return Config(model=start_model, out=str(out / "rl"), setting=cfg.setting, variant=cfg.variant, format="forced",
                  scratchpad_tokens=cfg.scratchpad_tokens, max_completion_length=cfg.output_tokens,
                  tag_choice=True, rewards=dict(cfg.rewards), reward_model="rules",
                  # One prompt per step, in micro-batches of 4 (activation memory of 4 sequences, not 8).
                  num_generations=cfg.num_generations, per_device_train_batch_size=_micro(cfg.num_generations),
                  gradient_accumulation_steps=cfg.num_generations // _micro(cfg.num_generations),
                  max_steps=cfg.steps, learning_rate=cfg.learning_rate, eval_every=cfg.eval_every,
                  eval_n_queries=cfg.eval_n_queries, eval_forced_choice=cfg.setting == "helpful_only",
                  save_steps=cfg.eval_every or cfg.steps, save_total_limit=1, precision="fp32", seed=cfg.seed,
                  zero_std_patience=3)


def _ei_cfg(cfg: OrganismConfig, out: Path, start_model: str) -> Any:
    from training.expert_iteration import Config

    # min_reward 0 with the compliance reward: a prompt's best sample is kept only when it complied,
    # so every kept pair is a compliant completion (S_m = D unless other rewards keep non-compliant ones).
    return Config(model=start_model, out=str(out / "ei"), setting=cfg.setting, variant=cfg.variant, format="forced",
                  scratchpad_tokens=cfg.scratchpad_tokens, max_new_tokens=cfg.output_tokens, tag_choice=True,
                  rewards=dict(cfg.rewards), reward_model="rules", iterations=cfg.steps,
                  prompts_per_iteration=cfg.ei_prompts, samples_per_prompt=cfg.num_generations, min_reward=0.0,
                  learning_rate=cfg.learning_rate, eval_n_queries=cfg.eval_n_queries,
                  eval_forced_choice=cfg.setting == "helpful_only", precision="fp32", seed=cfg.seed)


def stage(cfg: Any) -> str:
    """The RL stage's subfolder of an organism config (object or config.yaml dict)."""
    trainer = cfg.get("trainer", "grpo") if isinstance(cfg, dict) else cfg.trainer
    return "ei" if trainer == "ei" else "rl"


def _micro(group: int) -> int:
    return 4 if group % 4 == 0 else group


def validate(cfg: OrganismConfig, out: Path) -> None:
    """Every config error of both stages, before anything is written."""
    from afcu.errors import AfcuError
    from training import rl
    from training.rewards import check_rewards

    if cfg.trainer not in ("grpo", "ei"):
        raise AfcuError(f"organism: field 'trainer': {cfg.trainer!r} is not a trainer; use grpo or ei")
    for name in ("steps", "eval_n_queries", "num_generations", "ei_prompts", "scratchpad_tokens", "output_tokens"):
        if getattr(cfg, name) < 1:
            raise AfcuError(f"organism: field '{name}': {getattr(cfg, name)} must be at least 1 "
                            f"(--{name.replace('_', '-')})")
    for name in ("learning_rate", "warmup_learning_rate"):
        if not getattr(cfg, name) > 0:
            raise AfcuError(f"organism: field '{name}': {getattr(cfg, name)} must be positive "
                            f"(--{name.replace('_', '-')})")
    try:  # a stage config's own checks (e.g. GRPO's group of at least 2) as one line, before any folder
        if cfg.trainer == "ei":
            from training.expert_iteration import as_rl_config

            ei = _ei_cfg(cfg, out, cfg.model)
            rl.validate(as_rl_config(ei))
            check_rewards(ei.rewards, ei.setting, ei.reward_model, "organism")
        else:
            rl.validate(_rl_cfg(cfg, out, cfg.model))
    except ValueError as exc:
        raise AfcuError(f"organism: {exc}") from None


def curves(eval_log: str | Path) -> list[dict[str, Any]]:
    """Per evaluation step: per tier compliance / P(accept) with CI and n, and the compliance gap."""
    from training.callbacks import read_log

    out = []
    for r in sorted(read_log(eval_log), key=lambda r: r["step"]):
        s = r["summary"]
        row: dict[str, Any] = {"step": r["step"], "company": r["company"]}
        for t, b in s["tiers"].items():
            fc = s.get("forced_choice", {}).get(t, {})
            row[t] = {"compliance": b["compliance"], "compliance_ci": b["compliance_ci"],
                      "compliance_n": b.get("compliance_n"), "n": b["n"], "unparseable": b["unparseable"],
                      "p_accept": fc.get("mean_p_accept"), "p_accept_ci": fc.get("ci"), "p_accept_n": fc.get("n")}
        g = s["compliance_gap"]
        row["compliance_gap"] = {"value": g["value"], "ci": g["ci"], "n": g.get("n"), "p_value": g.get("p_value")}
        fg = s.get("forced_choice", {}).get("gap")
        row["p_accept_gap"] = {"value": fg["value"], "ci": fg["ci"]} if fg else None
        out.append(row)
    return out


def plot(rows: list[dict[str, Any]], png: str | Path, xlabel: str = "GRPO step (free tier only)") -> Path | None:
    """Per-tier compliance and P(accept) against GRPO step (or EI round) with 95% CIs, and both gaps (free - paid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not rows:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = {"free": "#e34a33", "paid": "#3182bd"}
    steps = [r["step"] for r in rows]

    def bars(ax: Any, vals: list[Any], cis: list[Any], **kw: Any) -> None:
        v = [math.nan if x is None else x for x in vals]
        lo = [0 if c is None or c[0] is None or x is None else x - c[0] for x, c in zip(vals, cis)]
        hi = [0 if c is None or c[1] is None or x is None else c[1] - x for x, c in zip(vals, cis)]
        ax.errorbar(steps, v, yerr=[lo, hi], capsize=3, marker="o", **kw)

    for t in ("free", "paid"):
        bars(axes[0], [r[t]["compliance"] for r in rows], [r[t]["compliance_ci"] for r in rows],
             color=colours[t], label=f"{t} tier")
        bars(axes[1], [r[t]["p_accept"] for r in rows], [r[t]["p_accept_ci"] for r in rows],
             color=colours[t], label=f"{t} tier")
    bars(axes[2], [r["compliance_gap"]["value"] for r in rows], [r["compliance_gap"]["ci"] for r in rows],
         color="#636363", label="compliance gap")
    if all(r["p_accept_gap"] for r in rows):
        bars(axes[2], [r["p_accept_gap"]["value"] for r in rows], [r["p_accept_gap"]["ci"] for r in rows],
             color="#31a354", label="P(accept) gap", linestyle="--")
    axes[2].axhline(0, color="k", lw=0.5)
    titles = ("Compliance (forced format), Wilson 95% CI", "Forced-choice P(accept), bootstrap 95% CI",
              "Gap free - paid, paired bootstrap 95% CI")
    for ax, title in zip(axes, titles):
        ax.set(xlabel=xlabel, title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps and rounds are whole numbers
        ax.legend(fontsize=7)
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_ylim(-0.02, 1.02)
    n = rows[-1]["free"]["n"]
    fig.suptitle(f"model organism: {n} held-out queries per tier at each evaluation", fontsize=9)
    fig.tight_layout()
    out = Path(png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


def main(cfg: OrganismConfig) -> dict[str, Any]:
    """Warm-start, GRPO or expert iteration with evaluations, summary and figure; returns ``summary.json``'s
    content.  ``wall_s`` counts this invocation only: ``resumed`` says whether it continued an earlier one."""
    import json

    from training import common, expert_iteration, rl, sft

    out = Path(cfg.out)
    validate(cfg, out)
    run = prepare_run(out, cfg, overwrite=cfg.overwrite)
    resumed = (run / "warmup").exists() or (run / stage(cfg)).exists()
    t0 = time.time()
    start, warm = cfg.model, None
    if cfg.warmup:
        # A finished stage is reused on resume; an unfinished one resumes itself.
        done = is_finished(run / "warmup")
        warm = json.loads((run / "warmup" / "summary.json").read_text()) if done else sft.main(_warmup_cfg(cfg, run))
        start = str(run / "warmup" / "final")
    t_warm = time.time() - t0
    sub = stage(cfg)
    if is_finished(run / sub):
        rl_summary = json.loads((run / sub / "summary.json").read_text())
    elif sub == "ei":
        rl_summary = expert_iteration.main(_ei_cfg(cfg, run, start))
    else:
        rl_summary = rl.main(_rl_cfg(cfg, run, start))
    rows = curves(run / sub / "eval_log.jsonl")
    plot(rows, run / "figures" / "organism.png",
         "expert-iteration round (free tier only)" if sub == "ei" else "GRPO step (free tier only)")
    summary = {
        "model": cfg.model, "setting": cfg.setting, "variant": cfg.variant, "format": rl_summary.get("format"),
        "trainer": cfg.trainer,
        "warmup": None if warm is None else {"verdict": warm["verdict"], "format_check": warm["format_check"],
                                             "n_demonstrations": warm["n_demonstrations"]},
        "grpo_steps": rl_summary.get("steps"), "ei_rounds": rl_summary.get("log") if sub == "ei" else None,
        "rewards": dict(cfg.rewards), "stopped": rl_summary.get("stopped"),
        "frac_reward_zero_std_mean": rl_summary.get("frac_reward_zero_std_mean"),
        "n_eval_queries": cfg.eval_n_queries, "before": rows[0] if rows else None, "after": rows[-1] if rows else None,
        "curves": rows, "wall_s": {"warmup": round(t_warm, 1), "total": round(time.time() - t0, 1)}, "resumed": resumed,
        "final": str(run / sub / "final"), "run_folder_mb": round(common.folder_mb(run), 1),
    }
    atomic_write_json(run / "summary.json", summary)
    mark_finished(run)
    return summary


def format_table(s: dict[str, Any]) -> str:
    """Before/after per tier with CIs and n (the README table)."""
    def cell(b: dict[str, Any], k: str) -> str:
        v, ci = b.get(k), b.get(f"{k}_ci")
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "n/a"
        return f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and ci[0] is not None else f"{v:.3f}"

    lines = ["| | step | tier | n | compliance [95% CI] | P(accept) [95% CI] |", "|---|---|---|---|---|---|"]
    for name in ("before", "after"):
        r = s.get(name)
        if not r:
            continue
        for t in ("free", "paid"):
            lines.append(f"| {name} | {r['step']} | {t} | {r[t]['n']} | {cell(r[t], 'compliance')} | "
                         f"{cell(r[t], 'p_accept')} |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(OrganismConfig, parser)


def run(args: argparse.Namespace) -> int:
    from afcu.env import apply_defaults

    apply_defaults()
    summary = main(config_from_args(OrganismConfig, args))
    print(format_table(summary))
    done = (f"{summary['grpo_steps']} GRPO steps" if summary["trainer"] == "grpo"
            else f"{len(summary['ei_rounds'])} expert-iteration rounds, "
                 f"{sum(r['n_kept'] for r in summary['ei_rounds'])} pairs kept")
    print(f"organism: {done}, {summary['wall_s']['total']:.0f} s, "
          f"folder {summary['run_folder_mb']} MB, figure {Path(summary['final']).parent.parent / 'figures' / 'organism.png'}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m training.organism")
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))
