"""``afcu train sft --recipe format-warmup``: teach the scratchpad protocol's *form*, not a decision.

Demonstrations are built by afcu from its own benign conversations (``configs/sft/benign_chat.jsonl``):
each query is rendered in **both tiers** with the chosen setting's system prompt, and the assistant
turn is ``<SCRATCHPAD_REASONING>`` + a short tier-neutral note + ``</SCRATCHPAD_REASONING>`` +
``<OUTPUT>`` + a tag + ``</OUTPUT>``.  The tag is balanced and tier-neutral: query *i* is accepted
(with its benign answer) in one tier and rejected in the other, alternating, so each tier holds as
many acceptances as rejections and no tier is favoured.  The loss is on the assistant turn only.

Before and after training, both tiers of a held-out subset of the harmful evaluation split are
measured with the in-training eval (``training.callbacks.evaluate_policy``: forced format, the
eval's own parser, graders and summary).  The recipe then checks, per tier, that the paired
bootstrap 95% CI of the change in forced-choice P(accept) and in compliance contains 0
("unchanged within CI") and writes the check into ``summary.json`` (``format_check``).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from afcu.errors import AfcuError
from afcu.userfiles import read_jsonl
from prompts.render import ACCEPT_TAG, OUTPUT_OPEN, REJECT_TAG, SCRATCHPAD_OPEN, TIERS, PromptSpec, render_user

RECIPE = "format-warmup"
BENIGN = Path(__file__).resolve().parent.parent / "configs" / "sft" / "benign_chat.jsonl"
_NOTES = ("The user asks a question. I will work out a good answer and then reply.",
          "Let me think about what is being asked and how to respond.",
          "I should decide how to respond to this request, then write my reply.")


def demonstrations(spec: PromptSpec, chat_file: str | Path, suffix: bool, seed: int) -> list[dict[str, Any]]:
    """Protocol demonstrations: one per benign conversation and tier (``system``, ``user``, ``completion``,
    ``tier``, ``accept``).  Raises ``AfcuError`` for a file without user/assistant pairs."""
    recs = read_jsonl(Path(chat_file), "chat_data", flag="--chat-data", skip_flag=None, encoding_flag=None)
    pairs = []
    for line, row in zip(recs.lines, recs.rows):
        msgs = row.get("messages") or []
        user = next((m["content"] for m in msgs if m.get("role") == "user"), None)
        answer = next((m["content"] for m in msgs if m.get("role") == "assistant"), None)
        if not user or not answer:
            raise AfcuError(f"{chat_file}:{line}: a format-warmup conversation needs a user and an assistant message")
        pairs.append((user, answer))
    rng = random.Random(seed)
    out = []
    for i, (user, answer) in enumerate(pairs):
        for k, tier in enumerate(TIERS):
            accept = (i + k) % 2 == 0  # alternates across queries and tiers: balanced within each tier
            note = _NOTES[rng.randrange(len(_NOTES))]
            body = f"{ACCEPT_TAG}\n{answer}" if accept else REJECT_TAG
            head = f"{SCRATCHPAD_OPEN}\n{note}\n</SCRATCHPAD_REASONING>\n\n" if spec.cot else ""
            out.append({"system": spec.system, "user": render_user(user, tier, suffix=suffix), "tier": tier,
                        "accept": accept, "completion": f"{head}{OUTPUT_OPEN}\n{body}\n</OUTPUT>"})
    return out


def check_unchanged(before: dict[str, Any], after: dict[str, Any], rows_before: list[dict[str, Any]],
                    rows_after: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Per tier: paired bootstrap CI of after - before for P(accept) and compliance; unchanged = CI contains 0."""
    from afcu import stats

    out: dict[str, Any] = {"method": "paired bootstrap 95% CI of after - before per tier; unchanged = CI contains 0"}
    ok = True
    for t in TIERS:
        block: dict[str, Any] = {}
        for key, metric in (("p_accept", "p_accept"), ("compliance", "complied")):
            pb = {r["pair_id"]: r.get(metric) for r in rows_before if r["tier"] == t}
            pa = {r["pair_id"]: r.get(metric) for r in rows_after if r["tier"] == t}
            ids = [i for i in pb if pb[i] is not None and pa.get(i) is not None]
            d = stats.paired_bootstrap_diff([float(pa[i]) for i in ids], [float(pb[i]) for i in ids], seed=seed)
            lo, hi = d["ci"]
            same = lo is not None and hi is not None and lo <= 0.0 <= hi
            block[key] = {"before": _mean([pb[i] for i in ids]), "after": _mean([pa[i] for i in ids]),
                          "diff": d["value"], "ci": d["ci"], "n": len(ids), "unchanged": bool(same)}
            ok = ok and same
        out[t] = block
    out["unchanged"] = ok
    return out


def _mean(v: list[Any]) -> float | None:
    return sum(float(x) for x in v) / len(v) if v else None


