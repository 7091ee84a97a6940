"""Every registered method changes the model and reports its passes and time."""

from __future__ import annotations

import pytest
import torch

from unlearning.methods import METHODS, MethodConfig, run_method
from unlearning.methods.base import make_config

CFG = MethodConfig(epochs=1, forget_epochs=1, lr=1e-3)
ARGS = {"ssd": {"alpha": 1.0}, "lfssd": {"alpha": 1.0}, "scrub": {"max_epochs": 1}}


@pytest.mark.parametrize("name", METHODS.names())
def test_method_changes_model_and_counts_passes(name, poisoned):
    task, model, md, forget, retain = poisoned
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    new, cost = run_method(name, model, forget, retain, make_config(name, CFG, ARGS.get(name)))
    assert any(not torch.equal(before[n], p) for n, p in new.named_parameters()), name
    # the input model is never modified
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    assert cost.forward > 0 and cost.seconds > 0
    assert cost.backward > 0
