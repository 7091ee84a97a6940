"""SSD: never grows a weight, leaves unselected weights untouched, both reference choices, no ratio cap."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from unlearning.data import concat
from unlearning.methods import run_method
from unlearning.methods.ssd import (ASSDConfig, SSDConfig, assd_percentile, dampen, importance, ratio_percentile,
                                    ssd_state)


def _check_dampening(before, after, ref, fgt, alpha):
    n_sel = 0
    for n, p0 in before.named_parameters():
        p1 = dict(after.named_parameters())[n]
        sel = fgt[n] > alpha * ref[n]
        assert torch.all(p1.abs() <= p0.abs() + 1e-7), n
        assert torch.equal(p1[~sel], p0[~sel]), f"{n}: an unselected weight changed"
        n_sel += int(sel.sum())
    return n_sel


def test_ssd_shrinks_only_selected_weights_and_reports_the_count(poisoned):
    task, model, md, forget, retain = poisoned
    cfg = SSDConfig(alpha=1.0, lam=1.0)
    st = ssd_state(copy.deepcopy(model), forget, retain, cfg)
    new, cost = run_method("ssd", model, forget, retain, cfg)
    n_sel = _check_dampening(model, new, st.ref, st.fgt, cfg.alpha)
    assert n_sel > 0 and cost.info["n_dampened"] == n_sel
    n_all = sum(p.numel() for p in model.parameters())
    assert math.isclose(cost.info["frac_dampened"], n_sel / n_all)
    assert cost.backward == len(forget) + len(forget) + len(retain)  # one pass over D and one over S_f


def test_dampen_factor_is_min_of_lambda_ratio_and_one():
    lin = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, -4.0, 1.0]]))
    ref = {"weight": torch.tensor([[1.0, 1.0, 1.0]])}
    fgt = {"weight": torch.tensor([[20.0, 4.0, 0.5]])}
    info = dampen(lin, ref, fgt, alpha=3.0, lam=2.0)
    # selected: 20 > 3 and 4 > 3; factors min(2*1/20, 1) = 0.1 and min(2/4, 1) = 0.5; the third is untouched
    assert info == {"n_dampened": 2, "frac_dampened": 2 / 3}
    assert torch.allclose(lin.weight, torch.tensor([[0.2, -2.0, 1.0]]))


def test_reference_full_is_shuffled_union_and_retain_is_retain(poisoned):
    task, model, md, forget, retain = poisoned
    full = ssd_state(copy.deepcopy(model), forget, retain, SSDConfig(importance_batch_size=64, seed=3))
    ret = ssd_state(copy.deepcopy(model), forget, retain, SSDConfig(importance_batch_size=64, seed=3,
                                                                    reference="retain"))
    on_d = importance(copy.deepcopy(model), concat(forget, retain), 64, shuffle_seed=3)
    on_retain = importance(copy.deepcopy(model), retain, 64, shuffle_seed=3)
    for n in full.ref:
        assert torch.allclose(full.ref[n], on_d[n]) and torch.allclose(ret.ref[n], on_retain[n])
        assert torch.equal(full.fgt[n], ret.fgt[n])
    assert any(not torch.allclose(full.ref[n], ret.ref[n]) for n in full.ref)


def test_importance_is_mean_squared_batch_gradient(poisoned):
    task, model, md, forget, retain = poisoned
    m = copy.deepcopy(model)
    imp = importance(m, forget, batch_size=10)
    lf = importance(m, forget, batch_size=10, label_free=True)
    expect = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    expect_lf = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    batches = list(forget.batches(10))
    for b in batches:
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(b["x"]), b["y"]).backward()
        for n, p in m.named_parameters():
            expect[n] += p.grad ** 2 / len(batches)
        m.zero_grad()
        m(b["x"]).pow(2).sum(-1).mean().backward()  # LFSSD: ||z||^2, importance |g|
        for n, p in m.named_parameters():
            expect_lf[n] += p.grad.abs() / len(batches)
    for n in imp:
        assert torch.allclose(imp[n], expect[n], rtol=1e-5, atol=1e-12)
        assert torch.allclose(lf[n], expect_lf[n], rtol=1e-5, atol=1e-10)


def test_assd_alpha_is_the_length_based_percentile(poisoned):
    task, model, md, forget, retain = poisoned
    ref = {"a": torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])}
    fgt = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0, 9.0])}
    assert ratio_percentile(ref, fgt, 100) == 4.0 and ratio_percentile(ref, fgt, 0) == 1.0
    assert math.isclose(ratio_percentile(ref, fgt, 50), 2.5)  # linear interpolation, as np.nanpercentile
    assert math.isclose(assd_percentile(30, 1000), 100 - math.log(1 + 3.0))
    new, cost = run_method("assd", model, forget, retain, ASSDConfig())
    q = assd_percentile(len(forget), len(forget) + len(retain))
    assert math.isclose(cost.info["assd_percentile"], q)
    st = ssd_state(copy.deepcopy(model), forget, retain, ASSDConfig())
    assert math.isclose(cost.info["assd_alpha"], ratio_percentile(st.ref, st.fgt, q), rel_tol=1e-6)
    assert cost.info["n_dampened"] == _check_dampening(model, new, st.ref, st.fgt, cost.info["assd_alpha"])
    assert np.isin(forget.ids, md.manipulated_ids).all()
