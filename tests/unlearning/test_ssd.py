"""SSD: never increases a weight's magnitude, leaves unselected weights untouched, reference on D."""

from __future__ import annotations

import copy

import numpy as np
import torch

from unlearning.data import concat
from unlearning.methods import MethodConfig, run_method
from unlearning.methods.ssd import dampen, importance, ratio_percentile, ssd_importances


def _check_dampening(before, after, ref, fgt, alpha):
    n_sel = 0
    for n, p0 in before.named_parameters():
        p1 = dict(after.named_parameters())[n]
        sel = fgt[n] > alpha * ref[n]
        assert torch.all(p1.abs() <= p0.abs() + 1e-7), n
        assert torch.equal(p1[~sel], p0[~sel]), f"{n}: an unselected weight changed"
        n_sel += int(sel.sum())
    return n_sel


def test_ssd_shrinks_only_selected_weights(poisoned):
    task, model, md, forget, retain = poisoned
    cfg = MethodConfig(alpha=1.0, lam=1.0)
    ref, fgt = ssd_importances(copy.deepcopy(model), forget, retain, cfg)
    new, cost = run_method("ssd", model, forget, retain, cfg)
    n_sel = _check_dampening(model, new, ref, fgt, cfg.alpha)
    assert n_sel > 0, "alpha=1 on poisoned samples should select some parameters"
    changed = sum(int((dict(new.named_parameters())[n] != p).sum()) for n, p in model.named_parameters())
    assert 0 < changed <= n_sel
    assert cost.backward == len(forget) + len(forget) + len(retain)  # one pass over D and one over S_f


def test_dampen_factor_is_min_of_lambda_ratio_and_one():
    lin = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, -4.0, 1.0]]))
    ref = {"weight": torch.tensor([[1.0, 1.0, 1.0]])}
    fgt = {"weight": torch.tensor([[20.0, 4.0, 0.5]])}
    n = dampen(lin, ref, fgt, alpha=3.0, lam=2.0)
    # selected: 20 > 3 and 4 > 3; factors min(2*1/20, 1) = 0.1 and min(2/4, 1) = 0.5; the third is untouched
    assert n == 2
    assert torch.allclose(lin.weight, torch.tensor([[0.2, -2.0, 1.0]]))


def test_reference_importance_is_on_full_data_not_retain_set(poisoned):
    task, model, md, forget, retain = poisoned
    cfg = MethodConfig(importance_batch_size=64)
    ref, fgt = ssd_importances(copy.deepcopy(model), forget, retain, cfg)
    on_d = importance(copy.deepcopy(model), concat(forget, retain), 64)
    on_retain = importance(copy.deepcopy(model), retain, 64)
    on_forget = importance(copy.deepcopy(model), forget, 64)
    for n in ref:
        assert torch.allclose(ref[n], on_d[n])
        assert torch.allclose(fgt[n], on_forget[n])
    assert any(not torch.allclose(ref[n], on_retain[n]) for n in ref)


def test_importance_is_mean_squared_batch_gradient(poisoned):
    task, model, md, forget, retain = poisoned
    m = copy.deepcopy(model)
    imp = importance(m, forget, batch_size=10)
    expect = {n: torch.zeros_like(p) for n, p in m.named_parameters()}
    batches = list(forget.batches(10))
    for b in batches:
        m.zero_grad()
        torch.nn.functional.cross_entropy(m(b["x"]), b["y"]).backward()
        for n, p in m.named_parameters():
            expect[n] += p.grad ** 2 / len(batches)
    for n in imp:
        assert torch.allclose(imp[n], expect[n], rtol=1e-5, atol=1e-12)


def test_assd_alpha_is_percentile_and_lfssd_runs(poisoned):
    task, model, md, forget, retain = poisoned
    ref = {"a": torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0])}
    fgt = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0, 9.0])}
    assert ratio_percentile(ref, fgt, 100) == 4.0 and ratio_percentile(ref, fgt, 0) == 1.0
    for name in ("assd", "lfssd"):
        new, _ = run_method(name, model, forget, retain, MethodConfig(alpha=1.0))
        for n, p in model.named_parameters():
            assert torch.all(dict(new.named_parameters())[n].abs() <= p.abs() + 1e-7)
    assert np.isin(forget.ids, md.manipulated_ids).all()
