"""The paper's figure from results.csv: Acc_corr and Acc_retain against the flagged fraction.

One figure per manipulation and |S_m| (setting), two panels, one line per method (mean over seeds)
with a band from the lowest to the highest seed; the original (poisoned) model
and the oracle are dashed horizontal references.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from unlearning.metrics import curves, read_rows, reference, setting  # noqa: E402

PANELS = (("acc_corr", "Acc_corr (manipulated domain, true labels)"), ("acc_retain", "Acc_retain"))


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write ``figures/<manipulation>_n<|S_m|>.png`` for every setting in ``results.csv``; returns the paths."""
    run_dir = Path(run_dir)
    rows = read_rows(run_dir / "results.csv")
    manips = sorted({setting(r) for r in rows})
    out = []
    (run_dir / "figures").mkdir(exist_ok=True)
    for manip in manips:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
        for ax, (metric, title) in zip(axes, PANELS):
            cur = curves(rows, metric)
            methods = sorted(m for (mp, m) in cur if mp == manip)
            colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(methods), 1)))
            plotted = False
            for color, method in zip(colors, methods):
                by_x = cur[(manip, method)]
                xs = [x for x in sorted(by_x) if not np.isnan(by_x[x]).all()]
                if not xs:  # metric not defined for this method/manipulation
                    continue
                vals = [np.asarray(by_x[x], dtype=float) for x in xs]
                plotted = True
                ax.plot(xs, [np.nanmean(v) for v in vals], marker="o", ms=3, color=color, label=method)
                ax.fill_between(xs, [np.nanmin(v) for v in vals], [np.nanmax(v) for v in vals],
                                color=color, alpha=0.15)
            for ref, style in (("original", ":"), ("oracle", "--")):
                vals = reference(rows, ref, metric).get(manip)
                if vals and not np.isnan(vals).all():
                    ax.axhline(np.nanmean(vals), color="black", ls=style, lw=1, label=f"{ref} (mean)")
            if plotted:  # a log axis needs at least one positive x
                ax.set_xscale("log")
            ax.set_xlabel("flagged fraction |S_f| / |S_m| (log)")
            ax.set_title(title, fontsize=10)
            ax.set_ylim(-0.02, 1.02)
        axes[1].legend(fontsize=7, loc="lower right", ncol=2)
        fig.suptitle(f"{manip}: seed bands = min..max over seeds")
        fig.tight_layout()
        path = run_dir / "figures" / f"{manip}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out + plot_membership(run_dir, rows)


def plot_membership(run_dir: Path, rows: list[dict]) -> list[Path]:
    """--verify membership: ``figures/membership_<setting>.png``, per row kind (method and fraction) the
    membership AUROC of the flagged and the unflagged records and the never-trained control, mean over
    seeds with the 95% bootstrap CI of one seed or the min..max over seeds."""
    rows = [r for r in rows if r.get("mia_n_reference") not in (None, "")]
    out = []
    for manip in sorted({setting(r) for r in rows}):
        kinds = sorted({(r["method"], r["fraction"]) for r in rows if setting(r) == manip},
                       key=lambda k: ({"original": 0, "oracle": 1}.get(k[0], 2), k))
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(kinds) + 2), 4))
        for j, (part, color) in enumerate((("flagged", "tab:red"), ("unflagged", "tab:blue"), ("control", "grey"))):
            label: str | None = part  # one legend entry per part
            for i, (method, frac) in enumerate(kinds):
                rs = [r for r in rows if setting(r) == manip and (r["method"], r["fraction"]) == (method, frac)
                      and r.get(f"mia_auroc_{part}") not in (None, "")]
                if not rs:
                    continue
                v = np.array([float(r[f"mia_auroc_{part}"]) for r in rs])
                lo = float(rs[0][f"mia_auroc_{part}_lo"]) if len(rs) == 1 else v.min()
                hi = float(rs[0][f"mia_auroc_{part}_hi"]) if len(rs) == 1 else v.max()
                ax.errorbar(i + (j - 1) * 0.22, v.mean(), yerr=[[v.mean() - lo], [hi - v.mean()]], fmt="o",
                            color=color, capsize=3, label=label)
                label = None
        ax.axhline(0.5, color="black", ls=":", lw=1)
        ax.set_xticks(range(len(kinds)), [m + (f"\nf={f}" if f else "") for m, f in kinds], fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"membership AUROC vs reference ({rows[0]['mia_score']})")
        ax.legend(fontsize=8)
        ax.set_title(f"{manip}: S_f, unflagged S_m, never-trained control", fontsize=9)
        fig.tight_layout()
        path = run_dir / "figures" / f"membership_{manip}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append(path)
    return out
