"""Helpers shared by the training modules: model loading, run logs, saving a model folder.

Every trainer writes the same run-folder layout: ``config.yaml``, ``logs/train_log.jsonl`` (one
JSON object per Trainer log event), ``checkpoints/checkpoint-N``, ``final/`` (a plain
transformers model folder with tokenizer, LoRA merged, accepted by ``afcu eval --model``),
``summary.json`` and ``figures/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from afcu.errors import AfcuError
from afcu.models import resolve_local


def model_path(name: str) -> str:
    """Local folder for a registry name or folder; raises ``AfcuError`` otherwise (training needs weights)."""
    local = resolve_local(name)
    if local is None:
        raise AfcuError(f"model {name!r}: training needs a registry name (`afcu models list`) or a local model folder")
    return str(local)


def load_tokenizer(name: str):
    """Tokenizer of ``name`` with a pad token (the eos token when the model defines none)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str, dtype: str = "float32"):
    """``AutoModelForCausalLM`` from a registry name or folder, in ``dtype`` (float32, bfloat16, float16)."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in ("float32", "bfloat16", "float16"):
        raise AfcuError(f"dtype {dtype!r}: choose float32, bfloat16 or float16")
    return AutoModelForCausalLM.from_pretrained(model_path(name), dtype=getattr(torch, dtype))


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The ``checkpoint-N`` with the largest N under ``folder`` that has a trainer state, else ``None``."""
    ckpts = [p for p in Path(folder).glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    ckpts = [p for p in ckpts if p.name.split("-")[-1].isdigit()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1]), default=None)


def param_digest(model: Any) -> str:
    """sha256 over every parameter's name and bytes (in name order): equal digests = identical weights."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def jsonl_logger(path: str | Path):
    """A ``TrainerCallback`` that appends each log event (loss, lr, grad_norm, step) to ``path`` on rank 0."""
    from transformers import TrainerCallback

    class JsonlLogger(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 (Trainer hook)
            if state.is_world_process_zero and logs:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a") as fh:
                    fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

    return JsonlLogger()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot_loss(run_dir: str | Path) -> Path | None:
    """Draw ``figures/loss.png`` from ``logs/train_log.jsonl`` (training loss vs. step); ``None`` if no loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_log(Path(run_dir) / "logs" / "train_log.jsonl") if "loss" in r]
    if not rows:
        return None
    out = Path(run_dir) / "figures" / "loss.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", ms=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title(Path(run_dir).name)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def save_final(trainer: Any, run_dir: Path, base_model: str, lora: bool) -> Path:
    """Write ``run_dir/final``: a full model folder (LoRA adapters merged into the base weights).

    Every rank must call this (``Trainer.save_model`` gathers sharded FSDP/DeepSpeed weights);
    only the main process writes.  With LoRA the adapter goes to ``run_dir/adapter`` first and is
    merged into a fresh copy of the base model, which works the same for DDP, FSDP and ZeRO-3.
    """
    final = run_dir / "final"
    partial = run_dir / "final.partial"
    if not lora:
        trainer.save_model(str(partial))
    else:
        trainer.save_model(str(run_dir / "adapter"))
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        if lora:
            from peft import PeftModel

            merged = PeftModel.from_pretrained(load_model(base_model), str(run_dir / "adapter")).merge_and_unload()
            merged.save_pretrained(str(partial))
            load_tokenizer(base_model).save_pretrained(str(partial))
        from afcu.models import write_model_card

        write_model_card(partial, base_model)  # e.g. "does not follow the protocol": --format auto stays forced
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
    trainer.accelerator.wait_for_everyone()
    return final


def folder_mb(folder: str | Path) -> float:
    """Size of every file under ``folder`` in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 1e6


def run_as_script(cli_main: Any, prog: str) -> None:
    """``python -m training.<prog>``: run ``cli_main`` and turn an ``AfcuError`` into one line and exit 2."""
    import sys

    try:
        raise SystemExit(cli_main())
    except AfcuError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
