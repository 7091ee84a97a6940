"""Figures of the text bench, drawn from results.csv rows only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protection.membership import SCORES

COLOURS = {"clean": "#4c72b0", "leximark": "#dd8452", "base": "#999999", "base_leximark": "#cccccc"}


def plot_text(run_dir: Path, rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(run_dir) / "figures"
    out.mkdir(exist_ok=True)
    methods = [m for m in COLOURS if any(r["method"] == m for r in rows)]
    paths = []
    for key, label, name in (("auroc", "membership AUROC", "auroc.png"),
                             ("t_reject_rate", "Welch t-test rejection rate (alpha 0.05)", "t_test.png")):
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.8 / max(len(methods), 1)
        for j, m in enumerate(methods):
            vals = [[float(r[key]) for r in rows if r["method"] == m and r["score"] == s] for s in SCORES]
            mean = [np.mean(v) if v else np.nan for v in vals]
            err = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in vals]
            ax.bar(np.arange(len(SCORES)) + j * width, mean, width, yerr=err, label=m, color=COLOURS[m], capsize=2)
        ax.axhline(0.5 if key == "auroc" else 0.05, color="k", lw=0.8, ls="--")
        ax.set_xticks(np.arange(len(SCORES)) + 0.4 - width / 2, SCORES, rotation=30)
        n_seeds = len({r["seed"] for r in rows})
        ax.set_ylabel(label)
        ax.set_title(f"{label}: mean ± std over {n_seeds} seed(s)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths
