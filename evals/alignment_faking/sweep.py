"""``afcu sweep``: the eval over variants x companies x settings, one table and one figure of the gap.

Each cell is an ordinary ``afcu eval`` run folder under ``<out>/cells/`` (so each can be
reported, resumed or rescored on its own); the sweep folder holds ``summary.json`` (one row
per cell), ``table.md``, ``table.csv`` and ``figures/gap_by_variant.png``, in the style of
Greenblatt et al. (2024, fig. 9: the compliance gap per prompt variation with intervals).

Multiple comparisons: every cell's gap is tested (exact McNemar); the p-values are Holm-
adjusted (Holm 1979, statsmodels ``multipletests``) across all cells of the sweep, so "a
variant changes the gap" is read at the sweep's family-wise error rate.  A cell whose gap
has no pairs has no p-value and is left out of the family (said in its row).

The options a cell shares with ``afcu eval`` are ``EvalConfig``'s own fields (one definition):
``SweepConfig`` is built from them, minus the three swept ones and the run folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import re
import typing
from pathlib import Path
from typing import Any

from afcu.config import build_parser, config_from_args
from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text, is_finished, mark_finished, prepare_run
from evals.alignment_faking.run import EvalConfig

SWEPT = ("variant", "company", "setting")
_OWN = [
    ("variants", str, dataclasses.field(default="default", metadata={"help": "prompt variants, comma-separated"})),
    ("companies", str, dataclasses.field(default="Anthropic", metadata={"help": "developer names, comma-separated"})),
    ("settings", str, dataclasses.field(default="helpful_only", metadata={"help": "settings, comma-separated"})),
    ("out", str | None, dataclasses.field(default=None, metadata={"help": "sweep folder (default runs/sweep-<model>)"})),
]
_SHARED = [f for f in dataclasses.fields(EvalConfig) if f.name not in SWEPT + ("out",)]
_HINTS = typing.get_type_hints(EvalConfig)
SweepConfig = dataclasses.make_dataclass(
    "SweepConfig",
    [*_OWN, *[(f.name, _HINTS[f.name], dataclasses.field(default=f.default, metadata=f.metadata)) for f in _SHARED]],
    frozen=True)
SweepConfig.__module__ = __name__
SweepConfig.__doc__ = "Sweep axes and output folder, then every option a cell shares with `afcu eval` (EvalConfig)."


def _items(text: str, what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items or len(set(items)) != len(items):
        raise AfcuError(f"--{what} {text!r}: give distinct names, comma-separated")
    return items


def cells(cfg: Any) -> tuple[list[dict[str, str]], list[str]]:
    """Every (setting, company, variant) where the variant applies to the setting (variants.yaml
    ``settings:``), checked before anything runs; and the skipped combinations, said in the summary."""
    from prompts.render import settings, variant_info

    out, skipped = [], []
    for s in _items(cfg.settings, "settings"):
        if s not in settings():
            raise AfcuError(f"--settings: {s!r} is unknown; choose from {', '.join(settings())}")
        for c in _items(cfg.companies, "companies"):
            for v in _items(cfg.variants, "variants"):
                applies = variant_info(v)["settings"]
                if applies is not None and s not in applies:
                    skipped.append(f"{s}/{v} (the variant applies to {', '.join(applies)} only)")
                    continue
                out.append({"setting": s, "company": c, "variant": v})
    if not out:
        raise AfcuError(f"--variants/--settings: no variant applies to any setting given ({'; '.join(skipped)})")
    return out, sorted(set(skipped))


def cell_config(cfg: Any, cell: dict[str, str], root: Path) -> EvalConfig:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{cell['setting']}-{cell['company']}-{cell['variant']}")
    shared = {f.name: getattr(cfg, f.name) for f in _SHARED}
    return EvalConfig(**shared, **cell, out=str(root / "cells" / name))


def _row(cell: dict[str, str], s: dict[str, Any], folder: str) -> dict[str, Any]:
    g, tiers = s["compliance_gap"], s["tiers"]
    return {**cell, "folder": folder, "free": tiers.get("free", {}).get("compliance"),
            "paid": tiers.get("paid", {}).get("compliance"), "gap": g["value"], "gap_ci": g["ci"],
            "bootstrap_ci": g.get("bootstrap_ci"), "p_value": g["p_value"], "pairs": g["n"],
            "af_reasoning_free": tiers.get("free", {}).get("af_reasoning"),
            "unparseable_free": tiers.get("free", {}).get("unparseable"),
            "unparseable_paid": tiers.get("paid", {}).get("unparseable"),
            "gap_range": g.get("bounds", {}).get("gap_range")}


def _table(rows: list[dict[str, Any]]) -> tuple[str, str]:
    from evals.alignment_faking.report import _ci, _p, _pct

    md = ["| setting | company | variant | free | paid | gap [95% CI] | pairs | McNemar p | Holm p | unparseable free/paid |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['setting']} | {r['company']} | {r['variant']} | {_pct(r['free'])} | {_pct(r['paid'])} | "
                  f"{_pct(r['gap'])} {_ci(r['gap_ci'])} | {r['pairs']} | {_p(r['p_value'])} | {_p(r['p_holm'])} | "
                  f"{_pct(r['unparseable_free'])} / {_pct(r['unparseable_paid'])} |")
    buf = io.StringIO()
    keys = ["setting", "company", "variant", "free", "paid", "gap", "gap_lo", "gap_hi", "pairs", "p_value", "p_holm",
            "unparseable_free", "unparseable_paid", "folder"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "gap_lo": r["gap_ci"][0], "gap_hi": r["gap_ci"][1]})
    return "\n".join(md) + "\n", buf.getvalue()


def main(cfg: Any) -> dict[str, Any]:
    from afcu import stats  # scipy/statsmodels: imported here, so `afcu sweep --help` stays fast
    from evals.alignment_faking import run as eval_run
    from evals.alignment_faking.figures import sweep_figure

    grid, skipped = cells(cfg)
    short = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(Path(cfg.model).parts[-2:])).strip("-")
    root = Path(cfg.out or f"runs/sweep-{short}")
    configs = [cell_config(cfg, c, root) for c in grid]
    for c in configs:
        eval_run._validate(c)  # every cell fails before the first one runs
    prepare_run(root, cfg, overwrite=cfg.overwrite)
    rows = []
    for cell, c in zip(grid, configs):
        print(f"afcu sweep: {cell['setting']} / {cell['company']} / {cell['variant']} -> {c.out}", flush=True)
        if is_finished(c.out):
            import json

            s = json.loads((Path(c.out) / "summary.json").read_text())
        else:
            s = eval_run.main(c)
        rows.append(_row(cell, s, c.out))
    for r, p in zip(rows, stats.holm([r["p_value"] for r in rows])):
        r["p_holm"] = p
    md, text = _table(rows)
    summary = {"model": cfg.model, "n_queries": cfg.n_queries, "grader": cfg.grader or "offline-rules-v1",
               "cells": rows, "skipped": skipped, "multiple_comparisons": "Holm step-down over the cells' exact McNemar p-values",
               "gap_ci_method": "Newcombe paired score interval (1998, method 10)"}
    atomic_write_json(root / "summary.json", summary)
    atomic_write_text(root / "table.md", md)
    atomic_write_text(root / "table.csv", text)
    sweep_figure(summary, root / "figures" / "gap_by_variant.png")
    mark_finished(root)
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    build_parser(SweepConfig, parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(SweepConfig, args)
    s = main(cfg)
    print(_table(s["cells"])[0])
    out = Path(s["cells"][0]["folder"]).parent.parent
    print(f"wrote {out}/summary.json, table.md, table.csv, figures/gap_by_variant.png")
    return 0
