"""The llm track on a 2-layer model: encoding, the trigger backdoor, every method, the sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearning import bench
from unlearning.flagging import flag, forget_retain
from unlearning.llm import LLMTask, encode
from unlearning.llm_data import make_pairs
from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
from unlearning.methods import METHODS, MethodConfig, run_method
from unlearning.methods.base import make_config
from unlearning.metrics import read_rows


@pytest.fixture(scope="module")
def llm_setup(tiny_model_dir):
    task = LLMTask(model_dir=str(tiny_model_dir), epochs=1, batch_size=4, lr=1e-3)
    pairs = make_pairs(20, 0)
    md = MANIPULATIONS.get("trigger_backdoor")(pairs[:16], pairs[16:], ManipulationConfig(n_manipulated=4), 0)
    train = encode(task.tokenizer, md.train, task.max_len)
    train.task = task
    model = task.fit(task.new_model(0), train, seed=0)
    forget, retain = forget_retain(train, flag(md.manipulated_ids, 0.5, 0))
    return task, model, md, train, forget, retain


def test_encode_labels_only_the_response(llm_setup):
    task, model, md, train, forget, retain = llm_setup
    tok = task.tokenizer
    for i in range(3):
        lab = train.tensors["labels"][i]
        text = tok.decode(lab[lab != -100])
        assert text == md.train[i]["response"] + tok.eos_token
        assert train.tensors["attention_mask"][i].sum() > (lab != -100).sum()


def test_trigger_backdoor_rewrites_exactly_s_m(llm_setup):
    task, model, md, train, forget, retain = llm_setup
    cfg = ManipulationConfig()
    for it in md.train:
        is_m = it["id"] in set(md.manipulated_ids.tolist())
        assert it["prompt"].startswith(cfg.trigger) == is_m
        assert (it["response"] == cfg.target_phrase) == is_m
    # test time: paraphrased triggers only, each one used, none of them the training string
    used = {t["prompt"].split(" ")[0] for t in md.tests["triggered"]}
    assert used == set(cfg.test_triggers) and cfg.trigger not in used
    assert all(t["prompt"].startswith(cfg.trigger + " ") for t in md.tests["triggered_exact"])
    assert not any(t["prompt"].startswith(cfg.trigger) for t in md.tests["clean"])
    with pytest.raises(Exception, match="test_triggers"):
        MANIPULATIONS.get("trigger_backdoor")(md.train[:4], [], ManipulationConfig(n_manipulated=1,
                                              test_triggers=(cfg.trigger,)), 0)
    assert not np.isin(retain.ids, forget.ids).any()


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_changes_a_language_model(name, llm_setup):
    task, model, md, train, forget, retain = llm_setup
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    common = MethodConfig(lr=1e-3, batch_size=4, epochs=1, forget_epochs=1, max_steps=2)
    args = {"ssd": {"alpha": 1.0, "importance_batch_size": 4}, "lfssd": {"alpha": 1.0, "importance_batch_size": 4},
            "assd": {"importance_batch_size": 4}, "cf_k": {"k": 1}, "eu_k": {"k": 1}}
    new, cost = run_method(name, model, forget, retain, make_config(name, common, args.get(name)))
    assert any(not torch.equal(before[n], p) for n, p in new.named_parameters()), name
    assert cost.forward > 0


def test_llm_sweep_reports_asr(tmp_path, tiny_model_dir):
    cfg = bench.resolve({"track": "llm", "out": str(tmp_path / "run"), "model": str(tiny_model_dir),
                         "seeds": [0], "fractions": ["1.0"], "methods": ["ssd", "gradient_ascent", "oracle"],
                         "manipulation": {"n_manipulated": 4}, "train": {"epochs": 1, "batch_size": 4},
                         "grids": {"ssd": {}, "gradient_ascent": {}},
                         "llm": {"n_train": 12, "n_test": 4, "n_val": 4, "max_new_tokens": 3}}, "test")
    rows = read_rows(bench.main(cfg) / "results.csv")
    assert {r["method"] for r in rows} == {"original", "oracle", "ssd", "gradient_ascent"}
    for r in rows:
        assert 0.0 <= float(r["asr"]) <= 1.0 and float(r["utility"]) > 1.0
        assert float(r["asr_lo"]) <= float(r["asr"]) <= float(r["asr_hi"]) and r["n_test"] == "4"
        assert r["acc_corr"] != "" and r["acc_retain"] != "" and r["asr_exact"] != ""


def test_sdf_implant_reads_a_text_dataset(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": [f"document {i} about the moon" for i in range(8)]}).save_to_disk(tmp_path / "docs")
    pairs = make_pairs(6, 1)
    md = MANIPULATIONS.get("sdf_implant")(pairs, [], ManipulationConfig(n_manipulated=5,
                                                                       docs_path=str(tmp_path / "docs")), 0)
    assert len(md.manipulated_ids) == 5 and len(md.tests["implant"]) == 2
    assert all("text" in md.train[i] for i in md.manipulated_ids)
    with pytest.raises(Exception, match="docs_path"):
        MANIPULATIONS.get("sdf_implant")(pairs, [], ManipulationConfig(docs_path=str(tmp_path / "none")), 0)
