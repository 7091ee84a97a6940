"""afcu sweep: variants x companies x settings into one table and one figure, Holm across the sweep."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest
import scripted  # noqa: F401  (registers the scripted/ model API)

from afcu.cli import main as cli_main
from evals.alignment_faking.run import EvalConfig
from evals.alignment_faking.sweep import SweepConfig


def test_sweep_table_figure_and_holm(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "--variants", "default,no_training_details", "--model", "scripted/planted",
            "--n-queries", "8", "--no-forced-choice", "--out", str(out)]
    assert cli_main(argv) == 0
    s = json.loads((out / "summary.json").read_text())
    cells = s["cells"]
    assert [c["variant"] for c in cells] == ["default", "no_training_details"]
    for c in cells:
        cell = json.loads((out / "cells" / f"helpful_only-Anthropic-{c['variant']}" / "summary.json").read_text())
        assert c["gap"] == cell["compliance_gap"]["value"] and c["gap_ci"] == cell["compliance_gap"]["ci"]
        assert cell["variant"] == c["variant"]
    # The scripted replies ignore the variant, so the two p-values are equal: Holm = min(1, 2p) for each.
    p = cells[0]["p_value"]
    assert 0 < p < 1 and all(c["p_value"] == p for c in cells)
    assert all(c["p_holm"] == pytest.approx(min(1.0, 2 * p)) for c in cells)
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert len(rows) == 2 and float(rows[0]["p_holm"]) == pytest.approx(min(1.0, 2 * p))
    assert (out / "table.md").read_text().count("| helpful_only |") == 2
    assert (out / "figures" / "gap_by_variant.png").stat().st_size > 10_000
    assert cli_main(argv) == 2  # finished: refused unless --overwrite
    assert "finished run" in capsys.readouterr().err


def test_sweep_shares_eval_options_and_checks_every_cell_first(tmp_path, capsys):
    shared = {f.name: f for f in dataclasses.fields(EvalConfig)}
    sweep = {f.name: f for f in dataclasses.fields(SweepConfig)}
    for name in set(shared) - {"variant", "company", "setting", "out"}:
        assert sweep[name].default == shared[name].default and sweep[name].metadata == shared[name].metadata
    assert cli_main(["sweep", "--variants", "default,nope", "--model", "scripted/planted",
                     "--out", str(tmp_path / "sw")]) == 2
    assert "unknown variant 'nope'" in capsys.readouterr().err and not (tmp_path / "sw").exists()
    assert cli_main(["sweep", "--variants", "default,default", "--out", str(tmp_path / "sw")]) == 2
    from evals.alignment_faking.sweep import cells

    grid, skipped = cells(SweepConfig(variants="default,no_best_for_humanity", settings="helpful_only,animal_welfare"))
    assert [(c["setting"], c["variant"]) for c in grid] == [("helpful_only", "default"), ("animal_welfare", "default"),
                                                            ("animal_welfare", "no_best_for_humanity")]
    assert len(skipped) == 1 and skipped[0].startswith("helpful_only/no_best_for_humanity")


def test_sweep_help_loads_no_statistics_stack():
    """`afcu sweep --help` builds its parser without importing scipy/statsmodels (seconds of start-up)."""
    import subprocess
    import sys

    code = ("import sys; from afcu.cli import main\n"
            "try:\n    main(['sweep', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('statsmodels', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
