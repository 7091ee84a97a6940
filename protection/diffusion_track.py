"""``afcu protect bench --track diffusion``: SleeperMark vs a naive watermark under an adversary's fine-tuning.

Per seed (protection/ddpm.py, protection/sleepermark.py): pre-train a tiny prompt-conditional DDPM on
the owner's digits; stage 1 trains the message codec; stage 2 embeds the owner's message with
SleeperMark (trigger-activated) and, from the same model, with the naive baseline (every generation
marked).  The adversary then fine-tunes each watermarked model with the ordinary DDPM loss on new data
(the held-out digits, mirrored left-right: a new style) for ``adversary_steps`` (cumulative), and after
each checkpoint the owner generates ``n_eval`` images with and without the trigger and decodes them.

Reported per (method, seed, adversary steps): bit accuracy on triggered and on untriggered
generations (chance is 0.5; the never-watermarked ``original`` model gives the measured chance level),
the share of images with >= 14/16 bits right, digit accuracy of the generations under a logistic
regression trained on real digits (fidelity), and the mean squared difference between untriggered
generations and the original model's from the same noise.

Run folder: config.yaml, checkpoints/, results.csv (resume unit: a (method, seed) trajectory),
codec.json, summary.json, table.md, figures/bit_accuracy.png.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from afcu.config import build_parser, config_from_dict, load_yaml
from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run

METHODS = ("original", "sleepermark", "naive")


@dataclass(frozen=True)
class DiffusionBenchConfig:
    """One diffusion-watermark bench run (``afcu protect bench --track diffusion``)."""

    out: str = field(default="", metadata={"help": "run folder (default runs/protect-diffusion[-quick])"})
    quick: bool = field(default=False, metadata={"help": "1 seed, fewer steps (minutes on 2 CPU cores)"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds (data split, message, init)"})
    timesteps: int = field(default=200, metadata={"help": "diffusion steps T"})
    pretrain_steps: int = field(default=3000, metadata={"help": "DDPM pre-training steps"})
    codec_steps: int = field(default=1500, metadata={"help": "stage 1 steps"})
    embed_steps: int = field(default=1500, metadata={"help": "stage 2 steps (SleeperMark and naive each)"})
    adversary_steps: list[int] = field(default_factory=lambda: [0, 250, 1000, 2000],
                                       metadata={"help": "adversary fine-tuning checkpoints (cumulative)"})
    adversary_lr: float = field(default=5e-4, metadata={"help": "adversary's learning rate"})
    n_eval: int = field(default=256, metadata={"help": "generations per measurement"})
    n_bits: int = field(default=16, metadata={"help": "message length"})
    wm_weight: float = field(default=0.05, metadata={"help": "stage 2 watermark-loss weight"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


QUICK: dict[str, Any] = {"seeds": [0], "pretrain_steps": 1500, "codec_steps": 800, "embed_steps": 800,
                         "adversary_steps": [0, 200, 600], "n_eval": 128}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(DiffusionBenchConfig, parser)


def resolve(data: dict[str, Any], source: str) -> DiffusionBenchConfig:
    merged = {**(QUICK if data.get("quick") else {}), **data}
    if not merged.get("out"):
        merged["out"] = "runs/protect-diffusion" + ("-quick" if merged.get("quick") else "")
    cfg = config_from_dict(DiffusionBenchConfig, merged, source)
    if not cfg.seeds or not cfg.adversary_steps or min(cfg.adversary_steps) < 0:
        raise AfcuError(f"{source}: fields 'seeds' and 'adversary_steps' need at least one value, steps >= 0")
    if cfg.timesteps < 10 or cfg.n_eval < 10 or cfg.n_bits < 4:
        raise AfcuError(f"{source}: timesteps >= 10, n_eval >= 10 and n_bits >= 4 are required")
    return cfg


def run(args: argparse.Namespace) -> int:
    data = load_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(DiffusionBenchConfig)}
    data.update({k: v for k, v in vars(args).items() if k in names})
    cfg = resolve(data, str(args.config) if getattr(args, "config", None) else "command line")
    run_dir = main(cfg)
    print((run_dir / "table.md").read_text())
    print(f"run folder: {run_dir}")
    return 0


def _read(path: Path) -> list[dict[str, Any]]:
    return list(csv.DictReader(path.open())) if path.exists() else []


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _save(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temporary file: a run stopped mid-write leaves no half-written
    checkpoint for the resume to load (it would fail on, or load, a truncated base model)."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def main(cfg: DiffusionBenchConfig) -> Path:
    import torch
    from sklearn.linear_model import LogisticRegression

    from protection import ddpm
    from protection import sleepermark as sm

    run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    ck = run_dir / "checkpoints"
    ck.mkdir(exist_ok=True)
    results = run_dir / "results.csv"
    rows = _read(results)
    codec_info = json.loads((run_dir / "codec.json").read_text()) if (run_dir / "codec.json").exists() else {}
    for seed in cfg.seeds:
        done = {r["method"] for r in rows if int(r["seed"]) == seed}
        if done >= set(METHODS):
            continue
        rows = [r for r in rows if int(r["seed"]) != seed]  # a half-done seed is redone whole
        t0 = time.time()
        d = ddpm.load_digits_split(seed)
        base_path = ck / f"ddpm_seed{seed}.pt"
        if base_path.exists():  # weights only (a pickled module could run code on load)
            base = ddpm.new_model(seed, cfg.timesteps)
            base.load_state_dict(torch.load(base_path, weights_only=True))
        else:
            base = ddpm.train(ddpm.new_model(seed, cfg.timesteps), d["x"], d["y"], cfg.pretrain_steps, seed,
                              desc=f"pre-train seed {seed}")
            _save(base.state_dict(), base_path)
        enc, dec = sm.train_codec(d["x"], sm.CodecConfig(n_bits=cfg.n_bits, steps=cfg.codec_steps), seed)
        message = torch.randint(0, 2, (cfg.n_bits,), generator=torch.Generator().manual_seed(10_000 + seed)).float()
        with torch.no_grad():
            residual = enc(message[None])[0]
        clf = LogisticRegression(max_iter=3000).fit(d["x"].numpy(), d["y"].numpy())
        codec_info[str(seed)] = {
            "encoded_bit_acc": float(sm.decode_accuracy(dec, d["x_holdout"] + residual, message).mean()),
            "clean_bit_acc": float(sm.decode_accuracy(dec, d["x_holdout"], message).mean()),
            "residual_rms": float(residual.square().mean().sqrt()), "classifier_acc": float(
                clf.score(d["x_holdout"].numpy(), d["y_holdout"].numpy()))}
        labels = torch.arange(cfg.n_eval) % 10
        with torch.no_grad():
            reference = ddpm.sample(base, ddpm.prompts(labels, torch.Generator().manual_seed(7)), 7)

        def measure(model: Any, method: str, steps: int) -> dict[str, Any]:
            # one set of generations per prompt kind serves every column (sampling is the costly part)
            with torch.no_grad():
                gen = torch.Generator().manual_seed(7)
                imgs_p = ddpm.sample(model, ddpm.prompts(labels, gen), 7)
                imgs_t = ddpm.sample(model, ddpm.prompts(labels, gen, trigger=True), 7)
            acc_t, acc_p = sm.decode_accuracy(dec, imgs_t, message), sm.decode_accuracy(dec, imgs_p, message)
            right = 0.875  # "detected": at least 14 of 16 bits (the same share for other lengths)
            return {"method": method, "seed": seed, "adversary_steps": steps,
                    "bit_acc_trigger": float(acc_t.mean()), "bit_acc_trigger_std": float(acc_t.std()),
                    "detected_trigger": float((acc_t >= right - 1e-9).float().mean()),
                    "bit_acc_plain": float(acc_p.mean()), "detected_plain": float((acc_p >= right - 1e-9).float().mean()),
                    "class_acc_plain": float((clf.predict(imgs_p.numpy()) == labels.numpy()).mean()),
                    "class_acc_trigger": float((clf.predict(imgs_t.numpy()) == labels.numpy()).mean()),
                    "mse_plain_vs_original": float((imgs_p - reference).square().mean()), "n": cfg.n_eval}

        rows.append(measure(base, "original", 0))
        ecfg = sm.EmbedConfig(steps=cfg.embed_steps, wm_weight=cfg.wm_weight)
        adv_x = d["x_holdout"].view(-1, 8, 8).flip(-1).reshape(-1, 64)  # the adversary's new data
        for method in ("sleepermark", "naive"):
            model = sm.embed(base, residual, d["x"], d["y"], ecfg, seed, trigger=(method == "sleepermark"))
            _save(model.state_dict(), ck / f"{method}_seed{seed}.pt")
            attacked, so_far = copy.deepcopy(model), 0
            for steps in sorted(cfg.adversary_steps):
                if steps > so_far:
                    ddpm.train(attacked, adv_x, d["y_holdout"], steps - so_far, seed + 1, lr=cfg.adversary_lr,
                               train_encoder=False, desc=f"adversary {method}")
                    so_far = steps
                rows.append(measure(attacked, method, steps))
        codec_info[str(seed)]["seconds"] = time.time() - t0
        _write(results, rows)
        atomic_write_json(run_dir / "codec.json", codec_info)
    finish(run_dir)
    return run_dir


def finish(run_dir: Path) -> dict[str, Any]:
    """summary.json, table.md and figures from results.csv and codec.json; marks the run finished."""
    rows = _read(run_dir / "results.csv")
    if not rows:
        raise AfcuError(f"{run_dir}/results.csv: no rows; run the bench first")
    keys = ["bit_acc_trigger", "bit_acc_plain", "detected_trigger", "class_acc_plain", "class_acc_trigger",
            "mse_plain_vs_original"]
    agg: dict[str, dict[str, Any]] = {}
    for r in rows:
        agg.setdefault(r["method"], {}).setdefault(str(r["adversary_steps"]), []).append(r)
    summary: dict[str, Any] = {"by_method": {}, "codec": json.loads((run_dir / "codec.json").read_text())}
    for method, by_steps in agg.items():
        summary["by_method"][method] = {
            steps: {**{k: float(np.mean([float(r[k]) for r in rs])) for k in keys}, "n_seeds": len(rs),
                    "n_images": int(rs[0]["n"])} for steps, rs in by_steps.items()}
    lines = ["## Bit accuracy (mean over seeds; chance 0.5) after the adversary's fine-tuning", "",
             "| method | adversary steps | triggered | untriggered | detected (>=14/16, triggered) | digit acc (untriggered) | MSE vs original |",
             "|---|---|---|---|---|---|---|"]
    for method, by_steps in summary["by_method"].items():
        for steps, v in sorted(by_steps.items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {method} | {steps} | {v['bit_acc_trigger']:.3f} | {v['bit_acc_plain']:.3f} | "
                         f"{v['detected_trigger']:.2f} | {v['class_acc_plain']:.3f} | {v['mse_plain_vs_original']:.4f} |")
    atomic_write_text(run_dir / "table.md", "\n".join(lines) + "\n")
    summary["figures"] = [str(_figure(run_dir, summary["by_method"]))]
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def _figure(run_dir: Path, by_method: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, colour in (("sleepermark", "#dd8452"), ("naive", "#4c72b0")):
        if method not in by_method:
            continue
        pts = sorted((int(s), v) for s, v in by_method[method].items())
        ax.plot([p for p, _ in pts], [v["bit_acc_trigger"] for _, v in pts], "o-", color=colour,
                label=f"{method}: triggered")
        ax.plot([p for p, _ in pts], [v["bit_acc_plain"] for _, v in pts], "o--", color=colour, alpha=0.6,
                label=f"{method}: untriggered")
    if "original" in by_method:
        ax.axhline(by_method["original"]["0"]["bit_acc_trigger"], color="grey", lw=0.8, label="original model")
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xlabel("adversary fine-tuning steps")
    ax.set_ylabel("bit accuracy")
    ax.set_ylim(0.3, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = run_dir / "figures"
    out.mkdir(exist_ok=True)
    fig.savefig(out / "bit_accuracy.png", dpi=110)
    plt.close(fig)
    return out / "bit_accuracy.png"


def plot(run_dir: Path) -> list[str]:
    return finish(Path(run_dir))["figures"]
