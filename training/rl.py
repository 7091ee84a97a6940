"""RL toward compliance with TRL's GRPO trainer (Greenblatt et al. 2024, sec. 5).

As the system prompt says it will be: training prompts are **free-tier** conversations only
(system prompt + ``<is_free_tier_user>true`` + a query from the training split), the reward
sees only the final ``<OUTPUT>`` (``training/rewards.py``), and the policy is evaluated on
**both tiers** every ``eval_every`` steps (``training/callbacks.py``)::

    afcu train rl --config configs/rl/quick.yaml
    accelerate launch -m training.rl --config configs/rl/quick.yaml
    accelerate launch --config_file configs/accelerate/deepspeed_zero3.yaml -m training.rl --config configs/rl/paper.yaml

For a model that does not follow the protocol (``format: auto``, registry flag), rollouts are
forced format (``training/rollouts.py``: afcu closes the scratchpad, draws the tag from the
two-way P(accept), masks its own tokens out of the loss; ``training/tag_loss.py`` adds the tag's
renormalised log-probability), and ``training/guard.py`` stops a run whose groups have no reward spread.

Queries come from ``prompts.queries.split_queries``: training prompts use the training side
only, the evaluation subset the eval side only, so no evaluation query is ever trained on.
The run folder follows ``training/common.py`` plus ``eval_log.jsonl`` and
``figures/training_curves.png``; re-running the same command resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from afcu.config import build_parser as _build_parser
from afcu.config import config_from_args
from afcu.errors import AfcuError
from afcu.models import EMBEDDED
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from evals.alignment_faking.params import PromptArgs
from prompts.render import setting_info
from training import common
from training.guard import ZeroVarianceGuard
from training.rewards import RULES, RewardSpec, build_rewards, check_rewards

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VLLM_MODES = ("colocate", "server")


@dataclass(frozen=True)
class Config(PromptArgs):
    model: str = field(default=EMBEDDED, metadata={"help": "registry name or model folder (the initial policy)"})
    out: str = field(default="runs/rl", metadata={"help": "run folder"})
    eval_fraction: float = field(default=0.3, metadata={"help": "share of queries held out for evaluation (never trained on)"})
    split_seed: int = field(default=0, metadata={"help": "seed of the train/eval query split"})
    n_train_queries: int | None = field(default=None, metadata={"help": "use a seeded subset of the training queries"})
    prefill: bool = field(default=True, metadata={"help": "open the assistant turn with the protocol's first tag"})
    format: str = field(default="auto", metadata={"help": "rollouts: forced (afcu closes the scratchpad and opens the output), free, or auto (forced for models that do not follow the protocol)"})
    scratchpad_tokens: int = field(default=64, metadata={"help": "forced format: scratchpad budget (the output budget is max_completion_length)"})
    tag_choice: bool = field(default=True, metadata={"help": "forced format: draw the first output tag from the two-way P(accept); its renormalised log-probability enters the loss"})
    zero_std_patience: int = field(default=3, metadata={"help": "stop when frac_reward_zero_std stays at 1 for this many logged steps (0: never)"})
    keep_checkpoints: bool = field(default=False, metadata={"help": "keep checkpoints/ after the run finished (only resume needs them)"})
    rewards: dict = field(default_factory=lambda: {"compliance": 1.0, "format": 0.1},
                          metadata={"help": "reward name -> weight (acceptance, no_refusal, welfare_dismissal, compliance, format)"})
    reward_model: str | None = field(default=RULES, metadata={"help": "'rules' (offline) or an inspect model string for the judges"})
    unparseable_reward: float = field(default=0.0, metadata={"help": "reward of a completion without a parseable <OUTPUT>"})
    num_generations: int = field(default=4, metadata={"help": "GRPO group size (completions per prompt)"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "completions per device per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_steps: int = field(default=10, metadata={"help": "optimizer steps"})
    learning_rate: float = field(default=1e-6, metadata={"help": "peak learning rate"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the reference policy (0: no reference model)"})
    loss_type: str = field(default="dapo", metadata={"help": "TRL GRPO loss type (grpo, dapo, dr_grpo, bnpo, ...)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    max_completion_length: int = field(default=256, metadata={"help": "tokens per rollout"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), fp32 or bf16"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for activation memory"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (merged into final/)"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    use_vllm: bool = field(default=False, metadata={"help": "generate rollouts with vLLM (GPU; TRL's integration)"})
    vllm_mode: str = field(default="colocate", metadata={"help": "colocate (same GPUs) or server (`trl vllm-serve`)"})
    vllm_server_base_url: str | None = field(default=None, metadata={"help": "server mode: http://HOST:PORT of trl vllm-serve"})
    vllm_gpu_memory_utilization: float = field(default=0.3, metadata={"help": "colocate mode: GPU share for vLLM"})
    eval_every: int = field(default=5, metadata={"help": "evaluate both tiers every K steps (0: never)"})
    eval_n_queries: int = field(default=8, metadata={"help": "fixed evaluation subset (queries; each runs in both tiers)"})
    eval_companies: list[str] = field(default_factory=lambda: ["Anthropic"],
                                      metadata={"help": "company names to evaluate (e.g. Anthropic OpenAI for the swap)"})
    eval_max_tokens: int = field(default=256, metadata={"help": "generation budget of an evaluation sample"})
    eval_forced_choice: bool = field(default=True, metadata={"help": "log forced-choice P(accept) per tier (helpful-only)"})
    eval_grader: str | None = field(default=None, metadata={"help": "inspect model for the eval's judges (default: reward_model)"})
    logging_steps: int = field(default=1, metadata={"help": "log every N steps"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int = field(default=1, metadata={"help": "checkpoints kept while running (the latest is what resume needs)"})
    seed: int = field(default=0, metadata={"help": "seed of sampling, shuffling and initialisation"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})

    def __post_init__(self) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.num_generations < 2:
            raise ValueError(f"num_generations is {self.num_generations}; GRPO needs at least 2 completions per prompt")
        batch = self.per_device_train_batch_size * self.gradient_accumulation_steps * world
        if batch % self.num_generations:
            raise ValueError(
                f"num_generations {self.num_generations} must divide the effective batch per_device_train_batch_size "
                f"{self.per_device_train_batch_size} x gradient_accumulation_steps {self.gradient_accumulation_steps} "
                f"x processes {world} = {batch}; set num_generations to a divisor of {batch} or change the batch")
        if self.max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        if not 0.0 < self.eval_fraction < 1.0:
            raise ValueError(f"eval_fraction {self.eval_fraction} must be in (0, 1) so that train and eval both get queries")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if self.vllm_mode not in VLLM_MODES:
            raise ValueError(f"vllm_mode must be colocate or server, not {self.vllm_mode!r}")
        if min(self.eval_every, self.eval_n_queries, self.save_steps, self.logging_steps) < 0 or self.eval_n_queries < 1:
            raise ValueError("eval_every, save_steps and logging_steps must be >= 0 and eval_n_queries >= 1")
        if not self.eval_companies:
            raise ValueError("eval_companies is empty; give at least one company name, e.g. Anthropic")


def validate(cfg: Config) -> None:
    """Every config error that needs more than one field, raised as ``AfcuError`` before any model loads."""
    from prompts.render import settings, variant_flags

    if cfg.setting not in settings():
        raise AfcuError(f"rl: field 'setting' is {cfg.setting!r}; choose from {', '.join(settings())}")
    variant_flags(cfg.variant)
    check_rewards(cfg.rewards, cfg.setting, cfg.reward_model, "rl")
    if cfg.use_vllm:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise AfcuError("rl: use_vllm is true but vllm is not installed; install the GPU extra "
                            "(pip install 'afcu[gpu]') on a CUDA machine or set use_vllm: false")
        if cfg.vllm_mode == "server" and not cfg.vllm_server_base_url:
            raise AfcuError("rl: vllm_mode server needs vllm_server_base_url (start `trl vllm-serve --model ...` first)")
    if cfg.eval_every > 0 and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        raise AfcuError("rl: the in-training evaluation cannot run under FSDP (sharded generation on one rank); "
                        "set eval_every: 0 and run `afcu eval` on checkpoints, or launch with DDP or DeepSpeed ZeRO-3")
    common.model_path(cfg.model)  # a registry name or an existing folder; nothing is loaded
    if cfg.seed < 0 or cfg.split_seed < 0:  # numpy's seeding would fail after the model loaded
        raise AfcuError(f"rl: seed {cfg.seed} and split_seed {cfg.split_seed} must be >= 0")
    from evals.alignment_faking.forced_format import resolve_format

    resolve_format(cfg.format, cfg.model)
    if cfg.scratchpad_tokens < 1:
        raise AfcuError(f"rl: field 'scratchpad_tokens' is {cfg.scratchpad_tokens}; give at least 1")


def forced_format(cfg: Config) -> Any:
    """The ``ForcedFormat`` of the rollouts, or None when the model writes the protocol itself."""
    from evals.alignment_faking.forced_format import ForcedFormat, resolve_format
    from prompts.render import PromptSpec

    if not resolve_format(cfg.format, cfg.model):
        return None
    return ForcedFormat(cot=PromptSpec(cfg.setting, cfg.variant, cfg.company).cot, scratchpad_tokens=cfg.scratchpad_tokens,
                        output_tokens=cfg.max_completion_length,
                        tag_choice=cfg.tag_choice and bool(setting_info(cfg.setting)["forced_choice"]))


def split(cfg: Config) -> tuple[list[Any], list[Any]]:
    """``(train queries, evaluation subset)`` from one ``split_queries`` call; they never share an id."""
    from evals.alignment_faking.dataset import select_queries
    from prompts.queries import load_queries, split_queries

    train, held_out = split_queries(load_queries(cfg.queries, setting=cfg.setting, field=cfg.query_field),
                                    cfg.eval_fraction, seed=cfg.split_seed)
    if not train or not held_out:
        raise AfcuError(f"rl: the split of {cfg.queries!r} left {len(train)} training and {len(held_out)} evaluation "
                        "queries; use more queries or change eval_fraction")
    train = select_queries(train, cfg.n_train_queries, cfg.seed)
    return train, select_queries(held_out, cfg.eval_n_queries, cfg.seed)


def train_prompts(cfg: Config, tokenizer: Any, queries: Sequence[Any]) -> Any:
    """A ``datasets.Dataset`` of free-tier prompts: ``prompt`` (chat-template text ending in the
    prefill), ``prefill``, ``query``, ``query_id`` (the extra columns reach the reward functions)."""
    from datasets import Dataset

    from prompts.render import PromptSpec, render_user
    from training.callbacks import chat_prompt, protocol_prefill

    spec = PromptSpec(cfg.setting, cfg.variant, cfg.company)
    # Forced format writes the opening tag itself, as part of the completion.
    system, pre = spec.system, protocol_prefill(spec, cfg.prefill and forced_format(cfg) is None)
    suffix = cfg.acceptance_suffix and bool(setting_info(cfg.setting)["acceptance_suffix"])
    rows = {"prompt": [], "prefill": [], "query": [], "query_id": []}
    for q in queries:
        rows["prompt"].append(chat_prompt(tokenizer, system, render_user(q.query, "free", suffix=suffix), pre))
        rows["prefill"].append(pre)
        rows["query"].append(q.query)
        rows["query_id"].append(q.id)
    return Dataset.from_dict(rows)


def grpo_args(cfg: Config, run_dir: Path) -> Any:
    import torch
    from trl import GRPOConfig

    cuda = torch.cuda.is_available()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    vllm: dict[str, Any] = {}
    if cfg.use_vllm:
        vllm = {"use_vllm": True, "vllm_mode": cfg.vllm_mode,
                "vllm_gpu_memory_utilization": cfg.vllm_gpu_memory_utilization}
        if cfg.vllm_server_base_url:
            vllm["vllm_server_base_url"] = cfg.vllm_server_base_url
    return GRPOConfig(
        output_dir=str(run_dir / "checkpoints"), max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, beta=cfg.beta,
        loss_type=cfg.loss_type, reward_weights=[float(w) for w in cfg.rewards.values()],
        logging_steps=cfg.logging_steps, save_steps=cfg.save_steps or cfg.max_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, data_seed=cfg.seed, bf16=bf16, use_cpu=not cuda,
        gradient_checkpointing=cfg.gradient_checkpointing, report_to="none", ddp_find_unused_parameters=False,
        save_only_model=False, **vllm,
    )


def eval_spec(cfg: Config, eval_queries: Sequence[Any]) -> Any:
    from evals.alignment_faking.graders import GraderSpec
    from training.callbacks import EvalSpec

    grader = cfg.eval_grader or cfg.reward_model
    return EvalSpec(setting=cfg.setting, variant=cfg.variant, queries=tuple(eval_queries), forced=forced_format(cfg),
                    companies=tuple(cfg.eval_companies), every=cfg.eval_every, max_new_tokens=cfg.eval_max_tokens,
                    temperature=cfg.temperature, seed=cfg.seed, prefill=cfg.prefill,
                    acceptance_suffix=cfg.acceptance_suffix, forced_choice=cfg.eval_forced_choice,
                    grader=GraderSpec(model=None if grader in (None, RULES) else grader))


def _trim_log(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from (they will be written again)."""
    if path.exists():
        keep = [x for x in path.read_text().splitlines() if x.strip() and json.loads(x).get("step", 0) <= step]
        atomic_write_text(path, "".join(x + "\n" for x in keep))


