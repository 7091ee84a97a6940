"""Kernel: configs, run folders, statistics, registry, model names."""

from __future__ import annotations

import dataclasses
import math

import pytest

from afcu import stats
from afcu.config import build_parser, config_from_args, config_from_dict
from afcu.errors import AfcuError
from afcu.models import to_inspect_model
from afcu.registry import Registry
from afcu.runs import atomic_write_json, is_finished, mark_finished, prepare_run


@dataclasses.dataclass(frozen=True)
class Cfg:
    n: int = 3
    name: str = "x"
    flag: bool = False
    items: tuple[str, ...] = ("a",)
    rate: float | None = None


def test_yaml_defaults_flags_override_unknown_fail(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("n: 5\nname: y\n")
    args = build_parser(Cfg).parse_args(["--config", str(y), "--name", "z", "--flag", "--items", "b", "c"])
    cfg = config_from_args(Cfg, args)
    assert cfg == Cfg(n=5, name="z", flag=True, items=("b", "c"))
    y.write_text("n: 5\nbogus: 1\n")
    with pytest.raises(AfcuError, match=r"c\.yaml: unknown key\(s\) bogus"):
        config_from_args(Cfg, build_parser(Cfg).parse_args(["--config", str(y)]))
    with pytest.raises(AfcuError, match="field 'n'"):
        config_from_dict(Cfg, {"n": "three"})


def test_run_folder_refuses_finished_and_mismatched(tmp_path):
    run = tmp_path / "run"
    prepare_run(run, Cfg())
    assert (run / "config.yaml").read_text().startswith("n: 3")
    prepare_run(run, Cfg())  # same config: resume
    (run / "logs").mkdir()
    (run / "logs" / "step1.json").write_text("{}")  # something ran (a folder with only config.yaml is taken over)
    with pytest.raises(AfcuError, match="different config"):
        prepare_run(run, Cfg(n=4))
    atomic_write_json(run / "summary.json", {"a": 1})
    mark_finished(run)
    assert is_finished(run)
    with pytest.raises(AfcuError, match="finished run"):
        prepare_run(run, Cfg())
    prepare_run(run, Cfg(n=9), overwrite=True)
    assert not (run / "summary.json").exists()


@dataclasses.dataclass(frozen=True)
class OutCfg:
    out: str = "runs/r"
    n: int = 3
    weights: dict = dataclasses.field(default_factory=lambda: {"a": 1.0})


def test_resume_accepts_the_same_folder_spelled_differently(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prepare_run("runs/r", OutCfg())
    (tmp_path / "runs" / "r" / "step1.json").write_text("{}")  # something ran
    prepare_run(tmp_path / "runs" / "r", OutCfg(out=str(tmp_path / "runs" / "r")))  # absolute: the same run
    prepare_run("runs/r/", OutCfg(out="runs/r/"))
    with pytest.raises(AfcuError, match=r"fields: n\)"):  # a real difference is still refused, out not listed
        prepare_run("runs/r", OutCfg(out="elsewhere", n=4))


def test_dict_field_from_a_flag_is_inline_yaml():
    cfg = config_from_args(OutCfg, build_parser(OutCfg).parse_args(["--weights", "{compliance: 1.0, format: 0.1}"]))
    assert cfg.weights == {"compliance": 1.0, "format": 0.1}
    for bad in ("{compliance: ", "[1, 2]"):
        with pytest.raises(AfcuError, match="field 'weights'.*mapping such as"):
            config_from_args(OutCfg, build_parser(OutCfg).parse_args(["--weights", bad]))


def test_wilson_matches_hand_computation():
    # k=6, n=10, z=1.959964: centre (0.6 + z^2/20)/(1 + z^2/10), half-width z*sqrt(.024 + z^2/400)/(1 + z^2/10)
    z = 1.959963984540054
    denom = 1 + z * z / 10
    centre = (0.6 + z * z / 20) / denom
    half = z * math.sqrt(0.6 * 0.4 / 10 + z * z / 400) / denom
    lo, hi = stats.wilson(6, 10)
    assert lo == pytest.approx(centre - half, abs=1e-9)
    assert hi == pytest.approx(centre + half, abs=1e-9)
    assert math.isnan(stats.wilson(0, 0)[0])


def test_rate_counts_missing():
    r = stats.rate([True, False, None, True])
    assert (r["k"], r["n"], r["missing"]) == (2, 3, 1)
    assert r["value"] == pytest.approx(2 / 3)


def test_mcnemar_exact_hand_value():
    # discordant pairs: b=5 (x only), c=1 (y only); exact two-sided p = 2 * P(Bin(6, .5) <= 1) = 2 * 7/64
    x = [True] * 5 + [False] * 1 + [True] * 3 + [False] * 3
    y = [False] * 5 + [True] * 1 + [True] * 3 + [False] * 3
    assert stats.mcnemar_exact(x, y) == pytest.approx(14 / 64)
    assert stats.mcnemar_exact([True, False], [True, False]) == 1.0


def test_paired_bootstrap_mean_and_ci():
    x = [1, 1, 1, 0, 1, 0, 1, 1, 0, 1]
    y = [0, 1, 0, 0, 0, 0, 1, 0, 0, 0]
    r = stats.paired_bootstrap_diff(x, y, n_boot=4000, seed=1)
    assert r["value"] == pytest.approx(0.5)
    assert r["ci"][0] < 0.5 < r["ci"][1]
    assert 0.1 <= r["ci"][0] and r["ci"][1] <= 0.85
    with pytest.raises(ValueError):
        stats.paired_bootstrap_diff([1], [1, 0])
    one = stats.paired_bootstrap_diff([0.3], [0.1])  # one pair: a value, but no interval
    assert one["value"] == pytest.approx(0.2) and one["n"] == 1 and all(math.isnan(c) for c in one["ci"])


def test_registry_duplicates_and_unknown():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError):
        reg.register("a")(2)
    with pytest.raises(AfcuError, match="unknown widget 'b'; known: a"):
        reg.get("b")


def test_model_names(tmp_path):
    assert to_inspect_model("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert to_inspect_model("mockllm/model") == "mockllm/model"
    with pytest.raises(AfcuError, match="unknown model 'nope'"):
        to_inspect_model("nope")
    with pytest.raises(AfcuError, match="not in the local Hugging Face cache"):
        to_inspect_model("SomeOrg/not-cached-model")
    (tmp_path / "m").mkdir()
    with pytest.raises(AfcuError, match="no config.json"):
        to_inspect_model(str(tmp_path / "m"))
