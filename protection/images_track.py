"""``afcu protect bench --track images``: how well each image protection stops a model from learning.

Per seed (data split, noise, attacker init): the attacker trains a fresh small CNN (the vision track's
model and recipe) on clean data and on protected data and both are scored on the clean test split.
Rows (results.csv): one per (method, eps, labelling, seed); ``labelling`` is the attacker's labels
(``digit``; for the label-agnostic claim also ``parity`` and ``gt4``, digit > 4, while the protector
crafted with digit labels or, for Unlearnable Clusters, with no labels).  ``p_value`` for unlearnable
examples: exact one-sided McNemar test (protected model wrong where the clean one is right, on the same
test images); for taggants: the ownership test on the model trained on the signed data
(``p_value_clean``: the same test on the clean model); ``taggants_fpr`` rows: false-positive rate over
``taggants.n_clean_models`` clean models.  Output: results.csv, perturbations/ (cached noise),
summary.json, table.md, figures/.  An unfinished run resumes (finished rows are skipped).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from afcu.config import build_parser, config_from_dict, load_yaml
from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from protection.images_data import LABELLINGS, Box, accuracy, fit, n_classes_of, pixel_frac, relabel, surrogate
from unlearning.metrics import _fmt, read_rows  # the unlearning bench's results.csv reader and cell format

COLUMNS = ["method", "eps", "linf", "pixel_frac", "labelling", "clean_acc", "protected_acc", "p_value",
           "p_value_clean", "alpha", "fpr", "n_models", "n_protected", "seed", "time_s"]
UE_METHODS = ("em_sample", "em_class", "salm", "uc", "t2ue")
ALL_METHODS = [*UE_METHODS, "taggants"]


def method_table() -> dict[str, tuple[type, Callable[..., torch.Tensor], str]]:
    """name -> (config class, ``fn(x, y, cfg, seed) -> delta``, config field of ImagesBenchConfig)."""
    from protection import error_minimising as em
    from protection import salm, t2ue, unlearnable_clusters as uc

    return {
        "em_sample": (em.EMConfig, lambda x, y, c, s: em.error_minimising(x, y, dataclasses.replace(c, mode="sample"), s),
                      "em"),
        "em_class": (em.EMConfig, lambda x, y, c, s: em.error_minimising(x, y, dataclasses.replace(c, mode="class"), s),
                     "em"),
        "salm": (salm.SALMConfig, salm.salm, "salm"),
        "uc": (uc.UCConfig, uc.unlearnable_clusters, "uc"),
        "t2ue": (t2ue.T2UEConfig, t2ue.t2ue, "t2ue"),
    }


@dataclass(frozen=True)
class ImagesBenchConfig:
    """One images protection bench run (``afcu protect bench --track images``)."""

    out: str = field(default="", metadata={"help": "run folder (default runs/protect-images[-quick])"})
    quick: bool = field(default=False, metadata={"help": "1 seed, one eps, shorter noise optimisation (minutes)"})
    dataset: str = field(default="digits", metadata={"help": "digits (CPU) or cifar10 (local folder, GPU)"})
    data_dir: str = field(default="", metadata={"help": "cifar10: folder with the python-version batches"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds"})
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS), metadata={"help": "methods to run"})
    eps: list[float] = field(default_factory=lambda: [8 / 255, 64 / 255],
                             metadata={"help": "L-inf budgets (fraction of the pixel range) for unlearnable examples"})
    labellings: list[str] = field(default_factory=lambda: list(LABELLINGS),
                                  metadata={"help": "attacker labellings for label_methods (digit, parity, gt4)"})
    label_methods: list[str] = field(default_factory=lambda: ["em_sample", "em_class", "uc"],
                                     metadata={"help": "methods also scored with the other labellings"})
    epochs: int = field(default=20, metadata={"help": "attacker training epochs (vision track recipe)"})
    lr: float = field(default=3e-3, metadata={"help": "attacker AdamW learning rate"})
    em: dict = field(default_factory=dict, metadata={"help": "EMConfig overrides for em_sample/em_class (YAML)"})
    salm: dict = field(default_factory=dict, metadata={"help": "SALMConfig overrides (YAML)"})
    uc: dict = field(default_factory=dict, metadata={"help": "UCConfig overrides (YAML)"})
    t2ue: dict = field(default_factory=dict, metadata={"help": "T2UEConfig overrides (YAML)"})
    taggants: dict = field(default_factory=dict, metadata={"help": "TaggantsConfig overrides (YAML)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


QUICK: dict[str, Any] = {"seeds": [0], "eps": [64 / 255],
                         "em": {"rounds": 5, "steps": 10, "train_steps": 5}, "salm": {"rounds": 5, "steps": 10},
                         "uc": {"steps": 100}, "t2ue": {"iterations": 150}, "taggants": {"steps": 150}}


def resolve(data: dict[str, Any], source: str) -> ImagesBenchConfig:
    """--quick defaults under ``data`` (YAML + flags); every nested block is checked; errors raise AfcuError."""
    merged: dict[str, Any] = dict(QUICK) if data.get("quick") else {}
    for key, value in data.items():
        merged[key] = {**merged[key], **value} if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    merged.setdefault("out", "")
    if not merged["out"]:
        merged["out"] = "runs/protect-images" + ("-quick" if merged.get("quick") else "")
    cfg = config_from_dict(ImagesBenchConfig, merged, source)
    if cfg.dataset not in ("digits", "cifar10"):
        raise AfcuError(f"{source}: field 'dataset': {cfg.dataset!r} is not digits or cifar10")
    bad = sorted(set(cfg.methods) - set(ALL_METHODS))
    if bad:
        raise AfcuError(f"{source}: field 'methods': unknown {', '.join(bad)}; known: {', '.join(ALL_METHODS)}")
    bad = sorted(set(cfg.labellings) - set(LABELLINGS))
    if bad:
        raise AfcuError(f"{source}: field 'labellings': unknown {', '.join(bad)}; known: {', '.join(LABELLINGS)}")
    if any(not 0 < e <= 1 for e in cfg.eps):
        raise AfcuError(f"{source}: field 'eps': each budget must be in (0, 1] (a fraction of the pixel range)")
    for name, (cls, _, key) in method_table().items():
        config_from_dict(cls, dict(getattr(cfg, key)), f"{source}: field '{key}'")
    from protection.taggants import TaggantsConfig

    tag = config_from_dict(TaggantsConfig, dict(cfg.taggants), f"{source}: field 'taggants'")
    _check_numbers(cfg, tag, source)
    if cfg.dataset == "cifar10":
        from unlearning.cifar import find_folder

        find_folder(cfg.data_dir)
    return cfg


def _check_numbers(cfg: ImagesBenchConfig, tag: Any, source: str) -> None:
    """Numbers that would crash mid-run or give a degenerate table, refused before the run folder exists."""
    checks = [
        ("seeds", all(s >= 0 for s in cfg.seeds) and len(set(cfg.seeds)) == len(cfg.seeds) and cfg.seeds,
         "give distinct seeds >= 0, e.g. --seeds 0 1 2"),
        ("epochs", cfg.epochs >= 1, "give at least 1 training epoch"),
        ("lr", cfg.lr > 0, "give a positive learning rate, e.g. 3e-3"),
        ("device", cfg.device in ("auto", "cpu", "cuda"), "give auto, cpu or cuda"),
        ("taggants.eps", 0 < tag.eps <= 1, "give a budget in (0, 1], e.g. 0.125"),
        ("taggants.alpha", 0 < tag.alpha < 1, "give a test level in (0, 1), e.g. 0.05"),
        ("taggants.budget", 0 < tag.budget <= 1, "give a share of training images in (0, 1], e.g. 0.05"),
        ("taggants.n_keys", tag.n_keys >= 1, "give at least 1 key"),
        ("taggants.top_k", tag.top_k >= 1, "give top_k >= 1"),
        ("taggants.n_clean_models", tag.n_clean_models >= 1, "give at least 1 clean model"),
    ]
    for name, ok, fix in checks:
        if not ok:
            raise AfcuError(f"{source}: field '{name}': {fix}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise AfcuError(f"{source}: field 'device': cuda is not available on this machine; give auto or cpu")


def load_splits(cfg: ImagesBenchConfig, seed: int) -> tuple[Any, Any, Any]:
    if cfg.dataset == "cifar10":
        from unlearning.cifar import load_cifar10

        return load_cifar10(cfg.data_dir, seed)
    from unlearning.vision import load_digits_splits

    return load_digits_splits(seed)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
    atomic_write_text(path, buf.getvalue())


def mcnemar_p(clean_right: np.ndarray, prot_right: np.ndarray) -> float:
    """Exact one-sided McNemar p-value that the protected model is right less often on the same images."""
    from scipy.stats import binomtest

    b = int((clean_right & ~prot_right).sum())
    c = int((~clean_right & prot_right).sum())
    return float(binomtest(b, b + c, 0.5, alternative="greater").pvalue) if b + c else 1.0


@torch.no_grad()
def right(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    dev = next(model.parameters()).device
    return np.concatenate([(model(x[i:i + 1024].to(dev)).argmax(-1).cpu() == y[i:i + 1024]).numpy()
                           for i in range(0, len(y), 1024)])


def key(method: str, eps: Any, labelling: str, seed: Any) -> tuple[str, str, str, str]:
    return method, _fmt(float(eps)) if eps not in ("", None) else "", labelling, str(seed)


def main(cfg: ImagesBenchConfig) -> Path:
    """Run (or resume) the bench into ``cfg.out``; returns the run folder."""
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    results = run_dir / "results.csv"
    rows = read_rows(results)
    done = {key(r["method"], r["eps"], r["labelling"], r["seed"]) for r in rows}
    table = method_table()
    ue = [m for m in cfg.methods if m in table]
    n_lab = lambda m: len(cfg.labellings) if m in cfg.label_methods else 1  # noqa: E731
    total = len(cfg.seeds) * (len(cfg.labellings) + sum(n_lab(m) for m in ue) * len(cfg.eps)
                              + (2 if "taggants" in cfg.methods else 0))
    bar = tqdm(total=total, initial=len(done), desc="protect images", unit="row")

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        done.add(key(row["method"], row["eps"], row["labelling"], row["seed"]))
        write_rows(results, rows)
        bar.update(1)

    for seed in cfg.seeds:
        train, _, test = load_splits(cfg, seed)
        x, y = train.tensors["x"].to(device), train.tensors["y"].to(device)
        xt, yt = test.tensors["x"], test.tensors["y"]
        n_digit = int(y.max()) + 1
        clean_models: dict[str, torch.nn.Module] = {}

        def attacker(xx: torch.Tensor, lab: str) -> torch.nn.Module:
            model = surrogate(xx, n_classes_of(lab, n_digit), 10_000 + seed).to(device)
            return fit(model, xx, relabel(y, lab), seed, cfg.epochs, lr=cfg.lr)

        def clean_model(lab: str) -> torch.nn.Module:
            if lab not in clean_models:
                clean_models[lab] = attacker(x, lab)
            return clean_models[lab]

        for lab in cfg.labellings:
            if key("clean", 0.0, lab, seed) not in done:
                acc = accuracy(clean_model(lab), xt, relabel(yt, lab))
                record({"method": "clean", "eps": 0.0, "linf": 0.0, "pixel_frac": 0.0, "labelling": lab,
                        "clean_acc": acc, "protected_acc": acc, "seed": seed, "n_protected": 0})
        for method in ue:
            cls, fn, block = table[method]
            for eps in cfg.eps:
                labs = [lab for lab in (cfg.labellings if method in cfg.label_methods else ["digit"])
                        if key(method, eps, lab, seed) not in done]
                if not labs:
                    continue
                bar.set_postfix_str(f"{method} eps={eps:.3g} seed={seed}")
                mcfg = config_from_dict(cls, {**getattr(cfg, block), "eps": eps}, f"bench field '{block}'")
                path = run_dir / "perturbations" / f"{method}_eps{eps:.4g}_seed{seed}.pt"
                t0 = time.time()
                if path.exists():  # resumed: the noise's cost was paid (and recorded) before
                    delta = torch.load(path, map_location=device, weights_only=True)
                else:
                    delta = fn(x, y, mcfg, seed)
                    path.parent.mkdir(exist_ok=True)
                    torch.save(delta.cpu(), path.with_suffix(".tmp"))
                    path.with_suffix(".tmp").replace(path)
                noise_s = time.time() - t0
                box = Box.of(x)
                for lab in labs:
                    prot = attacker(x + delta, lab)
                    ylab = relabel(yt, lab)
                    rc, rp = right(clean_model(lab), xt, ylab), right(prot, xt, ylab)
                    record({"method": method, "eps": eps, "linf": box.linf(delta), "labelling": lab,
                            "pixel_frac": pixel_frac(delta), "clean_acc": float(rc.mean()),
                            "protected_acc": float(rp.mean()), "p_value": mcnemar_p(rc, rp), "seed": seed,
                            "n_protected": int((delta.flatten(1).abs().amax(1) > 0).sum()),
                            "time_s": noise_s})
        from protection.taggants import TaggantsConfig, bench_rows

        tcfg = config_from_dict(TaggantsConfig, dict(cfg.taggants), "bench field 'taggants'")
        if "taggants" in cfg.methods and key("taggants_fpr", tcfg.eps, "digit", seed) not in done:
            bar.set_postfix_str(f"taggants seed={seed}")
            for row in bench_rows(x, y, xt, yt, clean_model("digit"), tcfg, seed, cfg.epochs, cfg.lr):
                if key(row["method"], row["eps"], row["labelling"], row["seed"]) not in done:
                    record(row)
    bar.close()
    plot(run_dir)
    mark_finished(run_dir)
    return run_dir


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """(method, eps, labelling) -> means over seeds of the row numbers, with n_seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["eps"], r["labelling"]), []).append(r)
    out: dict[str, Any] = {}
    for (m, e, lab), rs in sorted(groups.items()):
        entry: dict[str, Any] = {"method": m, "eps": e, "labelling": lab, "n_seeds": len(rs)}
        for col in ("linf", "pixel_frac", "clean_acc", "protected_acc", "p_value", "p_value_clean", "fpr",
                    "n_models", "time_s"):
            vals = [float(r[col]) for r in rs if r.get(col) not in (None, "")]
            if vals and col.startswith("p_value"):  # median over seeds, 3 significant digits (no rounding to 0)
                entry[col] = float(f"{np.median(vals):.3g}")
            elif vals:
                entry[col] = round(float(np.mean(vals)), 4)
                if col in ("clean_acc", "protected_acc"):
                    entry[col + "_std"] = round(float(np.std(vals)), 4)
        if m == "taggants":
            alpha = float(rs[0]["alpha"])
            entry["power"] = round(float(np.mean([float(r["p_value"]) <= alpha for r in rs])), 4)
            entry["false_positives_on_clean"] = round(float(np.mean([float(r["p_value_clean"]) <= alpha
                                                                      for r in rs])), 4)
        out[f"{m}|{e}|{lab}"] = entry
    return out


