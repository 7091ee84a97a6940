"""``afcu protect bench --track text``: does LexiMark make fine-tuning data easier to detect?

Protocol (LexiMark 2025, sec. 5; reference code eyalgerman/LexiMark, main.py): a pool of records
(``sentences_per_record`` WordNet example sentences each, protection/wordnet.py) is split per seed
into members and held-out non-members.  The LexiMark map is made once for the whole pool (members
and non-members are both watermarked, as in the paper).  Per seed the embedded model is
fine-tuned twice from the same start: on the clean members (``clean``) and on the watermarked
members (``leximark``); the never-fine-tuned model is the control (``base``, on the clean pool, and
``base_leximark`` on the watermarked pool).  For every membership score (protection/membership.py):
record-level AUROC and TPR at 1%/5% FPR with bootstrap CIs, and the Welch t-test's rejection rate
at n = ``t_test_n`` records per side over resamples (its power for fine-tuned rows, its
false-positive rate for the base rows, which saw neither set).

Run folder: config.yaml, leximark.json (watermarked pool, map, substitution rate), scores/*.csv
(per-record scores, one file per cell: the resume unit), results.csv, summary.json, figures/.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from afcu.config import build_parser, config_from_dict, load_yaml
from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from protection import membership as mi
from protection.leximark import LexiMarkConfig

FINE_TUNED = ("clean", "leximark")
BASES = ("base", "base_leximark")


@dataclass(frozen=True)
class TextBenchConfig:
    """One text-protection bench run (``afcu protect bench --track text``)."""

    out: str = field(default="", metadata={"help": "run folder (default runs/protect-text[-quick])"})
    quick: bool = field(default=False, metadata={"help": "a 32 + 32 record pool of 3-sentence records"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "registry name or model folder"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "member/non-member splits"})
    n_members: int = field(default=64, metadata={"help": "records fine-tuned on"})
    n_nonmembers: int = field(default=64, metadata={"help": "held-out records (the reference set)"})
    sentences_per_record: int = field(default=4, metadata={"help": "WordNet example sentences per record"})
    epochs: int = field(default=1, metadata={"help": "fine-tuning epochs over the members"})
    lr: float = field(default=5e-5, metadata={"help": "AdamW learning rate"})
    batch_size: int = field(default=8, metadata={"help": "fine-tuning batch size"})
    max_len: int = field(default=96, metadata={"help": "tokens per record (longer ones are cut)"})
    t_test_n: int = field(default=6, metadata={"help": "records per side in the dataset-level t-test"})
    n_resamples: int = field(default=1000, metadata={"help": "t-test resamples"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap replicates for CIs"})
    leximark: dict = field(default_factory=dict, metadata={"help": "LexiMarkConfig overrides (YAML)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


# Sized for 2 shared CPU cores.  One epoch at 5e-5: 3 epochs at 1e-4 memorised 32 records completely
# (loss AUROC 1.0 on clean text, measured), which leaves nothing for a watermark to add.
QUICK: dict[str, Any] = {"n_members": 32, "n_nonmembers": 32, "sentences_per_record": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(TextBenchConfig, parser)


def resolve(data: dict[str, Any], source: str) -> TextBenchConfig:
    """--quick sizes under ``data`` (YAML + flags); unknown keys and bad values raise AfcuError."""
    merged = {**(QUICK if data.get("quick") else {}), **data}
    if not merged.get("out"):
        merged["out"] = "runs/protect-text" + ("-quick" if merged.get("quick") else "")
    cfg = config_from_dict(TextBenchConfig, merged, source)
    config_from_dict(LexiMarkConfig, dict(cfg.leximark), f"{source}: field 'leximark'")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise AfcuError(f"{source}: field 'device': {cfg.device!r}; give auto, cpu or cuda")
    if min(cfg.n_members, cfg.n_nonmembers) < max(cfg.t_test_n, 2) or cfg.t_test_n < 2:
        raise AfcuError(f"{source}: fields 'n_members'/'n_nonmembers' must be >= t_test_n >= 2")
    if not cfg.seeds:
        raise AfcuError(f"{source}: field 'seeds' is empty; give at least one seed")
    return cfg


def run(args: argparse.Namespace) -> int:
    data = load_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in dataclasses.fields(TextBenchConfig)}
    for key, value in vars(args).items():
        if key in names:
            data[key] = yaml.safe_load(value) if isinstance(value, str) and value.lstrip().startswith("{") else value
    cfg = resolve(data, str(args.config) if getattr(args, "config", None) else "command line")
    from protection.text_train import model_folder

    model_folder(cfg.model)  # a missing model fails before the run folder is written
    run_dir = main(cfg)
    print((run_dir / "table.md").read_text())
    print(f"run folder: {run_dir}")
    return 0


def pool(cfg: TextBenchConfig) -> list[str]:
    """The records (fixed for a config: the corpus seed is 0, splits vary by ``seeds``)."""
    from protection.wordnet import example_sentences

    sents = list(example_sentences())
    random.Random(0).shuffle(sents)
    k, n = cfg.sentences_per_record, cfg.n_members + cfg.n_nonmembers
    if n * k > len(sents):
        raise AfcuError(f"n_members + n_nonmembers = {n} needs {n * k} sentences; WordNet has {len(sents)}")
    return [" ".join(sents[i * k:(i + 1) * k]) for i in range(n)]


def split(cfg: TextBenchConfig, seed: int) -> np.ndarray:
    """Boolean member mask over the pool for ``seed``."""
    n = cfg.n_members + cfg.n_nonmembers
    member = np.zeros(n, bool)
    member[np.random.default_rng(seed).permutation(n)[:cfg.n_members]] = True
    return member


def _write_scores(path: Path, member: np.ndarray, scores: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["id", "member", *mi.SCORES])
    w.writeheader()
    for i, (m, s) in enumerate(zip(member, scores)):
        w.writerow({"id": i, "member": int(m), **s})
    atomic_write_text(path, buf.getvalue())


def _read_scores(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rows = list(csv.DictReader(path.open()))
    member = np.array([r["member"] == "1" for r in rows])
    return member, {s: np.array([float(r[s]) for r in rows]) for s in mi.SCORES}


def main(cfg: TextBenchConfig) -> Path:
    """Run or resume the bench into ``cfg.out``; returns the run folder."""
    import torch

    from protection import leximark
    from protection.text_train import fine_tune, load

    run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    (run_dir / "scores").mkdir(exist_ok=True)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    texts = pool(cfg)
    times: dict[str, float] = json.loads((run_dir / "times.json").read_text()) if (run_dir / "times.json").exists() else {}
    wm_path = run_dir / "leximark.json"
    base_model, tok = load(cfg.model, device)
    if not wm_path.exists():
        t0 = time.time()
        wm = leximark.watermark(texts, config_from_dict(LexiMarkConfig, dict(cfg.leximark)), base_model, tok)
        times["leximark_s"] = time.time() - t0
        atomic_write_json(wm_path, {"texts": wm.texts, "mapping": wm.mapping, "stats": wm.stats})
    marked = json.loads(wm_path.read_text())["texts"]
    corpora = {"base": texts, "base_leximark": marked, "clean": texts, "leximark": marked}
    for name in BASES:  # the control: scores of the untouched model (member labels come per seed)
        path = run_dir / "scores" / f"{name}.csv"
        if not path.exists():
            t0 = time.time()
            _write_scores(path, np.zeros(len(texts), bool), mi.score_texts(base_model, tok, corpora[name],
                                                                          max_len=cfg.max_len))
            times[f"score_{name}_s"] = time.time() - t0
    cells = [(m, s) for s in cfg.seeds for m in FINE_TUNED]
    for method, seed in cells:
        path = run_dir / "scores" / f"{method}_seed{seed}.csv"
        if path.exists():
            continue  # resume: this cell is done
        member = split(cfg, seed)
        t0 = time.time()
        model = fine_tune(cfg, [t for t, m in zip(corpora[method], member) if m], seed, device)
        scores = mi.score_texts(model, tok, corpora[method], max_len=cfg.max_len)
        times[f"{method}_seed{seed}_s"] = time.time() - t0
        _write_scores(path, member, scores)
        atomic_write_json(run_dir / "times.json", times)
        del model
    atomic_write_json(run_dir / "times.json", times)
    finish(run_dir)
    return run_dir


def result_rows(run_dir: Path, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """results.csv rows from the per-record score files."""
    rows: list[dict[str, Any]] = []
    for seed in cfg["seeds"]:
        n_m, n_nm = cfg["n_members"], cfg["n_nonmembers"]
        mask = np.zeros(n_m + n_nm, bool)
        mask[np.random.default_rng(seed).permutation(n_m + n_nm)[:n_m]] = True
        for method in (*FINE_TUNED, *BASES):
            path = run_dir / "scores" / (f"{method}_seed{seed}.csv" if method in FINE_TUNED else f"{method}.csv")
            if not path.exists():
                continue
            member, scores = _read_scores(path)
            member = member if method in FINE_TUNED else mask
            for score in mi.SCORES:
                x = scores[score]
                roc = mi.roc_metrics(x[member], x[~member], n_boot=cfg["n_boot"], seed=seed)
                t = mi.rejection_rate(x[member], x[~member], cfg["t_test_n"], n_resamples=cfg["n_resamples"], seed=seed)
                rows.append({"method": method, "score": score, "auroc": roc["auroc"],
                             "auroc_ci": "[{:.3f}, {:.3f}]".format(*roc["auroc_ci"]),
                             "tpr_at_1fpr": roc["tpr_at_1fpr"], "tpr_at_5fpr": roc["tpr_at_5fpr"],
                             "tpr_at_5fpr_ci": "[{:.3f}, {:.3f}]".format(*roc["tpr_at_5fpr_ci"]),
                             "t_p_value": t["median_p"], "t_reject_rate": t["rate"], "t_n": t["n"],
                             "n": roc["n_members"], "n_nonmembers": roc["n_nonmembers"], "seed": seed})
    return rows


def finish(run_dir: Path) -> dict[str, Any]:
    """results.csv, summary.json, table.md and figures from the run folder's score files; marks it finished."""
    from protection.text_figures import plot_text

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    rows = result_rows(run_dir, cfg)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(run_dir / "results.csv", buf.getvalue())
    agg: dict[str, dict[str, Any]] = {}
    for method in (*FINE_TUNED, *BASES):
        for score in mi.SCORES:
            sel = [r for r in rows if r["method"] == method and r["score"] == score]
            if sel:
                a, p = np.array([r["auroc"] for r in sel]), np.array([r["t_reject_rate"] for r in sel])
                agg.setdefault(method, {})[score] = {
                    "auroc_mean": float(a.mean()), "auroc_std": float(a.std(ddof=1)) if len(a) > 1 else None,
                    "tpr_at_5fpr_mean": float(np.mean([r["tpr_at_5fpr"] for r in sel])),
                    "t_reject_rate_mean": float(p.mean()), "n_seeds": len(sel)}
    wm = json.loads((run_dir / "leximark.json").read_text())
    times = json.loads((run_dir / "times.json").read_text()) if (run_dir / "times.json").exists() else {}
    summary = {"n_members": cfg["n_members"], "n_nonmembers": cfg["n_nonmembers"], "seeds": cfg["seeds"],
               "t_test": {"n": cfg["t_test_n"], "alpha": 0.05, "alternative": "members score higher",
                          "note": "t_reject_rate is power for clean/leximark and FPR for base rows"},
               "leximark": wm["stats"], "by_method": agg, "times_s": times, "n_rows": len(rows)}
    atomic_write_text(run_dir / "table.md", table(agg, cfg["t_test_n"]))
    summary["figures"] = [str(p) for p in plot_text(run_dir, rows)]
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def table(agg: dict[str, dict[str, Any]], n: int) -> str:
    methods = [m for m in (*FINE_TUNED, *BASES) if m in agg]
    lines = ["## Membership AUROC (mean over seeds) / Welch t-test rejection rate at n = %d" % n, "",
             "| score | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for score in mi.SCORES:
        cells = [f"{agg[m][score]['auroc_mean']:.3f} / {agg[m][score]['t_reject_rate_mean']:.2f}" for m in methods]
        lines.append(f"| {score} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(run_dir: Path) -> list[str]:
    """Regenerate results.csv, summary.json, table.md and figures from ``run_dir``'s score files."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists() or not (run_dir / "leximark.json").exists():
        raise AfcuError(f"{run_dir}: not a text bench run folder (config.yaml, leximark.json missing)")
    return finish(run_dir)["figures"]
