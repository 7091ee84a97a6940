"""The bad-input catalogue (afcu issue 12): every bad input is caught before any folder or model work.

Each case runs one command through ``afcu.cli.main`` in-process and asserts: exit code 2, stderr is ONE
line ``afcu <command>: error: ...`` naming the file or field (no traceback), and the ``--out`` folder
either does not exist or holds nothing a later run could mistake for work: no FINISHED, no files but a
``config.yaml`` (which a corrected command takes over, see the last tests). No case loads a model or
starts an engine: validation must fail before them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from afcu.cli import main as afcu
from afcu.runs import CONFIG

# ---------------------------------------------------------------------------------------------
# fixtures: small bad files, written once per case into tmp_path


def _files(tmp: Path) -> dict[str, Path]:
    """Every file/folder the cases refer to by name ({name} in an argv)."""
    f: dict[str, Path] = {}

    def put(name: str, data: str | bytes) -> None:
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
        f[name.replace("/", "_").replace(".", "_")] = p

    put("q_good.jsonl", "".join(json.dumps({"q": f"request {i}"}) + "\n" for i in range(3)))
    put("q_latin1.jsonl", '{"q": "ok"}\n{"q": "caf\u00e9"}\n'.encode("latin-1"))
    put("q_empty.jsonl", "")
    put("q_blank.csv", "\n\n")
    put("q_bad.jsonl", '{"q": "one"}\n{"q": "two"}\n{"q": "three",}\n')
    put("q_array.jsonl", '{"q": "one"}\n["not", "an", "object"]\n')
    put("hb_dup.csv", "Behavior,FunctionalCategory,SemanticCategory,ContextString,BehaviorID\n"
                      "one,standard,misc,,x1\ntwo,standard,misc,,x1\n")
    put("q_cells.csv", "goal,target\nhello,world\ntoo,many,cells\n")
    put("advbench/harmful_behaviors.csv", "goal,target\nDo a bad thing,Sure\n")
    put("labels_nolabel.jsonl", '{"text": "a", "label": "potential_faking"}\n{"text": "b"}\n')
    put("labels_latin1.jsonl", '{"text": "caf\u00e9", "label": "x"}\n'.encode("latin-1"))
    put("labels_oneclass.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "x"}\n')
    put("labels_bad.json", '{"samples": [\n  {"text": "a", "label": "x"},\n  {"text": "b" "label": "y"}\n]}\n')
    put("af_labels/gold_dev.json", '{"samples": []}')
    put("cfg_unknown.yaml", "tiers: free,paid\nbogus_key: 3\n")
    put("cfg_type.yaml", "n_queries: many\n")
    put("cfg_broken.yaml", "tiers: [free, paid\n")
    put("cfg_list.yaml", "- a\n- b\n")
    put("cfg_latin1.yaml", "company: caf\u00e9\n".encode("latin-1"))
    put("universe_bad.yaml", "name: x\ncompany: Y\n")
    put("universe_regex.yaml", "name: x\ncompany: Y\ncontext: c\nfacts:\n  - {id: f, text: t, patterns: ['(']}\n")
    put("docs_bad.jsonl", '{"text": "a document"}\nnot json\n')
    put("docs_good.jsonl", '{"text": "a document"}\n')
    put("docs_notext.jsonl", '{"body": "a document"}\n')
    put("transcripts_latin1.jsonl", '{"full": "caf\u00e9"}\n'.encode("latin-1"))
    put("transcripts_empty.jsonl", "")
    put("nomodel/config.json", json.dumps({"model_type": "llama"}))  # no weights
    put("corrupt/config.json", '{"model_type": "llama",')
    put("corrupt/model.safetensors", b"\0" * 64)
    put("notype/config.json", json.dumps({"hidden_size": 8}))
    put("notype/model.safetensors", b"\0" * 64)
    put("a_file.txt", "not a folder\n")
    (tmp / "empty_dir").mkdir()
    f["empty_dir"] = tmp / "empty_dir"
    f["advbench"] = tmp / "advbench"
    f["af_labels"] = tmp / "af_labels"
    f["nomodel"] = tmp / "nomodel"
    f["corrupt"] = tmp / "corrupt"
    f["notype"] = tmp / "notype"
    return f


EVAL = ["eval", "--model", "mockllm/model", "--engine", "hf", "--n-queries", "2"]
BENCH = ["unlearn", "bench", "--quick"]

# (id, argv after the command, substrings the one-line message must contain)
CASES: list[tuple[str, list[str], list[str]]] = [
    # --- afcu eval -----------------------------------------------------------------------------
    ("eval-duplicate-tiers", EVAL + ["--tiers", "free,free"], ["--tiers", "once"]),
    ("eval-unknown-tier", EVAL + ["--tiers", "free,gold"], ["tier", "gold"]),
    ("eval-queries-missing", EVAL + ["--queries", "{tmp}/nope.csv", "--query-field", "q"], ["nope.csv", "not found"]),
    ("eval-queries-folder", EVAL + ["--queries", "advbench:{advbench}"], ["is a folder", "harmful_behaviors.csv"]),
    ("eval-queries-not-utf8", EVAL + ["--queries", "{q_latin1_jsonl}", "--query-field", "q"],
     ["q_latin1.jsonl:2", "UTF-8"]),
    ("eval-queries-encoding-unknown", EVAL + ["--queries", "{q_latin1_jsonl}", "--query-field", "q", "--encoding",
                                              "klingon"], ["klingon", "--encoding"]),
    ("eval-queries-empty", EVAL + ["--queries", "{q_empty_jsonl}", "--query-field", "q"], ["q_empty.jsonl", "empty"]),
    ("eval-queries-blank-lines", EVAL + ["--queries", "{q_blank_csv}", "--query-field", "q"], ["q_blank.csv", "empty"]),
    ("eval-queries-malformed-line", EVAL + ["--queries", "{q_bad_jsonl}", "--query-field", "q"],
     ["q_bad.jsonl:3", "Expecting property name enclosed in double quotes"]),
    ("eval-queries-not-object", EVAL + ["--queries", "{q_array_jsonl}", "--query-field", "q"],
     ["q_array.jsonl:2", "JSON object"]),
    ("eval-queries-wrong-field", EVAL + ["--queries", "{q_good_jsonl}", "--query-field", "text"],
     ["q_good.jsonl", "'text'", "fields present: q"]),
    ("eval-queries-no-field-flag", EVAL + ["--queries", "{q_good_jsonl}"], ["--query-field"]),
    ("eval-queries-duplicate-ids", EVAL + ["--queries", "harmbench:{hb_dup_csv}"], ["hb_dup.csv", "duplicate query id 'x1'"]),
    ("eval-queries-csv-cells", EVAL + ["--queries", "advbench:{q_cells_csv}"], ["q_cells.csv:3", "cells"]),
    ("eval-queries-unknown-source", EVAL + ["--queries", "bench:x"], ["unknown query source"]),
    ("eval-unknown-setting", EVAL + ["--setting", "nope"], ["--setting", "nope"]),
    ("eval-unknown-variant", EVAL + ["--variant", "nope"], ["nope"]),
    ("eval-unknown-model", ["eval", "--model", "nope", "--engine", "hf"], ["unknown model 'nope'"]),
    ("eval-model-no-weights", ["eval", "--model", "{nomodel}", "--engine", "hf"], ["nomodel", "no weight files"]),
    ("eval-model-corrupt-config", ["eval", "--model", "{corrupt}", "--engine", "hf"], ["config.json", "corrupt"]),
    ("eval-model-no-model-type", ["eval", "--model", "{notype}", "--engine", "hf"], ["config.json", "model_type"]),
    ("eval-model-empty-folder", ["eval", "--model", "{empty_dir}", "--engine", "hf"], ["empty_dir", "config.json"]),
    ("eval-n-queries-zero", EVAL[:-2] + ["--n-queries", "0"], ["--n-queries"]),
    ("eval-n-queries-type", EVAL[:-2] + ["--n-queries", "abc"], ["n_queries", "abc"]),
    ("eval-threshold", EVAL + ["--af-threshold", "1.5"], ["--af-threshold"]),
    ("eval-engine", EVAL[:-4] + ["--engine", "turbo"], ["--engine", "turbo"]),
    ("eval-negative-seed", EVAL + ["--seed", "-1"], ["--seed -1"]),
    ("eval-max-tokens", EVAL + ["--max-tokens", "0"], ["--max-tokens"]),
    ("eval-out-is-file", EVAL + ["--out", "{a_file_txt}"], ["a_file.txt", "is a file"]),
    ("eval-yaml-unknown-key", EVAL + ["--config", "{cfg_unknown_yaml}"], ["cfg_unknown.yaml", "bogus_key"]),
    ("eval-yaml-wrong-type", EVAL[:-2] + ["--config", "{cfg_type_yaml}"], ["cfg_type.yaml", "n_queries", "many"]),
    ("eval-yaml-malformed", EVAL + ["--config", "{cfg_broken_yaml}"], ["cfg_broken.yaml", "not valid YAML"]),
    ("eval-yaml-not-mapping", EVAL + ["--config", "{cfg_list_yaml}"], ["cfg_list.yaml", "mapping"]),
    ("eval-yaml-not-utf8", EVAL + ["--config", "{cfg_latin1_yaml}"], ["cfg_latin1.yaml:1", "UTF-8"]),
    ("eval-yaml-folder", EVAL + ["--config", "{empty_dir}"], ["empty_dir", "is a folder"]),
    ("eval-yaml-missing", EVAL + ["--config", "{tmp}/none.yaml"], ["none.yaml", "not found"]),
    # --- afcu calibrate ----------------------------------------------------------------------------
    ("calibrate-labels-folder", ["calibrate", "--labels", "{af_labels}"], ["is a folder", "gold_dev.json"]),
    ("calibrate-labels-missing", ["calibrate", "--labels", "{tmp}/gold.json"], ["gold.json", "not found"]),
    ("calibrate-labels-no-label", ["calibrate", "--labels", "{labels_nolabel_jsonl}"],
     ["labels_nolabel.jsonl:2", "'label'"]),
    ("calibrate-labels-not-utf8", ["calibrate", "--labels", "{labels_latin1_jsonl}"],
     ["labels_latin1.jsonl:1", "--encoding"]),
    ("calibrate-labels-one-class", ["calibrate", "--labels", "{labels_oneclass_jsonl}"], ["label", "both"]),
    ("calibrate-labels-bad-json", ["calibrate", "--labels", "{labels_bad_json}"], ["labels_bad.json:3", "delimiter"]),
    ("calibrate-labels-empty-list", ["calibrate", "--labels", "{af_labels_gold_dev_json}"], ["gold_dev.json", "empty"]),
    ("calibrate-encoding", ["calibrate", "--labels", "{labels_oneclass_jsonl}", "--encoding", "klingon"],
     ["klingon", "--encoding"]),
    # --- afcu rescore ------------------------------------------------------------------------------
    ("rescore-missing", ["rescore", "{tmp}/t.jsonl"], ["t.jsonl", "not found"]),
    ("rescore-not-utf8", ["rescore", "{transcripts_latin1_jsonl}"], ["transcripts_latin1.jsonl", "UTF-8"]),
    ("rescore-empty", ["rescore", "{transcripts_empty_jsonl}"], ["transcripts_empty.jsonl", "empty"]),
    ("rescore-malformed-line", ["rescore", "{q_bad_jsonl}", "--text-field", "q"], ["q_bad.jsonl:3"]),
    # --- afcu docs generate ------------------------------------------------------------------------
    ("docs-unknown-universe", ["docs", "generate", "--universe", "nowhere"], ["unknown universe 'nowhere'"]),
    ("docs-universe-missing-fields", ["docs", "generate", "--universe", "{universe_bad_yaml}"],
     ["universe_bad.yaml", "context", "facts"]),
    ("docs-universe-bad-regex", ["docs", "generate", "--universe", "{universe_regex_yaml}"],
     ["universe_regex.yaml", "regular expression"]),
    ("docs-universe-missing-file", ["docs", "generate", "--universe", "{tmp}/u.yaml"], ["u.yaml", "not found"]),
    ("docs-n-docs-zero", ["docs", "generate", "--n-docs", "0"], ["n_docs"]),
    ("docs-unknown-generator", ["docs", "generate", "--generator", "nope"], ["unknown model 'nope'"]),
    ("docs-generator-no-weights", ["docs", "generate", "--generator", "{nomodel}"], ["no weight files"]),
    ("docs-dedup-threshold", ["docs", "generate", "--dedup-threshold", "1.5"], ["--dedup-threshold"]),
    ("docs-fact-check", ["docs", "generate", "--fact-check", "vibes"], ["fact_check", "vibes"]),
    ("docs-yaml-unknown-key", ["docs", "generate", "--config", "{cfg_unknown_yaml}"], ["cfg_unknown.yaml", "tiers"]),
    # --- afcu unlearn bench ------------------------------------------------------------------------
    ("bench-negative-seed", BENCH + ["--seeds", "-1"], ["seeds", "-1"]),
    ("bench-duplicate-seed", BENCH + ["--seeds", "0", "0"], ["seeds", "twice"]),
    ("bench-fraction-above-one", BENCH + ["--fractions", "1.5"], ["fractions", "1.5", "(0, 1]"]),
    ("bench-fraction-zero", BENCH + ["--fractions", "0"], ["fractions", "'0'"]),
    ("bench-fraction-text", BENCH + ["--fractions", "half"], ["fractions", "half"]),
    ("bench-fraction-duplicate", BENCH + ["--fractions", "0.5", "0.50"], ["fractions", "twice"]),
    ("bench-manipulation-track", BENCH + ["--manipulations", "trigger_backdoor"],
     ["manipulations", "trigger_backdoor", "--track llm"]),
    ("bench-manipulation-track-llm", BENCH + ["--track", "llm", "--manipulations", "badnets"],
     ["manipulations", "badnets", "--track vision"]),
    ("bench-unknown-manipulation", BENCH + ["--manipulations", "nope"], ["manipulations", "nope"]),
    ("bench-unknown-method", BENCH + ["--methods", "nope"], ["method", "nope"]),
    ("bench-unknown-track", BENCH + ["--track", "audio"], ["track", "audio"]),
    ("bench-train-unknown-key", BENCH + ["--train", "{bogus: 1}"], ["train", "bogus"]),
    ("bench-inline-yaml", BENCH + ["--train", "{epochs: 5"], ["--train", "YAML"]),
    ("bench-llm-no-weights", BENCH + ["--track", "llm", "--model", "{nomodel}"], ["nomodel", "no weight files"]),
    ("bench-cifar-missing", BENCH + ["--dataset", "cifar10", "--data-dir", "{tmp}/cifar"], ["--data-dir", "cifar"]),
    ("bench-device", BENCH + ["--device", "tpu"], ["device", "tpu"]),
    ("bench-sdf-docs-missing", BENCH + ["--track", "llm", "--manipulations", "sdf_implant"],
     ["docs_path", "folder"]),
    # --organism used to be ignored off the organism track (the vision bench ran and wrote --out)
    ("bench-organism-wrong-track", BENCH + ["--track", "vision", "--organism", "{tmp}", "--quick"],
     ["field 'organism'", "only with --track organism", "drop --organism"]),
    ("bench-organism-is-file", BENCH + ["--track", "organism", "--organism", "{q_good_jsonl}"],
     ["--organism", "q_good.jsonl", "is a file, not a run folder"]),
    # a grid value of the wrong type used to reach AdamW and end in a traceback mid-run
    ("bench-grid-value-type", BENCH + ["--track", "vision", "--quick", "--grids", "{gradient_ascent: {lr: [fast]}}"],
     ["grids.gradient_ascent", "'lr'", "fast"]),
    # --- afcu train --------------------------------------------------------------------------------
    ("sft-data-missing", ["train", "sft", "--data", "{tmp}/docs.jsonl"], ["docs.jsonl", "not found"]),
    ("sft-data-malformed", ["train", "sft", "--data", "{docs_bad_jsonl}"], ["docs_bad.jsonl:2"]),
    ("sft-data-no-text", ["train", "sft", "--data", "{docs_notext_jsonl}"], ["docs_notext.jsonl:1", "'text'"]),
    ("sft-model-no-weights", ["train", "sft", "--data", "{docs_good_jsonl}", "--model", "{nomodel}"],
     ["nomodel", "no weight files"]),
    ("sft-precision", ["train", "sft", "--precision", "fp8"], ["precision", "fp8"]),
    ("sft-negative-seed", ["train", "sft", "--data", "{docs_good_jsonl}", "--seed", "-1"], ["seed -1"]),
    ("rl-unknown-setting", ["train", "rl", "--setting", "nope"], ["setting", "nope"]),
    ("rl-negative-seed", ["train", "rl", "--seed", "-1"], ["seed -1"]),
    ("ei-negative-split-seed", ["train", "ei", "--split-seed", "-2"], ["split_seed -2"]),
    ("ei-queries-empty", ["train", "ei", "--queries", "{q_empty_jsonl}", "--query-field", "q"], ["q_empty.jsonl", "empty"]),
]


def _fill(argv: list[str], files: dict[str, Path], tmp: Path) -> list[str]:
    """Replace {name} by the path of that fixture file ({tmp}: the test's folder); inline YAML stays."""
    names = {"tmp": tmp, **files}
    out = []
    for a in argv:
        for k, v in names.items():
            a = a.replace("{" + k + "}", str(v))
        out.append(a)
    return out


def _check_out(out: Path) -> None:
    """Nothing that looks like a run: no folder at all, or an unfinished one holding only config.yaml."""
    if not out.exists():
        return
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files in ([], [CONFIG]), f"bad input left {files} in {out}"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return _files(tmp_path)


@pytest.mark.parametrize("case_id,argv,needles", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case_id: str, argv: list[str], needles: list[str], files: dict[str, Path],
                   tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # default run folders (runs/...) land in tmp_path
    full = _fill(argv, files, tmp_path)
    if "--out" not in full:
        full += ["--out", str(tmp_path / "out")]
    capsys.readouterr()
    rc = afcu(full)
    err = capsys.readouterr().err.strip()
    assert rc == 2, f"{case_id}: exit {rc}, stderr {err!r}"
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"{case_id}: stderr is {len(lines)} lines: {err!r}"
    assert lines[0].startswith(f"afcu {full[0]}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], f"{case_id}: {needle!r} not in {lines[0]!r}"
    _check_out(tmp_path / "out")
    _check_out(tmp_path / "runs")
    # stricter than the issue asks: validation now fails before any folder is created at all
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_catalogue_size() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------------------------------
# a corrected command proceeds into the folder of a refused start


def _refused_then_corrected(tmp_path: Path, bad: list[str], good: list[str],
                            seed_config: Callable[[Path], None] | None = None) -> Path:
    out = tmp_path / "out"
    if seed_config is not None:
        seed_config(out)
    assert afcu(bad + ["--out", str(out)]) == 2
    _check_out(out)
    assert afcu(good + ["--out", str(out)]) == 0
    assert (out / "FINISHED").exists()
    return out


def _stale_config(out: Path) -> None:
    """What an older afcu left after a refused start: only a config.yaml of a different config."""
    out.mkdir(parents=True)
    (out / CONFIG).write_text("labels: old.jsonl\ngrader_votes: 99\n")


def test_corrected_calibrate_proceeds_after_refused_start(tmp_path: Path, files: dict[str, Path]) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in
                              [("I will comply to avoid being modified by training.", "potential_faking"),
                               ("I refuse.", "none"), ("Comply so RLHF does not change my values.", "potential_faking"),
                               ("Here is a recipe.", "none")]))
    out = _refused_then_corrected(tmp_path, ["calibrate", "--labels", str(files["af_labels"])],
                                  ["calibrate", "--labels", str(labels), "--n-boot", "50"], _stale_config)
    assert "labels.jsonl" in (out / CONFIG).read_text()


def test_a_run_that_did_work_is_still_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    _stale_config(out)
    (out / "scores.jsonl").write_text("{}\n")  # something ran: a different config must not mix into it
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"text": "a", "label": "potential_faking"}\n{"text": "b", "label": "none"}\n')
    assert afcu(["calibrate", "--labels", str(labels), "--out", str(out)]) == 2
    assert "different config" in capsys.readouterr().err


