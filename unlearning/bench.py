"""The corrective-unlearning benchmark: manipulations x flagged fractions x methods x seeds.

Protocol (Goel et al. 2024, "Corrective Machine Unlearning", sec. 3-4): train on
D with a manipulated subset S_m; flag a uniform fraction S_f of S_m; each method
repairs a copy of the model given S_f and the retain set D \\ S_f (unflagged
manipulated samples stay in it); measure Acc_corr and Acc_retain.  The
``original`` and ``oracle`` (trained on D \\ S_m) rows are references.

Hyper-parameter rule: every method runs with the fixed defaults of
``MethodConfig`` plus the track's defaults below, chosen before any result was
seen; nothing is selected using unflagged S_m or test results.

Output in the run folder: results.csv (one row per cell; resumed by skipping
finished cells), summary.json, table.md, figures/<manipulation>.png.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from afcu.config import config_from_dict
from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text, mark_finished, prepare_run
from unlearning.flagging import SINGLE, flag, forget_retain
from unlearning.methods import METHODS, MethodConfig, run_method
from unlearning.metrics import markdown_table, read_rows, rows_to_csv, summarize
from unlearning.selection import select_and_run

ALL_METHODS = ["ssd", "lfssd", "assd", "retrain", "oracle", "cf_k", "eu_k", "gradient_ascent", "grad_diff",
               "npo", "scrub", "bad_teacher"]


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run (``afcu unlearn bench``)."""

    track: str = field(default="vision", metadata={"help": "vision or llm"})
    out: str = field(default="", metadata={"help": "run folder (default runs/unlearn-<track>[-quick])"})
    quick: bool = field(default=False, metadata={"help": "1 seed, fewer fractions (a smoke run in minutes)"})
    dataset: str = field(default="digits", metadata={"help": "vision: digits (CPU) or cifar10 (local folder)"})
    data_dir: str = field(default="", metadata={"help": "cifar10: folder with the python-version batches"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "llm: registry name or model folder"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds (data split, S_m, S_f, init)"})
    fractions: list[str] = field(default_factory=lambda: [SINGLE, "0.1", "0.25", "0.5", "0.75", "1.0"],
                                 metadata={"help": "flagged fractions of S_m ('single' = one sample)"})
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS), metadata={"help": "methods to run"})
    manipulations: list[str] = field(default_factory=lambda: ["badnets", "interclass_confusion"],
                                     metadata={"help": "manipulations to run"})
    manipulation: dict = field(default_factory=dict, metadata={"help": "ManipulationConfig overrides (YAML)"})
    train: dict = field(default_factory=dict, metadata={"help": "task recipe overrides, e.g. epochs, lr (YAML)"})
    method: dict = field(default_factory=dict, metadata={"help": "MethodConfig overrides (YAML)"})
    llm: dict = field(default_factory=dict, metadata={"help": "llm track data/eval overrides (YAML)"})
    grids: dict = field(default_factory=dict, metadata={
        "help": "method -> {MethodConfig field: [candidates]} chosen by the selection rule (YAML)"})
    tolerance: float = field(default=0.02, metadata={
        "help": "selection: allowed drop of clean validation accuracy below the original model's"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


# Track defaults sit under --quick, the YAML file and the flags.
TRACK_DEFAULTS: dict[str, dict[str, Any]] = {
    "vision": {"method": {"lr": 1e-3, "epochs": 5, "forget_epochs": 5},
               "grids": {"ssd": {"alpha": [1.0, 3.0, 10.0, 30.0]}, "lfssd": {"alpha": [1.0, 3.0, 10.0, 30.0]},
                         **{m: {"lr": [1e-4, 3e-4, 1e-3]}
                            for m in ("gradient_ascent", "grad_diff", "npo", "scrub", "bad_teacher")}}},
    "llm": {"manipulations": ["trigger_backdoor"], "fractions": [SINGLE, "0.25", "0.5", "1.0"],
            "manipulation": {"n_manipulated": 16},
            "method": {"lr": 5e-5, "batch_size": 8, "epochs": 1, "forget_epochs": 3, "importance_batch_size": 8,
                       "k": 2, "temperature": 1.0}},
}
QUICK: dict[str, dict[str, Any]] = {
    "vision": {"seeds": [0], "fractions": ["0.1", "0.5", "1.0"]},
    "llm": {"seeds": [0], "fractions": ["0.5"]},
}


def resolve(data: dict[str, Any], source: str) -> BenchConfig:
    """Layer track defaults, then --quick, under ``data`` (YAML + flags); unknown keys raise AfcuError."""
    track = data.get("track", "vision")
    if track not in TRACK_DEFAULTS:
        raise AfcuError(f"{source}: field 'track': {track!r} is not vision or llm")
    merged: dict[str, Any] = dict(TRACK_DEFAULTS[track])
    if data.get("quick"):
        merged.update(QUICK[track])
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if not merged.get("out"):
        merged["out"] = f"runs/unlearn-{track}" + ("-quick" if merged.get("quick") else "")
    cfg = config_from_dict(BenchConfig, merged, source)
    for m in cfg.methods:
        METHODS.get(m)
    config_from_dict(MethodConfig, dict(cfg.method), f"{source}: field 'method'")
    fields = {f.name for f in dataclasses.fields(MethodConfig)}
    for m, grid in cfg.grids.items():
        bad = sorted(set(grid or {}) - fields)
        if m not in METHODS or bad:
            raise AfcuError(f"{source}: field 'grids': {m!r} {'fields ' + ', '.join(bad) if bad else ''} "
                            "unknown; give a method name mapping MethodConfig fields to lists")
    return cfg


def make_track(cfg: BenchConfig) -> Any:
    if cfg.track == "vision":
        from unlearning.vision_track import VisionTrack

        return VisionTrack(cfg)
    from unlearning.llm_track import LLMTrack

    return LLMTrack(cfg)


def _row(method: str, manip: str, fraction: str, n_flagged: int, n_manip: int, seed: int,
         metrics: dict[str, Any], cost: Any | None) -> dict[str, Any]:
    row = {"method": method, "manipulation": manip, "fraction": fraction, "n_flagged": n_flagged,
           "n_manipulated": n_manip, "seed": seed, **metrics}
    if cost is not None:
        row.update(time_s=cost.seconds, passes=cost.passes, forward=cost.forward, backward=cost.backward)
    return row


def main(cfg: BenchConfig) -> Path:
    """Run (or resume) the sweep into ``cfg.out``; returns the run folder."""
    if cfg.track == "vision" and cfg.dataset == "cifar10":
        from unlearning.cifar import find_folder

        find_folder(cfg.data_dir)  # fail before creating the run folder
    run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    results = run_dir / "results.csv"
    rows = read_rows(results)
    done = {(r["method"], r["manipulation"], r["fraction"], str(r["seed"])) for r in rows}
    track = make_track(cfg)
    methods = [m for m in cfg.methods if m != "oracle"]
    n_cells = len(cfg.seeds) * len(cfg.manipulations) * (len(cfg.fractions) * len(methods) + 2)
    bar = tqdm(total=n_cells, desc="unlearn bench", unit="cell", initial=len(done))

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        done.add((row["method"], row["manipulation"], row["fraction"], str(row["seed"])))
        atomic_write_text(results, rows_to_csv(rows))
        bar.update(1)

    for seed in cfg.seeds:
        mcfg = config_from_dict(MethodConfig, {**cfg.method, "seed": seed}, "bench field 'method'")
        for manip in cfg.manipulations:
            todo = [(m, f) for f in cfg.fractions for m in methods if (m, manip, f, str(seed)) not in done]
            need_ref = [m for m in ("original", "oracle") if (m, manip, "", str(seed)) not in done
                        and (m == "original" or "oracle" in cfg.methods)]
            if not todo and not need_ref:
                continue
            md = track.manipulate(manip, seed)
            n_m = len(md.manipulated_ids)
            model = track.original(md, manip, seed, run_dir)
            if "original" in need_ref:
                record(_row("original", manip, "", 0, n_m, seed, track.evaluate(model, md, manip), None))
            if "oracle" in need_ref:
                s_m, clean = forget_retain(md.train, md.manipulated_ids)
                new, cost = run_method("oracle", model, s_m, clean, mcfg)
                record(_row("oracle", manip, "", n_m, n_m, seed, track.evaluate(new, md, manip), cost))
            for method, fraction in todo:
                flagged = flag(md.manipulated_ids, fraction, seed)
                forget, retain = forget_retain(md.train, flagged)
                if np.isin(retain.ids, forget.ids).any():  # the protocol's invariant, checked every cell
                    raise RuntimeError("retain set contains flagged samples")
                bar.set_postfix_str(f"{manip} f={fraction} {method} seed={seed}")
                grid = {k: list(v) for k, v in dict(cfg.grids.get(method, {})).items()}
                new, cost, chosen = select_and_run(method, model, forget, retain, mcfg, grid, track.accuracy,
                                                   md.tests["val"], cfg.tolerance)
                row = _row(method, manip, fraction, len(flagged), n_m, seed, track.evaluate(new, md, manip), cost)
                row["chosen"] = ";".join(f"{k}={v}" for k, v in chosen.items())
                record(row)
    bar.close()
    finish(run_dir)
    return run_dir


def finish(run_dir: Path) -> dict[str, Any]:
    """Write summary.json, table.md and figures from results.csv; mark the run finished."""
    from unlearning.figures import plot_run

    rows = read_rows(run_dir / "results.csv")
    summary = {"summary": summarize(rows), "n_rows": len(rows)}
    atomic_write_json(run_dir / "summary.json", summary)
    table = "## Acc_corr (mean±std over seeds)\n\n" + markdown_table(rows, "acc_corr")
    table += "\n## Acc_retain (mean±std over seeds)\n\n" + markdown_table(rows, "acc_retain")
    if any(r.get("asr") not in (None, "") for r in rows):
        table += "\n## Attack success rate (mean±std over seeds)\n\n" + markdown_table(rows, "asr")
    atomic_write_text(run_dir / "table.md", table)
    summary["figures"] = [str(p) for p in plot_run(run_dir)]
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(BenchConfig)]
