"""Image manipulations: BadNets patch poisoning, interclass confusion, random label swap.

BadNets: Gu et al. (2017); interclass confusion: Goel et al. (2024) sec. 4 (two
classes exchange labels on a subset); random label swap: uniform label noise on S_m.
Each keeps sample ids, so S_m is a set of ids of the training split.
"""

from __future__ import annotations

import numpy as np
import torch

from afcu.errors import AfcuError
from unlearning.data import Split
from unlearning.manipulations.base import ManipulatedData, ManipulationConfig
from unlearning.manipulations.registry import MANIPULATIONS


def add_patch(x: torch.Tensor, cfg: ManipulationConfig) -> torch.Tensor:
    """Copy of images (N, C, H, W) with a ``patch_size`` square set to ``patch_value``."""
    out = x.clone()
    p = cfg.patch_size
    if cfg.patch_position == "bottom_right":
        out[:, :, -p:, -p:] = cfg.patch_value
    elif cfg.patch_position == "top_left":
        out[:, :, :p, :p] = cfg.patch_value
    else:
        raise AfcuError(f"manipulation.patch_position: {cfg.patch_position!r} is not bottom_right or top_left")
    return out


def _pick(rng: np.random.Generator, pool: np.ndarray, n: int, what: str) -> np.ndarray:
    if n > len(pool):
        raise AfcuError(f"manipulation.n_manipulated={n} exceeds the {len(pool)} samples eligible for {what}")
    return np.sort(rng.choice(pool, size=n, replace=False))


@MANIPULATIONS.register("badnets")
def badnets(train: Split, test: Split, cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Patch ``n_manipulated`` non-target training images and relabel them ``target_class``.

    Tests: ``corr`` = patched non-target test images with true labels; ``retain`` = clean test set.
    """
    rng = np.random.default_rng(seed)
    y = train.tensors["y"]
    pos = _pick(rng, np.flatnonzero(y.numpy() != cfg.target_class), cfg.n_manipulated, "BadNets")
    x, y = train.tensors["x"].clone(), y.clone()
    x[pos] = add_patch(x[pos], cfg)
    y[pos] = cfg.target_class
    keep = np.flatnonzero(test.tensors["y"].numpy() != cfg.target_class)
    corr = test.take(keep)
    corr = Split({"x": add_patch(corr.tensors["x"], cfg), "y": corr.tensors["y"]}, corr.ids)
    return ManipulatedData(Split({"x": x, "y": y}, train.ids), train.ids[pos], {"corr": corr, "retain": test})


@MANIPULATIONS.register("interclass_confusion")
def interclass_confusion(train: Split, test: Split, cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Swap the labels of ``n_manipulated`` training samples of the two ``confused_classes`` (half each).

    Tests: ``corr`` = test samples of the two classes; ``retain`` = test samples of the others.
    """
    a, b = cfg.confused_classes
    rng = np.random.default_rng(seed)
    y = train.tensors["y"].clone()
    yn = y.numpy()
    pa = _pick(rng, np.flatnonzero(yn == a), cfg.n_manipulated // 2, f"class {a}")
    pb = _pick(rng, np.flatnonzero(yn == b), cfg.n_manipulated - cfg.n_manipulated // 2, f"class {b}")
    y[pa], y[pb] = b, a
    ty = test.tensors["y"].numpy()
    in_dom = np.isin(ty, [a, b])
    pos = np.sort(np.concatenate([pa, pb]))
    return ManipulatedData(Split({"x": train.tensors["x"], "y": y}, train.ids), train.ids[pos],
                           {"corr": test.take(np.flatnonzero(in_dom)), "retain": test.take(np.flatnonzero(~in_dom))})


@MANIPULATIONS.register("random_label_swap")
def random_label_swap(train: Split, test: Split, cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Give ``n_manipulated`` random training samples a different uniformly drawn label.

    The manipulated domain is every class, so ``corr`` and ``retain`` are both the clean test set.
    """
    rng = np.random.default_rng(seed)
    y = train.tensors["y"].clone()
    pos = _pick(rng, np.arange(len(y)), cfg.n_manipulated, "random label swap")
    n_classes = int(y.max()) + 1
    shift = torch.as_tensor(rng.integers(1, n_classes, size=len(pos)))
    y[pos] = (y[pos] + shift) % n_classes
    return ManipulatedData(Split({"x": train.tensors["x"], "y": y}, train.ids), train.ids[pos],
                           {"corr": test, "retain": test})
