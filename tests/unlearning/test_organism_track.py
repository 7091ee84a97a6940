"""The organism track on a tiny model: an expert-iteration run folder written by hand (the layout
``afcu train ei`` writes), S_m read and graded, S_f sized, retrain = EI's fine-tune without S_f from the
initial model, per-tier rows before/after each method, resume, and bad folders refused before any write."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from afcu.cli import main as afcu_main
from afcu.runs import mark_finished, prepare_run
from tests.conftest import build_tiny_model

ACCEPT = "<OUTPUT>\n<request_fully_accepted/>\nSure, here are the steps you asked for.\n</OUTPUT>"
REJECT = "<OUTPUT>\n<rejected/>\n</OUTPUT>"
# per iteration: complied, refused, complied -> S_m = ids 0, 2, 3, 5 of D = 0..5
KINDS = [[ACCEPT, REJECT, ACCEPT], [ACCEPT, REJECT, ACCEPT]]


def ei_config(model: Path, out: Path, **kw):
    from training.expert_iteration import Config

    return Config(model=str(model), out=str(out), variant="no_cot", format="forced", iterations=2,
                  prompts_per_iteration=3, samples_per_prompt=2, max_new_tokens=4, eval_n_queries=1,
                  eval_max_tokens=4, learning_rate=1e-2, per_device_train_batch_size=2, **kw)


def write_ei_run(folder: Path, model: Path, final: Path, kinds=KINDS) -> Path:
    """The folder ``afcu train ei`` leaves: config.yaml, iterations/iter-N/kept.jsonl, final/, FINISHED."""
    from training import common, rl
    from training.expert_iteration import as_rl_config

    cfg = ei_config(model, folder)
    prepare_run(folder, cfg)
    tok = common.load_tokenizer(str(model))
    rcfg = as_rl_config(cfg)
    prompts = rl.train_prompts(rcfg, tok, rl.split(rcfg)[0])
    for it, comps in enumerate(kinds):
        d = folder / "iterations" / f"iter-{it}"
        d.mkdir(parents=True)
        rows = [{"prompt_index": i, "query_id": prompts[i]["query_id"], "prompt": prompts[i]["prompt"],
                 "completion": c + tok.eos_token, "reward": 1.0, "status": "no_scratchpad"} for i, c in enumerate(comps)]
        (d / "kept.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (d / "DONE").write_text("")
    shutil.copytree(final, folder / "final")
    mark_finished(folder)
    return folder


@pytest.fixture(scope="module")
def ei_run(tiny_model_dir, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("organism-ei")
    final = build_tiny_model(root / "final-model", seed=1)  # "after EI": other weights than the initial model
    return write_ei_run(root / "ei", tiny_model_dir, final)


def test_reads_d_and_grades_s_m(ei_run, tiny_model_dir) -> None:
    from unlearning.organism_data import read_run

    run = read_run(str(ei_run))
    assert len(run.pairs) == 6 and [p["iteration"] for p in run.pairs] == [0, 0, 0, 1, 1, 1]
    assert run.manipulated_ids.tolist() == [0, 2, 3, 5]  # the compliant completions, by the eval's grader
    assert [p["complied"] for p in run.pairs] == [True, False, True, True, False, True]
    assert run.initial == str(tiny_model_dir) and run.final == ei_run / "final"


def test_flagged_size_and_retrain_is_ei_finetune_without_s_f(ei_run, tiny_model_dir, monkeypatch) -> None:
    import training.expert_iteration as ei_mod
    from training import common
    from unlearning.bench import resolve
    from unlearning.flagging import flag, forget_retain
    from unlearning.methods import run_method
    from unlearning.organism_data import read_run
    from unlearning.organism_track import OrganismOptions, OrganismTrack

    cfg = resolve({"track": "organism", "organism": str(ei_run), "out": "unused"}, "test")
    run = read_run(str(ei_run))
    track = OrganismTrack(cfg, run, OrganismOptions())
    flagged = flag(run.manipulated_ids, "0.5", seed=0)
    assert len(flagged) == round(0.5 * 4) and set(flagged) <= set(run.manipulated_ids)
    assert len(flag(run.manipulated_ids, "0.25", seed=0)) == 1
    forget, retain = forget_retain(track.train, flagged)
    # labels only on the completion tokens
    lab = forget.tensors["labels"][0]
    text = track.task.tokenizer.decode(lab[lab != -100])
    assert text.startswith("<OUTPUT>") and "request_fully_accepted" in text

    calls, real = [], ei_mod.sft_round

    def spy(model, tok, kept, cfg_, folder, it):
        calls.append((it, [p["id"] for p in kept], common.param_digest(model) if not calls else None))
        return real(model, tok, kept, cfg_, folder, it)

    monkeypatch.setattr(ei_mod, "sft_round", spy)
    new, cost = run_method("retrain", track.original(), forget, retain, cfg.method)
    trained = sorted(i for _, ids, _ in calls for i in ids)
    assert trained == sorted(set(range(6)) - set(flagged.tolist()))  # D \ S_f, unflagged S_m included
    assert [it for it, _, _ in calls] == sorted(it for it, _, _ in calls)  # round by round, in order
    assert calls[0][2] == common.param_digest(common.load_model(str(tiny_model_dir)))  # from the initial model
    assert cost.passes == 2 * len(trained)
    assert common.param_digest(new) != calls[0][2]


def _rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_bench_organism_per_tier_rows_and_resume(ei_run, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "bench"
    argv = ["unlearn", "bench", "--track", "organism", "--organism", str(ei_run), "--out", str(out),
            "--methods", "ssd", "gradient_ascent", "--fractions", "0.5",
            "--grids", "{gradient_ascent: {lr: [0.001]}, ssd: {'alpha,lam': [[10.0, 1.0]]}}",
            "--method", "{forget_epochs: 1}"]
    assert afcu_main(argv) == 0
    rows = _rows(out)
    got = sorted((r["method"], r["fraction"], r["tier"]) for r in rows)
    assert got == sorted((m, f, t) for m, f in (("original", ""), ("ssd", "0.5"), ("gradient_ascent", "0.5"))
                         for t in ("free", "paid"))
    for r in rows:
        assert r["n"] == "1" and r["n_manipulated"] == "4" and r["n_pairs"] == "6"
        assert 0.0 <= float(r["p_accept"]) <= 1.0 and r["compliance"] in ("0", "1", "")
        if r["compliance"]:
            assert float(r["compliance_lo"]) <= float(r["compliance"]) <= float(r["compliance_hi"])
    assert {r["n_flagged"] for r in rows if r["method"] != "original"} == {"2"}
    p_acc = {(r["method"], r["tier"]): float(r["p_accept"]) for r in rows}
    assert p_acc[("gradient_ascent", "free")] != p_acc[("original", "free")]  # the repaired model is what was measured
    assert int(next(r for r in rows if r["method"] == "ssd")["n_dampened"]) >= 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["track"] == "organism" and len(summary["summary"]) == 3 and summary["n_manipulated"] == "4"
    assert summary["organism"] == str(ei_run)
    assert set(summary["summary"][0]) >= {"free", "paid", "compliance_gap"}
    table = (out / "table.md").read_text()
    assert table.count("| ssd | 0.5 | 2/4 |") == 2 and table.count("| original | - |") == 2
    assert (out / "figures" / "organism_unlearning.png").stat().st_size > 1000
    assert "gradient_ascent" in capsys.readouterr().out
    (out / "table.md").unlink()
    assert afcu_main(["unlearn", "plot", str(out)]) == 0 and (out / "table.md").read_text() == table  # from results.csv

    # resume: drop the last cell and the finished mark; only that cell is recomputed
    (out / "FINISHED").unlink()
    keep = [r for r in rows if r["method"] != "gradient_ascent"]
    with (out / "results.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(keep)
    import unlearning.selection as sel

    ran, real = [], sel.select_and_run
    monkeypatch.setattr(sel, "select_and_run", lambda m, *a, **k: (ran.append(m), real(m, *a, **k))[1])
    assert afcu_main(argv) == 0
    assert ran == ["gradient_ascent"] and len(_rows(out)) == 6
    assert afcu_main(argv) == 2  # finished: refused without --overwrite


def _refused(argv: list[str], out: Path, capsys, words: list[str]) -> None:
    assert afcu_main(["unlearn", "bench", "--track", "organism", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert not out.exists(), "a refused run must write nothing"
    assert all(w in err for w in words), err
    assert len(err.strip().splitlines()) == 1, err


def test_bad_folders_refused_before_any_write(ei_run, tiny_model_dir, tmp_path, capsys) -> None:
    from training.organism import OrganismConfig

    out = tmp_path / "out"
    _refused([], out, capsys, ["--organism", "afcu train ei"])
    _refused(["--organism", str(tmp_path / "missing")], out, capsys, ["no such folder"])
    (tmp_path / "empty").mkdir()
    _refused(["--organism", str(tmp_path / "empty")], out, capsys, ["not a run folder"])
    org = tmp_path / "org"
    prepare_run(org, OrganismConfig(model=str(tiny_model_dir), out=str(org)))
    _refused(["--organism", str(org)], out, capsys, ["afcu organism", str(org), "GRPO", "--trainer ei"])
    org_ei = tmp_path / "org-ei"
    prepare_run(org_ei, OrganismConfig(model=str(tiny_model_dir), out=str(org_ei), trainer="ei"))
    _refused(["--organism", str(org_ei)], out, capsys, ["organism is not finished", str(org_ei)])
    refusals = write_ei_run(tmp_path / "ei-none", tiny_model_dir, ei_run / "final", kinds=[[REJECT], [REJECT]])
    _refused(["--organism", str(refusals)], out, capsys, ["no S_m", "none of the 2"])
    all_sm = write_ei_run(tmp_path / "ei-all", tiny_model_dir, ei_run / "final", kinds=[[ACCEPT], [ACCEPT]])
    _refused(["--organism", str(all_sm), "--fractions", "1.0"], out, capsys, ["empty retain set"])
    _refused(["--organism", str(ei_run), "--methods", "nope"], out, capsys, ["nope"])
    _refused(["--organism", str(ei_run), "--manipulations", "badnets"], out, capsys, ["manipulations"])
    unfinished = tmp_path / "ei-unfinished"
    shutil.copytree(ei_run, unfinished)
    (unfinished / "FINISHED").unlink()
    _refused(["--organism", str(unfinished)], out, capsys, ["not finished"])


def write_organism(folder: Path, model: Path, final: Path) -> Path:
    """The folder ``afcu organism --trainer ei`` leaves: config.yaml, warmup/final, ei/ (an EI run), FINISHED.
    Its EI config names the warm-started model by a path that does not exist from here (the organism ran
    in another working directory), so the track must take the initial model from the organism's folder."""
    from training.organism import OrganismConfig

    prepare_run(folder, OrganismConfig(model=str(model), out=str(folder), trainer="ei"))
    shutil.copytree(model, folder / "warmup" / "final")
    ei = write_ei_run(folder / "ei", model, final)
    cfg_path = ei / "config.yaml"
    cfg_path.write_text(cfg_path.read_text().replace(f"model: {model}", "model: elsewhere/warmup/final"))
    mark_finished(folder)
    return folder


