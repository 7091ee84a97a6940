"""Unlearnable examples and Data Taggants as manipulations of the corrective-unlearning bench.

``afcu unlearn bench --track vision --manipulations em_class,salm,...`` (unlearning/README.md): each
unlearnable-example method is *class-targeted*: it protects the training images of one class
(``manipulation.target_class``, at most ``manipulation.n_manipulated`` of them, drawn at random);
S_m = those images.  Tests: ``corr`` = clean test images of the protected class (Acc_corr: does the model
still recognise the class?), ``retain`` = the other classes.  Unlearning a flagged fraction of S_m should
give the class back.

``taggants``: S_m = the signed images (clean-label, ``TaggantsConfig.budget`` of the training set);
tests ``corr`` and ``retain`` are the clean test set, and ``tests["verifier"]`` is a callable that gives a
model's ownership p-value on the secret keys; the vision track reports it as ``ownership_p`` before and
after each method unlearns the flagged signed images.

The protections' own settings are ``BENCH_EPS`` below and each method's config defaults (the unlearning
bench's ManipulationConfig has no fields for them): 64/255, where the digits images bench measured an
effect (8/255 has almost none on 8x8 digits, protection/README.md).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from afcu.errors import AfcuError
from unlearning.data import Split
from unlearning.manipulations.base import ManipulatedData, ManipulationConfig

BENCH_EPS = 64 / 255
BENCH_TAGGANTS: dict = {}  # TaggantsConfig overrides for the taggants manipulation (defaults: protection/taggants.py)


def _noise_fn(name: str) -> Callable[[torch.Tensor, torch.Tensor, int, list[int]], torch.Tensor]:
    from protection import error_minimising as em
    from protection import salm, t2ue, unlearnable_clusters as uc

    if name in ("em_class", "em_sample"):
        cfg = em.EMConfig(eps=BENCH_EPS, step_size=BENCH_EPS / 10, mode=name[3:])
        return lambda x, y, s, c: em.error_minimising(x, y, cfg, s, classes=c)
    if name == "salm":
        scfg = salm.SALMConfig(eps=BENCH_EPS, step_size=BENCH_EPS / 10)
        return lambda x, y, s, c: salm.salm(x, y, scfg, s, classes=c)
    if name == "uc":
        ucfg = uc.UCConfig(eps=BENCH_EPS)
        return lambda x, y, s, c: uc.unlearnable_clusters(x, y, ucfg, s, classes=c)
    tcfg = t2ue.T2UEConfig(eps=BENCH_EPS)
    return lambda x, y, s, c: t2ue.t2ue(x, y, tcfg, s, classes=c)


def protected_class(name: str) -> Callable[[Split, Split, ManipulationConfig, int], ManipulatedData]:
    """The manipulation ``name`` (em_class, em_sample, salm, uc, t2ue) protecting ``cfg.target_class``."""

    def apply(train: Split, test: Split, cfg: ManipulationConfig, seed: int) -> ManipulatedData:
        x, y = train.tensors["x"], train.tensors["y"]
        c = cfg.target_class
        pool = np.flatnonzero(y.numpy() == c)
        if len(pool) == 0:
            raise AfcuError(f"manipulation.target_class={c}: no training images of that class")
        rng = np.random.default_rng(seed)
        pos = np.sort(rng.choice(pool, size=min(cfg.n_manipulated, len(pool)), replace=False))
        delta = _noise_fn(name)(x, y, seed, [c])
        keep = torch.zeros(len(y), dtype=torch.bool)
        keep[torch.as_tensor(pos)] = True
        delta[~keep] = 0  # a cap below the class size leaves the rest of the class clean
        ty = test.tensors["y"].numpy()
        return ManipulatedData(Split({"x": x + delta, "y": y}, train.ids), train.ids[pos],
                               {"corr": test.take(np.flatnonzero(ty == c)),
                                "retain": test.take(np.flatnonzero(ty != c))})

    apply.__name__ = name
    apply.__doc__ = f"{name} noise on the training images of manipulation.target_class (protection/manipulations.py)."
    return apply


em_class = protected_class("em_class")
em_sample = protected_class("em_sample")
salm = protected_class("salm")
uc = protected_class("uc")
t2ue = protected_class("t2ue")


def taggants(train: Split, test: Split, cfg: ManipulationConfig, seed: int) -> ManipulatedData:
    """Sign the training set with Data Taggants; ``tests['verifier'](model)`` is the ownership p-value."""
    from protection import taggants as tg
    from protection.images_data import Box

    x, y = train.tensors["x"], train.tensors["y"]
    tcfg = tg.TaggantsConfig(**BENCH_TAGGANTS)
    keys = tg.make_keys(tuple(x.shape[1:]), Box.of(x), tcfg.n_keys, int(y.max()) + 1, tcfg.top_k, 90_000 + seed)
    delta, pos = tg.sign(x, y, keys, tcfg, seed)
    return ManipulatedData(Split({"x": x + delta, "y": y}, train.ids), train.ids[pos],
                           {"corr": test, "retain": test, "verifier": lambda model: tg.verify(model, keys)})
