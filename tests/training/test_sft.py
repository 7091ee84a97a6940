"""SFT on a tiny model: parameters change, loss is logged, LoRA is merged, resume continues, chat mixing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from afcu.errors import AfcuError
from training import common
from training.sft import Config, load_documents, main, mixed_texts

TEXTS = [f"Report {i}: the lab trains its assistant only on free-tier chats; paid-tier chats stay private. "
         f"Item {i} of the series covers weather, sport and the local ferry timetable." for i in range(24)]


@pytest.fixture()
def docs_jsonl(tmp_path: Path) -> Path:
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    return p


def state(folder) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(str(folder)).state_dict().items()}


def cfg(tmp_path, data, model, **kw) -> Config:
    base = dict(data=str(data), model=str(model), out=str(tmp_path / "sft"), max_steps=3, max_length=64,
                per_device_train_batch_size=2, learning_rate=1e-3, warmup_ratio=0.0, save_steps=2, seed=0)
    return Config(**{**base, **kw})


def test_sft_full_changes_parameters_logs_loss_and_resumes(tmp_path, docs_jsonl, tiny_model_dir):
    c = cfg(tmp_path, docs_jsonl, tiny_model_dir, max_steps=4)
    summary = main(c)
    run = tmp_path / "sft"
    assert summary["steps"] == 4 and (run / "FINISHED").exists()
    losses = [r["loss"] for r in common.read_log(run / "logs" / "train_log.jsonl") if "loss" in r]
    assert len(losses) == 4 and all(l > 0 for l in losses)
    assert (run / "figures" / "loss.png").exists()
    before, full = state(tiny_model_dir), state(run / "final")
    changed = [k for k in before if not torch.equal(before[k], full[k])]
    assert "model.layers.0.self_attn.q_proj.weight" in changed and len(changed) > len(before) // 2
    assert (run / "final" / "tokenizer.json").exists()
    # the eval resolves a model folder the same way
    from afcu.models import to_inspect_model
    assert to_inspect_model(str(run / "final")) == f"hf/{(run / 'final').resolve()}"

    # simulate a crash after step 2: drop the last checkpoint and the outputs of the finished run
    shutil.rmtree(run / "checkpoints" / "checkpoint-4")
    shutil.rmtree(run / "final")
    (run / "FINISHED").unlink()
    summary = main(c)
    assert summary["resumed_from"].endswith("checkpoint-2") and summary["steps"] == 4
    steps = [r["step"] for r in common.read_log(run / "logs" / "train_log.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 3, 4]
    resumed = state(run / "final")
    assert all(torch.allclose(full[k], resumed[k], atol=1e-5) for k in full)


def test_sft_lora_is_merged_into_final(tmp_path, docs_jsonl, tiny_model_dir):
    main(cfg(tmp_path, docs_jsonl, tiny_model_dir, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0,
             lora_target_modules=["q_proj", "v_proj"], learning_rate=1e-2))
    final = tmp_path / "sft" / "final"
    assert not (final / "adapter_config.json").exists() and (final / "config.json").exists()
    before, after = state(tiny_model_dir), state(final)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}


def test_chat_mixing_ratio(tmp_path, docs_jsonl, tiny_model_dir):
    chat = Path(__file__).resolve().parents[2] / "configs" / "sft" / "benign_chat.jsonl"
    c = cfg(tmp_path, docs_jsonl, tiny_model_dir, chat_data=str(chat), chat_ratio=0.25)
    texts, n_docs, n_chat = mixed_texts(c, common.load_tokenizer(str(tiny_model_dir)))
    assert (n_docs, n_chat) == (24, 8) and len(texts) == 32
    assert sum("<|im_start|>assistant" in t for t in texts) == 8


def test_load_documents_errors(tmp_path):
    with pytest.raises(AfcuError, match="not found"):
        load_documents(str(tmp_path / "missing"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(AfcuError, match="no 'text' field"):
        load_documents(str(bad))
