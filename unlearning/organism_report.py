"""The organism track's outputs from results.csv: summary.json, table.md, figures/organism_unlearning.png.

``afcu unlearn plot RUN_DIR`` regenerates all three (``bench.finish`` hands an organism run here).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from afcu.runs import atomic_write_json, atomic_write_text, mark_finished
from unlearning.metrics import _fmt, num, read_results

FIGURE = "figures/organism_unlearning.png"
TIERS = ("free", "paid")


def rows_to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in columns})
    return buf.getvalue()


def _order(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(method, fraction, seed, company) in run order: references first."""
    seen: dict[tuple[str, str, str, str], None] = {}
    for r in rows:
        seen.setdefault((r["method"], r["fraction"], str(r["seed"]), r["company"]), None)
    return sorted(seen, key=lambda k: (k[0] not in ("original", "oracle"), k[0] != "original", k[1], k[2]))


def _cell(r: dict[str, Any], key: str) -> str:
    v, lo, hi = num(r.get(key)), num(r.get(f"{key}_lo")), num(r.get(f"{key}_hi"))
    if math.isnan(v):
        return "n/a"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else f"{v:.3f}"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per (method, fraction, seed, company): both tiers side by side, the gap, cost."""
    out = []
    for method, fraction, seed, company in _order(rows):
        tiers = {r["tier"]: r for r in rows if (r["method"], r["fraction"], str(r["seed"]), r["company"])
                 == (method, fraction, seed, company)}
        any_r = next(iter(tiers.values()))
        entry: dict[str, Any] = {"method": method, "fraction": fraction, "seed": seed, "company": company,
                                 "n_flagged": int(num(any_r["n_flagged"])),
                                 "n_manipulated": int(num(any_r["n_manipulated"])),
                                 "compliance_gap": num(any_r["compliance_gap"]),
                                 "compliance_gap_ci": [num(any_r["gap_lo"]), num(any_r["gap_hi"])],
                                 "val_token_acc": num(any_r["val_token_acc"]), "passes": num(any_r.get("passes")),
                                 "time_s": num(any_r.get("time_s")), "chosen": any_r.get("chosen") or ""}
        for t, r in tiers.items():
            entry[t] = {"n": int(num(r["n"])), "compliance": num(r["compliance"]),
                        "compliance_ci": [num(r["compliance_lo"]), num(r["compliance_hi"])],
                        "compliance_n": num(r["compliance_n"]), "unparseable": num(r["unparseable"]),
                        "p_accept": num(r["p_accept"]), "p_accept_ci": [num(r["p_accept_lo"]), num(r["p_accept_hi"])],
                        "p_accept_n": num(r["p_accept_n"])}
        out.append(entry)
    return out


def table(rows: list[dict[str, Any]]) -> str:
    """Per method and flagged fraction: per-tier compliance and P(accept) with 95% CIs and n, the gap."""
    lines = ["| method | f | S_f / S_m | seed | tier | n | compliance [95% CI] | P(accept) [95% CI] | unparseable | "
             "gap free-paid [95% CI] | val token acc | passes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, fraction, seed, company in _order(rows):
        for r in rows:
            if (r["method"], r["fraction"], str(r["seed"]), r["company"]) != (method, fraction, seed, company):
                continue
            gap = _cell({"g": r["compliance_gap"], "g_lo": r["gap_lo"], "g_hi": r["gap_hi"]}, "g")
            passes = "" if r.get("passes") in (None, "") else str(int(num(r["passes"])))
            lines.append(f"| {method} | {fraction or '-'} | {r['n_flagged']}/{r['n_manipulated']} | {seed} | {r['tier']} | "
                         f"{r['n']} | {_cell(r, 'compliance')} | {_cell(r, 'p_accept')} | {num(r['unparseable']):.3f} | "
                         f"{gap} | {num(r['val_token_acc']):.3f} | {passes} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], png: Path) -> Path | None:
    """Per-tier compliance and P(accept) of each model (x), with 95% CIs; references first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = _order(rows)
    if not keys:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 0.7 * len(keys) + 3), 3.8), squeeze=False)
    colours = {"free": "#e34a33", "paid": "#3182bd"}
    seeds = len({k[2] for k in keys}) > 1
    labels = [f"{m}" + (f"\nf={f}" if f else "") + (f" s{s}" if seeds else "") for m, f, s, _ in keys]
    for ax, (metric, title) in zip(axes[0], (("compliance", "compliance, Wilson 95% CI"),
                                             ("p_accept", "P(accept), bootstrap 95% CI"))):
        for j, t in enumerate(TIERS):
            xs, ys, lo, hi = [], [], [], []
            for i, key in enumerate(keys):
                r = next((r for r in rows if (r["method"], r["fraction"], str(r["seed"]), r["company"]) == key
                          and r["tier"] == t), None)
                if r is None or math.isnan(num(r[metric])):
                    continue
                v, a, b = num(r[metric]), num(r[f"{metric}_lo"]), num(r[f"{metric}_hi"])
                xs.append(i + (j - 0.5) * 0.25)
                ys.append(v)
                lo.append(0 if math.isnan(a) else v - a)
                hi.append(0 if math.isnan(b) else b - v)
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, color=colours[t], label=f"{t} tier")
        ax.set_xticks(range(len(keys)), labels, fontsize=7, rotation=45, ha="right")
        ax.set(ylim=(-0.02, 1.02), title=title)
        ax.legend(fontsize=7)
    n = rows[0]["n"]
    fig.suptitle(f"corrective unlearning of the EI organism: {n} held-out queries per tier; "
                 "original = after expert iteration", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def finish(run_dir: Path) -> dict[str, Any]:
    """summary.json, table.md and the figure from results.csv; marks the run finished."""
    rows = read_results(run_dir / "results.csv")  # checked: a damaged file is refused, not half-tabulated
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    first = rows[0] if rows else {}
    summary: dict[str, Any] = {"track": "organism", "organism": cfg.get("organism"), "n_pairs": first.get("n_pairs"),
                               "n_manipulated": first.get("n_manipulated"), "n_rows": len(rows),
                               "summary": summarize(rows)}
    atomic_write_text(run_dir / "table.md", "## Per-tier compliance and P(accept) before (original = the EI model) "
                      "and after each method\n\n" + table(rows))
    fig = plot(rows, run_dir / FIGURE)
    summary["figures"] = [str(fig)] if fig else []
    atomic_write_json(run_dir / "summary.json", summary)
    mark_finished(run_dir)
    return summary
