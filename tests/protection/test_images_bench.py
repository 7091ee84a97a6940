"""The images protection bench end to end on a tiny config, and the unlearning-bench manipulations."""

from __future__ import annotations

import csv

import pytest
import torch

from afcu.errors import AfcuError
from protection import images_track
from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
from unlearning.vision import load_digits_splits

TINY = {"seeds": [0], "methods": ["em_class", "taggants"], "eps": [0.25], "labellings": ["digit", "parity"],
        "epochs": 1, "em": {"rounds": 1, "steps": 2, "train_steps": 2},
        "taggants": {"steps": 2, "n_clean_models": 2, "surrogate_epochs": 1}}  # FPR over 20: test_images_taggants


def test_bench_writes_rows_and_resumes(tmp_path):
    cfg = images_track.resolve({**TINY, "out": str(tmp_path / "run")}, "test")
    run = images_track.main(cfg)
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert set(images_track.COLUMNS[:9]) <= set(rows[0])
    by = {(r["method"], r["labelling"]): r for r in rows}
    assert set(by) == {("clean", "digit"), ("clean", "parity"), ("em_class", "digit"), ("em_class", "parity"),
                       ("taggants", "digit"), ("taggants_fpr", "digit")}
    em = by[("em_class", "digit")]
    assert float(em["linf"]) <= 0.25 + 1e-6 and 0 < float(em["pixel_frac"]) <= 1
    assert float(em["clean_acc"]) == float(by[("clean", "digit")]["clean_acc"])
    assert 0 < float(by[("taggants", "digit")]["p_value"]) <= 1
    assert int(by[("taggants_fpr", "digit")]["n_models"]) == 2
    assert (run / "summary.json").exists() and (run / "figures" / "accuracy.png").exists()
    # resume: drop the last row and the finished marker; only that row is recomputed
    (run / "FINISHED").unlink()
    text = (run / "results.csv").read_text().splitlines()
    (run / "results.csv").write_text("\n".join(text[:-1]) + "\n")
    images_track.main(cfg)
    again = list(csv.DictReader((run / "results.csv").open()))
    assert len(again) == len(rows) and again[:-1] == rows[:-1]
    assert images_track.plot(run)


def test_bad_config_fails_before_the_run_folder(tmp_path):
    with pytest.raises(AfcuError, match="field 'em'"):
        images_track.resolve({"em": {"bogus": 1}, "out": str(tmp_path / "r")}, "cfg.yaml")
    with pytest.raises(AfcuError, match="methods"):
        images_track.resolve({"methods": ["nope"], "out": str(tmp_path / "r")}, "cfg.yaml")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("override, field", [
    ({"seeds": [-1]}, "seeds"), ({"seeds": [0, 0]}, "seeds"), ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
    ({"device": "tpu"}, "device"), ({"taggants": {"eps": 0.0}}, "taggants.eps"),
    ({"taggants": {"alpha": 1.5}}, "taggants.alpha"), ({"taggants": {"budget": 0.0}}, "taggants.budget"),
])
def test_numbers_that_would_crash_or_degenerate_are_refused_first(tmp_path, override, field):
    """Each once crashed mid-run or ran to a meaningless table (a fresh user's check of the quick bench)."""
    with pytest.raises(AfcuError, match=f"field '{field}'"):
        images_track.resolve({"quick": True, **override, "out": str(tmp_path / "r")}, "cfg.yaml")
    assert not (tmp_path / "r").exists()


def test_em_class_manipulation_protects_one_class():
    train, _, test = load_digits_splits(0)
    md = MANIPULATIONS.get("em_class")(train, test, ManipulationConfig(target_class=2, n_manipulated=50), 0)
    y = train.tensors["y"]
    changed = (md.train.tensors["x"] - train.tensors["x"]).flatten(1).abs().amax(1) > 0
    ids = set(md.train.ids[changed.numpy()].tolist())
    assert ids <= set(md.manipulated_ids.tolist()) and len(md.manipulated_ids) == 50
    assert (y[torch.as_tensor(changed)] == 2).all()
    assert (md.tests["corr"].tensors["y"] == 2).all() and (md.tests["retain"].tensors["y"] != 2).all()


def test_taggants_manipulation_reports_ownership_p(monkeypatch):
    from types import SimpleNamespace

    from protection import manipulations
    from unlearning.vision_track import VisionTrack

    monkeypatch.setattr(manipulations, "BENCH_TAGGANTS", {"steps": 2, "surrogate_epochs": 1})
    cfg = SimpleNamespace(device="cpu", dataset="digits", data_dir="", train={"epochs": 1}, manipulation={})
    track = VisionTrack(cfg)
    md = track.manipulate("taggants", 0)
    assert abs(len(md.manipulated_ids) - 0.05 * len(md.train)) <= 5  # 5% budget, rounded per key class
    model = track.task.fit(track.task.new_model(0), md.train, seed=0)
    out = track.evaluate(model, md, "taggants")
    assert 0 < out["ownership_p"] <= 1 and out["acc_corr"] == out["acc_retain"]
