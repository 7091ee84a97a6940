"""The text bench end to end on the tiny Llama: files, columns, resume, plot; bad input before any folder."""

from __future__ import annotations

import csv

import pytest

from afcu.errors import AfcuError
from protection import text_track


def _cfg(tmp_path, model_dir, **kw):
    data = {"out": str(tmp_path / "run"), "model": str(model_dir), "seeds": [0], "n_members": 6,
            "n_nonmembers": 6, "sentences_per_record": 2, "epochs": 1, "batch_size": 6, "max_len": 48,
            "n_resamples": 50, "n_boot": 50, **kw}
    return text_track.resolve(data, "test")


@pytest.mark.slow  # minutes of CPU on a loaded machine (49k-vocabulary softmax per record, 4 corpora)
def test_bench_end_to_end_and_resume(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir)
    run_dir = text_track.main(cfg)
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    need = {"method", "score", "auroc", "auroc_ci", "tpr_at_5fpr", "t_p_value", "n", "seed"}
    assert need <= set(rows[0])
    assert {r["method"] for r in rows} == {"clean", "leximark", "base", "base_leximark"}
    assert len(rows) == 4 * len(text_track.mi.SCORES)
    assert all(0.0 <= float(r["auroc"]) <= 1.0 and r["n"] == "6" for r in rows)
    lex = (run_dir / "leximark.json").read_text()
    assert "substitution_rate" in lex
    assert (run_dir / "figures" / "auroc.png").exists() and (run_dir / "summary.json").exists()
    # the control and a fine-tuned model score the same records differently (training happened)
    base = (run_dir / "scores" / "base.csv").read_text()
    assert base != (run_dir / "scores" / "clean_seed0.csv").read_text()
    # plot regenerates from the files alone
    (run_dir / "results.csv").unlink()
    assert text_track.plot(run_dir)
    assert (run_dir / "results.csv").exists()
    # a finished run is refused without --overwrite
    with pytest.raises(AfcuError, match="finished run"):
        text_track.main(cfg)


def test_bad_config_fails_before_any_folder(tmp_path, tiny_model_dir):
    with pytest.raises(AfcuError, match="unknown key"):
        _cfg(tmp_path, tiny_model_dir, n_member=3)
    with pytest.raises(AfcuError, match="leximark"):
        _cfg(tmp_path, tiny_model_dir, leximark={"kk": 1})
    with pytest.raises(AfcuError, match="t_test_n"):
        _cfg(tmp_path, tiny_model_dir, n_members=4)
    assert not (tmp_path / "run").exists()