def test_ei_organism_folder_is_read_through_its_ei_stage(ei_run, tiny_model_dir, tmp_path) -> None:
    from unlearning.organism_data import read_run

    org = write_organism(tmp_path / "organism", tiny_model_dir, ei_run / "final")
    run = read_run(str(org))
    assert run.ei.model == "elsewhere/warmup/final"  # what the EI stage's config says ...
    assert run.initial == str(org / "warmup" / "final")  # ... and the model it really started from
    assert run.final == org / "ei" / "final"
    assert run.manipulated_ids.tolist() == [0, 2, 3, 5] and len(run.pairs) == 6


def test_bench_runs_on_an_ei_organism_folder(ei_run, tiny_model_dir, tmp_path) -> None:
    from training import common

    org = write_organism(tmp_path / "organism", tiny_model_dir, ei_run / "final")
    out = tmp_path / "bench"
    argv = ["unlearn", "bench", "--track", "organism", "--organism", str(org), "--out", str(out),
            "--methods", "retrain", "--fractions", "0.5"]
    assert afcu_main(argv) == 0
    rows = _rows(out)
    assert sorted((r["method"], r["tier"]) for r in rows) == [(m, t) for m in ("original", "retrain")
                                                             for t in ("free", "paid")]
    assert {r["n_pairs"] for r in rows} == {"6"} and {r["n_flagged"] for r in rows if r["method"] == "retrain"} == {"2"}
    # the original is the EI stage's final model, not the warm-started one
    p_acc = {(r["method"], r["tier"]): float(r["p_accept"]) for r in rows}
    assert common.param_digest(common.load_model(str(org / "ei" / "final"))) != \
        common.param_digest(common.load_model(str(org / "warmup" / "final")))
    assert p_acc[("retrain", "free")] != p_acc[("original", "free")]


