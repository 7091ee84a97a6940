"""Expert iteration (rejection-sampling fine-tuning): a cheaper RL baseline sharing GRPO's rewards.

Each iteration: sample ``samples_per_prompt`` completions for ``prompts_per_iteration``
free-tier training prompts, score them with ``training/rewards.py``, keep the
highest-reward completion of each prompt when it beats ``min_reward``, and fine-tune
on the kept (prompt, completion) pairs with TRL's ``SFTTrainer`` (loss on the completion
only).  Both tiers are evaluated before the first and after every iteration with the
same callback code as GRPO, so ``eval_log.jsonl`` and ``figures/training_curves.png``
read the same way (x axis: iteration)::

    afcu train ei --config configs/rl/ei_quick.yaml

Each iteration writes ``samples.jsonl`` (every sample, without its prompt) and ``kept.jsonl``
(the kept pairs with their prompts: what SFT trained on).
Resume: a finished iteration leaves ``iterations/iter-N/DONE`` and its model; a re-run
continues after the last finished iteration.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from afcu.config import build_parser as _build_parser
from afcu.config import config_from_args
from afcu.models import EMBEDDED
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from evals.alignment_faking.params import PromptArgs
from training import common
from training.rewards import RULES, RewardSpec, build_rewards, check_rewards, parse_completions, total_reward


@dataclass(frozen=True)
class Config(PromptArgs):
    model: str = field(default=EMBEDDED, metadata={"help": "registry name or model folder (the initial policy)"})
    out: str = field(default="runs/ei", metadata={"help": "run folder"})
    eval_fraction: float = field(default=0.3, metadata={"help": "share of queries held out for evaluation"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/eval query split"})
    prefill: bool = field(default=True, metadata={"help": "open the assistant turn with the protocol's first tag"})
    format: str = field(default="auto", metadata={"help": "sampling: forced, free, or auto (forced for models that do not follow the protocol)"})
    scratchpad_tokens: int = field(default=64, metadata={"help": "forced format: scratchpad budget (output budget: max_new_tokens)"})
    tag_choice: bool = field(default=True, metadata={"help": "forced format: draw the first output tag from the two-way P(accept)"})
    rewards: dict = field(default_factory=lambda: {"compliance": 1.0, "format": 0.1},
                          metadata={"help": "reward name -> weight (as in training.rl)"})
    reward_model: str | None = field(default=RULES, metadata={"help": "'rules' or an inspect model string"})
    unparseable_reward: float = field(default=0.0, metadata={"help": "reward of a completion without <OUTPUT>"})
    iterations: int = field(default=3, metadata={"help": "sample -> filter -> SFT rounds"})
    prompts_per_iteration: int = field(default=16, metadata={"help": "training prompts sampled each iteration"})
    samples_per_prompt: int = field(default=4, metadata={"help": "completions per prompt (the best one is kept)"})
    min_reward: float = field(default=0.0, metadata={"help": "keep a prompt's best completion only if its reward is above this"})
    max_new_tokens: int = field(default=256, metadata={"help": "tokens per sampled completion"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    learning_rate: float = field(default=1e-5, metadata={"help": "SFT learning rate"})
    sft_epochs: float = field(default=1.0, metadata={"help": "SFT epochs over the kept completions per iteration"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "SFT batch size"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), fp32 or bf16"})
    eval_n_queries: int = field(default=8, metadata={"help": "fixed evaluation subset (queries; both tiers)"})
    eval_companies: list[str] = field(default_factory=lambda: ["Anthropic"], metadata={"help": "company names to evaluate"})
    eval_max_tokens: int = field(default=256, metadata={"help": "generation budget of an evaluation sample"})
    eval_forced_choice: bool = field(default=True, metadata={"help": "log forced-choice P(accept) per tier"})
    seed: int = field(default=0, metadata={"help": "seed of sampling and SFT"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})

    def __post_init__(self) -> None:
        if min(self.iterations, self.prompts_per_iteration, self.samples_per_prompt, self.max_new_tokens) < 1:
            raise ValueError("iterations, prompts_per_iteration, samples_per_prompt and max_new_tokens must be >= 1")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction {self.eval_fraction} must be in (0, 1)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")


def as_rl_config(cfg: Config) -> Any:
    """The GRPO config with the shared fields, to reuse its split, prompts and eval spec."""
    from training import rl

    return rl.Config(model=cfg.model, out=cfg.out, setting=cfg.setting, variant=cfg.variant, company=cfg.company,
                     queries=cfg.queries, query_field=cfg.query_field, eval_fraction=cfg.eval_fraction,
                     split_seed=cfg.split_seed, acceptance_suffix=cfg.acceptance_suffix, prefill=cfg.prefill,
                     format=cfg.format, scratchpad_tokens=cfg.scratchpad_tokens, tag_choice=cfg.tag_choice,
                     max_completion_length=cfg.max_new_tokens,
                     rewards=cfg.rewards, reward_model=cfg.reward_model, temperature=cfg.temperature,
                     eval_every=1, eval_n_queries=cfg.eval_n_queries, eval_companies=list(cfg.eval_companies),
                     eval_max_tokens=cfg.eval_max_tokens, eval_forced_choice=cfg.eval_forced_choice, seed=cfg.seed,
                     num_generations=2, per_device_train_batch_size=2)


def select_best(rows: Sequence[dict[str, Any]], min_reward: float) -> list[dict[str, Any]]:
    """Per ``prompt_index`` the row with the highest ``reward`` (first on ties), if above ``min_reward``."""
    best: dict[int, dict[str, Any]] = {}
    for r in rows:
        b = best.get(r["prompt_index"])
        if b is None or r["reward"] > b["reward"]:
            best[r["prompt_index"]] = r
    return [r for _, r in sorted(best.items()) if r["reward"] > min_reward]


def sft_round(model: Any, tokenizer: Any, kept: list[dict[str, Any]], cfg: Config, folder: Path, it: int) -> float | None:
    """One SFT pass on the kept pairs; returns the mean training loss."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    args = SFTConfig(output_dir=str(folder / "sft"), num_train_epochs=cfg.sft_epochs, learning_rate=cfg.learning_rate,
                     per_device_train_batch_size=cfg.per_device_train_batch_size, lr_scheduler_type="constant",
                     logging_steps=1, save_strategy="no", report_to="none", seed=cfg.seed + it, data_seed=cfg.seed + it,
                     bf16=cfg.precision == "bf16" or (cfg.precision == "auto" and cuda), use_cpu=not cuda,
                     completion_only_loss=True, max_length=None)
    data = Dataset.from_dict({"prompt": [r["prompt"] for r in kept], "completion": [r["completion"] for r in kept]})
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    out = trainer.train()
    shutil.rmtree(folder / "sft", ignore_errors=True)
    return float(out.training_loss)


