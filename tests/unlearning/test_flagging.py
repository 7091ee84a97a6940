"""Flagging: S_f is drawn from S_m, nested across fractions, seeded; the retain set never holds S_f."""

from __future__ import annotations

import numpy as np
import pytest

from afcu.errors import AfcuError
from unlearning.flagging import flag, forget_retain, n_flagged


def test_sizes_and_single():
    assert n_flagged("single", 150) == 1
    assert n_flagged("0.1", 150) == 15
    assert n_flagged(0.001, 150) == 1
    with pytest.raises(AfcuError):
        n_flagged(1.5, 10)


def test_flagged_subset_nested_seeded_and_retain_disjoint(poisoned):
    task, model, md, forget, retain = poisoned
    s_m = md.manipulated_ids
    small, big = flag(s_m, 0.25, seed=3), flag(s_m, 0.75, seed=3)
    assert set(small) <= set(big) <= set(s_m)
    assert np.array_equal(small, flag(s_m, 0.25, seed=3))
    assert not np.array_equal(small, flag(s_m, 0.25, seed=4))
    for frac in ("single", 0.1, 0.5, 1.0):
        f, r = forget_retain(md.train, flag(s_m, frac, seed=0))
        assert not np.isin(r.ids, f.ids).any()
        assert len(f) + len(r) == len(md.train)
        # unflagged manipulated samples stay in the retain set
        assert np.isin(np.setdiff1d(s_m, f.ids), r.ids).all()
