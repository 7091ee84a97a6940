"""SCRUB: the max step negates only the KL term; the min step adds KL and retain CE."""

from __future__ import annotations

import torch

from unlearning.methods.scrub import SCRUBConfig, distill_kl, scrub_max_loss, scrub_min_loss


def _kl_by_hand(s, t, temp):
    p = torch.softmax(t / temp, -1)
    return (p * (torch.log(p) - torch.log_softmax(s / temp, -1))).sum(-1).mean() * temp * temp


def test_distill_kl_matches_hand_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert torch.allclose(distill_kl(s, t, 2.0), _kl_by_hand(s, t, 2.0), atol=1e-6)


def test_max_step_negates_only_kl_and_min_step_sums_terms():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    cfg = SCRUBConfig(kl_weight=0.7, ce_weight=1.3, temperature=4.0)
    kl = _kl_by_hand(s, t, 4.0)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(scrub_max_loss(s, t, cfg), -0.7 * kl, atol=1e-6)
    assert torch.allclose(scrub_min_loss(s, t, y, cfg), 0.7 * kl + 1.3 * ce, atol=1e-6)
    # negating the whole min-step loss (the reference code's bug) would give a different value
    assert not torch.allclose(scrub_max_loss(s, t, cfg), -scrub_min_loss(s, t, y, cfg))
