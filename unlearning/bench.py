"""The corrective-unlearning benchmark: manipulations x flagged fractions x methods x seeds.

Protocol (Goel et al. 2024, "Corrective Machine Unlearning", sec. 3-4): train on
D with a manipulated subset S_m; flag a uniform fraction S_f of S_m; each method
repairs a copy of the model given S_f and the retain set D \\ S_f (unflagged
manipulated samples stay in it); measure Acc_corr and Acc_retain.  The
``original`` and ``oracle`` (trained on D \\ S_m) rows are references.

Hyper-parameter rule: every method runs with the fixed defaults of its own
config dataclass (``method`` for the shared options, ``method_args.<name>`` for
its own) plus the track's defaults below, chosen before any result was seen;
where a method has a grid, ``selection.py`` picks a candidate without using
unflagged S_m or test results.

Axes: manipulation x |S_m| (``sizes``) x flagged fraction x method x seed.
Output in the run folder: results.csv (one row per cell; resumed by skipping
finished cells), summary.json, table.md, figures/<manipulation>_n<|S_m|>.png.
Under ``accelerate launch`` / ``torchrun`` see ``distributed.py``.
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
from unlearning import distributed
from unlearning.flagging import SINGLE, flag, forget_retain
from unlearning.methods import METHODS, MethodConfig, run_method
from unlearning.methods.base import config_fields as method_fields, make_config
from unlearning.metrics import (markdown_table, membership_summary, membership_table, read_results, read_rows,
                                rows_to_csv, summarize, summary_table)
from unlearning.selection import candidates, grid_config, grid_fields, select_and_run


def all_methods() -> list[str]:
    """Every registered method (the bench's default list), in registry order."""
    return METHODS.names()


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run (``afcu unlearn bench``)."""

    track: str = field(default="vision", metadata={"help": "vision, llm or organism"})
    organism: str = field(default="", metadata={
        "help": "organism track: the `afcu train ei` run folder to unlearn (its kept compliant completions are S_m)"})
    out: str = field(default="", metadata={
        "help": "run folder (default runs/unlearn-<track>[-quick]; with --verify membership "
                "runs/unlearn-llm-membership[-quick])"})
    quick: bool = field(default=False, metadata={"help": "1 seed, fewer fractions (a smoke run in minutes)"})
    dataset: str = field(default="digits", metadata={"help": "vision: digits (CPU) or cifar10 (local folder)"})
    data_dir: str = field(default="", metadata={"help": "cifar10: folder with the python-version batches"})
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "llm: registry name or model folder"})
    device: str = field(default="auto", metadata={"help": "auto, cpu or cuda"})
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "seeds (data split, S_m, S_f, init)"})
    fractions: list[str] = field(default_factory=lambda: [SINGLE, "0.1", "0.25", "0.5", "0.75", "1.0"],
                                 metadata={"help": "flagged fractions of S_m ('single' = one sample)"})
    methods: list[str] = field(default_factory=all_methods, metadata={"help": "methods to run (default: all registered)"})
    manipulations: list[str] = field(default_factory=lambda: ["badnets", "interclass_confusion"],
                                     metadata={"help": "manipulations to run"})
    manipulation: dict = field(default_factory=dict, metadata={"help": "ManipulationConfig overrides (YAML)"})
    sizes: dict = field(default_factory=dict, metadata={
        "help": "manipulation -> list of |S_m| sizes swept (default: manipulation.n_manipulated) (YAML)"})
    train: dict = field(default_factory=dict, metadata={"help": "task recipe overrides, e.g. epochs, lr (YAML)"})
    method: dict = field(default_factory=dict, metadata={"help": "options shared by all methods (MethodConfig) (YAML)"})
    method_args: dict = field(default_factory=dict, metadata={
        "help": "method -> its own config fields, e.g. {npo: {beta: 0.2}} (YAML)"})
    llm: dict = field(default_factory=dict, metadata={"help": "llm track data/eval overrides (YAML)"})
    verify: str = field(default="none", metadata={
        "help": "none, or membership (llm track): LexiMark-watermark S_m, report membership AUROC of S_f and "
                "of the unflagged S_m after each method (unlearning/llm_verify.py)"})
    membership: dict = field(default_factory=dict, metadata={
        "help": "--verify membership options: protection/unlearn_verify.MembershipConfig fields (YAML)"})
    grids: dict = field(default_factory=dict, metadata={
        "help": "method -> {config field: [candidates]} chosen by the selection rule (YAML)"})
    tolerance: float = field(default=0.02, metadata={
        "help": "selection: allowed drop of clean validation accuracy below the original model's"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished run in --out"})


# Track defaults sit under --quick, the YAML file and the flags.
# SSD's grid in the spirit of Foster et al. (2024), who search alpha in [0.1, 100] and lambda in
# [0.1, 5]: log-spaced alpha, and for each alpha a lambda below (alpha/10), equal to and above
# (10 alpha) it.  9 candidates share one importance computation (selection.py).
SSD_GRID = {"alpha,lam": [[a, a * r] for a in (1.0, 10.0, 100.0) for r in (0.1, 1.0, 10.0)]}
GRADIENT_METHODS = ("gradient_ascent", "grad_diff", "npo", "scrub", "bad_teacher")
TRACK_DEFAULTS: dict[str, dict[str, Any]] = {
    "vision": {"method": {"lr": 1e-3, "epochs": 5, "forget_epochs": 5},
               "sizes": {"badnets": [22, 38, 76], "interclass_confusion": [20, 52, 104]},
               "grids": {"ssd": SSD_GRID, "lfssd": SSD_GRID,
                         **{m: {"lr": [1e-4, 3e-4, 1e-3]} for m in GRADIENT_METHODS}}},
    "llm": {"manipulations": ["trigger_backdoor"], "fractions": [SINGLE, "0.25", "0.5", "1.0"],
            "manipulation": {"n_manipulated": 20},
            "method": {"lr": 5e-5, "batch_size": 8, "epochs": 1, "forget_epochs": 3},
            "method_args": {m: {"importance_batch_size": 8} for m in ("ssd", "lfssd", "assd")}
            | {"cf_k": {"k": 2}, "eu_k": {"k": 2}, "scrub": {"temperature": 1.0},
               "bad_teacher": {"temperature": 1.0}},
            # small lr x steps grids for the gradient methods, under the same selection rule
            "grids": {"ssd": SSD_GRID, "lfssd": SSD_GRID,
                      **{m: {"lr": [2e-5, 1e-4], "forget_epochs": [2, 5]} for m in GRADIENT_METHODS}}},
    # organism (organism_track.py): D = the pairs an EI run fine-tuned on (~10^3-token prompts: small batches)
    "organism": {"seeds": [0], "manipulations": [], "fractions": ["0.25", "0.5", "0.75"],
                 "method": {"lr": 5e-5, "batch_size": 2, "epochs": 1, "forget_epochs": 3},
                 "method_args": {m: {"importance_batch_size": 2} for m in ("ssd", "lfssd", "assd")}
                 | {"cf_k": {"k": 2}, "eu_k": {"k": 2}, "scrub": {"temperature": 1.0},
                    "bad_teacher": {"temperature": 1.0}},
                 "grids": {"ssd": SSD_GRID, "lfssd": SSD_GRID,
                           **{m: {"lr": [2e-5, 1e-4], "forget_epochs": [2, 5]} for m in GRADIENT_METHODS}}},
}
QUICK: dict[str, dict[str, Any]] = {
    "vision": {"seeds": [0], "fractions": ["0.1", "0.5", "1.0"]},
    # organism --quick: f = 0.5, retrain plus the cheap methods (each model is evaluated in both tiers)
    "organism": {"fractions": ["0.5"], "methods": ["retrain", "ssd", "gradient_ascent", "npo"],
                 "grids": {"ssd": SSD_GRID, **{m: {"lr": [2e-5, 1e-4]} for m in GRADIENT_METHODS}}},
    # llm --quick: one seed, f = 0.5, the methods that fit 20 minutes on a shared 2-core CPU
    # (retrain/oracle/eu_k re-fine-tune the whole model and are left to the full run)
    "llm": {"seeds": [0], "fractions": ["0.5"], "methods": ["ssd", "assd", "gradient_ascent", "npo"],
            "grids": {"ssd": SSD_GRID, **{m: {"lr": [2e-5, 1e-4]} for m in GRADIENT_METHODS}}},
}


def resolve(data: dict[str, Any], source: str) -> BenchConfig:
    """Layer track defaults, then --quick, under ``data`` (YAML + flags); unknown keys raise AfcuError."""
    track = data.get("track", "vision")
    if track not in TRACK_DEFAULTS:
        raise AfcuError(f"{source}: field 'track': {track!r} is not vision, llm or organism")
    merged: dict[str, Any] = dict(TRACK_DEFAULTS[track])
    if data.get("quick"):
        merged.update(QUICK[track])
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if merged.get("verify", "none") != "none" and track == "llm":  # room for the passages (llm_verify.py)
        from unlearning.llm_verify import VERIFY_MAX_LEN

        merged["train"] = {"max_len": VERIFY_MAX_LEN, **dict(merged.get("train") or {})}
    if not merged.get("out"):
        merged["out"] = (f"runs/unlearn-{track}" + ("-membership" if merged.get("verify", "none") != "none" else "")
                         + ("-quick" if merged.get("quick") else ""))
    cfg = config_from_dict(BenchConfig, merged, source)
    for m in cfg.methods:
        METHODS.get(m)
    config_from_dict(MethodConfig, dict(cfg.method), f"{source}: field 'method'")
    for m, args in cfg.method_args.items():
        if m not in METHODS:
            raise AfcuError(f"{source}: field 'method_args': unknown method {m!r}; known: {', '.join(METHODS.names())}")
        make_config(m, cfg.method, dict(args or {}), source)  # the method's dataclass: unknown keys fail
    for m, grid in cfg.grids.items():
        bad = sorted(set(grid_fields(grid or {})) - method_fields(METHODS.config_class(m))) if m in METHODS else []
        if m not in METHODS or bad:
            raise AfcuError(f"{source}: field 'grids': {m!r} {'fields ' + ', '.join(bad) if bad else ''} "
                            "unknown; give a method name mapping its config fields to lists")
        base = make_config(m, cfg.method, dict(cfg.method_args.get(m) or {}), source)
        for cand in candidates(grid or {}):  # each value read as its field's type now, not inside the run
            grid_config(base, cand, f"{source}: field 'grids.{m}'")
    for manip, sizes in cfg.sizes.items():
        if not isinstance(sizes, list) or not all(isinstance(n, int) and n > 0 for n in sizes):
            raise AfcuError(f"{source}: field 'sizes': {manip!r} must map to a list of positive integers")
    validate(cfg, source)
    return cfg


def validate(cfg: BenchConfig, source: str = "command line") -> None:
    """Every value checked before the run folder is written or any model trained (afcu issue 12):
    seeds, fractions, duplicates, manipulation/track pairs, the model and data folders."""
    from afcu.models import REGISTRY, resolve_local
    from afcu.userfiles import check_folder
    from unlearning.llm_track import TEXT_MANIPULATIONS
    from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
    from unlearning.vision_track import IMAGE_MANIPULATIONS

    def once(name: str, values: list[Any]) -> None:
        dup = sorted({str(v) for v in values if values.count(v) > 1})
        if dup:
            raise AfcuError(f"{source}: field '{name}': {', '.join(dup)} given twice; list each once")

    if cfg.organism and cfg.track != "organism":  # else --organism would be silently ignored
        raise AfcuError(f"{source}: field 'organism': only with --track organism; drop --organism")
    if not cfg.seeds or any(s < 0 for s in cfg.seeds):
        raise AfcuError(f"{source}: field 'seeds': {cfg.seeds} must be integers >= 0 (e.g. --seeds 0 1 2)")
    once("seeds", list(cfg.seeds))
    validate_verify(cfg, source)
    if not cfg.fractions:
        raise AfcuError(f"{source}: field 'fractions': give at least one (e.g. --fractions single 0.5 1.0)")
    for f in cfg.fractions:
        try:
            ok = f == SINGLE or 0.0 < float(f) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise AfcuError(f"{source}: field 'fractions': {f!r} is not '{SINGLE}' or a number in (0, 1]; "
                            "a flagged fraction of S_m, e.g. --fractions single 0.25 1.0")
    once("fractions", [f if f == SINGLE else float(f) for f in cfg.fractions])
    once("methods", list(cfg.methods))
    once("manipulations", list(cfg.manipulations))
    fits = {"vision": IMAGE_MANIPULATIONS, "llm": TEXT_MANIPULATIONS}.get(cfg.track, ())
    for m in cfg.manipulations if cfg.track != "organism" else ():  # organism_track.validate refuses any
        if m not in MANIPULATIONS:
            raise AfcuError(f"{source}: field 'manipulations': unknown manipulation {m!r}; "
                            f"known: {', '.join(MANIPULATIONS.names())}")
        if m not in fits:
            other = "llm" if cfg.track == "vision" else "vision"
            raise AfcuError(f"{source}: field 'manipulations': {m!r} does not fit --track {cfg.track} "
                            f"(it takes {', '.join(fits)}); use --track {other} for it")
    mcfg = config_from_dict(ManipulationConfig, dict(cfg.manipulation), f"{source}: field 'manipulation'")
    if mcfg.n_manipulated < 1:
        raise AfcuError(f"{source}: field 'manipulation': n_manipulated {mcfg.n_manipulated} must be at least 1")
    if "sdf_implant" in cfg.manipulations:
        check_folder(mcfg.docs_path, "synthetic-documents dataset", "manipulation.docs_path")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise AfcuError(f"{source}: field 'device': {cfg.device!r} is not auto, cpu or cuda")
    if cfg.tolerance < 0:
        raise AfcuError(f"{source}: field 'tolerance': {cfg.tolerance} must be >= 0")
    if cfg.track == "vision" and cfg.dataset not in ("digits", "cifar10"):
        raise AfcuError(f"{source}: field 'dataset': {cfg.dataset!r} is not digits or cifar10")
    if cfg.track == "vision" and cfg.dataset == "cifar10":
        from unlearning.cifar import find_folder

        find_folder(cfg.data_dir)
    if cfg.track == "llm" and cfg.model not in REGISTRY and resolve_local(cfg.model) is None:
        raise AfcuError(f"{source}: field 'model': {cfg.model!r} is neither a registry name "
                        f"({', '.join(REGISTRY)}) nor a model folder")
    # the track's own dataclasses, as the track builds them after the run folder exists
    if cfg.track == "llm":
        from unlearning.llm import LLMTask
        from unlearning.llm_track import LLMData

        config_from_dict(LLMTask, {"device": "cpu", "model_dir": cfg.model, **cfg.train}, f"{source}: field 'train'")
        config_from_dict(LLMData, dict(cfg.llm), f"{source}: field 'llm'")
    elif cfg.track == "organism":
        from unlearning.organism_track import validate as validate_organism

        validate_organism(cfg, source)  # the EI run folder, S_m, options and fractions
    else:
        from unlearning.vision import VisionTask

        config_from_dict(VisionTask, {"device": "cpu", **cfg.train}, f"{source}: field 'train'")


def validate_verify(cfg: BenchConfig, source: str = "command line") -> None:
    """``verify``: none, or membership on the llm track with manipulations that carry documents."""
    if cfg.verify not in ("none", "membership"):
        raise AfcuError(f"{source}: field 'verify': {cfg.verify!r} is not none or membership")
    if cfg.verify == "none":
        if cfg.membership:
            raise AfcuError(f"{source}: field 'membership' is set but 'verify' is none; add --verify membership")
        return
    if cfg.track != "llm":
        raise AfcuError(f"{source}: field 'verify': membership verification needs --track llm (its documents are "
                        f"text to watermark); --track {cfg.track} has none, drop --verify")
    from protection.leximark import LexiMarkConfig
    from protection.unlearn_verify import MembershipConfig
    from unlearning.llm_track import LLMData
    from unlearning.llm_verify import VERIFIABLE

    mcfg = config_from_dict(MembershipConfig, dict(cfg.membership), f"{source}: field 'membership'")
    config_from_dict(LexiMarkConfig, dict(mcfg.leximark), f"{source}: field 'membership.leximark'")
    bad = [m for m in cfg.manipulations if m not in VERIFIABLE]
    if bad:
        raise AfcuError(f"{source}: field 'manipulations': --verify membership needs documents to watermark; "
                        f"{', '.join(bad)} has none (use {' or '.join(VERIFIABLE)})")
    n_test = config_from_dict(LLMData, dict(cfg.llm), f"{source}: field 'llm'").n_test
    if "trigger_backdoor" in cfg.manipulations and mcfg.n_reference > n_test:
        raise AfcuError(f"{source}: field 'membership': n_reference {mcfg.n_reference} exceeds llm.n_test {n_test} "
                        "(the reference records use held-out prompts); lower it or raise llm.n_test")


def make_track(cfg: BenchConfig) -> Any:
    """The vision or llm track (the organism track runs its own sweep: ``organism_track.main``)."""
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
        row.update(time_s=cost.seconds, passes=cost.passes, forward=cost.forward, backward=cost.backward,
                   **{k: v for k, v in cost.info.items() if k in ("n_dampened", "frac_dampened")})
    return row


def _key(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    """A cell's resume key, on the group's configured size (``size``): a manipulation may give a smaller
    S_m (em_class caps it at the class, taggants use a budget), and ``run_group`` checks the key before
    it manipulates.  Rows written before the column existed fall back on ``n_manipulated``."""
    size = row.get("size") if row.get("size") not in (None, "") else row["n_manipulated"]
    return (row["method"], row["manipulation"], str(size), row["fraction"], str(row["seed"]))


def sizes_of(cfg: BenchConfig, manip: str) -> list[int]:
    """The |S_m| sizes swept for ``manip`` (``sizes``, else ``manipulation.n_manipulated``)."""
    if manip in cfg.sizes:
        return [int(n) for n in cfg.sizes[manip]]
    return [int(cfg.manipulation.get("n_manipulated", 150))]


def groups(cfg: BenchConfig) -> list[tuple[int, str, int]]:
    """(seed, manipulation, |S_m|): the cells of one group share one original model."""
    return [(seed, manip, size) for seed in cfg.seeds for manip in cfg.manipulations for size in sizes_of(cfg, manip)]


def evaluate(cfg: BenchConfig, track: Any, model: Any, md: Any, manip: str, flagged: np.ndarray) -> dict[str, Any]:
    """The track's metrics of one row; under --verify the row's flagged ids go in too (membership of S_f)."""
    if cfg.verify == "none":
        return track.evaluate(model, md, manip)
    return track.evaluate(model, md, manip, flagged=flagged)


def run_group(cfg: BenchConfig, track: Any, run_dir: Path, group: tuple[int, str, int],
              done: set, record: Any) -> None:
    """Every missing cell of one (seed, manipulation, size) group; ``record(row)`` is called per cell."""
    seed, manip, size = group
    methods = [m for m in cfg.methods if m != "oracle"]
    todo = [(m, f) for f in cfg.fractions for m in methods if (m, manip, str(size), f, str(seed)) not in done]
    need_ref = [m for m in ("original", "oracle") if (m, manip, str(size), "", str(seed)) not in done
                and (m == "original" or "oracle" in cfg.methods)]
    if not todo and not need_ref:
        return
    common = config_from_dict(MethodConfig, {**cfg.method, "seed": seed}, "bench field 'method'")
    md = track.manipulate(manip, seed, size)
    n_m = len(md.manipulated_ids)
    model = track.original(md, manip, seed, run_dir)
    if "original" in need_ref:
        none = np.array([], dtype=np.int64)
        record({**_row("original", manip, "", 0, n_m, seed, evaluate(cfg, track, model, md, manip, none), None),
                "size": size})
    if "oracle" in need_ref:
        s_m, clean = forget_retain(md.train, md.manipulated_ids)
        new, cost = run_method("oracle", model, s_m, clean, make_config("oracle", common))
        metrics = evaluate(cfg, track, new, md, manip, md.manipulated_ids)  # the oracle forgot all of S_m
        record({**_row("oracle", manip, "", n_m, n_m, seed, metrics, cost), "size": size})
    for method, fraction in todo:
        flagged = flag(md.manipulated_ids, fraction, seed)
        forget, retain = forget_retain(md.train, flagged)
        if np.isin(retain.ids, forget.ids).any():  # the protocol's invariant, checked every cell
            raise RuntimeError("retain set contains flagged samples")
        mcfg = make_config(method, common, dict(cfg.method_args.get(method, {})), "bench")
        grid = {k: list(v) for k, v in dict(cfg.grids.get(method, {})).items()}
        new, cost, chosen = select_and_run(method, model, forget, retain, mcfg, grid, track.accuracy,
                                           md.tests["val"], cfg.tolerance)
        row = {**_row(method, manip, fraction, len(flagged), n_m, seed, evaluate(cfg, track, new, md, manip, flagged),
                      cost), "size": size}
        row["chosen"] = ";".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items())
        record(row)


def main(cfg: BenchConfig) -> Path:
    """Run (or resume) the sweep into ``cfg.out``; returns the run folder.

    Under several processes the groups are split across ranks and rank 0 alone writes
    (``distributed.py``); every rank returns the run folder.
    """
    if cfg.track == "organism":  # per-tier compliance rows, not the Acc_corr cells below
        from unlearning import organism_track

        return organism_track.main(cfg)
    if cfg.track == "vision" and cfg.dataset == "cifar10":
        from unlearning.cifar import find_folder

        find_folder(cfg.data_dir)  # fail before creating the run folder
    device = distributed.setup(cfg.device)
    rank, world = distributed.world()
    if rank == 0:
        run_dir = prepare_run(cfg.out, cfg, overwrite=cfg.overwrite)
    distributed.barrier()
    run_dir = Path(cfg.out)
    results = run_dir / "results.csv"
    rows = distributed.broadcast(read_rows(results) if rank == 0 else None)
    done = {_key(r) for r in rows}
    track = make_track(dataclasses.replace(cfg, device=device))
    todo_groups = groups(cfg)
    per_group = len(cfg.fractions) * len([m for m in cfg.methods if m != "oracle"]) + 2
    bar = tqdm(total=len(todo_groups) * per_group, desc=f"unlearn bench (rank {rank}/{world})", unit="cell",
               initial=len(done), disable=rank != 0 and world > 1)

    def write(new_rows: list[dict[str, Any]]) -> None:
        rows.extend(new_rows)
        done.update(_key(r) for r in new_rows)
        atomic_write_text(results, rows_to_csv(rows))

    for start in range(0, len(todo_groups), world):
        mine: list[dict[str, Any]] = []

        def record(row: dict[str, Any]) -> None:
            bar.update(1)
            if world == 1:
                write([row])  # one process: each cell is on disk as soon as it is done
            else:
                mine.append(row)

        if start + rank < len(todo_groups):
            g = todo_groups[start + rank]
            bar.set_postfix_str(f"{g[1]} n={g[2]} seed={g[0]}")
            run_group(cfg, track, run_dir, g, done, record)
        if world > 1:
            gathered = distributed.gather_rows(mine)
            if rank == 0 and gathered:
                write(gathered)
    bar.close()
    if rank == 0:
        finish(run_dir)
    distributed.barrier()
    return run_dir


def finish(run_dir: Path) -> dict[str, Any]:
    """Write summary.json, table.md and figures from results.csv; mark the run finished."""
    from unlearning.figures import plot_run

    if yaml_track(run_dir) == "organism":
        from unlearning.organism_report import finish as finish_organism

        return finish_organism(run_dir)
    rows = read_results(run_dir / "results.csv")  # checked: a damaged file is refused, not half-tabulated
    summary = {"summary": summarize(rows), "n_rows": len(rows)}
    atomic_write_json(run_dir / "summary.json", summary)
    table = "## Summary per setting (manipulation_n|S_m|) and method\n\n" + summary_table(summary["summary"])
    table += "\n## Acc_corr (mean±std over seeds)\n\n" + markdown_table(rows, "acc_corr")
    table += "\n## Acc_retain (mean±std over seeds)\n\n" + markdown_table(rows, "acc_retain")
    if any(r.get("asr") not in (None, "") for r in rows):
        table += "\n## Attack success rate (mean±std over seeds)\n\n" + markdown_table(rows, "asr")
    from unlearning.metrics import cost_ratio_table

    ratios = cost_ratio_table(rows)
    if ratios:  # per cell: the method's passes (selection included) / retrain's, same setting, f and seed
        table += "\n## Passes / retrain's (same setting, fraction and seed; mean and max over seeds)\n\n" + ratios
    if any(r.get("mia_n_reference") not in (None, "") for r in rows):  # --verify membership
        summary["membership"] = membership_summary(rows)
        table += ("\n## Membership AUROC against never-trained reference records (--verify membership; "
                  "0.5 = never seen)\n\n" + membership_table(rows))
    atomic_write_text(run_dir / "table.md", table)
    summary["figures"] = [str(p) for p in plot_run(run_dir)]
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary


def yaml_track(run_dir: Path) -> str:
    """The ``track`` of a run folder's config.yaml (vision when unreadable)."""
    import yaml

    try:
        return str((yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}).get("track", "vision"))
    except (OSError, yaml.YAMLError, AttributeError):
        return "vision"


def config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(BenchConfig)]


if __name__ == "__main__":  # accelerate launch ... -m unlearning.bench --track vision --quick
    import sys

    from unlearning.cli import bench_main

    sys.exit(bench_main(sys.argv[1:]))