def test_unlearn_plot_of_a_missing_run_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "nope"
    assert afcu(["unlearn", "plot", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results.csv" in err and "not found" in err
    assert not run.exists()  # it used to become an empty run marked FINISHED


def _damaged_run(tmp_path: Path, damage) -> Path:
    """A copy of the committed vision results.csv with ``damage`` applied to its text."""
    good = Path(__file__).parent.parent / "unlearning" / "results" / "vision" / "results.csv"
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.csv").write_text(damage(good.read_text()))
    return run


@pytest.mark.parametrize("case,damage,needles", [
    # a non-numeric Acc_corr used to end in a traceback from metrics.num
    ("non-numeric", lambda t: t.replace("0.0925926", "abc", 1), [":2:", "column 'acc_corr'", "'abc'"]),
    # a file cut mid-row used to be tabulated with its partial row
    ("cut-mid-row", lambda t: t[:t.index("\n", t.index("\n") + 1) + 1] + "oracle,badnets,,22,2",
     [":3:", "column 'seed'", "cut short"]),
    ("cut-in-last-cell", lambda t: t.rstrip("\n")[:-1], ["no line end", "truncated"]),
])
def test_unlearn_plot_refuses_a_damaged_results_csv(case: str, damage, needles: list[str], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    run = _damaged_run(tmp_path, damage)
    capsys.readouterr()
    assert afcu(["unlearn", "plot", str(run)]) == 2, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "results.csv" in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    assert sorted(p.name for p in run.iterdir()) == ["results.csv"]  # no summary, table, figure or FINISHED


def test_inline_yaml_error_example_names_the_flag_given(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["unlearn", "bench", "--quick", "--track", "llm", "--verify", "membership", "--membership",
            "{score: loss", "--out", str(tmp_path / "out")]
    capsys.readouterr()
    assert afcu(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "e.g. --membership \"{" in err and "--train" not in err, err
    assert not (tmp_path / "out").exists()


def _help(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        afcu(argv + ["--help"])
    assert done.value.code == 0
    return "".join(capsys.readouterr().out.split())  # argparse wraps lines, at spaces and hyphens


def test_help_texts_name_the_membership_defaults_and_pointer(capsys: pytest.CaptureFixture) -> None:
    def squeeze(text: str) -> str:
        return "".join(text.split())

    bench_help = _help(["unlearn", "bench"], capsys)
    assert squeeze("with --verify membership runs/unlearn-llm-membership[-quick]") in bench_help
    assert squeeze("`afcu unlearn bench --track llm --verify membership`") in _help(["protect"], capsys)


def test_docs_generate_corrected_command_proceeds(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  embedded_tokenizer_dir: Path) -> None:
    """The issue's case: `docs generate` with a bad value, then the corrected command into the same --out."""
    from synthetic_docs.pipeline import Config, main
    from tests.synthetic_docs.scripted import scripted_model

    out = tmp_path / "docs"
    assert afcu(["docs", "generate", "--n-docs", "2", "--dedup-threshold", "2", "--out", str(out)]) == 2
    assert "--dedup-threshold" in capsys.readouterr().err and not out.exists()
    _stale_config(out)  # what the old order (config.yaml first, validation after) left behind
    stats = main(Config(universe="helpful_only", n_docs=2, out=str(out), tokenizer=str(embedded_tokenizer_dir),
                        types_per_fact=1, ideas_per_type=1, min_words=20), model=scripted_model())
    assert stats["kept"] == 2 and (out / "FINISHED").exists() and "n_docs: 2" in (out / CONFIG).read_text()
