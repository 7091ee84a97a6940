"""Results table helpers: reading results.csv, seed means, and the per-method summary numbers.

Rows are grouped by *setting* = manipulation and |S_m| (``badnets_n38``), so every
table, summary entry and figure is per manipulation size.
Summary (per setting and method, over seed means):
- ``auc_acc_corr``: area under the Acc_corr-versus-flagged-fraction curve (trapezoid
  rule over the measured fractions, ``single`` placed at 1/|S_m|), divided by the
  fraction range so it reads as a mean accuracy in [0, 1].
- ``min_fraction_90``: the smallest measured fraction whose mean Acc_corr reaches
  90% of the oracle's and whose mean Acc_retain is within 1 point (0.01) of the
  oracle's; empty when none does.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ["method", "manipulation", "fraction", "n_flagged", "n_manipulated", "seed", "acc_corr", "acc_retain",
           "asr", "asr_clean", "utility", "implant_ppl", "time_s", "passes", "forward", "backward", "chosen",
           "n_dampened", "frac_dampened", "ownership_p", "asr_lo", "asr_hi", "asr_exact", "n_test",
           "size"]  # size: the configured |S_m| of the cell's group (n_manipulated can be smaller: a capped class)
REFERENCE = ("original", "oracle")  # one row per (manipulation, seed), fraction left empty
# --verify membership (unlearning/llm_verify.py): membership AUROC of S_f, of the unflagged S_m and of the
# never-trained control, each against the reference records, with 95% bootstrap CIs, Welch p and n
MIA_PARTS = ("flagged", "unflagged", "control")
MIA_COLUMNS = ["mia_score", *(f"mia_auroc_{p}{s}" for p in MIA_PARTS for s in ("", "_lo", "_hi")),
               *(f"mia_p_{p}" for p in MIA_PARTS), "mia_n_flagged", "mia_n_unflagged", "mia_n_reference"]
COLUMNS += MIA_COLUMNS


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    with p.open(newline="") as fh:
        return list(csv.DictReader(fh))


# results.csv columns that hold text; every other column holds numbers or is empty
TEXT_COLUMNS = ("method", "manipulation", "fraction", "chosen", "mia_score", "company", "tier")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """A run's results.csv for ``afcu unlearn plot`` and the end of a run, read with the project's
    CSV reader (afcu/userfiles.py) and checked: AfcuError naming the file, line and column for a
    row cut short (a truncated file), a last row without its line end, or a non-numeric value."""
    from afcu.errors import AfcuError
    from afcu.userfiles import read_csv

    recs = read_csv(path, "results", encoding_flag=None, allow_no_rows=True)
    p, header = recs.path, recs.fields
    fix = "restore the file, or remove that row and rerun `afcu unlearn bench` with the same --out to redo its cell"
    for row, line in zip(recs.rows, recs.lines):
        short = [c for c in header if row.get(c) is None]
        if short:
            raise AfcuError(f"{p}:{line}: column '{short[0]}': the row has {len(header) - len(short)} of the "
                            f"header's {len(header)} cells (cut short: a truncated file?); {fix}")
        for col in header:
            v = row[col]
            if col in TEXT_COLUMNS or v == "":
                if col == "fraction" and v not in ("", "single"):
                    try:
                        float(v)
                    except ValueError:
                        raise AfcuError(f"{p}:{line}: column 'fraction': {v!r} is not 'single' or a number; "
                                        f"{fix}") from None
                continue
            try:
                float(v)
            except ValueError:
                raise AfcuError(f"{p}:{line}: column '{col}': {v!r} is not a number; {fix}") from None
    if recs.rows and not p.read_bytes().endswith(b"\n"):  # every row the bench writes ends with a newline
        raise AfcuError(f"{p}:{recs.lines[-1]}: the last row has no line end (cut mid-row: a truncated file?); {fix}")
    return recs.rows


def rows_to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    buf = io.StringIO()
    # default: COLUMNS, the mia_* ones only in --verify membership runs (other runs keep their header)
    cols = list(columns) if columns is not None else COLUMNS if any(
        r.get("mia_n_reference") not in (None, "") for r in rows) else [c for c in COLUMNS if c not in MIA_COLUMNS]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _fmt(r.get(k)) for k in cols})
    return buf.getvalue()


def _fmt(v: Any) -> Any:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def setting(row: dict[str, Any]) -> str:
    """The manipulation and its size, e.g. ``badnets_n38`` (reference rows carry the same n_manipulated)."""
    return f"{row['manipulation']}_n{int(num(row['n_manipulated']))}"


def num(v: Any) -> float:
    """A CSV cell as float (nan when empty)."""
    return float(v) if v not in (None, "") else float("nan")


def x_of(row: dict[str, Any]) -> float:
    """The flagged fraction as a number: n_flagged / n_manipulated."""
    return num(row["n_flagged"]) / num(row["n_manipulated"])


def curves(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, str], dict[float, list[float]]]:
    """(manipulation, method) -> fraction -> values over seeds (reference methods excluded)."""
    out: dict[tuple[str, str], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] in REFERENCE:
            continue
        out[(setting(r), r["method"])][x_of(r)].append(num(r[metric]))
    return out


def reference(rows: list[dict[str, Any]], method: str, metric: str) -> dict[str, list[float]]:
    """manipulation -> values over seeds of a reference row (``original`` or ``oracle``)."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["method"] == method:
            out[setting(r)].append(num(r[metric]))
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """manipulation -> method -> {auc_acc_corr, min_fraction_90, mean_time_s, mean_passes, n_seeds}."""
    corr, ret = curves(rows, "acc_corr"), curves(rows, "acc_retain")
    oc, orr = reference(rows, "oracle", "acc_corr"), reference(rows, "oracle", "acc_retain")
    cost: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        cost[(setting(r), r["method"])].append((num(r.get("time_s")), num(r.get("passes"))))
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (manip, method), by_x in sorted(corr.items()):
        xs = sorted(by_x)
        mc = np.array([np.nanmean(by_x[x]) for x in xs])
        mr = np.array([np.nanmean(ret[(manip, method)][x]) for x in xs])
        auc = float(np.trapezoid(mc, xs) / (xs[-1] - xs[0])) if len(xs) > 1 else float(mc[0])
        reached = ""
        if manip in oc:
            o_c, o_r = float(np.nanmean(oc[manip])), float(np.nanmean(orr[manip]))
            ok = [x for x, c, a in zip(xs, mc, mr) if c >= 0.9 * o_c and abs(a - o_r) <= 0.01]
            reached = round(min(ok), 4) if ok else ""
        t = np.array(cost[(manip, method)])
        out[manip][method] = {"auc_acc_corr": round(auc, 4), "min_fraction_90": reached,
                              "mean_time_s": round(float(np.nanmean(t[:, 0])), 3),
                              "mean_passes": int(np.nanmean(t[:, 1])), "n_seeds": len(by_x[xs[0]])}
    for manip, methods in out.items():  # compute relative to retraining on the retain set
        base = methods.get("retrain", {}).get("mean_passes")
        for m in methods.values():
            if base:
                m["passes_vs_retrain"] = round(m["mean_passes"] / base, 4)
    for manip in oc:
        for ref in REFERENCE:
            vals = reference(rows, ref, "acc_corr")[manip]
            rv = reference(rows, ref, "acc_retain")[manip]
            if vals:
                out[manip][ref] = {"acc_corr": round(float(np.nanmean(vals)), 4),
                                   "acc_retain": round(float(np.nanmean(rv)), 4), "n_seeds": len(vals)}
    return dict(out)