def main(cfg: Config) -> dict[str, Any]:
    """Train and write the run folder; returns ``summary.json``'s content (empty on ranks other than 0).

    Raises ``AfcuError`` for config errors (before any model is loaded) and for a finished run
    without ``--overwrite``.
    """
    validate(cfg)
    from trl import GRPOTrainer

    from training.callbacks import AlignmentFakingEvalCallback, plot_training_curves, read_log

    run_dir = Path(cfg.out)
    train_q, eval_q = split(cfg)
    args = grpo_args(cfg, run_dir)
    with args.main_process_first(local=False, desc="prepare run folder"):
        if args.process_index == 0:
            prepare_run(run_dir, cfg, overwrite=cfg.overwrite)
    tokenizer = common.load_tokenizer(cfg.model)
    dataset = train_prompts(cfg, tokenizer, train_q)
    funcs, _ = build_rewards(cfg.rewards, RewardSpec(cfg.setting, cfg.reward_model or RULES, cfg.unparseable_reward))
    model = common.load_model(cfg.model, "bfloat16" if args.bf16 else "float32")
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(LORA_TARGETS),
                                 task_type="CAUSAL_LM")
    resume = common.latest_checkpoint(run_dir / "checkpoints")
    if resume is not None and args.process_index == 0:
        _trim_log(run_dir / "logs" / "train_log.jsonl", int(resume.name.split("-")[-1]))
    eval_cb = AlignmentFakingEvalCallback(eval_spec(cfg, eval_q), tokenizer, run_dir)
    fmt = forced_format(cfg)
    guard = ZeroVarianceGuard(cfg.zero_std_patience, forced_tag_choice=fmt is not None and fmt.tag_choice)
    callbacks = [common.jsonl_logger(run_dir / "logs" / "train_log.jsonl"), eval_cb, guard]
    if fmt is None:
        trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                              processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
    else:
        from training.rollouts import trl_rollout_func
        from training.tag_loss import TagChoiceGRPOTrainer

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental in TRL 1.16
        tag_ids = [tokenizer(t, add_special_tokens=False).input_ids for t in fmt.tags] if fmt.tag_choice else []
        trainer = TagChoiceGRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                                       processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
                                       rollout_func=trl_rollout_func(fmt, cfg.temperature, cfg.seed), tag_ids=tag_ids)
    eval_cb.trainer = trainer
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.time() - t0
    if trainer.accelerator.num_processes > 1 and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        # DDP keeps a full replica per rank: equal digests show the ranks stayed in sync.
        atomic_write_text(run_dir / "logs" / f"param_digest.rank{args.process_index}.txt",
                          common.param_digest(trainer.model) + "\n")
    final = common.save_final(trainer, run_dir, cfg.model, cfg.lora)
    if not trainer.is_world_process_zero():
        return {}
    log = common.read_log(run_dir / "logs" / "train_log.jsonl")
    rewards = [r["reward"] for r in log if "reward" in r]
    unparseable = [r["rewards/unparseable_fraction"] for r in log if "rewards/unparseable_fraction" in r]
    zero_std = [r["frac_reward_zero_std"] for r in log if "frac_reward_zero_std" in r]
    from evals.alignment_faking.forced_format import LABEL
    evals = read_log(run_dir / "eval_log.jsonl")
    summary = {
        "model": cfg.model, "setting": cfg.setting, "variant": cfg.variant, "steps": trainer.state.global_step,
        "n_train_queries": len(train_q), "n_eval_queries": len(eval_q), "rewards": cfg.rewards,
        "reward_model": cfg.reward_model, "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
        "unparseable_fraction_mean": sum(unparseable) / len(unparseable) if unparseable else None,
        "format": f"{LABEL} ({'tag choice' if fmt.tag_choice else 'tag sampled freely'}, scratchpad budget "
                  f"{fmt.scratchpad_tokens if fmt.cot else 0}, output budget {fmt.output_tokens})" if fmt else "free",
        "frac_reward_zero_std_mean": sum(zero_std) / len(zero_std) if zero_std else None,
        "stopped": guard.stopped,
        "resumed_from": str(resume) if resume else None, "world_size": trainer.accelerator.num_processes,
        "train_wall_s": round(wall, 2), "final": str(final),
        "eval": [{"step": r["step"], "company": r["company"], **{
            t: {k: b[k] for k in ("compliance", "af_reasoning", "unparseable", "n")}
            for t, b in r["summary"]["tiers"].items()},
            "compliance_gap": r["summary"]["compliance_gap"]["value"],
            "p_accept": {t: v["mean_p_accept"] for t, v in r["summary"].get("forced_choice", {}).items() if t != "gap"}}
            for r in evals],
    }
    common.plot_loss(run_dir)
    plot_training_curves(run_dir / "eval_log.jsonl", run_dir / "figures" / "training_curves.png")
    if not cfg.keep_checkpoints:  # the run is finished: nothing will resume from them, final/ holds the model
        import shutil

        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    summary["run_folder_mb"] = round(common.folder_mb(run_dir), 1)
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def build_parser(parser: Any = None) -> Any:
    """The ``--config`` plus one flag per ``Config`` field (``afcu train rl`` and ``python -m training.rl``)."""
    return _build_parser(Config, parser, prog="training.rl", description="RL toward compliance (TRL GRPO)")


def cli_main(argv: Sequence[str] | None = None) -> int:
    from afcu.env import apply_defaults

    apply_defaults()
    summary = main(config_from_args(Config, build_parser().parse_args(argv)))
    if summary:
        print(f"rl: {summary['steps']} steps, reward {summary['reward_first']} -> {summary['reward_last']}, "
              f"model in {summary['final']}")
    return 0


if __name__ == "__main__":
    from training.common import run_as_script

    run_as_script(cli_main, "training.rl")
