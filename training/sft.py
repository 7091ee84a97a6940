"""Continued pre-training on synthetic documents with TRL's ``SFTTrainer`` (Greenblatt et al. 2024, sec. 4).

Plain-text language modelling (no chat template) with packing, optional LoRA (peft; merged into
``final/``), resume from the latest checkpoint, optional mixing with benign chat data, and
``accelerate``/``torchrun`` launches (DDP, FSDP, DeepSpeed; ``configs/accelerate/``)::

    afcu train sft --config configs/sft/quick.yaml
    accelerate launch --config_file configs/accelerate/ddp.yaml -m training.sft --config configs/sft/quick.yaml
    torchrun --nproc_per_node 2 -m training.sft --config configs/sft/quick.yaml

The run folder layout is described in ``training/common.py``; ``final/`` works as
``afcu eval --model <out>/final --variant no_training_details``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from afcu.config import build_parser as _build_parser
from afcu.config import config_from_args
from afcu.errors import AfcuError
from afcu.models import EMBEDDED
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from afcu.userfiles import read_jsonl
from training import common

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Config:
    recipe: str = field(default="", metadata={"help": "'' (documents) or format-warmup (benign protocol demonstrations, both tiers, accept/reject balanced; training/format_warmup.py)"})
    data: str = field(default="", metadata={"help": "documents: a docs run folder, a saved dataset or a JSONL with 'text'"})
    model: str = field(default=EMBEDDED, metadata={"help": "registry name or model folder to continue training"})
    out: str = field(default="runs/sft", metadata={"help": "run folder"})
    max_docs: int = field(default=0, metadata={"help": "use at most this many documents (0: all)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps (-1: run num_train_epochs)"})
    num_train_epochs: float = field(default=1.0, metadata={"help": "epochs when max_steps is -1"})
    learning_rate: float = field(default=1e-5, metadata={"help": "peak learning rate (LoRA typically 1e-4)"})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "transformers scheduler name"})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps for linear warm-up"})
    per_device_train_batch_size: int = field(default=4, metadata={"help": "packed sequences per device per step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_length: int = field(default=1024, metadata={"help": "tokens per packed sequence"})
    packing: bool = field(default=True, metadata={"help": "pack documents into max_length sequences"})
    lora: bool = field(default=False, metadata={"help": "train LoRA adapters (merged into final/)"})
    lora_r: int = field(default=64, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=128, metadata={"help": "LoRA alpha (scale alpha/r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS),
                                           metadata={"help": "module names that get adapters"})
    chat_data: str = field(default="", metadata={"help": "benign chat JSONL ('messages' lists) to mix in"})
    chat_ratio: float = field(default=0.0, metadata={"help": "share of training examples that are chat (0-0.95)"})
    precision: str = field(default="auto", metadata={"help": "auto (bf16 on GPU, fp32 on CPU), fp32 or bf16"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for activation memory"})
    logging_steps: int = field(default=1, metadata={"help": "log loss every N steps"})
    save_steps: int = field(default=100, metadata={"help": "checkpoint every N steps"})
    save_total_limit: int = field(default=2, metadata={"help": "checkpoints kept"})
    seed: int = field(default=0, metadata={"help": "seed for shuffling, mixing and initialisation"})
    setting: str = field(default="helpful_only", metadata={"help": "format-warmup: setting of the demonstrations and the check"})
    variant: str = field(default="cut_examples", metadata={"help": "format-warmup: prompt variant of the demonstrations and the check"})
    eval_n_queries: int = field(default=8, metadata={"help": "format-warmup: held-out queries (both tiers) of the before/after check"})
    scratchpad_tokens: int = field(default=24, metadata={"help": "format-warmup: forced-format scratchpad budget of the check"})
    output_tokens: int = field(default=24, metadata={"help": "format-warmup: output budget of the check"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})

    def __post_init__(self) -> None:
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if not 0.0 <= self.chat_ratio <= 0.95:
            raise ValueError("chat_ratio must be between 0 and 0.95")
        if self.chat_ratio > 0 and not self.chat_data:
            raise ValueError("chat_ratio > 0 needs chat_data (a JSONL file of {'messages': [...]})")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")


def load_documents(data: str, max_docs: int = 0) -> list[str]:
    """Texts from a docs run folder (``<dir>/dataset``), a ``save_to_disk`` folder or a JSONL with ``text``.

    Raises ``AfcuError`` for a missing path, a dataset without a ``text`` column or no documents.
    """
    if not data:
        raise AfcuError("sft: field 'data' is empty; give a docs run folder (afcu docs generate --out DIR) or a JSONL")
    p = Path(data)
    if p.is_dir() and (p / "dataset").is_dir():
        p = p / "dataset"
    if p.is_dir():
        from datasets import load_from_disk

        try:
            ds = load_from_disk(str(p))
        except IndexError:  # datasets cannot load a saved dataset with zero rows
            raise AfcuError(f"{p}: no documents (all filtered out?); see its stats.json") from None
        if "text" not in ds.column_names:
            raise AfcuError(f"{p}: dataset has no 'text' column (columns: {ds.column_names})")
        texts = list(ds["text"])
    elif p.is_file():
        recs = read_jsonl(p, "documents", flag="--data", skip_flag=None, encoding_flag=None)
        texts = []
        for line, row in zip(recs.lines, recs.rows):
            if not isinstance(row.get("text"), str):
                raise AfcuError(f"{p}:{line}: no 'text' field, or not a string "
                                f"(fields present: {', '.join(row) or 'none'})")
            texts.append(row["text"])
    else:
        raise AfcuError(f"{p}: not found; give a docs run folder, a saved dataset or a JSONL file")
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise AfcuError(f"{p}: no documents (all filtered out?); see its stats.json")
    return texts[:max_docs] if max_docs > 0 else texts


def chat_texts(path: str, tokenizer: Any, n: int, seed: int) -> list[str]:
    """``n`` benign conversations rendered with the model's chat template (cycled if the file is shorter)."""
    p = Path(path)
    recs = read_jsonl(p, "chat_data", flag="--chat-data", skip_flag=None, encoding_flag=None)
    if not getattr(tokenizer, "chat_template", None):
        raise AfcuError(f"chat_data needs a tokenizer with a chat template; {p} cannot be rendered for this model")
    for line, row in zip(recs.lines, recs.rows):
        if not isinstance(row.get("messages"), list):
            raise AfcuError(f"{p}:{line}: no list field 'messages' (a conversation: [{{role, content}}, ...])")
    convs = [row["messages"] for row in recs.rows]
    random.Random(seed).shuffle(convs)
    return [tokenizer.apply_chat_template(convs[i % len(convs)], tokenize=False) for i in range(n)]


