"""The diffusion bench end to end at a few steps: columns, every method and checkpoint, plot, refusal."""

from __future__ import annotations

import csv

import pytest

from afcu.errors import AfcuError
from protection import diffusion_track as dt


def test_bench_smoke_and_plot(tmp_path):
    cfg = dt.resolve({"out": str(tmp_path / "run"), "seeds": [0], "timesteps": 10, "pretrain_steps": 20,
                      "codec_steps": 20, "embed_steps": 3, "adversary_steps": [0, 2], "n_eval": 10}, "test")
    run_dir = dt.main(cfg)
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert [(r["method"], r["adversary_steps"]) for r in rows] == [
        ("original", "0"), ("sleepermark", "0"), ("sleepermark", "2"), ("naive", "0"), ("naive", "2")]
    assert all(0.0 <= float(r["bit_acc_trigger"]) <= 1.0 and r["n"] == "10" for r in rows)
    assert (run_dir / "figures" / "bit_accuracy.png").exists()
    (run_dir / "summary.json").unlink()
    assert dt.plot(run_dir) and (run_dir / "summary.json").exists()
    with pytest.raises(AfcuError, match="finished run"):
        dt.main(cfg)


def test_bad_config_fails_before_any_folder(tmp_path):
    with pytest.raises(AfcuError, match="unknown key"):
        dt.resolve({"out": str(tmp_path / "r"), "adversary_step": [1]}, "test")
    with pytest.raises(AfcuError, match="adversary_steps"):
        dt.resolve({"out": str(tmp_path / "r"), "adversary_steps": [-1]}, "test")
    assert not (tmp_path / "r").exists()
