"""SALM, Unlearnable Clusters, T2UE: budgets hold, SALM stays sparse, T2UE never reads the images."""

from __future__ import annotations

import inspect

import pytest
import torch

from protection.images_data import Box, accuracy, fit, pixel_frac, surrogate
from protection.salm import SALMConfig, salm
from protection.t2ue import NoiseGenerator, T2UEConfig, t2ue, train_generator
from protection.unlearnable_clusters import UCConfig, unlearnable_clusters
from unlearning.vision import load_digits_splits


@pytest.fixture(scope="module")
def digits():
    train, _, test = load_digits_splits(0)
    return train.tensors["x"][:500], train.tensors["y"][:500], test.tensors["x"], test.tensors["y"]


def test_salm_budget_and_sparsity(digits):
    x, y, _, _ = digits
    cfg = SALMConfig(eps=0.2, step_size=0.05, sparsity=0.15, rounds=2, steps=3, train_steps=2, stop_error=0.0)
    delta = salm(x, y, cfg, seed=0)
    assert delta.abs().max() <= 0.2 + 1e-6
    per_image = (delta.abs() > 1e-7).flatten(1).float().mean(1)
    assert per_image.max() <= 0.15 + 1e-6  # floor(0.15 * 64) = 9 of 64 positions at most
    assert pixel_frac(delta) > 0.05  # but it does perturb
    full = SALMConfig(eps=0.2, step_size=0.05, sparsity=1.0, rounds=1, steps=3, train_steps=2)
    assert pixel_frac(salm(x, y, full, seed=0)) > pixel_frac(delta)


def test_unlearnable_clusters_budget_and_shared_noise(digits):
    _, y, _, _ = digits
    x = 0.3 + 0.4 * torch.rand((len(y), 1, 8, 8), generator=torch.Generator().manual_seed(0))
    x[0], x[1] = 0.0, 1.0  # the value range is [0, 1]; elsewhere eps=0.1 never clips
    delta = unlearnable_clusters(x, y, UCConfig(eps=0.1, n_clusters=4, steps=5, surrogate_epochs=1), seed=0)
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.abs().max() > 0
    patterns: list[torch.Tensor] = []
    for row in delta[2:]:
        if not any(torch.allclose(row, p, atol=1e-5) for p in patterns):
            patterns.append(row)
    assert len(patterns) <= 4  # one perturbation per cluster


def test_t2ue_generator_never_reads_images(digits, monkeypatch):
    x, y, _, _ = digits
    # structural: neither the generator nor its training takes an image argument
    assert list(inspect.signature(NoiseGenerator.forward).parameters) == ["self", "emb", "z", "bound"]
    assert "x" not in inspect.signature(train_generator).parameters
    # behavioural: two different image sets with the same labels and value range get the same noise
    g = torch.Generator().manual_seed(0)
    xa = 0.3 + 0.4 * torch.rand(x.shape, generator=g)
    xb = 0.3 + 0.4 * torch.rand(x.shape, generator=g)
    for xx in (xa, xb):
        xx[0].zero_()
        xx[1].fill_(1.0)
    cfg = T2UEConfig(eps=0.1, iterations=3, batch_size=16)
    da, db = t2ue(xa, y, cfg, seed=0), t2ue(xb, y, cfg, seed=0)
    assert torch.allclose(da[2:], db[2:], atol=1e-6)
    assert da.abs().max() <= 0.1 + 1e-6 and da.abs().max() > 0


@pytest.mark.parametrize("method", ["salm", "uc", "t2ue"])
def test_each_method_changes_learning(digits, method):
    x, y, xt, yt = digits
    if method == "salm":
        delta = salm(x, y, SALMConfig(eps=0.5, step_size=0.1, sparsity=0.5, rounds=3, steps=10, train_steps=5,
                                      stop_error=0.0), seed=0)
    elif method == "uc":
        delta = unlearnable_clusters(x, y, UCConfig(eps=0.5, steps=60, surrogate_epochs=5), seed=0)
    else:
        delta = t2ue(x, y, T2UEConfig(eps=0.5, iterations=150), seed=0)
    assert Box.of(x).linf(delta) <= 0.5 + 1e-6
    clean = accuracy(fit(surrogate(x, 10, 1), x, y, seed=1, epochs=15), xt, yt)
    protected = accuracy(fit(surrogate(x, 10, 1), x + delta, y, seed=1, epochs=15), xt, yt)
    assert protected < clean - 0.05, (clean, protected)