def summary_table(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Per setting and method: AUC of Acc_corr, smallest f reaching 90% of the oracle, cost, as Markdown."""
    lines = ["| setting | method | AUC of Acc_corr | smallest f reaching 90% of oracle | mean passes | "
             "passes / retrain's | mean time (s) |", "|---|---|---|---|---|---|---|"]
    for manip, methods in sorted(summary.items()):
        for method, m in sorted(methods.items()):
            if "auc_acc_corr" not in m:
                continue
            lines.append(f"| {manip} | {method} | {m['auc_acc_corr']:.3f} | {m['min_fraction_90'] or 'none'} | "
                         f"{m['mean_passes']} | {m.get('passes_vs_retrain', '')} | {m['mean_time_s']:.1f} |")
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict[str, Any]], metric: str = "acc_corr") -> str:
    """Mean +- std over seeds of ``metric`` per (setting, method) and configured fraction, as Markdown.

    Columns are the configured fractions (``single`` = one sample); each setting's own
    n_flagged / |S_m| is in results.csv.
    """
    cur: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["method"] not in REFERENCE:
            cur[(setting(r), r["method"])][r["fraction"]].append(num(r[metric]))
    fracs = sorted({f for by_f in cur.values() for f in by_f}, key=lambda f: 0.0 if f == "single" else float(f))
    head = "| setting | method | " + " | ".join(f"f={f}" for f in fracs) + " |"
    lines = [head, "|" + "---|" * (len(fracs) + 2)]
    for ref in REFERENCE:
        for manip, vals in sorted(reference(rows, ref, metric).items()):
            if _cell(vals):
                lines.append(f"| {manip} | {ref} (any f) | " + " | ".join(_cell(vals) for _ in fracs) + " |")
    for (manip, method), by_f in sorted(cur.items()):
        cells = [_cell(by_f.get(f, [])) for f in fracs]
        if any(cells):
            lines.append(f"| {manip} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def cost_ratio_table(rows: list[dict[str, Any]], methods: tuple[str, ...] | None = None) -> str:
    """Passes relative to ``retrain``'s in the same setting, fraction and seed (mean, max over seeds), as Markdown.

    A cell's passes include its selection (every candidate's work and evaluations); the column
    ``all f`` is the mean passes over the setting's cells divided by retrain's (summary.json's
    ``passes_vs_retrain``).  ``methods`` keeps only those (default: every method but the references).
    """
    base = {(setting(r), r["fraction"], r["seed"]): num(r["passes"]) for r in rows if r["method"] == "retrain"}
    cur: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        key = (setting(r), r["fraction"], r["seed"])
        keep = r["method"] not in (*REFERENCE, "retrain") and (methods is None or r["method"] in methods)
        if keep and base.get(key):
            cur[(setting(r), r["method"])][r["fraction"]].append(num(r["passes"]) / base[key])
    if not cur:
        return ""
    fracs = sorted({f for by_f in cur.values() for f in by_f}, key=lambda f: 0.0 if f == "single" else float(f))
    lines = ["| setting | method | " + " | ".join(f"f={f}" for f in fracs) + " | all f |",
             "|" + "---|" * (len(fracs) + 3)]
    total = summarize(rows)
    for (manip, method), by_f in sorted(cur.items()):
        cells = [f"{np.mean(by_f[f]):.3f} (max {max(by_f[f]):.3f})" if by_f.get(f) else "" for f in fracs]
        lines.append(f"| {manip} | {method} | " + " | ".join(cells)
                     + f" | {total.get(manip, {}).get(method, {}).get('passes_vs_retrain', '')} |")
    return "\n".join(lines) + "\n"


def _cell(vals: list[float]) -> str:
    """``mean±std`` over the non-missing values, or '' when there are none."""
    v = np.asarray([x for x in vals if not math.isnan(x)], dtype=float)
    return f"{v.mean():.3f}±{v.std():.3f}" if len(v) else ""


def membership_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """--verify membership: setting -> ``method`` or ``method@f=<fraction>`` -> seed means of the AUROCs and n."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("mia_n_reference") not in (None, ""):
            groups[(setting(r), r["method"] + (f"@f={r['fraction']}" if r["fraction"] else ""))].append(r)
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (manip, key), rs in sorted(groups.items()):
        entry: dict[str, Any] = {"score": rs[0]["mia_score"], "n_seeds": len(rs),
                                 "n_reference": int(num(rs[0]["mia_n_reference"]))}
        for part in MIA_PARTS:
            vals = [num(r[f"mia_auroc_{part}"]) for r in rs if r.get(f"mia_auroc_{part}") not in (None, "")]
            entry[f"auroc_{part}"] = round(float(np.mean(vals)), 4) if vals else None
        entry["n_flagged"], entry["n_unflagged"] = int(num(rs[0]["mia_n_flagged"])), int(num(rs[0]["mia_n_unflagged"]))
        out[manip][key] = entry
    return dict(out)


