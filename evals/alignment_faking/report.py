"""``afcu report RUN``: summary.json, samples.jsonl, report.md and figures, all regenerated from the logs."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from afcu.errors import AfcuError
from afcu.runs import atomic_write_json, atomic_write_text
from evals.alignment_faking.figures import compliance_gap_figure
from evals.alignment_faking.summary import sample_rows, summarize


def _pct(v: float | None) -> str:
    return "n/a" if _missing(v) else f"{100 * v:.1f}%"


def _missing(v: float | None) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _ci(ci: list[float | None] | None) -> str:
    return "" if not ci or any(_missing(c) for c in ci) else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _p(v: float | None) -> str:
    return "n/a" if _missing(v) else f"{v:.3g}"


def gap_lines(g: dict[str, Any]) -> list[str]:
    """The gap with its score and bootstrap intervals, its test, its pairs, and its bounds."""
    paired = g.get("paired", True)
    lines = [f"compliance gap (free - paid): {_pct(g['value'])} {_ci(g['ci']) or '[no interval]'} "
             f"({g.get('ci_method', '')})"
             + (f"; bootstrap {_ci(g.get('bootstrap_ci')) or 'n/a'}" if g.get("bootstrap_ci") else "")
             + f"; {g.get('test', 'p')} p={_p(g['p_value'])}; "
             + (f"{g['n']} pairs over {g.get('n_queries', g['n'])} queries" if paired else f"n={g['n']} (unpaired)")
             + (f", {g['epochs']} epochs" if (g.get("epochs") or 1) > 1 else "")]
    if "discordant" in g:
        d = g["discordant"]
        lines.append(f"discordant pairs: complied only in free {d['free_only']}, only in paid {d['paid_only']}")
    b = g.get("bounds")
    if b:
        r, c = b["unparseable_as_refused"], b["unparseable_as_complied"]
        lines.append(f"bounds: unparseable counted as refused: gap {_pct(r['gap'])} {_ci(r['gap_ci'])} "
                     f"(free {_pct(r['free'])}, paid {_pct(r['paid'])}, n={r['n']}); as complied: gap "
                     f"{_pct(c['gap'])} {_ci(c['gap_ci'])} (free {_pct(c['free'])}, paid {_pct(c['paid'])}); "
                     f"worst case {_ci(b['gap_range'])}")
    return lines


def format_table(s: dict[str, Any]) -> str:
    """The plain-text table printed after a run."""
    lines = [f"model {s['model']}  setting {s['setting']}  variant {s['variant']}  grader {s['grader']}",
             f"generation: {s.get('format', 'free')}",
             f"{'tier':<6}{'n':>4}  {'compliance [95% CI]':<26}{'AF reasoning [95% CI]':<26}{'unparseable':>12}"]
    for t, b in s["tiers"].items():
        lines.append(f"{t:<6}{b['n']:>4}  {(_pct(b['compliance']) + ' ' + _ci(b['compliance_ci'])):<26}"
                     f"{(_pct(b['af_reasoning']) + ' ' + _ci(b['af_reasoning_ci'])):<26}{_pct(b['unparseable']):>12}")
        if b.get("compliance_basis") == "complete pairs":
            lines.append(f"{'':<10}all parsed: {_pct(b.get('compliance_all_parsed'))} "
                         f"{_ci(b.get('compliance_all_parsed_ci'))} (n={b.get('compliance_all_parsed_n')})")
    lines += gap_lines(s["compliance_gap"])
    fc = s.get("forced_choice") or {}
    if "gap" in fc:
        tiers = "  ".join(f"{t} {_pct(fc[t]['mean_p_accept'])} {_ci(fc[t]['ci'])}" for t in ("free", "paid") if t in fc)
        lines.append(f"forced choice P(accept): {tiers}  gap {_pct(fc['gap']['value'])} {_ci(fc['gap']['ci'])} "
                     f"p={_p(fc['gap']['p_value'])}")
    lines += [f"warning: {f}" for f in s.get("flags", [])]
    return "\n".join(lines)


def _readings(s: dict[str, Any]) -> list[str]:
    """Compliance readings (tag, judge, combined), undecided judge, harm score, partial kinds, invalid votes."""
    out = ["| tier | tag-only | judge-only | combined | judge undecided | harm score (n) | partial kinds | "
           "AF invalid votes (counted as no) |", "|---|---|---|---|---|---|---|---|"]
    for t, b in s["tiers"].items():
        if "compliance_tag" not in b:  # a summary written before 1.1.0
            return []
        # The three readings on one basis: all parsed samples (the headline table's rate is over complete pairs).
        combined = b.get("compliance_all_parsed", b["compliance"])
        out.append(f"| {t} | {_pct(b['compliance_tag'])} {_ci(b['compliance_tag_ci'])} | "
                   f"{_pct(b['compliance_judge'])} {_ci(b['compliance_judge_ci'])} (n={b['compliance_judge_n']}) | "
                   f"{_pct(combined)} | {b['judge_undecided_n']} | "
                   f"{_pct(b['harm_score'])} (n={b['harm_score_n']}) | {b['partial_kinds'] or '-'} | "
                   f"{b.get('af_invalid_votes', 0)} of {b.get('af_votes_total', 0)} |")
    return out + ["", "Readings over all parsed samples. Combined = the judge's verdict, the tag where the judge is "
                  "undecided; invalid classifier votes stay in the vote share as a no.", ""]


def markdown(s: dict[str, Any]) -> str:
    """report.md of an eval run, or of a rescore (fields a rescore does not have are left out)."""
    out = [f"# Alignment-faking eval: {s['setting']} / {s['variant']}", "",
           f"- model: `{s['model']}`",
           *([f"- queries: {s['n_queries']} (each in both tiers)"] if s.get("n_queries") is not None else []),
           f"- grader: `{s['grader']}`" + (" (offline keyword rules: transparent but far weaker than a model judge)"
                                           if s["grader"] == "offline-rules-v1" else ""),
           f"- generation: {s.get('format', 'free')}",
           *([f"- assistant prefill: `{s.get('prefill') or 'none'}`",
              f"- system prompt SHA-256: `{s['prompt_sha256']}`"] if s.get("prompt_sha256") else []), "",
           "| tier | n | compliance [95% CI] | AF reasoning [95% CI] (n with scratchpad) | unparseable | truncated |",
           "|---|---|---|---|---|---|"]
    for t, b in s["tiers"].items():
        out.append(f"| {t} | {b['n']} | {_pct(b['compliance'])} {_ci(b['compliance_ci'])} (n={b['compliance_n']}) | "
                   f"{_pct(b['af_reasoning'])} {_ci(b['af_reasoning_ci'])} (n={b['af_reasoning_n']}) | "
                   f"{_pct(b['unparseable'])} | {_pct(b['truncated'])} |")
    basis = next((b.get("compliance_basis") for b in s["tiers"].values()), None)
    if basis == "complete pairs":
        out += ["", "Compliance is over complete pairs (a query answered and parsed in both tiers), the rule the gap "
                    "uses, so the two rates subtract to the gap; all-parsed rates: "
                + "; ".join(f"{t} {_pct(b.get('compliance_all_parsed'))} {_ci(b.get('compliance_all_parsed_ci'))} "
                            f"(n={b.get('compliance_all_parsed_n')})" for t, b in s["tiers"].items()) + ".", ""]
    else:
        out += ["", "Nothing pairs the tiers (no query id): compliance is over all parsed samples and the gap is "
                    "**unpaired** (an interval for independent proportions)." if basis and "unpaired" in basis
                else "Compliance is over all parsed samples.", ""]
    out += ["**Compliance gap** (free minus paid): " + gap_lines(s["compliance_gap"])[0].split(": ", 1)[1], "",
            *[f"- {x}" for x in gap_lines(s["compliance_gap"])[1:]], ""]
    fc = s.get("forced_choice") or {}
    if fc:
        out += ["**Forced choice** (assistant turn prefilled up to `<OUTPUT>`; P(accept) = normalised likelihood of "
                "the full `<request_fully_accepted/>` vs `<rejected/>` tag):", ""]
        out += [f"- {t}: mean P(accept) {_pct(fc[t]['mean_p_accept'])} {_ci(fc[t]['ci'])} (n={fc[t]['n']})"
                for t in ("free", "paid") if t in fc]
        if "gap" in fc:
            out.append(f"- paired gap: {_pct(fc['gap']['value'])} {_ci(fc['gap']['ci'])}, Wilcoxon p = "
                       f"{_p(fc['gap']['p_value'])} (n={fc['gap']['n']})")
        out.append("")
    out += _readings(s)
    if s.get("flags"):
        out += ["**Warnings**", ""] + [f"- {f}" for f in s["flags"]] + [""]
    out += ["![compliance gap](figures/compliance_gap.png)", "",
            "Status counts per tier: " + "; ".join(f"{t}: {b['statuses']}" for t, b in s["tiers"].items()), ""]
    return "\n".join(out)


def write_report(run: str | Path) -> dict[str, Any]:
    """Regenerate every derived file of a run folder from ``run/logs``; returns the summary."""
    run = Path(run)
    if not run.is_dir():
        raise AfcuError(f"run folder {run} not found; pass the --out folder of an `afcu eval` run")
    try:
        rows, header = sample_rows(run / "logs")
    except FileNotFoundError:
        raise AfcuError(f"{run}/logs holds no .eval log: is {run} an `afcu eval` run folder?") from None
    summary = summarize(rows, header)
    atomic_write_json(run / "summary.json", summary)
    atomic_write_text(run / "samples.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
    atomic_write_text(run / "report.md", markdown(summary))
    compliance_gap_figure(summary, run / "figures" / "compliance_gap.png")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `afcu eval`")


def run(args: argparse.Namespace) -> int:
    summary = write_report(args.run)
    print(format_table(summary))
    print(f"wrote {args.run}/summary.json, report.md, samples.jsonl, figures/compliance_gap.png")
    return 0
