"""SSD at the LLM --quick shapes selects parameters (no ratio cap); the grid shares one importance."""

from __future__ import annotations

import copy

import pytest
import torch

from unlearning.bench import SSD_GRID
from unlearning.data import concat
from unlearning.flagging import flag, forget_retain
from unlearning.llm import LLMTask, encode
from unlearning.llm_data import make_pairs
from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
from unlearning.methods.ssd import SSDConfig, dampen, importance, ssd_state
from unlearning.selection import candidates, select_and_run
from unlearning.vision import load_digits_splits


@pytest.fixture(scope="module")
def quick_shapes(tiny_model_dir):
    """The llm --quick shapes: 64 training rows, 16 backdoored, f = 0.5 -> |S_f| = 8, importance batch 8."""
    task = LLMTask(model_dir=str(tiny_model_dir), epochs=1, batch_size=8, lr=1e-3)
    pairs = make_pairs(64, 0)
    md = MANIPULATIONS.get("trigger_backdoor")(pairs, [], ManipulationConfig(n_manipulated=16), 0)
    train = encode(task.tokenizer, md.train, task.max_len)
    train.task = task
    model = task.fit(task.new_model(0), train, seed=0)
    forget, retain = forget_retain(train, flag(md.manipulated_ids, "0.5", 0))
    assert len(forget) == 8 and len(train) == 64
    return model, forget, retain, ssd_state(copy.deepcopy(model), forget, retain, SSDConfig(importance_batch_size=8))


def _max_ratio(ref, fgt):
    return max(float((fgt[n][ref[n] > 0] / ref[n][ref[n] > 0]).max()) for n in ref)


def test_forget_batches_first_cap_the_ratio_and_shuffling_removes_it(quick_shapes):
    model, forget, retain, st = quick_shapes
    # the old reference: concat(S_f, retain) unshuffled, so batch 0 of D *is* the forget batch
    capped = importance(copy.deepcopy(model), concat(forget, retain), 8)
    cap = 64 / 8  # n_batches / n_forget_batches
    assert _max_ratio(capped, st.fgt) <= cap * (1 + 1e-4)
    assert _max_ratio(st.ref, st.fgt) > cap  # the shuffled union (reference: full) has no cap


def test_alpha_10_selects_parameters_at_llm_quick_shapes(quick_shapes):
    model, forget, retain, st = quick_shapes
    info = dampen(copy.deepcopy(model), st.ref, st.fgt, alpha=10.0, lam=1.0)
    assert info["n_dampened"] > 0


def test_grid_computes_the_importance_once_per_cell(poisoned):
    task, model, md, forget, retain = poisoned
    _, val, _ = load_digits_splits(0)
    val.task = task
    cfg = SSDConfig(importance_batch_size=64)
    cands = candidates(SSD_GRID)
    assert len(cands) == 9 and {c["alpha"] for c in cands} == {1.0, 10.0, 100.0}
    for a in (1.0, 10.0, 100.0):  # lambda below, equal to and above each alpha
        assert sorted(c["lam"] / a for c in cands if c["alpha"] == a) == pytest.approx([0.1, 1.0, 10.0])
    new, cost, chosen = select_and_run("ssd", model, forget, retain, cfg, SSD_GRID, task.accuracy, val, 0.02)
    n_d = len(forget) + len(retain)
    # importance once (a pass over D and one over S_f), then at most one evaluation forward pass
    # over val and S_f per candidate (selection.py skips those that cannot change the choice;
    # test_selection_exact.py checks the exact count)
    assert cost.backward == n_d + len(forget)
    assert n_d + len(forget) < cost.forward <= n_d + len(forget) + len(cands) * (len(val) + len(forget))
    # the chosen model is the shared importance dampened with the chosen (alpha, lambda)
    st = ssd_state(copy.deepcopy(model), forget, retain, cfg)
    expect = copy.deepcopy(model)
    info = dampen(expect, st.ref, st.fgt, chosen["alpha"], chosen["lam"])
    assert cost.info["n_dampened"] == info["n_dampened"]
    for (n, p), q in zip(new.named_parameters(), expect.parameters()):
        assert torch.equal(p, q), n
