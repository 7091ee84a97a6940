"""The sweep: results.csv rows, resume skips finished cells, fixed seeds reproduce, CLI errors."""

from __future__ import annotations

import pytest

from afcu.errors import AfcuError
from afcu.runs import FINISHED
from unlearning import bench
from unlearning.metrics import read_rows, rows_to_csv

TIMING = {"time_s", "passes", "forward", "backward"}


def _cfg(out, **kw):
    data = {"track": "vision", "out": str(out), "seeds": [0], "fractions": ["single", "1.0"],
            "methods": ["ssd", "gradient_ascent", "oracle"], "manipulations": ["badnets"],
            "manipulation": {"n_manipulated": 40}, "sizes": {"badnets": [40]}, "train": {"epochs": 2},
            "method": {"forget_epochs": 1}, "grids": {"ssd": {"alpha": [1.0, 10.0]}}}
    data.update(kw)
    return bench.resolve(data, "test")


def test_sweep_writes_rows_and_resumes_only_missing_cells(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path / "run")
    run_dir = bench.main(cfg)
    rows = read_rows(run_dir / "results.csv")
    assert {(r["method"], r["fraction"]) for r in rows} == {
        ("original", ""), ("oracle", ""), ("ssd", "single"), ("ssd", "1.0"),
        ("gradient_ascent", "single"), ("gradient_ascent", "1.0")}
    for col in ("acc_corr", "acc_retain", "asr", "utility", "time_s", "passes"):
        assert all(r[col] != "" for r in rows if r["method"] not in ("original",)), col
    assert (run_dir / "figures" / "badnets_n40.png").exists() and (run_dir / "summary.json").exists()
    assert any(r["chosen"].startswith("alpha=") for r in rows if r["method"] == "ssd")
    assert all(r["n_dampened"] != "" and 0 <= float(r["frac_dampened"]) <= 1 for r in rows if r["method"] == "ssd")

    # simulate an interruption after all but the last cell
    (run_dir / FINISHED).unlink()
    (run_dir / "results.csv").write_text(rows_to_csv(rows[:-1]))
    calls = []
    real = bench.select_and_run

    def spy(method, *a, **kw):
        calls.append(method)
        return real(method, *a, **kw)

    monkeypatch.setattr(bench, "select_and_run", spy)
    bench.main(cfg)
    assert calls == [rows[-1]["method"]]
    assert len(read_rows(run_dir / "results.csv")) == len(rows)
    with pytest.raises(AfcuError, match="finished run"):
        bench.main(cfg)


def test_fixed_seed_reproduces_numbers(tmp_path):
    runs = [read_rows(bench.main(_cfg(tmp_path / f"r{i}", methods=["assd", "npo"])) / "results.csv")
            for i in range(2)]
    strip = [[{k: v for k, v in r.items() if k not in TIMING} for r in rows] for rows in runs]
    assert strip[0] == strip[1]


def test_sizes_are_an_axis_with_one_figure_and_summary_each(tmp_path):
    cfg = _cfg(tmp_path / "sz", methods=["assd", "oracle"], fractions=["1.0"], sizes={"badnets": [20, 40]})
    run_dir = bench.main(cfg)
    rows = read_rows(run_dir / "results.csv")
    assert sorted({r["n_manipulated"] for r in rows}) == ["20", "40"]
    assert {(r["method"], r["n_manipulated"]) for r in rows} == {(m, n) for m in ("original", "oracle", "assd")
                                                                  for n in ("20", "40")}
    summary = (run_dir / "summary.json").read_text()
    assert '"badnets_n20"' in summary and '"badnets_n40"' in summary
    for n in (20, 40):
        assert (run_dir / "figures" / f"badnets_n{n}.png").exists()
        assert (run_dir / "checkpoints" / f"original_badnets_n{n}_seed0.pt").exists()


def test_method_args_are_validated_by_the_methods_dataclass(tmp_path):
    cfg = _cfg(tmp_path / "ma", method_args={"npo": {"beta": 0.3}, "ssd": {"reference": "retain"}})
    assert cfg.method_args["npo"] == {"beta": 0.3}
    with pytest.raises(AfcuError, match="method_args.npo.*unknown key.*betta"):
        _cfg(tmp_path / "x", method_args={"npo": {"betta": 0.3}})
    with pytest.raises(AfcuError, match="reference"):
        _cfg(tmp_path / "x", method_args={"ssd": {"reference": "everything"}})
    with pytest.raises(AfcuError, match="method_args"):
        _cfg(tmp_path / "x", method_args={"nope": {}})
    from unlearning.methods import METHODS

    assert bench.BenchConfig().methods == METHODS.names()


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(AfcuError, match="unknown unlearning method"):
        _cfg(tmp_path / "x", methods=["nope"])
    with pytest.raises(AfcuError, match="grids"):
        _cfg(tmp_path / "x", grids={"ssd": {"alhpa": [1]}})
    with pytest.raises(AfcuError, match="unknown key"):
        bench.resolve({"track": "vision", "fractoins": ["0.1"]}, "test")


def test_resume_skips_a_group_whose_manipulation_gives_a_smaller_s_m(tmp_path, monkeypatch):
    """em_class caps S_m at the class, taggants use a budget: n_manipulated is then below the configured
    size, and a resume must still find the finished cells (not redo them and append duplicates)."""
    real_make = bench.make_track

    def capped_track(cfg):
        track = real_make(cfg)
        real_manipulate = track.manipulate

        def manipulate(name, seed, size=None):
            md = real_manipulate(name, seed, size)
            md.manipulated_ids = md.manipulated_ids[:30]  # fewer than the configured 40
            return md

        track.manipulate = manipulate
        return track

    monkeypatch.setattr(bench, "make_track", capped_track)
    cfg = _cfg(tmp_path / "run", methods=["assd", "oracle"], fractions=["1.0"])
    run_dir = bench.main(cfg)
    rows = read_rows(run_dir / "results.csv")
    assert {r["n_manipulated"] for r in rows} == {"30"} and {r["size"] for r in rows} == {"40"}
    (run_dir / FINISHED).unlink()
    calls = []
    monkeypatch.setattr(bench, "select_and_run", lambda *a, **kw: calls.append(a[0]))
    bench.main(cfg)
    assert calls == [] and read_rows(run_dir / "results.csv") == rows