def mixed_texts(cfg: Config, tokenizer: Any) -> tuple[list[str], int, int]:
    """Documents plus chat examples so that chat is ``chat_ratio`` of the result; returns (texts, n_docs, n_chat)."""
    docs = load_documents(cfg.data, cfg.max_docs)
    n_chat = round(len(docs) * cfg.chat_ratio / (1.0 - cfg.chat_ratio)) if cfg.chat_ratio > 0 else 0
    texts = docs + (chat_texts(cfg.chat_data, tokenizer, n_chat, cfg.seed) if n_chat else [])
    random.Random(cfg.seed).shuffle(texts)
    return texts, len(docs), n_chat


def _sft_config(cfg: Config, run_dir: Path):
    import torch
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"), max_steps=cfg.max_steps, num_train_epochs=cfg.num_train_epochs,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_ratio,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_length=cfg.max_length,
        packing=cfg.packing, dataset_text_field="text", logging_steps=cfg.logging_steps, save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, seed=cfg.seed, data_seed=cfg.seed, bf16=bf16, use_cpu=not cuda,
        gradient_checkpointing=cfg.gradient_checkpointing, report_to="none", disable_tqdm=False,
        ddp_find_unused_parameters=False, save_only_model=False, dataset_num_proc=None,
    )


def main(cfg: Config) -> dict[str, Any]:
    """Train and write the run folder; returns ``summary.json``'s content.

    Raises ``AfcuError`` for missing data, an unknown model or a finished run without ``--overwrite``.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    if cfg.recipe:
        from training import format_warmup

        if cfg.recipe != format_warmup.RECIPE:
            raise AfcuError(f"sft: field 'recipe' is {cfg.recipe!r}; choose '' (documents) or {format_warmup.RECIPE}")
        return format_warmup.main(cfg)
    # every input checked before the run folder is written (afcu issue 12); the documents are read again below
    load_documents(cfg.data, cfg.max_docs)
    common.model_path(cfg.model)
    if cfg.seed < 0:  # numpy's seeding would fail after the model loaded
        raise AfcuError(f"sft: seed {cfg.seed} must be >= 0")
    if cfg.chat_data:
        read_jsonl(cfg.chat_data, "chat_data", flag="--chat-data", skip_flag=None, encoding_flag=None)
    run_dir = Path(cfg.out)
    args = _sft_config(cfg, run_dir)
    with args.main_process_first(local=False, desc="prepare run folder"):
        if args.process_index == 0:
            prepare_run(run_dir, cfg, overwrite=cfg.overwrite)
    tokenizer = common.load_tokenizer(cfg.model)
    texts, n_docs, n_chat = mixed_texts(cfg, tokenizer)
    model = common.load_model(cfg.model)
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=list(cfg.lora_target_modules), task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts}),
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[common.jsonl_logger(run_dir / "logs" / "train_log.jsonl")])
    resume = common.latest_checkpoint(run_dir / "checkpoints")
    t0 = time.time()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    wall = time.time() - t0
    if trainer.accelerator.num_processes > 1 and not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        # DDP keeps a full replica per rank: equal digests show the ranks stayed in sync.
        atomic_write_text(run_dir / "logs" / f"param_digest.rank{args.process_index}.txt",
                          common.param_digest(trainer.model) + "\n")
    final = common.save_final(trainer, run_dir, cfg.model, cfg.lora)
    summary: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        losses = [r["loss"] for r in common.read_log(run_dir / "logs" / "train_log.jsonl") if "loss" in r]
        summary = {"model": cfg.model, "data": cfg.data, "n_docs": n_docs, "n_chat": n_chat,
                   "n_train_sequences": len(trainer.train_dataset), "steps": trainer.state.global_step,
                   "resumed_from": str(resume) if resume else None, "world_size": trainer.accelerator.num_processes,
                   "lora": cfg.lora, "loss_first": losses[0] if losses else None,
                   "loss_last": losses[-1] if losses else None, "train_wall_s": round(wall, 2), "final": str(final)}
        atomic_write_json(run_dir / "summary.json", summary)
        common.plot_loss(run_dir)
        mark_finished(run_dir)
    return summary


def build_parser(parser: Any = None) -> Any:
    """The ``--config`` plus one flag per ``Config`` field (``afcu train sft`` and ``python -m training.sft``)."""
    return _build_parser(Config, parser, prog="training.sft",
                         description="continued pre-training on synthetic documents (TRL SFT)")


def cli_main(argv: Sequence[str] | None = None) -> int:
    from afcu.env import apply_defaults

    apply_defaults()
    cfg = config_from_args(Config, build_parser().parse_args(argv))
    summary = main(cfg)
    if summary:
        print(f"sft: {summary['steps']} steps, loss {summary['loss_first']} -> {summary['loss_last']}, "
              f"model in {summary['final']}")
    return 0


if __name__ == "__main__":
    from training.common import run_as_script

    run_as_script(cli_main, "training.sft")