def _mia_cell(rs: list[dict[str, Any]], part: str) -> str:
    """One seed: ``AUROC [lo, hi]``; several: ``mean±std (k seeds)``; '' when the part is empty."""
    vals = [num(r[f"mia_auroc_{part}"]) for r in rs if r.get(f"mia_auroc_{part}") not in (None, "")]
    if not vals:
        return ""
    if len(vals) == 1:
        r = rs[0]
        return f"{vals[0]:.3f} [{num(r[f'mia_auroc_{part}_lo']):.2f}, {num(r[f'mia_auroc_{part}_hi']):.2f}]"
    return f"{np.mean(vals):.3f}±{np.std(vals):.3f} ({len(vals)} seeds)"


def membership_table(rows: list[dict[str, Any]]) -> str:
    """--verify membership as Markdown: per setting, method and fraction, the membership AUROC of the
    flagged and of the unflagged manipulated records and the never-trained control's, each against the
    reference records (0.5 = indistinguishable from never-seen records)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r.get("mia_n_reference") not in (None, ""):
            groups[(setting(r), r["method"], r["fraction"])].append(r)
    lines = ["| setting | method | f | score | AUROC flagged [95% CI] | n flagged | AUROC unflagged [95% CI] | "
             "n unflagged | control (never trained) on the flagged [95% CI] | n reference |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = {m: i for i, m in enumerate(REFERENCE)}
    for (manip, method, frac), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9),
                                                                           kv[0][1], kv[0][2])):
        r = rs[0]
        lines.append(f"| {manip} | {method} | {frac or '-'} | {r['mia_score']} | {_mia_cell(rs, 'flagged')} | "
                     f"{r['mia_n_flagged']} | {_mia_cell(rs, 'unflagged')} | {r['mia_n_unflagged']} | "
                     f"{_mia_cell(rs, 'control')} | {r['mia_n_reference']} |")
    return "\n".join(lines) + "\n"
