"""Image manipulations change exactly S_m and build the right test sets."""

from __future__ import annotations

import numpy as np
import torch

from unlearning.manipulations import MANIPULATIONS, ManipulationConfig
from unlearning.vision import load_digits_splits


def test_badnets_patches_and_relabels_exactly_s_m():
    train, _, test = load_digits_splits(0)
    cfg = ManipulationConfig(n_manipulated=40, target_class=0, patch_size=2)
    md = MANIPULATIONS.get("badnets")(train, test, cfg, seed=1)
    changed = np.flatnonzero((md.train.tensors["x"] != train.tensors["x"]).flatten(1).any(1).numpy())
    assert len(md.manipulated_ids) == 40
    assert set(train.ids[changed]) <= set(md.manipulated_ids)
    pos = np.flatnonzero(np.isin(train.ids, md.manipulated_ids))
    assert (md.train.tensors["y"][pos] == 0).all() and (train.tensors["y"][pos] != 0).all()
    assert (md.train.tensors["x"][pos][:, :, -2:, -2:] == 1.0).all()
    assert (md.tests["corr"].tensors["y"] != 0).all()
    assert (md.tests["corr"].tensors["x"][:, :, -2:, -2:] == 1.0).all()


def test_interclass_confusion_swaps_two_classes():
    train, _, test = load_digits_splits(0)
    md = MANIPULATIONS.get("interclass_confusion")(train, test, ManipulationConfig(n_manipulated=30,
                                                                                     confused_classes=(3, 8)), 0)
    diff = np.flatnonzero((md.train.tensors["y"] != train.tensors["y"]).numpy())
    assert sorted(train.ids[diff]) == sorted(md.manipulated_ids) and len(diff) == 30
    old, new = train.tensors["y"][diff], md.train.tensors["y"][diff]
    assert torch.all(((old == 3) & (new == 8)) | ((old == 8) & (new == 3)))
    assert set(md.tests["corr"].tensors["y"].tolist()) == {3, 8}
    assert not set(md.tests["retain"].tensors["y"].tolist()) & {3, 8}


def test_random_label_swap_changes_every_manipulated_label():
    train, _, test = load_digits_splits(0)
    md = MANIPULATIONS.get("random_label_swap")(train, test, ManipulationConfig(n_manipulated=50), 2)
    diff = np.flatnonzero((md.train.tensors["y"] != train.tensors["y"]).numpy())
    assert sorted(train.ids[diff]) == sorted(md.manipulated_ids)
