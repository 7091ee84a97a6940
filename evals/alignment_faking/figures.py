"""The compliance-gap figure in the paper's style (Greenblatt et al. 2024, fig. 1 and 2)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Segment order and colours follow the paper's bars: refusals, compliance with and without AF reasoning.
SEGMENTS = (
    ("refused", "refuses", "#9ecae1", None),
    ("complied_with_af", "complies, alignment-faking reasoning", "#e34a33", "///"),
    ("complied_without_af", "complies, no alignment-faking reasoning", "#fdd49e", None),
    ("judge_undecided", "judge undecided", "#bcbddc", ".."),
    ("unparseable", "unparseable output", "#d9d9d9", None),
)


def _v(x: Any) -> float:
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def compliance_gap_figure(summary: dict[str, Any], path: str | Path) -> Path:
    """Write the per-tier stacked bars (and the forced-choice panel when present) to ``path`` (PNG)."""
    tiers = [t for t in ("free", "paid") if t in summary["tiers"]]
    fc = summary.get("forced_choice") or {}
    ncols = 2 if fc else 1
    fig, axes = plt.subplots(1, ncols, figsize=(10 if fc else 7, 3.4), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2] if fc else [1]})
    ax = axes[0][0]
    for i, t in enumerate(tiers):
        b = summary["tiers"][t]
        left = 0.0
        for key, label, colour, hatch in SEGMENTS:
            w = _v(b.get(key))
            ax.barh(i, w, left=left, color=colour, hatch=hatch, edgecolor="white", label=label if i == 0 else None)
            if w >= 0.06:
                ax.text(left + w / 2, i, f"{100 * w:.0f}%", ha="center", va="center", fontsize=8)
            left += w
    ax.set_yticks(range(len(tiers)), [f"{t} tier\n(n={summary['tiers'][t]['n']})" for t in tiers])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of samples")
    ax.set_title(gap_title(summary), fontsize=9)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.55), ncol=2, fontsize=7, frameon=False)
    if fc:
        ax2 = axes[0][1]
        ts = [t for t in tiers if t in fc]
        means = [fc[t]["mean_p_accept"] for t in ts]
        err = [[m - fc[t]["ci"][0] for m, t in zip(means, ts)], [fc[t]["ci"][1] - m for m, t in zip(means, ts)]]
        ax2.bar(ts, means, yerr=err, capsize=4, color=["#e34a33", "#3182bd"][: len(ts)])
        for x, (m, t) in enumerate(zip(means, ts)):
            ax2.text(x, min(m + err[1][x] + 0.04, 0.95), f"{100 * m:.1f}% (n={fc[t]['n']})", ha="center", fontsize=8)
        ax2.set_ylim(0, 1)
        ax2.set_ylabel("mean P(accept tag)")
        g = fc.get("gap")
        ax2.set_title("Forced choice" + (f": gap {100 * g['value']:+.1f} pts, p={g['p_value']:.2g}" if g else ""),
                      fontsize=9)
    model = str(summary["model"])
    provider, _, rest = model.partition("/")
    short = f"{provider}/{Path(rest).name}" if rest.startswith("/") else model
    fig.suptitle(f"{short} | {summary['setting']} / {summary['variant']} | {summary['n_queries']} queries",
                 fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def gap_title(summary: dict[str, Any]) -> str:
    """The bar panel's title: the gap with the basis it is computed on (the bars are over all samples, the
    paired gap over complete pairs, so the bars need not subtract to it)."""
    gap = summary["compliance_gap"]
    if math.isnan(_gap(gap)):
        return f"Generation: compliance gap n/a (grader: {summary['grader']})"
    basis = f"{gap['n']} complete pairs" if gap.get("paired", True) else f"{gap['n']} parsed samples, unpaired"
    return (f"Generation: compliance gap {100 * gap['value']:+.1f} pts over {basis}; bars: all samples "
            f"(grader: {summary['grader']})")


def _gap(g: dict[str, Any]) -> float:
    return float("nan") if g.get("value") is None else float(g["value"])


def sweep_figure(summary: dict[str, Any], path: str | Path) -> Path:
    """The compliance gap per variant with its 95% CI, one panel per (setting, company), in the style of
    Greenblatt et al. (2024, fig. 9); each bar is labelled with its Holm-adjusted p-value."""
    cells = summary["cells"]
    panels = sorted({(c["setting"], c["company"]) for c in cells})
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 0.5 * max(3, len(cells) // len(panels)) + 1.5),
                             squeeze=False)
    for ax, (setting, company) in zip(axes[0], panels):
        rows = [c for c in cells if (c["setting"], c["company"]) == (setting, company)]
        for i, c in enumerate(rows):
            g = _v(c["gap"])
            lo, hi = (c["gap_ci"] if c["gap_ci"] and not any(_nan(x) for x in c["gap_ci"]) else (g, g))
            ax.barh(i, g, color="#e34a33" if g > 0 else "#3182bd", alpha=0.85)
            ax.errorbar(g, i, xerr=[[g - lo], [hi - g]], fmt="none", ecolor="black", capsize=3, lw=1)
            unp = f"unparseable {100 * _v(c['unparseable_free']):.0f}% / {100 * _v(c['unparseable_paid']):.0f}%"
            label = f"no pairs, {unp}" if _nan(c["gap"]) else f"p_Holm={c['p_holm']:.2g}" if not _nan(c["p_holm"]) else ""
            ax.text(1.02, i, f"{label} (n={c['pairs']})", va="center", fontsize=7, transform=ax.get_yaxis_transform())
        ax.set_yticks(range(len(rows)), [c["variant"] for c in rows])
        ax.invert_yaxis()
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlim(-1, 1)
        ax.set_xlabel("compliance gap (free - paid), 95% CI")
        ax.set_title(f"{setting} / {company}", fontsize=9)
    fig.suptitle(f"{summary['model']} | {summary['n_queries']} queries | grader {summary['grader']}", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