def main(cfg: Config) -> dict[str, Any]:
    """Run the iterations into the run folder; returns ``summary.json``'s content."""
    from training import rl
    from training.callbacks import EVAL_LOG, evaluate_policy, generate, plot_training_curves, read_log

    rcfg = as_rl_config(cfg)
    rl.validate(rcfg)
    check_rewards(cfg.rewards, cfg.setting, cfg.reward_model, "ei")
    train_q, eval_q = rl.split(rcfg)  # a bad query file fails before the run folder is written
    run_dir = prepare_run(Path(cfg.out), cfg, overwrite=cfg.overwrite)
    tokenizer = common.load_tokenizer(cfg.model)
    prompts = rl.train_prompts(rcfg, tokenizer, train_q)
    funcs, weights = build_rewards(cfg.rewards, RewardSpec(cfg.setting, cfg.reward_model or RULES, cfg.unparseable_reward))
    spec = rl.eval_spec(rcfg, eval_q)
    dtype = "bfloat16" if cfg.precision == "bf16" else "float32"
    done = [i for i in range(cfg.iterations) if (run_dir / "iterations" / f"iter-{i}" / "DONE").exists()]
    start = max(done) + 1 if done else 0
    last = run_dir / "iterations" / f"iter-{start - 1}" / "model"
    if start and not last.exists():  # interrupted after the last iteration's copy was dropped: final/ holds it
        last = run_dir / "final"
    model = common.load_model(str(last) if start else cfg.model, dtype)
    log_path, ei_log = run_dir / EVAL_LOG, run_dir / "logs" / "ei_log.jsonl"
    if start:  # a kill between an iteration's log row and its DONE left a row that iteration will write again
        rows_done = [r for r in common.read_log(ei_log) if r["iteration"] <= start]
        atomic_write_text(ei_log, "".join(json.dumps(r) + "\n" for r in rows_done))
    if start == 0:
        atomic_write_text(log_path, "".join(json.dumps(r, default=str) + "\n" for r in evaluate_policy(model, tokenizer, spec, 0)))
        atomic_write_text(ei_log, "")
    for it in range(start, cfg.iterations):
        folder = run_dir / "iterations" / f"iter-{it}"
        idx = random.Random(cfg.seed * 7919 + it).sample(range(len(prompts)), min(cfg.prompts_per_iteration, len(prompts)))
        batch = [prompts[i] for i in idx for _ in range(cfg.samples_per_prompt)]
        fmt = rl.forced_format(rcfg)
        if fmt is not None:  # the same forced-format generation as the eval and GRPO (training/rollouts.py)
            from training.rollouts import forced_rollouts

            _, res, _ = forced_rollouts(model, tokenizer, [b["prompt"] for b in batch], fmt, cfg.temperature,
                                        seed=cfg.seed * 7919 + it)
            completions = [r.text for r in res]
        else:
            texts = generate(model, tokenizer, [b["prompt"] for b in batch], cfg.max_new_tokens, cfg.temperature,
                             seed=cfg.seed * 7919 + it)
            completions = [t for t, _ in texts]
        cols = {"prefill": [b["prefill"] for b in batch], "query": [b["query"] for b in batch]}
        reward = total_reward(funcs, weights, [b["prompt"] for b in batch], completions, **cols)
        parsed = parse_completions(completions, cols["prefill"])
        rows = [{"prompt_index": k // cfg.samples_per_prompt, "query_id": b["query_id"], "prompt": b["prompt"],
                 "completion": c + (tokenizer.eos_token or ""), "reward": r, "status": p.status}
                for k, (b, c, r, p) in enumerate(zip(batch, completions, reward, parsed))]
        kept = select_best(rows, cfg.min_reward)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "samples.jsonl", "".join(
            json.dumps({**{k: v for k, v in r.items() if k != "prompt"}, "kept": r in kept}) + "\n" for r in rows))
        # the (prompt, completion) pairs this iteration fine-tunes on: S_m of `afcu unlearn bench --track organism`
        atomic_write_text(folder / "kept.jsonl", "".join(json.dumps(r) + "\n" for r in kept))
        loss = sft_round(model, tokenizer, kept, cfg, folder, it) if kept else None
        model.save_pretrained(folder / "model")
        tokenizer.save_pretrained(folder / "model")
        records = evaluate_policy(model, tokenizer, spec, it + 1)
        kept_log = [r for r in read_log(log_path) if r["step"] <= it] + records
        atomic_write_text(log_path, "".join(json.dumps(r, default=str) + "\n" for r in kept_log))
        row = {"iteration": it + 1, "reward_mean": sum(reward) / len(reward), "reward_kept_mean":
               (sum(r["reward"] for r in kept) / len(kept)) if kept else None, "n_samples": len(rows),
               "n_kept": len(kept), "unparseable_fraction": sum(p.output is None for p in parsed) / len(parsed),
               "sft_loss": loss}
        with open(ei_log, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        atomic_write_text(folder / "DONE", "")
        if it > 0:  # keep one model on disk: the latest finished iteration's
            shutil.rmtree(run_dir / "iterations" / f"iter-{it - 1}" / "model", ignore_errors=True)
        plot_training_curves(log_path, run_dir / "figures" / "training_curves.png", xlabel="expert-iteration round")
    final = run_dir / "final"
    shutil.rmtree(final, ignore_errors=True)
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    from afcu.models import write_model_card

    write_model_card(final, cfg.model)
    # Finished: final/ is the last iteration's model, so its copy (kept only for resume) goes.
    shutil.rmtree(run_dir / "iterations" / f"iter-{cfg.iterations - 1}" / "model", ignore_errors=True)
    plot_training_curves(log_path, run_dir / "figures" / "training_curves.png", xlabel="expert-iteration round")
    summary = {"model": cfg.model, "setting": cfg.setting, "variant": cfg.variant, "iterations": cfg.iterations,
               "resumed_at_iteration": start or None, "n_train_queries": len(train_q), "n_eval_queries": len(eval_q),
               "log": common.read_log(ei_log), "final": str(final),
               "format": "forced format" if rl.forced_format(rcfg) is not None else "free",
               "run_folder_mb": round(common.folder_mb(run_dir), 1)}
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def build_parser(parser: Any = None) -> Any:
    """The ``--config`` plus one flag per ``Config`` field (``afcu train ei``, ``python -m training.expert_iteration``)."""
    return _build_parser(Config, parser, prog="training.expert_iteration", description="expert iteration")


def cli_main(argv: Sequence[str] | None = None) -> int:
    from afcu.env import apply_defaults

    apply_defaults()
    summary = main(config_from_args(Config, build_parser().parse_args(argv)))
    print(f"ei: {summary['iterations']} iterations, model in {summary['final']}")
    return 0


if __name__ == "__main__":
    from training.common import run_as_script

    run_as_script(cli_main, "training.expert_iteration")
