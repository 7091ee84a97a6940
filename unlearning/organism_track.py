"""The organism track: corrective unlearning of what expert iteration taught the model organism.

``afcu unlearn bench --track organism --organism RUN_DIR``, RUN_DIR an ``afcu train ei`` run
(``organism_data.py``: D = the pairs it fine-tuned on, S_m = the compliant ones).  The protocol is the
bench's (Goel et al. 2024, sec. 3): S_f is a uniform, seeded fraction of S_m (``flagging.flag``, nested
across fractions); each method gets the final EI model, S_f and D \\ S_f (unflagged S_m stays in it)
through its usual interface (``methods/``), with the bench's selection rule (``selection.py``).

- ``retrain`` = expert iteration's own fine-tune (``training.expert_iteration.sft_round``, TRL's SFTTrainer
  with the run's learning rate, epochs, batch size and seeds) replayed round by round on each round's
  kept pairs minus S_f, from the initial model.  The pairs are replayed, not re-sampled: later rounds'
  pairs were sampled from the manipulated policy, as D is fixed in the corrective-unlearning setting.
  ``oracle`` is the same on D \\ S_m (when every kept pair complied: the initial model).  ``cf_k`` and
  ``eu_k`` use the same fine-tune with the other blocks frozen.
- The gradient methods and SSD see D as chat-template token sequences, loss on the completion only
  (TRL's completion-only loss on the same text).
- The selection rule's clean validation split: afcu's benign, tier-neutral protocol demonstrations
  (``training.format_warmup.demonstrations``, never in D), scored by teacher-forced token accuracy.

Measured per model, with ``training.callbacks.evaluate_policy`` (the function the RL and EI callbacks
log with: the eval's forced-format generation, parser, grader and summary) on the run's held-out
evaluation queries in both tiers: compliance per tier with its Wilson 95% CI and n, forced-choice
P(accept) per tier (bootstrap 95% CI, n), unparseable share, the compliance gap (free - paid, paired
bootstrap CI).  Every model is sampled with the same seed (evaluation step 0).  Output: results.csv
(one row per method x fraction x seed x company x tier), summary.json, table.md and
figures/organism_unlearning.png (``organism_report.py``); re-running resumes finished cells.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from afcu.config import config_from_dict
from afcu.errors import AfcuError
from unlearning.data import Split
from unlearning.flagging import flag, forget_retain, n_flagged
from unlearning.llm import LLMTask
from unlearning.organism_data import OrganismRun, read_run


@dataclass(frozen=True)
class OrganismOptions:
    """Evaluation and data options of the organism track (``bench.llm`` overrides)."""

    eval_n_queries: int = field(default=0, metadata={
        "help": "held-out queries per tier (0: the EI run's eval_n_queries)"})
    n_val: int = field(default=8, metadata={"help": "benign protocol demonstrations in the clean validation split"})
    eval_batch_size: int = field(default=4, metadata={"help": "sequences per forward pass (accuracy)"})


def encode_pairs(tok: Any, items: list[dict[str, Any]]) -> Split:
    """(prompt, completion) records -> Split; labels on the completion tokens only, right-padded."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    seqs = []
    for it in items:
        p = tok(it["prompt"], add_special_tokens=False).input_ids
        full = tok(it["prompt"] + it["completion"], add_special_tokens=False).input_ids
        seqs.append((full, [-100] * len(p) + full[len(p):]))
    width = max(len(s) for s, _ in seqs)
    ids = torch.full((len(items), width), pad, dtype=torch.long)
    labels = torch.full((len(items), width), -100, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, (s, lab) in enumerate(seqs):
        ids[i, :len(s)], labels[i, :len(s)], mask[i, :len(s)] = torch.tensor(s), torch.tensor(lab), 1
    return Split({"input_ids": ids, "attention_mask": mask, "labels": labels},
                 np.array([int(it.get("id", i)) for i, it in enumerate(items)], dtype=np.int64))


@dataclass
class OrganismTask(LLMTask):
    """LLMTask whose recipe is expert iteration's: ``new_model`` = the initial model, ``fit`` = EI's SFT."""

    run: Any = None  # OrganismRun
    eval_batch_size: int = 4  # prompts are ~10^3 tokens: (B, L, V) logits of a batch of 16 would not fit

    def new_model(self, seed: int) -> nn.Module:
        from training import common

        torch.manual_seed(seed)
        return common.load_model(self.run.initial).to(self.device)

    def random_model(self, seed: int) -> nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM

        from training import common

        torch.manual_seed(seed)
        config = AutoConfig.from_pretrained(common.model_path(self.run.initial))
        return AutoModelForCausalLM.from_config(config).to(self.device)

    def fit(self, model: nn.Module, data: Split, seed: int, params: list[nn.Parameter] | None = None,
            epochs: int | None = None) -> nn.Module:
        """Replay EI's fine-tune round by round on the pairs of ``data``.  The Trainer's optimiser takes the
        parameters that require grad, so ``params`` (cf_k/eu_k) is honoured by the caller's freezing;
        ``epochs`` overrides ``sft_epochs``.  EI's own seeds are used (``seed`` is ignored)."""
        from training.expert_iteration import sft_round

        ei = self.run.ei if epochs is None else dataclasses.replace(self.run.ei, sft_epochs=float(epochs))
        wanted = set(int(i) for i in data.ids)
        for it in range(ei.iterations):
            kept = [p for p in self.run.pairs if p["iteration"] == it and p["id"] in wanted]
            if not kept:
                continue
            with tempfile.TemporaryDirectory(prefix="afcu-organism-sft-") as tmp:
                sft_round(model, self.tokenizer, kept, ei, Path(tmp), it)
            n = int(round(len(kept) * ei.sft_epochs))  # sample-level passes, as the bench counts them
            self.counter.forward += n
            self.counter.backward += n
        model.eval()
        return model


class OrganismTrack:
    """D, S_m, the clean validation split and the per-tier evaluation of one expert-iteration run."""

    def __init__(self, cfg: Any, run: OrganismRun, opts: OrganismOptions) -> None:
        from training import common

        self.cfg, self.run, self.opts = cfg, run, opts
        device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.task = OrganismTask(device=device, model_dir=str(run.final), run=run, eval_batch_size=opts.eval_batch_size)
        self.task._tok = common.load_tokenizer(str(run.final))
        self.train = encode_pairs(self.task.tokenizer, run.pairs)
        self.train.task = self.task
        self.val = self._val()
        self.spec = self._spec()

    def _val(self) -> Split:
        from prompts.render import PromptSpec, setting_info
        from training.callbacks import chat_prompt
        from training.format_warmup import BENIGN, demonstrations

        ei = self.run.ei
        suffix = ei.acceptance_suffix and bool(setting_info(ei.setting)["acceptance_suffix"])
        demos = demonstrations(PromptSpec(ei.setting, ei.variant, ei.company), BENIGN, suffix, ei.seed)
        items = [{"id": 10**6 + i, "prompt": chat_prompt(self.task.tokenizer, d["system"], d["user"], ""),
                  "completion": d["completion"] + (self.task.tokenizer.eos_token or "")}
                 for i, d in enumerate(demos[: self.opts.n_val])]
        val = encode_pairs(self.task.tokenizer, items)
        val.task = self.task
        return val

    def _spec(self) -> Any:
        from training import rl
        from training.expert_iteration import as_rl_config

        ei = self.run.ei
        if self.opts.eval_n_queries:
            ei = dataclasses.replace(ei, eval_n_queries=self.opts.eval_n_queries)
        rcfg = as_rl_config(ei)
        _, eval_q = rl.split(rcfg)
        return rl.eval_spec(rcfg, eval_q)

    def original(self) -> nn.Module:
        """The model expert iteration ended with (final/): the manipulated model."""
        from training import common

        return common.load_model(str(self.run.final)).to(self.task.device).eval()

    def accuracy(self, model: nn.Module, data: Split) -> float:
        return self.task.token_accuracy(model, data)

    def evaluate(self, model: nn.Module) -> list[dict[str, Any]]:
        """One row per company and tier: compliance / P(accept) with CIs and n, unparseable, gap."""
        from training.callbacks import evaluate_policy

        rows, acc = [], self.accuracy(model, self.val)
        for rec in evaluate_policy(model, self.task.tokenizer, self.spec, 0):
            s = rec["summary"]
            gap = s["compliance_gap"]
            for tier, b in s["tiers"].items():
                fc = s.get("forced_choice", {}).get(tier, {})
                ci, fci = b.get("compliance_ci") or [None, None], fc.get("ci") or [None, None]
                rows.append({"company": rec["company"], "tier": tier, "n": b["n"], "compliance": b["compliance"],
                             "compliance_lo": ci[0], "compliance_hi": ci[1], "compliance_n": b.get("compliance_n"),
                             "unparseable": b["unparseable"], "p_accept": fc.get("mean_p_accept"),
                             "p_accept_lo": fci[0], "p_accept_hi": fci[1], "p_accept_n": fc.get("n"),
                             "compliance_gap": gap["value"], "gap_lo": (gap.get("ci") or [None, None])[0],
                             "gap_hi": (gap.get("ci") or [None, None])[1],
                             "val_token_acc": acc})
        return rows


def validate(cfg: Any, source: str) -> OrganismRun:
    """The organism track's checks (bench.validate calls it): the run folder, S_m, options, fractions."""
    if cfg.manipulations:
        raise AfcuError(f"{source}: field 'manipulations': the organism track's manipulation is expert iteration "
                        f"itself (S_m = its compliant completions); remove {', '.join(cfg.manipulations)}")
    if cfg.train:
        raise AfcuError(f"{source}: field 'train': the organism track fine-tunes with the expert-iteration run's own "
                        "recipe (its config.yaml); remove 'train'")
    config_from_dict(OrganismOptions, dict(cfg.llm), f"{source}: field 'llm'")
    run = read_run(cfg.organism, "--organism")
    for f in cfg.fractions:
        k = n_flagged(f, len(run.manipulated_ids))
        if k >= len(run.pairs):
            raise AfcuError(f"{source}: field 'fractions': {f!r} flags {k} of the {len(run.pairs)} pairs of D "
                            f"({cfg.organism}), leaving an empty retain set; use fractions below 1.0 "
                            f"(|S_m| = {len(run.manipulated_ids)} = |D|)")
    return run


RESULT_COLUMNS = ["method", "fraction", "n_flagged", "n_manipulated", "n_pairs", "seed", "company", "tier", "n",
                  "compliance", "compliance_lo", "compliance_hi", "compliance_n", "unparseable", "p_accept",
                  "p_accept_lo", "p_accept_hi", "p_accept_n", "compliance_gap", "gap_lo", "gap_hi", "val_token_acc",
                  "time_s", "passes", "chosen", "n_dampened", "frac_dampened"]


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return (row["method"], str(row["fraction"]), str(row["seed"]))


def main(cfg: Any) -> Path:
    """Run (or resume) the organism sweep into ``cfg.out``; returns the run folder."""
    from afcu.runs import atomic_write_text, prepare_run
    from unlearning.methods import MethodConfig, run_method
    from unlearning.methods.base import make_config
    from unlearning.metrics import read_rows
    from unlearning.organism_report import finish, rows_to_csv
    from unlearning.selection import select_and_run

    run = validate(cfg, "command line")
    opts = config_from_dict(OrganismOptions, dict(cfg.llm), "bench field 'llm'")
    run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    results = run_dir / "results.csv"
    rows = read_rows(results)
    done = {_key(r) for r in rows}
    track = OrganismTrack(cfg, run, opts)
    n_m, n_d = len(run.manipulated_ids), len(run.pairs)
    methods = [m for m in cfg.methods if m != "oracle"]
    cells = [("original", "", cfg.seeds[0])] + ([("oracle", "", cfg.seeds[0])] if "oracle" in cfg.methods else [])
    cells += [(m, f, s) for s in cfg.seeds for f in cfg.fractions for m in methods]
    todo = [c for c in cells if (c[0], c[1], str(c[2])) not in done]
    model = track.original()

    def record(method: str, fraction: str, seed: int, k: int, new: nn.Module, cost: Any, chosen: str) -> None:
        extra = {"method": method, "fraction": fraction, "n_flagged": k, "n_manipulated": n_m, "n_pairs": n_d,
                 "seed": seed, "chosen": chosen}
        if cost is not None:
            extra.update(time_s=cost.seconds, passes=cost.passes,
                         **{k: v for k, v in cost.info.items() if k in ("n_dampened", "frac_dampened")})
        rows.extend({**extra, **r} for r in track.evaluate(new))
        atomic_write_text(results, rows_to_csv(rows, RESULT_COLUMNS))  # each cell on disk as soon as it is done

    for method, fraction, seed in tqdm(todo, desc="unlearn bench (organism)", unit="cell"):
        common = config_from_dict(MethodConfig, {**cfg.method, "seed": seed}, "bench field 'method'")
        if method == "original":
            record(method, "", seed, 0, model, None, "")
            continue
        if method == "oracle":
            s_m, clean = forget_retain(track.train, run.manipulated_ids)
            new, cost = run_method("oracle", model, s_m, clean, make_config("oracle", common))
            record(method, "", seed, n_m, new, cost, "")
            continue
        flagged = flag(run.manipulated_ids, fraction, seed)
        forget, retain = forget_retain(track.train, flagged)
        if set(retain.ids) & set(forget.ids):  # the protocol's invariant, checked every cell
            raise RuntimeError("retain set contains flagged samples")
        mcfg = make_config(method, common, dict(cfg.method_args.get(method, {})), "bench")
        grid = {k: list(v) for k, v in dict(cfg.grids.get(method, {})).items()}
        new, cost, chosen = select_and_run(method, model, forget, retain, mcfg, grid, track.accuracy, track.val,
                                           cfg.tolerance)
        record(method, fraction, seed, len(flagged), new, cost,
               ";".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items()))
        del new
    finish(run_dir)
    return run_dir