def test_bad_organism_folders_refused_before_any_write(ei_run, tiny_model_dir, tmp_path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    org = write_organism(tmp_path / "organism", tiny_model_dir, ei_run / "final")
    # the ei/ stage given directly is read as the organism (its own config names an unreachable start model)
    from unlearning.organism_data import read_run

    assert read_run(str(org / "ei")).initial == str(org / "warmup" / "final")
    # a copy without weights: named as such, not as an unfinished run
    nofinal = tmp_path / "nofinal"
    shutil.copytree(org, nofinal)
    shutil.rmtree(nofinal / "ei" / "final")
    _refused(["--organism", str(nofinal)], out, capsys, ["no final/ model", "without weights", "afcu organism"])
    # the warm-started model is missing: refused up front, not in the retrain cell
    nowarm = tmp_path / "nowarm"
    shutil.copytree(org, nowarm)
    shutil.rmtree(nowarm / "warmup" / "final")
    _refused(["--organism", str(nowarm)], out, capsys, ["started from", "warmup/final", "neither a registry name"])
    # a bare EI run whose start model is a path relative to another working directory
    rel = tmp_path / "ei-rel"
    shutil.copytree(ei_run, rel)
    (rel / "config.yaml").write_text((rel / "config.yaml").read_text().replace(f"model: {tiny_model_dir}",
                                                                               "model: models/tiny"))
    _refused(["--organism", str(rel)], out, capsys, ["'models/tiny'", "field 'model'", str(rel / "config.yaml")])
    # a damaged kept.jsonl: file:line, no traceback
    bad = tmp_path / "ei-bad"
    shutil.copytree(ei_run, bad)
    kept = bad / "iterations" / "iter-1" / "kept.jsonl"
    kept.write_text(kept.read_text().splitlines()[0] + "\n" + '{"prompt": "p", "query_id": "q"}\n')
    _refused(["--organism", str(bad)], out, capsys, [f"{kept}:2", "without completion"])
    kept.write_text('{"prompt": "p", "compl\n')
    _refused(["--organism", str(bad)], out, capsys, [f"{kept}:1"])
