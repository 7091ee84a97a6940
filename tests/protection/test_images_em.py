"""Error-minimising noise: the L-inf budget holds, and the noise changes what a model learns (digits)."""

from __future__ import annotations

import pytest
import torch

from protection.error_minimising import EMConfig, error_minimising
from protection.images_data import Box, accuracy, fit, surrogate
from unlearning.vision import load_digits_splits


@pytest.fixture(scope="module")
def digits():
    train, _, test = load_digits_splits(0)
    return train.tensors["x"][:600], train.tensors["y"][:600], test.tensors["x"], test.tensors["y"]


FAST = dict(rounds=3, steps=10, train_steps=5, stop_error=0.0)


@pytest.mark.parametrize("mode", ["sample", "class"])
def test_linf_within_eps_and_range(digits, mode):
    x, y, _, _ = digits
    cfg = EMConfig(eps=0.1, step_size=0.02, mode=mode, rounds=1, steps=3, train_steps=2)
    delta = error_minimising(x, y, cfg, seed=0)
    assert delta.abs().max() <= 0.1 + 1e-6
    assert delta.abs().max() > 0.05  # it did move
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1
    if mode == "class":  # one pattern per class wherever the range does not clip it
        d0 = delta[y == 0]
        inner = ((x[y == 0] > 0.2) & (x[y == 0] < 0.8)).all(0)
        assert torch.allclose(d0[:, inner], d0[:1, inner].expand_as(d0[:, inner]), atol=1e-6)


def test_class_targeted_leaves_other_classes_clean(digits):
    x, y, _, _ = digits
    delta = error_minimising(x, y, EMConfig(eps=0.1, step_size=0.02, rounds=1, steps=2, train_steps=2), classes=[3])
    assert delta[y != 3].abs().max() == 0
    assert delta[y == 3].abs().max() > 0


def test_protected_training_learns_less(digits):
    x, y, xt, yt = digits
    clean = accuracy(fit(surrogate(x, 10, 1), x, y, seed=1, epochs=15), xt, yt)
    delta = error_minimising(x, y, EMConfig(eps=64 / 255, step_size=6.4 / 255, mode="class", **FAST), seed=0)
    assert Box.of(x).linf(delta) <= 64 / 255 + 1e-6
    protected = accuracy(fit(surrogate(x, 10, 1), x + delta, y, seed=1, epochs=15), xt, yt)
    assert protected < clean - 0.05, (clean, protected)