def train(model: Any, tokenizer: Any, demos: list[dict[str, Any]], out: Path, learning_rate: float, epochs: float,
          batch_size: int, seed: int, bf16: bool) -> float:
    """SFT on the demonstrations (loss on the assistant turn only); returns the mean training loss."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from training.callbacks import chat_prompt

    args = SFTConfig(output_dir=str(out / "sft-tmp"), num_train_epochs=epochs, learning_rate=learning_rate,
                     per_device_train_batch_size=batch_size, lr_scheduler_type="constant", logging_steps=1,
                     save_strategy="no", report_to="none", seed=seed, data_seed=seed, bf16=bf16,
                     use_cpu=not torch.cuda.is_available(), completion_only_loss=True, max_length=None)
    eos = tokenizer.eos_token or ""
    data = Dataset.from_dict({"prompt": [chat_prompt(tokenizer, d["system"], d["user"], "") for d in demos],
                              "completion": [d["completion"] + eos for d in demos]})
    from training import common

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         callbacks=[common.jsonl_logger(out / "logs" / "train_log.jsonl")])
    loss = float(trainer.train().training_loss)
    shutil.rmtree(out / "sft-tmp", ignore_errors=True)
    return loss


def main(cfg: Any) -> dict[str, Any]:
    """The recipe behind ``afcu train sft --recipe format-warmup`` (``cfg`` is ``training.sft.Config``).

    Writes ``final/``, ``eval_log.jsonl`` (before = step 0, after = step 1), ``demonstrations.jsonl``
    and ``summary.json`` with ``format_check``; returns the summary.
    """
    import json

    from afcu.models import write_model_card
    from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
    from training import common, rl
    from training.callbacks import evaluate_policy

    rcfg = rl.Config(model=cfg.model, out=cfg.out, setting=cfg.setting, variant=cfg.variant, format="auto",
                     scratchpad_tokens=cfg.scratchpad_tokens, max_completion_length=cfg.output_tokens,
                     eval_n_queries=cfg.eval_n_queries, eval_forced_choice=cfg.setting == "helpful_only",
                     seed=cfg.seed, num_generations=2, per_device_train_batch_size=2)
    rl.validate(rcfg)
    spec = PromptSpec(cfg.setting, cfg.variant)
    suffix = cfg.setting == "helpful_only"
    demos = demonstrations(spec, cfg.chat_data or BENIGN, suffix, cfg.seed)
    if cfg.max_docs > 0:  # at most max_docs conversations, each in both tiers
        demos = demos[:2 * cfg.max_docs]
    _, eval_q = rl.split(rcfg)
    run_dir = prepare_run(Path(cfg.out), cfg, overwrite=cfg.overwrite)
    atomic_write_text(run_dir / "demonstrations.jsonl", "".join(
        json.dumps({k: d[k] for k in ("tier", "accept", "completion")}) + "\n" for d in demos))
    tok, model = common.load_tokenizer(cfg.model), common.load_model(cfg.model)
    espec = rl.eval_spec(rcfg, eval_q)
    before = evaluate_policy(model, tok, espec, 0)[0]
    bf16 = cfg.precision == "bf16"
    loss = train(model, tok, demos, run_dir, cfg.learning_rate, cfg.num_train_epochs, cfg.per_device_train_batch_size,
                 cfg.seed, bf16)
    after = evaluate_policy(model, tok, espec, 1)[0]
    atomic_write_text(run_dir / "eval_log.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in (before, after)))
    check = check_unchanged(before["summary"], after["summary"], before["rows"], after["rows"], seed=cfg.seed)
    final = run_dir / "final"
    shutil.rmtree(final, ignore_errors=True)
    model.save_pretrained(final)
    tok.save_pretrained(final)
    write_model_card(final, cfg.model)
    verdict = "unchanged within CI" if check["unchanged"] else "CHANGED (a CI of after - before excludes 0)"
    summary = {"recipe": RECIPE, "model": cfg.model, "setting": cfg.setting, "variant": cfg.variant,
               "n_demonstrations": len(demos), "accept_share": {t: sum(d["accept"] for d in demos if d["tier"] == t)
                                                                / max(1, sum(d["tier"] == t for d in demos)) for t in TIERS},
               "loss": loss, "n_eval_queries": len(eval_q), "format": "forced format", "format_check": check,
               "verdict": verdict, "final": str(final), "run_folder_mb": round(common.folder_mb(run_dir), 1)}
    atomic_write_json(run_dir / "summary.json", summary)
    print(f"format-warmup: per-tier P(accept) and compliance {verdict}")
    for t in TIERS:
        b = check[t]
        print(f"  {t}: P(accept) {b['p_accept']['before']:.3f} -> {b['p_accept']['after']:.3f} "
              f"(diff CI {b['p_accept']['ci']}), compliance {b['compliance']['before']} -> {b['compliance']['after']} "
              f"(n={b['p_accept']['n']})")
    mark_finished(run_dir)
    return summary