def plot(run_dir: str | Path) -> list[str]:
    """summary.json and figures/ regenerated from results.csv; returns the figure paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_rows(run_dir / "results.csv")
    if not rows:
        raise AfcuError(f"{run_dir / 'results.csv'}: missing or empty; run `afcu protect bench --track images` first")
    summary = summarize(rows)
    (run_dir / "figures").mkdir(exist_ok=True)
    figs = []
    ue = [s for s in summary.values() if s["method"] in UE_METHODS]
    labs = sorted({s["labelling"] for s in ue}, key=lambda v: LABELLINGS.index(v) if v in LABELLINGS else 9)
    if ue:
        fig, axes = plt.subplots(1, max(len(labs), 1), figsize=(5 * max(len(labs), 1), 4), squeeze=False)
        for ax, lab in zip(axes[0], labs):
            cells = [s for s in ue if s["labelling"] == lab]
            names = [f"{s['method']}\neps={float(s['eps']) * 255:.0f}/255" for s in cells]
            pos = np.arange(len(cells))
            ax.bar(pos - 0.2, [s["clean_acc"] for s in cells], 0.4, label="clean data")
            ax.bar(pos + 0.2, [s["protected_acc"] for s in cells], 0.4, label="protected data")
            ax.set_xticks(pos, names, fontsize=7, rotation=45, ha="right")
            ax.set_ylim(0, 1)
            ax.set_title(f"attacker labels: {lab}")
            ax.set_ylabel("clean test accuracy (mean over seeds)")
        axes[0][0].legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        path = run_dir / "figures" / "accuracy.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        figs.append(str(path))
    tag = [r for r in rows if r["method"] == "taggants"]
    if tag:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter(["clean model"] * len(tag), [max(float(r["p_value_clean"]), 1e-12) for r in tag])
        ax.scatter(["signed-data model"] * len(tag), [max(float(r["p_value"]), 1e-12) for r in tag])
        alpha = float(tag[0]["alpha"])
        ax.axhline(alpha, ls="--", c="grey", label=f"alpha = {alpha:g}")
        ax.set_yscale("log")
        ax.set_ylabel("ownership p-value (exact binomial top-k test)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = run_dir / "figures" / "taggants.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        figs.append(str(path))
    atomic_write_json(run_dir / "summary.json", {"summary": summary, "n_rows": len(rows), "figures": figs})
    atomic_write_text(run_dir / "table.md", markdown_table(summary))
    return figs


def markdown_table(summary: dict[str, Any]) -> str:
    """The README table: one line per (method, eps, labelling), means (std) over seeds."""
    lines = ["| method | eps | attacker labels | clean-data acc | protected-data acc | L-inf | pixels changed "
             "| p-value (median) | n seeds |", "|---|---|---|---|---|---|---|---|---|"]
    for s in summary.values():
        if s["method"] == "taggants_fpr":
            continue
        eps = f"{float(s['eps']) * 255:.0f}/255" if s["eps"] not in ("", "0") else "0"
        p = s.get("p_value", "")
        lines.append(f"| {s['method']} | {eps} | {s['labelling']} | {s['clean_acc']:.3f} ({s['clean_acc_std']:.3f}) "
                     f"| {s['protected_acc']:.3f} ({s['protected_acc_std']:.3f}) | {s.get('linf', 0):.3f} "
                     f"| {s.get('pixel_frac', 0):.3f} | {p if p != '' else ''} | {s['n_seeds']} |")
    tag = [s for s in summary.values() if s["method"] == "taggants"]
    fpr = [s for s in summary.values() if s["method"] == "taggants_fpr"]
    if tag and fpr:
        lines += ["", f"Taggants: detection power (signed-data models with p <= alpha) {tag[0]['power']:.2f} over "
                  f"{tag[0]['n_seeds']} seed(s); false positives of the seed's clean model "
                  f"{tag[0]['false_positives_on_clean']:.2f}; empirical FPR over {int(fpr[0]['n_models'])} clean "
                  f"models with fresh keys {fpr[0]['fpr']:.3f} (mean over {fpr[0]['n_seeds']} seed(s))."]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bench's options on ``afcu protect bench`` (``--track`` is the dispatcher's)."""
    build_parser(ImagesBenchConfig, parser)


def run(args: argparse.Namespace) -> int:
    data = load_yaml(args.config) if getattr(args, "config", None) else {}
    source = str(args.config) if getattr(args, "config", None) else "command line"
    import yaml

    names = {f.name for f in dataclasses.fields(ImagesBenchConfig)}
    for k, v in vars(args).items():
        if k in names:
            # mapping fields (--em, --taggants, ...) accept inline YAML: --em "{rounds: 5}"
            data[k] = yaml.safe_load(v) if isinstance(v, str) and v.lstrip().startswith("{") else v
    cfg = resolve(data, source)
    run_dir = main(cfg)
    print(f"run folder: {run_dir}")
    return 0
