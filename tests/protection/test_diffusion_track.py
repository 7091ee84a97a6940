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


def test_resume_reloads_the_pretrained_model_from_weights_only(tmp_path):
    """A seed cut short is redone from its saved base DDPM (tensors only), giving the same rows."""
    import torch

    base = {"seeds": [0], "timesteps": 10, "pretrain_steps": 20, "codec_steps": 20, "embed_steps": 3,
            "adversary_steps": [0], "n_eval": 10}
    clean = dt.main(dt.resolve({**base, "out": str(tmp_path / "clean")}, "test"))
    resumed = dt.main(dt.resolve({**base, "out": str(tmp_path / "resumed")}, "test"))
    ck = resumed / "checkpoints" / "ddpm_seed0.pt"
    assert set(torch.load(ck, weights_only=True)) == {"encoder", "denoiser"}
    for name in ("results.csv", "FINISHED"):
        (resumed / name).unlink()
    dt.main(dt.resolve({**base, "out": str(tmp_path / "resumed")}, "test"))  # takes the base from ck
    cols = ("method", "bit_acc_trigger", "bit_acc_clean")
    read = lambda d: [tuple(r.get(c) for c in cols) for r in csv.DictReader((d / "results.csv").open())]  # noqa: E731
    assert read(resumed) == read(clean)


def test_a_stop_while_saving_the_base_model_leaves_no_half_written_checkpoint(tmp_path, monkeypatch):
    """A run stopped inside torch.save of the base DDPM leaves no checkpoint, so the resume pre-trains
    again instead of loading a truncated file."""
    import torch

    real_save = torch.save

    def stopped(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        with open(f, "r+b") as fh:
            fh.truncate(16)  # what a stop part-way through the write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", stopped)
    cfg = dt.resolve({"out": str(tmp_path / "run"), "seeds": [0], "timesteps": 10, "pretrain_steps": 2,
                      "codec_steps": 2, "embed_steps": 1, "adversary_steps": [0], "n_eval": 10}, "test")
    with pytest.raises(KeyboardInterrupt):
        dt.main(cfg)
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []
    monkeypatch.setattr(torch, "save", real_save)
    run_dir = dt.main(cfg)  # resumes: pre-trains the base again
    assert torch.load(run_dir / "checkpoints" / "ddpm_seed0.pt", weights_only=True)
