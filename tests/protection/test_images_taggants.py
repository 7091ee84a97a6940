"""Data Taggants: the exact binomial p-value, budgets, and the false-positive rate over clean models."""

from __future__ import annotations

from math import comb

import pytest
import torch

from protection.images_data import Box, fit, surrogate
from protection.taggants import Keys, TaggantsConfig, binomial_p, false_positive_rate, make_keys, sign, verify
from unlearning.vision import load_digits_splits


def test_binomial_p_matches_hand_computation():
    # P(X >= 5), X ~ Binomial(20, 0.1) = 1 - sum_{k<5} C(20,k) 0.1^k 0.9^(20-k) = 0.0431745
    assert binomial_p(5, 20, 0.1) == pytest.approx(0.04317449528446293, rel=1e-9)
    assert binomial_p(5, 20, 0.1) == pytest.approx(1 - sum(comb(20, k) * 0.1**k * 0.9**(20 - k) for k in range(5)))
    assert binomial_p(0, 20, 0.1) == pytest.approx(1.0)
    assert binomial_p(8, 10, 0.5) == pytest.approx(56 / 1024)  # C(10,8)+C(10,9)+C(10,10) = 56


class Constant(torch.nn.Module):
    """A model that always ranks the classes the same way (top-1 = class 3)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.arange(10.0).roll(4))  # index 3 holds the largest value 9

    def forward(self, x):
        return self.w.expand(len(x), -1)


def test_verify_counts_top_k_hits():
    keys = Keys(torch.zeros(4, 1, 8, 8), torch.tensor([3, 3, 1, 2]), n_classes=10, top_k=1)
    assert verify(Constant(), keys) == pytest.approx(binomial_p(2, 4, 0.1))
    keys.top_k = 2  # second largest is index 2 (value 8)
    assert verify(Constant(), keys) == pytest.approx(binomial_p(3, 4, 0.2))


@pytest.fixture(scope="module")
def digits():
    train, _, _ = load_digits_splits(0)
    return train.tensors["x"][:300], train.tensors["y"][:300]


def test_signing_is_clean_label_and_bounded(digits):
    x, y = digits
    cfg = TaggantsConfig(n_keys=5, budget=0.05, eps=0.1, steps=3, surrogate_epochs=1)
    keys = make_keys((1, 8, 8), Box.of(x), cfg.n_keys, 10, 1, seed=0)
    delta, pos = sign(x, y, keys, cfg, seed=0)
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.abs().max() > 0
    assert len(pos) == 15 and set(y[pos].tolist()) <= set(keys.y.tolist())  # signed images keep true labels
    untouched = torch.ones(len(y), dtype=torch.bool)
    untouched[torch.as_tensor(pos)] = False
    assert delta[untouched].abs().max() == 0


def test_false_positive_rate_on_clean_models(digits):
    x, y = digits
    cfg = TaggantsConfig(n_keys=10, n_clean_models=20, alpha=0.05)  # exact size 0.0128 at 10 keys
    fpr, ps = false_positive_rate(x, y, cfg, epochs=1, lr=3e-3, seed=0)
    assert len(ps) == 20 and all(0 < p <= 1 for p in ps)
    assert fpr <= cfg.alpha
